//! Chain parameters: size limits, gas costs and every module's parameters. They live in state (so the app
//! hash commits to them), are set at genesis, and every one of them is governable: a parameter-change
//! proposal names a field by its JSON path (`min_gas_price`, `gov.quorum_bps`, ...) and a new JSON value,
//! and the whole result must pass [`Params::validate`] (see [`apply_changes`]).

use serde::{Deserialize, Serialize};

use crate::{
    error::TxError,
    modules::{
        compute::params::ComputeParams,
        gov::{params::GovParams, GovError},
        market::params::MarketParams,
        nft::params::NftParams,
        staking::params::StakingParams,
    },
};

/// The application's parameters. JSON field names are public API (genesis files use them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Largest encoded tx accepted, in bytes.
    pub max_tx_bytes: u64,
    /// Largest sum of tx bytes in one block; ProcessProposal rejects bigger blocks.
    pub max_block_bytes: u64,
    /// Largest memo, in bytes.
    pub max_memo_bytes: u64,
    /// Most messages in one tx.
    pub max_msgs_per_tx: u64,
    /// Smallest accepted fee per unit of gas, in base units.
    pub min_gas_price: u64,
    /// Gas charged per byte of the encoded tx.
    pub gas_per_tx_byte: u64,
    /// Gas charged per `MsgSend`.
    pub gas_per_send: u64,
    /// Gas charged per `MsgMultiSend`, plus `gas_per_multi_send_output` per output.
    pub gas_per_multi_send: u64,
    pub gas_per_multi_send_output: u64,
    /// Most keys in a multisig account.
    pub max_multisig_keys: u64,
    /// Extra gas per key slot of a multisig signer (each present signature is verified).
    pub gas_per_multisig_key: u64,
    pub staking: StakingParams,
    pub gov: GovParams,
    pub nft: NftParams,
    pub market: MarketParams,
    pub compute: ComputeParams,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            max_tx_bytes: 64 * 1024,
            max_block_bytes: 8 * 1024 * 1024,
            max_memo_bytes: 256,
            max_msgs_per_tx: 256,
            min_gas_price: 1,
            gas_per_tx_byte: 10,
            gas_per_send: 1_000,
            gas_per_multi_send: 1_000,
            gas_per_multi_send_output: 500,
            max_multisig_keys: 16,
            gas_per_multisig_key: 500,
            staking: StakingParams::default(),
            gov: GovParams::default(),
            nft: NftParams::default(),
            market: MarketParams::default(),
            compute: ComputeParams::default(),
        }
    }
}

impl Params {
    /// Every problem with these parameters, as (field, message).
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut issues = Vec::new();
        if self.max_tx_bytes < 256 {
            issues.push(("max_tx_bytes", "must be at least 256".to_string()));
        }
        if self.max_block_bytes < self.max_tx_bytes {
            issues.push((
                "max_block_bytes",
                "must be at least max_tx_bytes".to_string(),
            ));
        }
        if self.max_msgs_per_tx == 0 {
            issues.push(("max_msgs_per_tx", "must be at least 1".to_string()));
        }
        if self.max_tx_bytes > 16 * 1024 * 1024 {
            issues.push(("max_tx_bytes", "must be at most 16 MiB".to_string()));
        }
        if self.max_multisig_keys == 0 || self.max_multisig_keys > 64 {
            issues.push(("max_multisig_keys", "must be in 1..=64".to_string()));
        }
        issues.extend(self.staking.validate());
        issues.extend(self.gov.validate());
        issues.extend(self.nft.validate());
        issues.extend(self.market.validate());
        issues.extend(self.compute.validate());
        if self.market.unbonding_blocks
            <= self
                .compute
                .fraud_window_blocks
                .saturating_add(self.compute.reveal_blocks)
        {
            issues.push((
                "market.unbonding_blocks",
                "must be longer than compute.fraud_window_blocks + reveal_blocks, so a bond stays \
                 slashable while any of its jobs can still be proven bad"
                    .to_string(),
            ));
        }
        if !crate::modules::staking::params::self_dealing_costs_at_least_staking(
            self.market.protocol_fee_per_cu,
            &self.staking,
        ) {
            issues.push((
                "market.protocol_fee_per_cu",
                "too low: self-posted jobs would buy voting power cheaper than stake; need \
                 protocol_fee_per_cu × (10000 − staking.compute_weight_bps) × 10^12 ≥ \
                 staking.stake_cost_ppt_per_block × staking.compute_weight_bps × \
                 staking.bonded_per_floor_cu (docs/proof-of-useful-compute.md)"
                    .to_string(),
            ));
        }
        if self.staking.unbonding_blocks <= self.gov.voting_period_blocks {
            issues.push((
                "staking.unbonding_blocks",
                "must be longer than gov.voting_period_blocks, so no token votes twice".to_string(),
            ));
        }
        issues
    }
}

/// Where the parameters live in state (JSON; serde_json writes struct fields in declaration order, so the
/// bytes are deterministic).
pub const STATE_KEY: &[u8] = b"app/params";

/// Writes the parameters into state.
pub fn store<S: crate::store::StateWrite + ?Sized>(s: &mut S, p: &Params) {
    // Serializing a struct of integers cannot fail.
    let bytes = serde_json::to_vec(p).unwrap_or_default();
    s.put(STATE_KEY.to_vec(), bytes);
}

/// Reads the parameters from state (defaults if never written).
pub fn load<S: crate::store::StateRead + ?Sized>(
    s: &S,
) -> Result<Params, crate::error::StoreError> {
    match s.get(STATE_KEY)? {
        None => Ok(Params::default()),
        Some(b) => serde_json::from_slice(&b).map_err(|e| crate::error::StoreError::Corrupt {
            key: "app/params".into(),
            reason: e.to_string(),
        }),
    }
}

/// Applies parameter changes (`path` = dotted JSON path of a leaf field, `value` = its new JSON value) to
/// `base` and validates the result. Used both when a proposal is submitted (so a malformed change is
/// refused up front) and when it executes (against the parameters in force then).
pub fn apply_changes(base: &Params, changes: &[(String, String)]) -> Result<Params, TxError> {
    let bad = |path: &str, reason: String| {
        TxError::from(GovError::InvalidParamChange {
            path: path.chars().take(100).collect(),
            reason,
        })
    };
    let mut doc = serde_json::to_value(base).map_err(|e| TxError::Internal(e.to_string()))?;
    for (path, value) in changes {
        let new: serde_json::Value = serde_json::from_str(value)
            .map_err(|e| bad(path, format!("value is not JSON: {e}")))?;
        let mut node = &mut doc;
        for part in path.split('.') {
            node = node
                .as_object_mut()
                .and_then(|o| o.get_mut(part))
                .ok_or_else(|| bad(path, "no such parameter".into()))?;
        }
        if node.is_object() {
            return Err(bad(path, "names a group, not a parameter".into()));
        }
        *node = new;
    }
    let params: Params = serde_json::from_value(doc).map_err(|e| {
        bad(
            changes.first().map(|c| c.0.as_str()).unwrap_or(""),
            format!("malformed value: {e}"),
        )
    })?;
    if let Some((field, msg)) = params.validate().into_iter().next() {
        return Err(bad(field, msg));
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str, value: &str) -> Vec<(String, String)> {
        vec![(path.to_string(), value.to_string())]
    }

    #[test]
    fn a_valid_change_applies_to_a_nested_field() {
        let p = apply_changes(&Params::default(), &change("gov.quorum_bps", "4000"))
            .unwrap_or_default();
        assert_eq!(p.gov.quorum_bps, 4000);
        let p = apply_changes(&Params::default(), &change("gov.min_deposit", "\"42\""))
            .unwrap_or_default();
        assert_eq!(p.gov.min_deposit, 42);
        let p =
            apply_changes(&Params::default(), &change("min_gas_price", "3")).unwrap_or_default();
        assert_eq!(p.min_gas_price, 3);
    }

    #[test]
    fn malformed_unknown_and_invalid_changes_are_refused() {
        for (path, value) in [
            ("gov.quorum_bps", "\"many\""),
            ("gov.quorum_bps", "-1"),
            ("gov.quorum_bps", "not json"),
            ("gov.min_deposit", "5"),
            ("gov.nope", "1"),
            ("gov", "{}"),
            ("", "1"),
            ("gov.quorum_bps", "10001"),
            ("gov.voting_period_blocks", "999999999"),
        ] {
            let r = apply_changes(&Params::default(), &change(path, value));
            assert_eq!(r.map_err(|e| e.code()), Err(53), "{path} = {value}");
        }
    }

    #[test]
    fn a_change_that_makes_self_dealing_cheaper_than_staking_is_refused() {
        // Free compute, a thinner floor, or more weight on compute at the default fee all break
        // f × (1 − w) ≥ ρ × w × q (docs/proof-of-useful-compute.md).
        for (path, value) in [
            ("market.protocol_fee_per_cu", "\"0\""),
            ("staking.bonded_per_floor_cu", "2000000000"),
            ("staking.compute_weight_bps", "3000"),
            ("staking.stake_cost_ppt_per_block", "5000"),
        ] {
            let r = apply_changes(&Params::default(), &change(path, value));
            assert_eq!(r.map_err(|e| e.code()), Err(53), "{path} = {value}");
        }
        // Raising the fee makes room for more compute weight.
        let r = apply_changes(
            &Params::default(),
            &[
                ("market.protocol_fee_per_cu".into(), "\"2\"".into()),
                ("staking.compute_weight_bps".into(), "3000".into()),
            ],
        );
        assert_eq!(r.map(|p| p.staking.compute_weight_bps).ok(), Some(3000));
        let mut p = Params::default();
        p.market.protocol_fee_per_cu = 0;
        assert!(p
            .validate()
            .iter()
            .any(|(f, _)| *f == "market.protocol_fee_per_cu"));
    }
}
