//! Lode's genesis file: the chain id, genesis time, initial validators and the application's initial state
//! (balances, staking validators with their self-bonds, module parameters). The initial validators must be
//! the consensus set the staking validators' self-bonds give (`lode_state::genesis::validator_set`).
//!
//! [`Genesis::load`] / [`Genesis::from_json`] parse strictly (unknown fields are errors) and report a parse
//! problem with its JSON path; then they validate the whole document and report *every* problem found, each
//! with its JSON path, so an operator can fix a file in one pass. [`Genesis::init_chain_request`] turns a
//! valid genesis into the ABCI `InitChain` request the application starts from.

mod error;
mod validate;

use std::path::Path;

use lode_state::genesis::AppState;
use serde::{Deserialize, Serialize};
use tendermint_proto::{
    google::protobuf::Timestamp,
    v0_38::{
        abci::{RequestInitChain, ValidatorUpdate},
        crypto::{public_key::Sum, PublicKey},
    },
};

pub use error::{GenesisError, Issue};
pub use validate::{
    parse_ed25519_public_key, parse_genesis_time, MAX_CHAIN_ID_LEN, MAX_TOTAL_POWER,
};

/// A genesis file. Field order is the file's order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Chain id: 1..=50 characters of `[A-Za-z0-9._-]`, starting with a letter or digit. Part of every
    /// transaction's sign bytes.
    pub chain_id: String,
    /// Genesis time, RFC 3339 in UTC (`2025-01-01T00:00:00Z`).
    pub genesis_time: String,
    /// Height of the first block (default 1).
    #[serde(default = "default_initial_height")]
    pub initial_height: u64,
    /// The initial validator set.
    pub validators: Vec<GenesisValidator>,
    /// The application's initial state, handed to it as `InitChain.app_state_bytes`.
    pub app_state: AppState,
}

/// One initial validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    /// A human-readable name (moniker), unique in the file.
    pub name: String,
    /// The ed25519 consensus public key, 32 bytes as hex.
    pub pub_key: String,
    /// Voting power, at least 1: the whole list must be the set `app_state.validators`' self-bonds give by
    /// the proof-of-useful-compute rule (`lode_state::genesis::validator_set`; equal self-bonds give equal
    /// shares of 10^9). [`Genesis::set_validator_powers`] fills it in.
    pub power: u64,
}

fn default_initial_height() -> u64 {
    1
}

/// Most bytes of a genesis file read ([`Genesis::load`]): room for about two million funded accounts.
pub const MAX_GENESIS_BYTES: u64 = 256 << 20;

impl Genesis {
    /// Reads, parses and validates the genesis file at `path`.
    /// A file over [`MAX_GENESIS_BYTES`] (or a FIFO or device that never ends) is refused after reading that
    /// many bytes.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, GenesisError> {
        use std::io::Read;
        let path = path.as_ref();
        let read = |source| GenesisError::Read {
            path: path.to_owned(),
            source,
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(read)?
            .take(MAX_GENESIS_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
        if text.len() as u64 > MAX_GENESIS_BYTES {
            return Err(read(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("over the {MAX_GENESIS_BYTES}-byte limit of a genesis file"),
            )));
        }
        Self::from_json(&text)
    }

    /// Parses and validates a genesis document.
    pub fn from_json(json: &str) -> Result<Self, GenesisError> {
        let mut de = serde_json::Deserializer::from_str(json);
        let genesis: Self = serde_path_to_error::deserialize(&mut de).map_err(parse_error)?;
        // Trailing content after the document is as wrong as a bad field.
        de.end().map_err(|e| parse_error_at(".".to_owned(), e))?;
        genesis.validate_into_result()
    }

    /// Every rule this genesis breaks, each with its JSON path; empty when it is valid.
    pub fn validate(&self) -> Vec<Issue> {
        validate::validate(self)
    }

    /// Sets every validator's `power` to the one `app_state`'s self-bonds give it
    /// (`lode_state::genesis::validator_set`), and 0 where it gets none (which validation then refuses).
    /// For tools that write a genesis (`lode init`, `lode testnet init`) and tests.
    pub fn set_validator_powers(&mut self) -> Result<(), GenesisError> {
        let set = lode_state::genesis::validator_set(&self.app_state)
            .map_err(|e| GenesisError::Invalid(vec![Issue::new("app_state", e.to_string())]))?;
        for v in &mut self.validators {
            let key = parse_ed25519_public_key(&v.pub_key).ok();
            v.power = set
                .iter()
                .find(|(k, _)| Some(*k) == key)
                .map_or(0, |(_, p)| *p);
        }
        Ok(())
    }

    fn validate_into_result(self) -> Result<Self, GenesisError> {
        let issues = self.validate();
        if issues.is_empty() {
            Ok(self)
        } else {
            Err(GenesisError::Invalid(issues))
        }
    }

    /// The genesis as pretty JSON.
    pub fn to_json(&self) -> Result<String, GenesisError> {
        serde_json::to_string_pretty(self).map_err(GenesisError::Serialize)
    }

    /// Validates and writes the genesis to `path` (pretty JSON, trailing newline).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), GenesisError> {
        let issues = self.validate();
        if !issues.is_empty() {
            return Err(GenesisError::Invalid(issues));
        }
        let path = path.as_ref();
        let mut json = self.to_json()?;
        json.push('\n');
        std::fs::write(path, json).map_err(|source| GenesisError::Write {
            path: path.to_owned(),
            source,
        })
    }

    /// The ABCI `InitChain` request for this genesis. Consensus parameters are left to the consensus engine.
    pub fn init_chain_request(&self) -> Result<RequestInitChain, GenesisError> {
        let issues = self.validate();
        if !issues.is_empty() {
            return Err(GenesisError::Invalid(issues));
        }
        // Validation above guarantees each of these conversions succeeds; errors are still mapped, not unwrapped.
        let time = parse_genesis_time(&self.genesis_time)
            .map_err(|m| GenesisError::Invalid(vec![Issue::new("genesis_time", m)]))?;
        let mut validators = Vec::with_capacity(self.validators.len());
        for (i, v) in self.validators.iter().enumerate() {
            let key = parse_ed25519_public_key(&v.pub_key).map_err(|m| {
                GenesisError::Invalid(vec![Issue::new(format!("validators[{i}].pub_key"), m)])
            })?;
            let power = i64::try_from(v.power).map_err(|_| {
                GenesisError::Invalid(vec![Issue::new(
                    format!("validators[{i}].power"),
                    "does not fit in i64",
                )])
            })?;
            validators.push(ValidatorUpdate {
                pub_key: Some(PublicKey {
                    sum: Some(Sum::Ed25519(key.to_vec())),
                }),
                power,
            });
        }
        let initial_height = i64::try_from(self.initial_height).map_err(|_| {
            GenesisError::Invalid(vec![Issue::new("initial_height", "does not fit in i64")])
        })?;
        let app_state_bytes =
            serde_json::to_vec(&self.app_state).map_err(GenesisError::Serialize)?;
        Ok(RequestInitChain {
            time: Some(Timestamp {
                seconds: time.unix_timestamp(),
                nanos: time.nanosecond() as i32,
            }),
            chain_id: self.chain_id.clone(),
            consensus_params: None,
            validators,
            app_state_bytes: app_state_bytes.into(),
            initial_height,
        })
    }
}

fn parse_error(e: serde_path_to_error::Error<serde_json::Error>) -> GenesisError {
    let path = e.path().to_string();
    parse_error_at(path, e.into_inner())
}

fn parse_error_at(path: String, e: serde_json::Error) -> GenesisError {
    let (line, column) = (e.line(), e.column());
    // serde_json appends " at line L column C"; we report the position separately.
    let mut message = e.to_string();
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    GenesisError::Parse {
        issue: Issue::new(path, message),
        line,
        column,
    }
}
