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

/// The writes of the genesis state: the parameters, the consensus validator set (ed25519 key, power) and
/// every module's genesis, in registry order.
pub fn build(app_state: &AppState, validators: &[([u8; 32], u64)]) -> Result<Writes, StateError> {
    let mut writes = Overlay::new(&EmptyState);
    modules::init_genesis(&mut writes, app_state)?;
    params::store(&mut writes, &app_state.params);
    crate::validators::store(&mut writes, validators);
    Ok(writes.into_writes())
}

/// The `app_state` that would recreate `state`'s parameters and every module's exported part (balances).
pub fn export<S: StateRead + ?Sized>(state: &S) -> Result<AppState, StoreError> {
    let mut app_state = AppState {
        balances: Vec::new(),
        params: params::load(state)?,
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
    #[serde(default)]
    pub params: Params,
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
        for (field, message) in self.params.validate() {
            issues.push(GenesisIssue {
                path: format!("params.{field}"),
                message,
            });
        }
        issues
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
            params: Params {
                max_tx_bytes: 1,
                ..Params::default()
            },
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
            params: Params::default(),
        };
        let issues = state.validate();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].path, "balances");
    }
}
