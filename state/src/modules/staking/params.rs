//! staking's governable parameters (`app_state.params.staking`).

use serde::{Deserialize, Serialize};

/// Staking parameters. JSON field names are public API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StakingParams {
    /// Blocks an undelegation waits before the tokens return. Longer than the governance voting period, so
    /// a token leaving one validator cannot be bonded and vote again within one proposal.
    pub unbonding_blocks: u64,
    /// Smallest self-bond that creates a validator (u128 decimal string).
    #[serde(with = "crate::amount::serde_str")]
    pub min_self_bond: u128,
    pub max_moniker_bytes: u64,
    /// Tokens per unit of consensus voting power: a validator's power is `tokens / power_reduction`
    /// (rounded down; u128 decimal string). A validator with less than this bonded has no power.
    #[serde(with = "crate::amount::serde_str")]
    pub power_reduction: u128,
    /// At most this many validators (the top by power; ties by consensus key, smaller first) sign blocks.
    pub max_validators: u32,
    /// Liveness is judged over the last this many blocks a validator was in the set for.
    pub signed_blocks_window: u64,
    /// A validator that missed more than this share (basis points) of its window is jailed.
    pub max_missed_bps: u32,
    /// Share (basis points) of a validator's bonded tokens, and of each of its delegations, slashed when it
    /// is jailed for downtime (to the treasury).
    pub slash_downtime_bps: u32,
    /// Blocks a jailed validator must wait before `unjail` is accepted.
    pub jail_blocks: u64,
    pub gas_create_validator: u64,
    pub gas_delegate: u64,
    pub gas_undelegate: u64,
    pub gas_unjail: u64,
}

impl Default for StakingParams {
    fn default() -> Self {
        StakingParams {
            unbonding_blocks: 201_600,
            min_self_bond: 1,
            max_moniker_bytes: 64,
            power_reduction: 1_000_000,
            max_validators: 100,
            signed_blocks_window: 1_000,
            max_missed_bps: 9_500,
            slash_downtime_bps: 100,
            jail_blocks: 600,
            gas_create_validator: 5_000,
            gas_delegate: 2_000,
            gas_undelegate: 2_000,
            gas_unjail: 2_000,
        }
    }
}

impl StakingParams {
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut issues = Vec::new();
        if self.unbonding_blocks == 0 {
            issues.push(("staking.unbonding_blocks", "must be at least 1".to_string()));
        }
        if self.min_self_bond == 0 {
            issues.push(("staking.min_self_bond", "must be at least 1".to_string()));
        }
        if self.power_reduction == 0 {
            issues.push(("staking.power_reduction", "must be at least 1".to_string()));
        }
        if self.max_validators == 0 {
            issues.push(("staking.max_validators", "must be at least 1".to_string()));
        }
        if self.signed_blocks_window == 0 || self.signed_blocks_window > MAX_SIGNED_BLOCKS_WINDOW {
            issues.push((
                "staking.signed_blocks_window",
                format!("must be 1..={MAX_SIGNED_BLOCKS_WINDOW}"),
            ));
        }
        for (name, bps) in [
            ("staking.max_missed_bps", self.max_missed_bps),
            ("staking.slash_downtime_bps", self.slash_downtime_bps),
        ] {
            if bps > 10_000 {
                issues.push((name, "must be at most 10000".to_string()));
            }
        }
        if self.jail_blocks == 0 {
            issues.push(("staking.jail_blocks", "must be at least 1".to_string()));
        }
        issues
    }
}

/// Largest `signed_blocks_window`: clearing a window (at jailing, or when the window changes) deletes one
/// key per 64 blocks of it, so this bounds that work to 16,384 deletes.
pub const MAX_SIGNED_BLOCKS_WINDOW: u64 = 1 << 20;
