//! compute's governable parameters (`app_state.params.compute`).

use serde::{Deserialize, Serialize};

use crate::amount::serde_str as serde_u128;

/// Compute (verification) parameters. JSON field names are public API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComputeParams {
    /// Caps on a job's dimensions (k also bounds every reveal's size: one tile carries 2·T·k input bytes).
    pub max_m: u64,
    pub max_n: u64,
    pub max_k: u64,
    /// Largest job, in CU.
    pub max_job_cu: u64,
    /// Largest tile side T a job may choose; a job's T must divide m and n.
    pub max_tile: u32,
    /// Bounds of a job's sample count s.
    pub min_samples: u32,
    pub max_samples: u32,
    /// Blocks after the challenge seed to reveal every sampled tile.
    pub reveal_blocks: u64,
    /// Blocks after settlement during which a fraud proof or an availability challenge is accepted; the
    /// held-back payment is released when it ends.
    pub fraud_window_blocks: u64,
    /// Share of the payment held back until the fraud window closes.
    pub holdback_bps: u32,
    /// Share of the bond slashed for a failed sample, a missed deadline or an unanswered challenge, and the
    /// share of that slash paid to the consumer (the rest goes to the treasury).
    pub slash_bps: u32,
    pub slash_consumer_bps: u32,
    /// Share of the bond slashed for a proven fraud, and the share of that slash paid to the submitter.
    pub fraud_slash_bps: u32,
    pub fraud_reward_bps: u32,
    /// Most tiles one availability challenge may ask for, and its fee (paid to the treasury).
    pub max_challenge_tiles: u32,
    #[serde(with = "serde_u128")]
    pub challenge_fee: u128,
    /// Length of an epoch for the verified-CU record that proof of useful compute reads.
    pub epoch_blocks: u64,
    pub gas_commit: u64,
    pub gas_reveal_per_tile: u64,
    pub gas_challenge_output: u64,
    pub gas_fraud_proof: u64,
}

impl Default for ComputeParams {
    fn default() -> Self {
        ComputeParams {
            max_m: 65_536,
            max_n: 65_536,
            max_k: 4_096,
            max_job_cu: 1_000_000,
            max_tile: 4,
            min_samples: 16,
            max_samples: 64,
            reveal_blocks: 20,
            fraud_window_blocks: 100,
            holdback_bps: 2_000,
            slash_bps: 1_000,
            slash_consumer_bps: 5_000,
            fraud_slash_bps: 5_000,
            fraud_reward_bps: 2_000,
            max_challenge_tiles: 16,
            challenge_fee: 1_000,
            epoch_blocks: 100,
            gas_commit: 3_000,
            gas_reveal_per_tile: 5_000,
            gas_challenge_output: 5_000,
            gas_fraud_proof: 20_000,
        }
    }
}

/// Bytes a reveal of one tile can take beyond its 2·T·k input bytes: the tile's values (at most 5 bytes
/// each as sint32), its proof and 2·T input proofs (17 + 64·32 bytes each at most), protobuf framing.
/// Saturates: callers compare it with `max_tx_bytes`, which a saturated size is over.
pub fn tile_overhead_bytes(tile: u64) -> u64 {
    const PROOF: u64 = 17 + 64 * 32 + 8;
    let values = tile.saturating_mul(tile).saturating_mul(5);
    let proofs = PROOF.saturating_mul(tile.saturating_mul(2).saturating_add(1));
    values.saturating_add(proofs).saturating_add(64)
}

impl ComputeParams {
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut issues = Vec::new();
        for (field, v) in [
            ("compute.holdback_bps", self.holdback_bps),
            ("compute.slash_bps", self.slash_bps),
            ("compute.slash_consumer_bps", self.slash_consumer_bps),
            ("compute.fraud_slash_bps", self.fraud_slash_bps),
            ("compute.fraud_reward_bps", self.fraud_reward_bps),
        ] {
            if v > 10_000 {
                issues.push((field, "must be at most 10000".to_string()));
            }
        }
        if self.max_k == 0 || self.max_k > lode_gpu_verify::MAX_K as u64 {
            issues.push((
                "compute.max_k",
                format!("must be in 1..={}", lode_gpu_verify::MAX_K),
            ));
        }
        if self.max_m == 0 || self.max_n == 0 || self.max_m > 1 << 24 || self.max_n > 1 << 24 {
            issues.push((
                "compute.max_m",
                "max_m and max_n must be in 1..=2^24".to_string(),
            ));
        }
        if self.max_job_cu == 0 {
            issues.push(("compute.max_job_cu", "must be at least 1".to_string()));
        }
        if self.max_tile == 0 || self.max_tile > 64 {
            issues.push(("compute.max_tile", "must be in 1..=64".to_string()));
        }
        if self.min_samples == 0 || self.min_samples > self.max_samples || self.max_samples > 256 {
            issues.push((
                "compute.min_samples",
                "must satisfy 1 <= min_samples <= max_samples <= 256".to_string(),
            ));
        }
        if self.max_challenge_tiles == 0 || self.max_challenge_tiles > 256 {
            issues.push((
                "compute.max_challenge_tiles",
                "must be in 1..=256".to_string(),
            ));
        }
        if self.reveal_blocks == 0 {
            issues.push(("compute.reveal_blocks", "must be at least 1".to_string()));
        }
        if self.fraud_window_blocks <= self.reveal_blocks {
            issues.push((
                "compute.fraud_window_blocks",
                "must be longer than reveal_blocks, so a challenge can be answered".to_string(),
            ));
        }
        if self.epoch_blocks == 0 {
            issues.push(("compute.epoch_blocks", "must be at least 1".to_string()));
        }
        issues
    }
}
