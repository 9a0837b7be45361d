//! Challenge derivation: which tiles a provider must reveal.
//!
//! The seed comes from a block hash produced after the provider committed its output, so
//! the provider cannot know the sample when choosing which tiles to corrupt:
//! `seed = SHA-256("lode/gpu-verify/seed/v1" || block_hash || job_id)`.
//!
//! Index `j` of the stream is read from
//! `SHA-256("lode/gpu-verify/challenge/v1" || seed || job_id || counter_u64_le)`, whose 32
//! bytes give four little-endian u64 draws. A draw `x` is accepted only if
//! `x < ⌊2⁶⁴ / count⌋ · count` (rejection sampling, so `x mod count` is exactly uniform);
//! duplicates are skipped. If `samples >= count`, every tile is sampled. The result is
//! sorted ascending, which is also the order a reveal must use.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::merkle::Hash;

/// Opaque 32-byte job identifier (assigned by the chain).
pub type JobId = [u8; 32];

const SEED_TAG: &[u8] = b"lode/gpu-verify/seed/v1";
const INDEX_TAG: &[u8] = b"lode/gpu-verify/challenge/v1";

/// Derives the challenge seed of a job from a block hash.
pub fn challenge_seed(block_hash: &Hash, job_id: &JobId) -> Hash {
    let mut h = Sha256::new();
    h.update(SEED_TAG);
    h.update(block_hash);
    h.update(job_id);
    h.finalize().into()
}

/// `samples` distinct tile indices in `[0, tile_count)`, sorted ascending.
pub fn challenge_indices(
    seed: &Hash,
    job_id: &JobId,
    tile_count: u64,
    samples: usize,
) -> Result<Vec<u64>> {
    if tile_count == 0 {
        return Err(Error::InvalidParameter(
            "tile count must be positive".into(),
        ));
    }
    if samples == 0 {
        return Err(Error::InvalidParameter(
            "sample count must be positive".into(),
        ));
    }
    if samples as u64 >= tile_count {
        return Ok((0..tile_count).collect());
    }
    let limit = (1u128 << 64) / u128::from(tile_count) * u128::from(tile_count);
    let mut chosen = BTreeSet::new();
    let mut counter = 0u64;
    while chosen.len() < samples {
        let mut h = Sha256::new();
        h.update(INDEX_TAG);
        h.update(seed);
        h.update(job_id);
        h.update(counter.to_le_bytes());
        counter += 1;
        let digest: [u8; 32] = h.finalize().into();
        for chunk in digest.chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            let x = u64::from_le_bytes(b);
            if u128::from(x) < limit && chosen.len() < samples {
                chosen.insert(x % tile_count);
            }
        }
    }
    Ok(chosen.into_iter().collect())
}

/// Probability that `samples` distinct uniform samples out of `tiles` all miss `bad`
/// corrupted tiles (hypergeometric; `(1-f)^s` is its with-replacement upper bound).
pub fn escape_probability(tiles: u64, bad: u64, samples: u64) -> f64 {
    let s = samples.min(tiles);
    let mut p = 1.0f64;
    for i in 0..s {
        let good_left = tiles.saturating_sub(bad).saturating_sub(i) as f64;
        p *= good_left / (tiles - i) as f64;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_distinct_sorted_and_in_range() {
        let seed = [7u8; 32];
        let id = [1u8; 32];
        let v = challenge_indices(&seed, &id, 10, 9).expect("indices");
        assert_eq!(v.len(), 9);
        assert!(v.windows(2).all(|w| w[0] < w[1]));
        assert!(v.iter().all(|&i| i < 10));
        assert_eq!(
            challenge_indices(&seed, &id, 5, 8).expect("all"),
            vec![0, 1, 2, 3, 4]
        );
        assert!(challenge_indices(&seed, &id, 0, 1).is_err());
        assert!(challenge_indices(&seed, &id, 3, 0).is_err());
    }

    #[test]
    fn different_jobs_get_different_samples() {
        let seed = [7u8; 32];
        let a = challenge_indices(&seed, &[1; 32], 1 << 20, 8).expect("a");
        let b = challenge_indices(&seed, &[2; 32], 1 << 20, 8).expect("b");
        assert_ne!(a, b);
    }

    #[test]
    fn escape_probability_matches_small_cases() {
        assert_eq!(escape_probability(4, 0, 2), 1.0);
        assert!((escape_probability(4, 1, 2) - 0.5).abs() < 1e-12);
        assert_eq!(escape_probability(4, 4, 1), 0.0);
    }
}
