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
    /// Proof of useful compute (docs/proof-of-useful-compute.md). Epochs are `compute.epoch_blocks` long.
    /// Share of total voting power split by the verified CU of each validator's linked provider.
    pub compute_weight_bps: u64,
    /// Most voting power one validator may hold (unless there are too few validators to meet it).
    pub max_power_bps: u64,
    /// Most voting power that moves between validators in one epoch.
    pub max_churn_bps: u64,
    /// Epochs a validator waits between two changes of its provider link.
    pub link_cooldown_epochs: u64,
    /// The compute pool is divided by at least `total_bonded × epoch_blocks / bonded_per_floor_cu` CU,
    /// so power bought with a few self-posted jobs in a thin market stays expensive.
    pub bonded_per_floor_cu: u64,
    /// Assumed cost of holding stake, in 10^-12 of the stake per block (the opportunity cost the
    /// self-dealing check compares the protocol fee with; 3171 ≈ 10% a year at one block a second).
    pub stake_cost_ppt_per_block: u64,
    pub gas_link_provider: u64,
    pub gas_unlink_provider: u64,
    pub gas_unjail: u64,
    /// Share (basis points) of a validator's bonded tokens, and of each of its delegations, slashed for
    /// double signing (to the treasury); the validator is also tombstoned.
    pub slash_double_sign_bps: u32,
    /// Double-sign evidence for votes more than this many blocks old is refused; the age limit in force is
    /// the smaller of this and `unbonding_blocks`, so the stake that signed is still bonded.
    pub evidence_max_age_blocks: u64,
    pub gas_submit_evidence: u64,
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
            compute_weight_bps: 2_000,
            max_power_bps: 2_000,
            max_churn_bps: 500,
            link_cooldown_epochs: 10,
            bonded_per_floor_cu: 1_000_000_000,
            stake_cost_ppt_per_block: 3_171,
            gas_link_provider: 10_000,
            gas_unlink_provider: 2_000,
            gas_unjail: 2_000,
            slash_double_sign_bps: 500,
            evidence_max_age_blocks: 100_000,
            gas_submit_evidence: 10_000,
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
        if self.compute_weight_bps > 10_000 {
            issues.push((
                "staking.compute_weight_bps",
                "must be at most 10000".to_string(),
            ));
        }
        for (field, v) in [
            ("staking.max_power_bps", self.max_power_bps),
            ("staking.max_churn_bps", self.max_churn_bps),
        ] {
            if v == 0 || v > 10_000 {
                issues.push((field, "must be in 1..=10000".to_string()));
            }
        }
        if self.bonded_per_floor_cu == 0 {
            issues.push((
                "staking.bonded_per_floor_cu",
                "must be at least 1".to_string(),
            ));
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
        if self.slash_double_sign_bps > 10_000 {
            issues.push((
                "staking.slash_double_sign_bps",
                "must be at most 10000".to_string(),
            ));
        }
        if self.evidence_max_age_blocks == 0 {
            issues.push((
                "staking.evidence_max_age_blocks",
                "must be at least 1".to_string(),
            ));
        }
        if self.jail_blocks == 0 {
            issues.push(("staking.jail_blocks", "must be at least 1".to_string()));
        }
        issues
    }
}

/// Self-dealing must not be cheaper than staking (docs/proof-of-useful-compute.md): with `f` the
/// protocol fee burned per CU, `w` the compute weight, `q` = `bonded_per_floor_cu` and `ρ` the stake cost
/// per block, `f × (1 − w) ≥ ρ × w × q`, in integers
/// `f × (10000 − w_bps) × 10^12 ≥ ρ_ppt × w_bps × q`. Compared exactly in 256 bits.
pub fn self_dealing_costs_at_least_staking(protocol_fee_per_cu: u128, s: &StakingParams) -> bool {
    let w = s.compute_weight_bps.min(10_000);
    let left = mul_wide(
        protocol_fee_per_cu,
        u128::from(10_000u64.saturating_sub(w)).saturating_mul(1_000_000_000_000),
    );
    let right = mul_wide(
        u128::from(s.bonded_per_floor_cu),
        u128::from(s.stake_cost_ppt_per_block).saturating_mul(u128::from(w)),
    );
    left >= right
}

/// `a × b` as (high, low) 128-bit halves.
fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    const LO: u128 = u64::MAX as u128;
    let (a1, a0) = (a >> 64, a & LO);
    let (b1, b0) = (b >> 64, b & LO);
    // Each partial product of two 64-bit halves fits in u128.
    let p00 = a0.wrapping_mul(b0);
    let p01 = a0.wrapping_mul(b1);
    let p10 = a1.wrapping_mul(b0);
    let p11 = a1.wrapping_mul(b1);
    let (mid, c1) = p01.overflowing_add(p10);
    let (lo, c2) = p00.overflowing_add(mid << 64);
    let hi = p11
        .wrapping_add(mid >> 64)
        .wrapping_add(if c1 { 1u128 << 64 } else { 0 })
        .wrapping_add(u128::from(c2));
    (hi, lo)
}

/// Largest `signed_blocks_window`: clearing a window (at jailing, or when the window changes) deletes one
/// key per 64 blocks of it, so this bounds that work to 16,384 deletes.
pub const MAX_SIGNED_BLOCKS_WINDOW: u64 = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_wide_matches_small_products_and_the_extremes() {
        assert_eq!(mul_wide(6, 7), (0, 42));
        assert_eq!(mul_wide(u128::MAX, 2), (1, u128::MAX - 1));
        assert_eq!(mul_wide(u128::MAX, u128::MAX), (u128::MAX - 1, 1));
        assert_eq!(mul_wide(1 << 64, 1 << 64), (1, 0));
    }

    #[test]
    fn the_defaults_make_self_dealing_cost_at_least_staking() {
        let s = StakingParams::default();
        assert!(self_dealing_costs_at_least_staking(1, &s));
        // A floor twice as thin as the bound allows fails.
        let thin = StakingParams {
            bonded_per_floor_cu: 2_600_000_000,
            ..s.clone()
        };
        assert!(!self_dealing_costs_at_least_staking(1, &thin));
        assert!(self_dealing_costs_at_least_staking(3, &thin));
        // No compute weight: nothing to buy.
        let none = StakingParams {
            compute_weight_bps: 0,
            ..s
        };
        assert!(self_dealing_costs_at_least_staking(0, &none));
    }
}
