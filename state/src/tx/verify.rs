//! Signature and key checks. One rule everywhere: ZIP-215 (`ed25519-consensus`), so batch and single
//! verification accept exactly the same signatures.

use std::{
    collections::HashSet,
    sync::{LazyLock, RwLock},
};

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_consensus::{batch, Signature, VerificationKey, VerificationKeyBytes};
use rayon::prelude::*;

use super::Tx;
use crate::error::TxError;

/// Largest batch: the multiscalar multiplication's cost per signature keeps falling up to about a thousand.
const MAX_BATCH: usize = 1024;
/// Smallest batch worth splitting a block into.
const MIN_BATCH: usize = 64;

/// Batch size for `n` signatures: as large as possible while still giving every core a share.
fn batch_size(n: usize) -> usize {
    n.div_ceil(rayon::current_num_threads().max(1))
        .clamp(MIN_BATCH, MAX_BATCH)
}

/// Rejects keys that ZIP-215 would accept for verification but that no honest wallet produces: encodings
/// that are not canonical, points that do not decompress, and small-order points (for which forged
/// signatures are trivial).
pub fn check_public_key(pk: &[u8; 32]) -> Result<(), TxError> {
    if VALID_KEYS
        .read()
        .map(|set| set.contains(pk))
        .unwrap_or(false)
    {
        return Ok(());
    }
    let point = CompressedEdwardsY(*pk)
        .decompress()
        .ok_or(TxError::InvalidPublicKey("not a curve point"))?;
    if point.compress().to_bytes() != *pk {
        return Err(TxError::InvalidPublicKey("non-canonical encoding"));
    }
    if point.is_small_order() {
        return Err(TxError::InvalidPublicKey("small-order point"));
    }
    if let Ok(mut set) = VALID_KEYS.write() {
        if set.len() >= VALID_KEYS_CAP {
            set.clear();
        }
        set.insert(*pk);
    }
    Ok(())
}

/// Keys that already passed [`check_public_key`]. Point decompression dominates a tx's stateless check
/// and most txs come from keys seen before; the memo only skips work whose answer is known, so it cannot
/// change a verdict. Cleared when full.
static VALID_KEYS: LazyLock<RwLock<HashSet<[u8; 32]>>> = LazyLock::new(Default::default);
const VALID_KEYS_CAP: usize = 1 << 18;

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
            let mut verifier = batch::Verifier::new();
            for (_, k, s, msg) in chunk {
                verifier.queue((VerificationKeyBytes::from(**k), Signature::from(**s), *msg));
            }
            if verifier.verify(rand_core::OsRng).is_ok() {
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
        if !ok {
            out[*i] = false;
        }
    }
    out
}

fn verify_one(k: &[u8; 32], s: &[u8; 64], msg: &[u8]) -> bool {
    VerificationKey::try_from(*k)
        .and_then(|vk| vk.verify(&Signature::from(*s), msg))
        .is_ok()
}
