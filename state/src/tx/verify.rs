//! Signature and key checks. One rule everywhere: ZIP-215 (`ed25519-consensus`), so batch and single
//! verification accept exactly the same signatures.

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_consensus::{batch, Signature, VerificationKey, VerificationKeyBytes};
use rayon::prelude::*;

use super::Tx;
use crate::error::TxError;

/// Signatures per batch: big enough to amortise the multiscalar multiplication, small enough to spread a
/// block over every core.
const BATCH: usize = 256;

/// Rejects keys that ZIP-215 would accept for verification but that no honest wallet produces: encodings
/// that are not canonical, points that do not decompress, and small-order points (for which forged
/// signatures are trivial).
pub fn check_public_key(pk: &[u8; 32]) -> Result<(), TxError> {
    let point = CompressedEdwardsY(*pk)
        .decompress()
        .ok_or(TxError::InvalidPublicKey("not a curve point"))?;
    if point.compress().to_bytes() != *pk {
        return Err(TxError::InvalidPublicKey("non-canonical encoding"));
    }
    if point.is_small_order() {
        return Err(TxError::InvalidPublicKey("small-order point"));
    }
    VerificationKey::try_from(*pk).map_err(|_| TxError::InvalidPublicKey("rejected by ed25519"))?;
    Ok(())
}

/// Verifies every tx's signature, in parallel batches; returns one verdict per tx, in order.
///
/// Batch verification draws random coefficients from the OS. That is the one use of randomness near the
/// state machine and it cannot affect a verdict: under ZIP-215 a batch accepts exactly when every
/// signature in it verifies singly, and a failed batch is re-checked one signature at a time.
pub fn verify_signatures(txs: &[&Tx]) -> Vec<bool> {
    txs.par_chunks(BATCH)
        .flat_map_iter(|chunk| {
            let mut verifier = batch::Verifier::new();
            for tx in chunk {
                verifier.queue((
                    VerificationKeyBytes::from(tx.auth.public_key),
                    Signature::from(tx.signature),
                    &tx.sign_bytes,
                ));
            }
            if verifier.verify(rand_core::OsRng).is_ok() {
                vec![true; chunk.len()]
            } else {
                chunk.iter().map(|tx| verify_one(tx)).collect()
            }
        })
        .collect()
}

fn verify_one(tx: &Tx) -> bool {
    VerificationKey::try_from(tx.auth.public_key)
        .and_then(|vk| vk.verify(&Signature::from(tx.signature), &tx.sign_bytes))
        .is_ok()
}
