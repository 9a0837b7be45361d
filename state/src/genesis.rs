//! The application's part of genesis (`app_state`): initial balances and parameters, and the genesis state
//! built from it (InitChain) or exported from state. The whole genesis file (chain id, time, validators) is
//! the `lode-genesis` crate's; InitChain hands this part over as JSON bytes.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{
    address::Address,
    amount::parse_amount,
    error::{StateError, StoreError},
    modules, params,
    params::Params,
    store::{KeyValue, Overlay, StateRead, Writes},
};

/// Parses and validates `app_state` as InitChain carries it (JSON bytes).
pub fn parse(app_state_bytes: &[u8]) -> Result<AppState, StateError> {
    let app_state: AppState = serde_json::from_slice(app_state_bytes)
        .map_err(|e| StateError::Genesis(format!("app_state: {e}")))?;
    let issues = app_state.validate();
    if !issues.is_empty() {
        return Err(StateError::Genesis(
            issues
                .iter()
                .map(|i| format!("app_state.{}: {}", i.path, i.message))
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    Ok(app_state)
}

/// The writes of the genesis state: the parameters, every module's genesis in registry order (staking bonds
/// the genesis validators' self-bonds), and the consensus validator set, which must be the set those bonds
/// give by the proof-of-useful-compute rule (`validators`, as InitChain carries them: ed25519 key and power,
/// any order; [`validator_set`] computes it).
pub fn build(app_state: &AppState, validators: &[([u8; 32], u64)]) -> Result<Writes, StateError> {
    let (mut writes, set) = genesis_state(app_state)?;
    let mut given = validators.to_vec();
    given.sort_by_key(|(k, _)| *k);
    if given != set {
        let show = |v: &[([u8; 32], u64)]| {
            v.iter()
                .map(|(k, p)| format!("{}={p}", hex::encode(k)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(StateError::Genesis(format!(
            "the validators [{}] are not the set app_state.validators' self-bonds give [{}] \
             ({SET_RULE})",
            show(&given),
            show(&set)
        )));
    }
    crate::validators::store(&mut writes, &set);
    Ok(writes.into_writes())
}

/// How the genesis consensus set follows from the genesis validators, for error messages.
pub const SET_RULE: &str = "proof-of-useful-compute power out of 10^9 from the self-bonds alone: split by \
     stake, capped at staking.max_power_bps (or an equal share when too few validators), self-bonds below \
     staking.power_reduction left out, the top staking.max_validators";

/// The genesis writes before the consensus set, and the set they give.
#[allow(clippy::type_complexity)]
fn genesis_state(
    app_state: &AppState,
) -> Result<(Overlay<'static, EmptyState>, Vec<([u8; 32], u64)>), StateError> {
    let mut writes = Overlay::new(&EmptyState);
    modules::init_genesis(&mut writes, app_state)?;
    params::store(&mut writes, &app_state.params);
    let set = modules::staking::set::target_powers(&writes, &app_state.params)?;
    Ok((writes, set))
}

/// The consensus set (ed25519 key, power; sorted by key) that `app_state`'s genesis validators' self-bonds
/// give: what the genesis file's `validators` must list. The same rule as every later block
/// ([`modules::staking::set::target_powers`]) over the genesis state (no compute yet, no previous epoch):
/// equal self-bonds give equal powers summing to 10^9. Fails if `app_state` cannot build a genesis state.
pub fn validator_set(app_state: &AppState) -> Result<Vec<([u8; 32], u64)>, StateError> {
    genesis_state(app_state).map(|(_, set)| set)
}

/// A consensus key as genesis writes it: 32 bytes of hex, a valid ed25519 point.
pub fn parse_consensus_key(hex_key: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(hex_key).map_err(|e| format!("not hex: {e}"))?;
    let key: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("an ed25519 public key is 32 bytes, got {}", bytes.len()))?;
    crate::address::check_public_key(&key).map_err(|e| e.to_string())?;
    Ok(key)
}

/// The `app_state` that would recreate `state`'s parameters and every module's exported part (balances).
pub fn export<S: StateRead + ?Sized>(state: &S) -> Result<AppState, StoreError> {
    let mut app_state = AppState {
        balances: Vec::new(),
        validators: Vec::new(),
        params: params::load(state)?,
        compute_power: None,
    };
    modules::export_genesis(state, &mut app_state)?;
    Ok(app_state)
}

/// State with nothing in it: the base of genesis.
struct EmptyState;

impl StateRead for EmptyState {
    fn get(&self, _key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }

    fn scan_prefix(&self, _prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        Ok(Vec::new())
    }
}

/// `app_state` of the genesis file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AppState {
    pub balances: Vec<GenesisBalance>,
    /// The genesis validators, as staking validators: each self-bonds from its operator's balance above.
    #[serde(default)]
    pub validators: Vec<GenesisStakingValidator>,
    #[serde(default)]
    pub params: Params,
    /// Proof of useful compute carried over by an exported chain: the running epoch, its baseline powers,
    /// the validators' provider links and the providers' link nonces. Absent in a new chain's genesis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_power: Option<GenesisComputePower>,
}

/// Proof-of-useful-compute state in genesis (see [`AppState::compute_power`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GenesisComputePower {
    /// The running epoch's number and first height.
    pub epoch: u64,
    pub epoch_start_height: u64,
    /// The baseline the running epoch's churn is measured from: power per genesis validator operator.
    #[serde(default)]
    pub epoch_powers: Vec<GenesisPower>,
    /// Provider links of genesis validators (validator operator, provider, epoch of the last change).
    #[serde(default)]
    pub links: Vec<GenesisLink>,
    /// The nonce each provider's next link consent must sign (so an old consent cannot be replayed).
    #[serde(default)]
    pub link_nonces: Vec<GenesisLinkNonce>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisPower {
    pub validator: String,
    pub power: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisLink {
    pub validator: String,
    pub provider: String,
    pub changed_epoch: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisLinkNonce {
    pub provider: String,
    pub nonce: u64,
}

/// One genesis validator: its operator account (funded in `balances`), moniker, consensus key and
/// self-bond, which moves from the operator's balance into the bonded pool at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisStakingValidator {
    /// bech32m `lode1…` operator address; its id, and the account the self-bond comes from.
    pub operator: String,
    pub moniker: String,
    /// ed25519 consensus key, 32 bytes as hex.
    pub consensus_key: String,
    /// u128 base units as a decimal string; at least `staking.power_reduction` (power 1) and
    /// `staking.min_self_bond`.
    pub self_bond: String,
}

/// One funded account at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisBalance {
    /// bech32m `lode1…` address.
    pub address: String,
    /// u128 base units as a decimal string.
    pub amount: String,
}

/// One problem in a genesis file, with the JSON path of the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesisIssue {
    /// Path relative to `app_state`, e.g. `balances[2].amount`.
    pub path: String,
    pub message: String,
}

impl AppState {
    /// Every problem with this app state (empty when valid).
    pub fn validate(&self) -> Vec<GenesisIssue> {
        let mut issues = Vec::new();
        let mut seen = BTreeSet::new();
        let mut supply: Option<u128> = Some(0);
        for (i, b) in self.balances.iter().enumerate() {
            match b.address.parse::<Address>() {
                Ok(a) => {
                    if !seen.insert(a) {
                        issues.push(GenesisIssue {
                            path: format!("balances[{i}].address"),
                            message: format!("duplicate account {}", b.address),
                        });
                    }
                }
                Err(e) => issues.push(GenesisIssue {
                    path: format!("balances[{i}].address"),
                    message: format!("invalid address: {e}"),
                }),
            }
            match parse_amount(&b.amount) {
                Ok(0) => issues.push(GenesisIssue {
                    path: format!("balances[{i}].amount"),
                    message: "amount must be greater than zero".into(),
                }),
                Ok(v) => supply = supply.and_then(|s| s.checked_add(v)),
                Err(e) => issues.push(GenesisIssue {
                    path: format!("balances[{i}].amount"),
                    message: e.to_string(),
                }),
            }
        }
        if supply.is_none() {
            issues.push(GenesisIssue {
                path: "balances".into(),
                message: "total supply overflows u128".into(),
            });
        } else if self.balances.is_empty() {
            issues.push(GenesisIssue {
                path: "balances".into(),
                message: "total supply must be greater than zero".into(),
            });
        }
        self.validate_validators(&mut issues);
        self.validate_compute_power(&mut issues);
        for (field, message) in self.params.validate() {
            issues.push(GenesisIssue {
                path: format!("params.{field}"),
                message,
            });
        }
        issues
    }

    /// Links name genesis validators and distinct providers, changed no later than the epoch; powers name
    /// genesis validators once each and sum to at most 10^9.
    fn validate_compute_power(&self, issues: &mut Vec<GenesisIssue>) {
        let Some(c) = &self.compute_power else {
            return;
        };
        let operators: BTreeSet<Address> = self
            .validators
            .iter()
            .filter_map(|v| v.operator.parse().ok())
            .collect();
        let mut issue = |path: String, message: String| issues.push(GenesisIssue { path, message });
        let validator = |s: &str| -> Result<Address, String> {
            let a: Address = s.parse().map_err(|e| format!("invalid address: {e}"))?;
            if operators.contains(&a) {
                Ok(a)
            } else {
                Err("not a genesis validator's operator".into())
            }
        };
        let mut seen = BTreeSet::new();
        let mut total: u64 = 0;
        for (i, p) in c.epoch_powers.iter().enumerate() {
            match validator(&p.validator) {
                Ok(a) if !seen.insert(a) => issue(
                    format!("compute_power.epoch_powers[{i}].validator"),
                    "listed twice".into(),
                ),
                Ok(_) => total = total.saturating_add(p.power),
                Err(m) => issue(format!("compute_power.epoch_powers[{i}].validator"), m),
            }
        }
        if total > crate::modules::staking::power::TOTAL_POWER {
            issue(
                "compute_power.epoch_powers".into(),
                "sum to more than 10^9".into(),
            );
        }
        let (mut vals, mut provs) = (BTreeSet::new(), BTreeSet::new());
        for (i, l) in c.links.iter().enumerate() {
            match validator(&l.validator) {
                Ok(a) if !vals.insert(a) => issue(
                    format!("compute_power.links[{i}].validator"),
                    "has two links".into(),
                ),
                Ok(_) => {}
                Err(m) => issue(format!("compute_power.links[{i}].validator"), m),
            }
            match l.provider.parse::<Address>() {
                Ok(a) if !provs.insert(a) => issue(
                    format!("compute_power.links[{i}].provider"),
                    "linked to two validators".into(),
                ),
                Ok(_) => {}
                Err(e) => issue(
                    format!("compute_power.links[{i}].provider"),
                    format!("invalid address: {e}"),
                ),
            }
            if l.changed_epoch > c.epoch {
                issue(
                    format!("compute_power.links[{i}].changed_epoch"),
                    format!("after the running epoch {}", c.epoch),
                );
            }
        }
        let mut nonces = BTreeSet::new();
        for (i, n) in c.link_nonces.iter().enumerate() {
            match n.provider.parse::<Address>() {
                Ok(a) if !nonces.insert(a) => issue(
                    format!("compute_power.link_nonces[{i}].provider"),
                    "listed twice".into(),
                ),
                Ok(_) => {}
                Err(e) => issue(
                    format!("compute_power.link_nonces[{i}].provider"),
                    format!("invalid address: {e}"),
                ),
            }
        }
    }

    fn validate_validators(&self, issues: &mut Vec<GenesisIssue>) {
        let balances: std::collections::BTreeMap<Address, u128> = self
            .balances
            .iter()
            .filter_map(|b| Some((b.address.parse().ok()?, parse_amount(&b.amount).ok()?)))
            .collect();
        let mut bonded: std::collections::BTreeMap<Address, u128> = Default::default();
        let mut operators = BTreeSet::new();
        let mut keys = BTreeSet::new();
        let p = &self.params.staking;
        for (i, v) in self.validators.iter().enumerate() {
            let at = |f: &str| format!("validators[{i}].{f}");
            let op = match v.operator.parse::<Address>() {
                Ok(a) => {
                    if !operators.insert(a) {
                        issues.push(GenesisIssue {
                            path: at("operator"),
                            message: format!("duplicate operator {}", v.operator),
                        });
                    }
                    Some(a)
                }
                Err(e) => {
                    issues.push(GenesisIssue {
                        path: at("operator"),
                        message: format!("invalid address: {e}"),
                    });
                    None
                }
            };
            if v.moniker.is_empty() || v.moniker.len() as u64 > p.max_moniker_bytes {
                issues.push(GenesisIssue {
                    path: at("moniker"),
                    message: format!("must be 1..={} bytes", p.max_moniker_bytes),
                });
            }
            match parse_consensus_key(&v.consensus_key) {
                Ok(k) => {
                    if !keys.insert(k) {
                        issues.push(GenesisIssue {
                            path: at("consensus_key"),
                            message: "duplicate consensus key".into(),
                        });
                    }
                }
                Err(m) => issues.push(GenesisIssue {
                    path: at("consensus_key"),
                    message: m,
                }),
            }
            match parse_amount(&v.self_bond) {
                Ok(b) if b < p.min_self_bond.max(p.power_reduction) => issues.push(GenesisIssue {
                    path: at("self_bond"),
                    message: format!(
                        "must be at least staking.min_self_bond ({}) and staking.power_reduction ({}, \
                         one unit of power)",
                        p.min_self_bond, p.power_reduction
                    ),
                }),
                Ok(b) => {
                    if let Some(op) = op {
                        let total = bonded.entry(op).or_default();
                        *total = total.saturating_add(b);
                        if *total > balances.get(&op).copied().unwrap_or(0) {
                            issues.push(GenesisIssue {
                                path: at("self_bond"),
                                message: format!(
                                    "more than the operator's balance in app_state.balances ({})",
                                    balances.get(&op).copied().unwrap_or(0)
                                ),
                            });
                        }
                    }
                }
                Err(e) => issues.push(GenesisIssue {
                    path: at("self_bond"),
                    message: e.to_string(),
                }),
            }
        }
    }

    /// Adds a genesis validator whose operator is the account of its own consensus key, funded with exactly
    /// its self-bond of `units × staking.power_reduction` (for tests, benchmarks and tools that need
    /// validators and no operator key of their own). Its consensus power follows from all the self-bonds:
    /// [`validator_set`] gives the set the genesis file must list.
    pub fn add_self_bonded_validator(
        &mut self,
        moniker: &str,
        consensus_key: &[u8; 32],
        units: u64,
    ) {
        let operator = Address::from_public_key(consensus_key).to_string();
        let bond = u128::from(units).saturating_mul(self.params.staking.power_reduction);
        self.balances.push(GenesisBalance {
            address: operator.clone(),
            amount: bond.to_string(),
        });
        self.validators.push(GenesisStakingValidator {
            operator,
            moniker: moniker.into(),
            consensus_key: hex::encode(consensus_key),
            self_bond: bond.to_string(),
        });
    }

    /// The validated balances, in genesis order.
    pub fn parsed_balances(&self) -> Result<Vec<(Address, u128)>, Vec<GenesisIssue>> {
        let issues = self.validate();
        if !issues.is_empty() {
            return Err(issues);
        }
        let mut out = Vec::with_capacity(self.balances.len());
        for b in &self.balances {
            // validate() above proved both parse.
            let (Ok(a), Ok(v)) = (b.address.parse(), parse_amount(&b.amount)) else {
                return Err(vec![GenesisIssue {
                    path: "balances".into(),
                    message: "unparsable".into(),
                }]);
            };
            out.push((a, v));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bal(address: String, amount: &str) -> GenesisBalance {
        GenesisBalance {
            address,
            amount: amount.into(),
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let a = Address([1; 20]).to_string();
        let state = AppState {
            balances: vec![
                bal(a.clone(), "10"),
                bal(a, "0"),
                bal("nope".into(), "5"),
                bal(Address([2; 20]).to_string(), "01"),
            ],
            validators: Vec::new(),
            params: Params {
                max_tx_bytes: 1,
                ..Params::default()
            },
            compute_power: None,
        };
        let paths: Vec<String> = state.validate().into_iter().map(|i| i.path).collect();
        assert_eq!(
            paths,
            vec![
                "balances[1].address",
                "balances[1].amount",
                "balances[2].address",
                "balances[3].amount",
                "params.max_tx_bytes",
            ]
        );
    }

    #[test]
    fn overflowing_supply_is_rejected() {
        let max = u128::MAX.to_string();
        let state = AppState {
            balances: vec![
                bal(Address([1; 20]).to_string(), &max),
                bal(Address([2; 20]).to_string(), "1"),
            ],
            validators: Vec::new(),
            params: Params::default(),
            compute_power: None,
        };
        let issues = state.validate();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].path, "balances");
    }
}
