//! Chain parameters: size limits and gas costs. They live in state (so the app hash commits to them) and
//! are set at genesis; governance will change them later.

use serde::{Deserialize, Serialize};

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
