//! market's governable parameters (`app_state.params.market`).

use serde::{Deserialize, Serialize};

use crate::amount::serde_str as serde_u128;

/// The largest reputation; a provider's reputation is in `0..=MAX_REPUTATION`.
pub const MAX_REPUTATION: u32 = 10_000;

/// Marketplace parameters. JSON field names are public API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MarketParams {
    /// Bond a provider must hold per device it offers (base units); below it, it gets no new job.
    #[serde(with = "serde_u128")]
    pub min_bond_per_device: u128,
    /// Blocks between `UnregisterProvider` and the bond's release (it stays slashable until then).
    pub unbonding_blocks: u64,
    /// Burned per CU of every settled job; escrowed at posting on top of the price.
    #[serde(with = "serde_u128")]
    pub protocol_fee_per_cu: u128,
    /// Blocks a matched provider has to accept or decline.
    pub accept_blocks: u64,
    /// Bounds of a job's `deadline_blocks` (from the match to the commit deadline).
    pub min_deadline_blocks: u64,
    pub max_deadline_blocks: u64,
    /// Providers a job may fail with or be declined by before its escrow is refunded.
    pub max_attempts: u32,
    /// Open (unmatched) jobs the market holds at most; `PostJob` is refused beyond it.
    pub max_open_jobs: u64,
    /// Matches made in one end of block at most (the best-paying open jobs first); the rest wait for the
    /// next block. Bounds the block's matching work however many jobs and providers there are.
    pub max_matches_per_block: u64,
    /// Reputation of a new provider, and its steps (0..=10000).
    pub initial_reputation: u32,
    pub reputation_gain: u32,
    pub reputation_fail_loss: u32,
    pub reputation_no_answer_loss: u32,
    /// Device entries per provider, and devices per entry.
    pub max_device_entries: u32,
    pub max_devices_per_entry: u32,
    pub max_moniker_bytes: u64,
    pub gas_register_provider: u64,
    pub gas_update_provider: u64,
    pub gas_unregister_provider: u64,
    pub gas_post_job: u64,
    pub gas_cancel_job: u64,
    pub gas_accept_job: u64,
    pub gas_decline_job: u64,
}

impl Default for MarketParams {
    fn default() -> Self {
        MarketParams {
            min_bond_per_device: 1_000_000,
            unbonding_blocks: 200,
            protocol_fee_per_cu: 1,
            accept_blocks: 20,
            min_deadline_blocks: 2,
            max_deadline_blocks: 10_000,
            max_attempts: 3,
            max_open_jobs: 100_000,
            max_matches_per_block: 1_000,
            initial_reputation: 5_000,
            reputation_gain: 10,
            reputation_fail_loss: 1_000,
            reputation_no_answer_loss: 100,
            max_device_entries: 16,
            max_devices_per_entry: 1_024,
            max_moniker_bytes: 64,
            gas_register_provider: 10_000,
            gas_update_provider: 3_000,
            gas_unregister_provider: 3_000,
            gas_post_job: 10_000,
            gas_cancel_job: 3_000,
            gas_accept_job: 2_000,
            gas_decline_job: 2_000,
        }
    }
}

impl MarketParams {
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut issues = Vec::new();
        for (field, v) in [
            ("market.initial_reputation", self.initial_reputation),
            ("market.reputation_gain", self.reputation_gain),
            ("market.reputation_fail_loss", self.reputation_fail_loss),
            (
                "market.reputation_no_answer_loss",
                self.reputation_no_answer_loss,
            ),
        ] {
            if v > MAX_REPUTATION {
                issues.push((field, format!("must be at most {MAX_REPUTATION}")));
            }
        }
        if self.accept_blocks == 0 {
            issues.push(("market.accept_blocks", "must be at least 1".to_string()));
        }
        if self.min_deadline_blocks == 0 || self.min_deadline_blocks > self.max_deadline_blocks {
            issues.push((
                "market.min_deadline_blocks",
                "must be in 1..=max_deadline_blocks".to_string(),
            ));
        }
        if self.max_attempts == 0 || self.max_attempts > 16 {
            issues.push(("market.max_attempts", "must be in 1..=16".to_string()));
        }
        if self.max_open_jobs == 0 || self.max_open_jobs > 1_000_000 {
            issues.push(("market.max_open_jobs", "must be in 1..=1000000".to_string()));
        }
        if self.max_matches_per_block == 0 || self.max_matches_per_block > 100_000 {
            issues.push((
                "market.max_matches_per_block",
                "must be in 1..=100000".to_string(),
            ));
        }
        if self.max_device_entries == 0 || self.max_device_entries > 64 {
            issues.push(("market.max_device_entries", "must be in 1..=64".to_string()));
        }
        if self.max_devices_per_entry == 0 || self.max_devices_per_entry > 65_536 {
            issues.push((
                "market.max_devices_per_entry",
                "must be in 1..=65536".to_string(),
            ));
        }
        if self.max_moniker_bytes > 256 {
            issues.push((
                "market.max_moniker_bytes",
                "must be at most 256".to_string(),
            ));
        }
        issues
    }
}
