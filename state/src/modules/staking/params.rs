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
    pub gas_create_validator: u64,
    pub gas_delegate: u64,
    pub gas_undelegate: u64,
}

impl Default for StakingParams {
    fn default() -> Self {
        StakingParams {
            unbonding_blocks: 201_600,
            min_self_bond: 1,
            max_moniker_bytes: 64,
            gas_create_validator: 5_000,
            gas_delegate: 2_000,
            gas_undelegate: 2_000,
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
        issues
    }
}
