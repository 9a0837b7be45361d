//! Signature checks (key checks are [`crate::address::check_public_key`]). One rule everywhere: ZIP-215 (`ed25519-consensus`), so batch and single
//! verification accept exactly the same signatures.

use curve25519_dalek::{
    constants::ED25519_BASEPOINT_POINT,
    edwards::{CompressedEdwardsY, EdwardsPoint},
    scalar::Scalar,
    traits::{IsIdentity, VartimeMultiscalarMul},
};
use ed25519_consensus::{Signature, VerificationKey};
use rand_core::RngCore;
use rayon::prelude::*;
use sha2::{Digest, Sha512};

use super::Tx;
use crate::address::known_key;

/// Largest batch: the multiscalar multiplication's cost per signature keeps falling up to about a thousand.
const MAX_BATCH: usize = 1024;
/// Smallest batch worth splitting a block into.
const MIN_BATCH: usize = 64;

/// Batch size for `n` signatures: as large as possible while still giving every core a share.
fn batch_size(n: usize) -> usize {
    n.div_ceil(rayon::current_num_threads().max(1))
        .clamp(MIN_BATCH, MAX_BATCH)
}

/// Verifies every tx's signatures (every slot of a multisig), in parallel batches; returns one verdict per
/// tx, in order: true when all of its signatures verify.
///
/// Batch verification draws random coefficients from the OS. That is the one use of randomness near the
/// state machine and it cannot affect a verdict: under ZIP-215 a batch accepts exactly when every
/// signature in it verifies singly, and a failed batch is re-checked one signature at a time.
pub fn verify_signatures(txs: &[&Tx]) -> Vec<bool> {
    // (tx index, key, signature, signed bytes)
    type Item<'a> = (usize, &'a [u8; 32], &'a [u8; 64], &'a [u8]);
    let items: Vec<Item<'_>> = txs
        .iter()
        .enumerate()
        .flat_map(|(i, tx)| {
            tx.signatures
                .iter()
                .map(move |(k, s)| (i, k, s, tx.sign_bytes.as_slice()))
        })
        .collect();
    let verdicts: Vec<bool> = items
        .par_chunks(batch_size(items.len()))
        .flat_map_iter(|chunk| {
            if verify_batch(chunk.iter().map(|(_, k, s, msg)| (*k, *s, *msg))) {
                vec![true; chunk.len()]
            } else {
                chunk
                    .iter()
                    .map(|(_, k, s, msg)| verify_one(k, s, msg))
                    .collect()
            }
        })
        .collect();
    let mut out: Vec<bool> = txs.iter().map(|t| !t.signatures.is_empty()).collect();
    for ((i, ..), ok) in items.iter().zip(verdicts) {
        if let (false, Some(verdict)) = (ok, out.get_mut(*i)) {
            *verdict = false;
        }
    }
    out
}

/// [`verify_signatures`] for one tx: true when all of its signatures verify.
pub fn signatures_verify(tx: &Tx) -> bool {
    verify_signatures(&[tx]) == [true]
}

/// ZIP-215 batch verification: true when, for 128-bit random `z_i`,
/// `[8](Σ z_i·R_i + Σ (z_i·k_i)·A_i − (Σ z_i·s_i)·B)` is the identity, with `k_i = H(R_i ‖ A_i ‖ M_i)`.
/// That is the equation `ed25519-consensus` checks (same decompression of `A` and `R`, non-canonical
/// encodings accepted; `s` must be canonical), computed with `curve25519-dalek` so that known keys'
/// points come from the key memo of `crate::address` instead of being decompressed again. It accepts exactly when every
/// signature verifies singly (up to a 2^-128 chance); on false the caller re-checks each signature with
/// `ed25519-consensus`, so a verdict never rests on this function alone.
fn verify_batch<'a>(
    items: impl ExactSizeIterator<Item = (&'a [u8; 32], &'a [u8; 64], &'a [u8])>,
) -> bool {
    let n = items.len();
    let mut randomness = vec![[0u8; 16]; n];
    if rand_core::OsRng
        .try_fill_bytes(randomness.as_flattened_mut())
        .is_err()
    {
        return false;
    }
    // Two terms per signature and the basepoint's (a capacity hint: n <= MAX_BATCH).
    let terms = n.saturating_mul(2).saturating_add(1);
    let mut scalars = Vec::with_capacity(terms);
    let mut points = Vec::with_capacity(terms);
    let mut b_coeff = Scalar::ZERO;
    // Where each key's term is in `scalars`: signatures by one key share one term, `(Σ z_i·k_i)·A`, so the
    // multiscalar multiplication has one term per distinct key instead of one per signature (accounts that
    // send many txs fill blocks), and each key is looked up or decompressed once per batch.
    let mut key_terms: crate::fasthash::HashMap<&[u8; 32], usize> =
        crate::fasthash::map_with_capacity(n);
    for ((k, sig, msg), z) in items.zip(&randomness) {
        let mut r_bytes = [0u8; 32];
        r_bytes.copy_from_slice(&sig[..32]);
        let mut s_bytes = [0u8; 32];
        s_bytes.copy_from_slice(&sig[32..]);
        let Some(r) = CompressedEdwardsY(r_bytes).decompress() else {
            return false;
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        let hash: [u8; 64] = Sha512::new()
            .chain_update(r_bytes)
            .chain_update(k)
            .chain_update(msg)
            .finalize()
            .into();
        let h = Scalar::from_bytes_mod_order_wide(&hash);
        let mut z_bytes = [0u8; 32];
        z_bytes[..16].copy_from_slice(z);
        let z = Scalar::from_bytes_mod_order(z_bytes);
        b_coeff -= z * s;
        scalars.push(z);
        points.push(r);
        match key_terms.get(k) {
            Some(&i) => match scalars.get_mut(i) {
                Some(term) => *term += z * h,
                None => return false,
            },
            None => {
                let Some(a) = known_key(k).or_else(|| CompressedEdwardsY(*k).decompress()) else {
                    return false;
                };
                key_terms.insert(k, scalars.len());
                scalars.push(z * h);
                points.push(a);
            }
        }
    }
    scalars.push(b_coeff);
    points.push(ED25519_BASEPOINT_POINT);
    EdwardsPoint::vartime_multiscalar_mul(scalars, points)
        .mul_by_cofactor()
        .is_identity()
}

fn verify_one(k: &[u8; 32], s: &[u8; 64], msg: &[u8]) -> bool {
    VerificationKey::try_from(*k)
        .and_then(|vk| vk.verify(&Signature::from(*s), msg))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::check_public_key;
    use ed25519_consensus::SigningKey;
    use proptest::prelude::*;

    /// Encodings that exercise ZIP-215's rules: the identity, canonically and not (y = p + 1), the point
    /// of order 2 (y = p − 1), and a byte string that is not a point's y at all.
    fn special_points() -> Vec<[u8; 32]> {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut identity_non_canonical = [0xffu8; 32];
        identity_non_canonical[0] = 0xee;
        identity_non_canonical[31] = 0x7f;
        let mut order_two = [0xffu8; 32];
        order_two[0] = 0xec;
        order_two[31] = 0x7f;
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        vec![identity, identity_non_canonical, order_two, not_a_point]
    }

    type Item = ([u8; 32], [u8; 64], Vec<u8>);

    fn item(kind: u8, seed: u8, msg: &[u8]) -> Item {
        let sk = SigningKey::from([seed; 32]);
        let pk = sk.verification_key().to_bytes();
        let sig = sk.sign(msg).to_bytes();
        let special = special_points();
        match kind % 6 {
            // Valid.
            0 | 1 => (pk, sig, msg.to_vec()),
            // Signed something else.
            2 => (pk, sk.sign(b"other").to_bytes(), msg.to_vec()),
            // Non-canonical s (s + l).
            3 => {
                let mut s = sig;
                s[63] |= 0xf0;
                (pk, s, msg.to_vec())
            }
            // Small-order key and R with s = 0: valid under ZIP-215.
            4 => {
                let p = special[seed as usize % 3];
                let mut s = [0u8; 64];
                s[..32].copy_from_slice(&special[(seed as usize / 3) % 3]);
                (p, s, msg.to_vec())
            }
            // R that is not a point.
            _ => {
                let mut s = sig;
                s[..32].copy_from_slice(&special[3]);
                (pk, s, msg.to_vec())
            }
        }
    }

    /// Batch and single verdicts on the items `specs` describe (`warm`: their keys in the key memo first).
    fn batch_and_single(specs: &[(u8, u8, Vec<u8>)], warm: bool) -> (bool, bool) {
        let items: Vec<Item> = specs.iter().map(|(k, s, m)| item(*k, *s, m)).collect();
        if warm {
            for (pk, ..) in &items {
                let _ = check_public_key(pk);
            }
        }
        let singly = items.iter().all(|(k, s, m)| verify_one(k, s, m));
        let batch = verify_batch(items.iter().map(|(k, s, m)| (k, s, m.as_slice())));
        (batch, singly)
    }

    proptest! {
        #[test]
        fn batch_verification_agrees_with_single_verification(
            specs in prop::collection::vec((any::<u8>(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..40)), 1..12),
            warm in any::<bool>(),
        ) {
            let (batch, singly) = batch_and_single(&specs, warm);
            prop_assert_eq!(batch, singly);
        }

        /// The same with a few keys signing many items each (their terms share one point in the batch): a
        /// bad signature by a key still fails the batch when that key's other signatures are good.
        #[test]
        fn batch_verification_with_repeated_keys_agrees_with_single_verification(
            specs in prop::collection::vec((any::<u8>(), 0u8..3, prop::collection::vec(any::<u8>(), 0..40)), 2..24),
            warm in any::<bool>(),
        ) {
            let (batch, singly) = batch_and_single(&specs, warm);
            prop_assert_eq!(batch, singly);
        }
    }

    #[test]
    fn one_bad_signature_among_many_by_the_same_key_fails_the_batch() {
        let sk = SigningKey::from([9; 32]);
        let pk = sk.verification_key().to_bytes();
        let msgs: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 3]).collect();
        let mut items: Vec<([u8; 32], [u8; 64], &[u8])> = msgs
            .iter()
            .map(|m| (pk, sk.sign(m).to_bytes(), m.as_slice()))
            .collect();
        assert!(verify_batch(items.iter().map(|(k, s, m)| (k, s, *m))));
        // Item 17 carries item 18's signature: one wrong term among 50 that share the key.
        items[17].1 = items[18].1;
        assert!(!verify_batch(items.iter().map(|(k, s, m)| (k, s, *m))));
    }

    #[test]
    fn small_order_key_and_r_with_zero_s_verify_as_zip215_says() {
        let special = special_points();
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&special[1]);
        assert!(verify_one(&special[0], &sig, b"m"));
        assert!(verify_batch([(&special[2], &sig, &b"m"[..])].into_iter()));
    }
}
