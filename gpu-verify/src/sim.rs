//! Detection simulation: how often does sampling catch a provider that corrupts a
//! fraction of the tiles?
//!
//! The provider corrupts `bad` of `tiles` tiles (chosen before the challenge is known);
//! each trial draws a fresh challenge seed and counts a catch when any sampled tile is
//! corrupted. The empirical rate is reported next to `1 − (1 − f)^s` (the bound the
//! design quotes, sampling with replacement) and the exact hypergeometric value for
//! distinct samples. Floating point is used only for these reports, never in verification.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::challenge::{challenge_indices, escape_probability};
use crate::error::{Error, Result};

/// Result of [`simulate_detection`].
#[derive(Clone, Debug, PartialEq)]
pub struct DetectionReport {
    /// Number of tiles.
    pub tiles: u64,
    /// Corrupted tiles.
    pub bad: u64,
    /// Samples per challenge.
    pub samples: usize,
    /// Trials run.
    pub trials: u64,
    /// Trials in which a corrupted tile was sampled.
    pub caught: u64,
}

impl DetectionReport {
    /// Corrupted fraction `f`.
    pub fn fraction(&self) -> f64 {
        self.bad as f64 / self.tiles as f64
    }

    /// Empirical catch rate.
    pub fn empirical(&self) -> f64 {
        self.caught as f64 / self.trials as f64
    }

    /// `1 − (1 − f)^s`.
    pub fn with_replacement(&self) -> f64 {
        1.0 - (1.0 - self.fraction()).powi(self.samples as i32)
    }

    /// Exact catch probability for distinct samples.
    pub fn exact(&self) -> f64 {
        1.0 - escape_probability(self.tiles, self.bad, self.samples as u64)
    }
}

impl std::fmt::Display for DetectionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tiles={} f={:.4} s={} trials={}: caught {:.4} | 1-(1-f)^s = {:.4} | exact (distinct) = {:.4}",
            self.tiles,
            self.fraction(),
            self.samples,
            self.trials,
            self.empirical(),
            self.with_replacement(),
            self.exact()
        )
    }
}

fn h(tag: &[u8], seed: &[u8; 32], i: u64) -> [u8; 32] {
    let mut d = Sha256::new();
    d.update(tag);
    d.update(seed);
    d.update(i.to_le_bytes());
    d.finalize().into()
}

/// The set of `bad` tiles a simulated provider corrupts (deterministic in `seed`).
pub fn corrupted_tiles(tiles: u64, bad: u64, seed: &[u8; 32]) -> Result<BTreeSet<u64>> {
    if bad > tiles {
        return Err(Error::InvalidParameter(format!(
            "{bad} bad tiles out of {tiles}"
        )));
    }
    if bad == 0 {
        return Ok(BTreeSet::new());
    }
    let job = h(b"sim/corrupt-job", seed, 0);
    Ok(challenge_indices(seed, &job, tiles, bad as usize)?
        .into_iter()
        .collect())
}

/// Runs `trials` challenges against a provider corrupting `bad` of `tiles` tiles.
pub fn simulate_detection(
    tiles: u64,
    bad: u64,
    samples: usize,
    trials: u64,
    seed: &[u8; 32],
) -> Result<DetectionReport> {
    let corrupted = corrupted_tiles(tiles, bad, seed)?;
    let job = h(b"sim/job", seed, 0);
    let mut caught = 0;
    for t in 0..trials {
        let challenge = h(b"sim/challenge", seed, t);
        let idx = challenge_indices(&challenge, &job, tiles, samples)?;
        if idx.iter().any(|i| corrupted.contains(i)) {
            caught += 1;
        }
    }
    Ok(DetectionReport {
        tiles,
        bad,
        samples,
        trials,
        caught,
    })
}
