//! gov's governable parameters (`app_state.params.gov`). Fractions are basis points (1/10,000).

use serde::{Deserialize, Serialize};

/// Basis points in one.
pub const BPS: u32 = 10_000;

/// Governance parameters. JSON field names are public API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GovParams {
    /// Blocks a proposal may collect deposits before it expires.
    pub deposit_period_blocks: u64,
    /// Blocks the voting period lasts; the tally runs at the end of its last block.
    pub voting_period_blocks: u64,
    /// Total deposit that opens the voting period (u128 decimal string).
    #[serde(with = "crate::amount::serde_str")]
    pub min_deposit: u128,
    /// Share of all bonded stake that must vote (abstain included).
    pub quorum_bps: u32,
    /// yes / (yes + no + no_with_veto) must be strictly above this.
    pub threshold_bps: u32,
    /// no_with_veto / all votes at or above this vetoes the proposal.
    pub veto_bps: u32,
    /// Burn the deposits of a vetoed proposal (otherwise refund them).
    pub burn_deposit_on_veto: bool,
    /// Burn the deposits of a proposal that missed quorum.
    pub burn_deposit_on_no_quorum: bool,
    /// Burn the deposits of a proposal whose deposit period ended below min_deposit.
    pub burn_deposit_on_expiry: bool,
    /// Share of every tx fee paid into the treasury.
    pub treasury_fee_bps: u32,
    pub max_title_bytes: u64,
    pub max_description_bytes: u64,
    pub max_param_changes: u64,
    pub gas_submit_proposal: u64,
    pub gas_deposit: u64,
    pub gas_vote: u64,
}

impl Default for GovParams {
    fn default() -> Self {
        GovParams {
            deposit_period_blocks: 100_800,
            voting_period_blocks: 100_800,
            min_deposit: 10_000_000,
            quorum_bps: 3_340,
            threshold_bps: 5_000,
            veto_bps: 3_340,
            burn_deposit_on_veto: true,
            burn_deposit_on_no_quorum: false,
            burn_deposit_on_expiry: false,
            treasury_fee_bps: 1_000,
            max_title_bytes: 140,
            max_description_bytes: 10_000,
            max_param_changes: 16,
            gas_submit_proposal: 10_000,
            gas_deposit: 2_000,
            gas_vote: 2_000,
        }
    }
}

impl GovParams {
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut issues = Vec::new();
        let frac = |v: u32| v <= BPS;
        if self.deposit_period_blocks == 0 {
            issues.push((
                "gov.deposit_period_blocks",
                "must be at least 1".to_string(),
            ));
        }
        if self.voting_period_blocks == 0 {
            issues.push(("gov.voting_period_blocks", "must be at least 1".to_string()));
        }
        if self.min_deposit == 0 {
            issues.push(("gov.min_deposit", "must be at least 1".to_string()));
        }
        if !frac(self.quorum_bps) {
            issues.push(("gov.quorum_bps", "must be at most 10000".to_string()));
        }
        if !frac(self.threshold_bps) {
            issues.push(("gov.threshold_bps", "must be at most 10000".to_string()));
        }
        if self.veto_bps == 0 || !frac(self.veto_bps) {
            issues.push(("gov.veto_bps", "must be in 1..=10000".to_string()));
        }
        if !frac(self.treasury_fee_bps) {
            issues.push(("gov.treasury_fee_bps", "must be at most 10000".to_string()));
        }
        if self.max_title_bytes == 0 {
            issues.push(("gov.max_title_bytes", "must be at least 1".to_string()));
        }
        if self.max_param_changes == 0 {
            issues.push(("gov.max_param_changes", "must be at least 1".to_string()));
        }
        issues
    }
}
