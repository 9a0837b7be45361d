//! Errors of the state machine. Every transaction error carries a stable numeric [`TxError::code`] that ABCI
//! results (and later gRPC statuses) use; codes are public API and never renumbered. The shared errors are
//! here ([`CORE_CODES`]); each module has its own enum in its `error.rs` with its own [`CodeRange`].

use thiserror::Error;

/// The ABCI codespace of every error below.
pub const CODESPACE: &str = "lode";

/// A block of error codes owned by one part of the state machine. Ranges never overlap and a code, once
/// given out, keeps its number (`tests/golden/error_codes.txt` holds the list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeRange {
    /// The owner: `tx` for the shared codes, else the module's name.
    pub module: &'static str,
    pub first: u32,
    pub last: u32,
}

impl CodeRange {
    pub const fn contains(&self, code: u32) -> bool {
        self.first <= code && code <= self.last
    }

    pub const fn overlaps(&self, other: &CodeRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

/// The shared codes: decoding, signatures, the ante steps, and the amount, address and field errors every
/// module uses (1..=29), and the query codes (30..=39, see `crate::query::code`).
pub const CORE_CODES: CodeRange = CodeRange {
    module: "tx",
    first: 1,
    last: 39,
};

/// A module's error enum: each variant has a stable code inside the module's [`CodeRange`] and a stable
/// `ERR_*` name. Converting it into a [`TxError`] keeps both.
pub trait ModuleError: std::error::Error + Sized {
    /// The module's range.
    const CODES: CodeRange;
    /// The stable code.
    fn code(&self) -> u32;
    /// The stable name.
    fn name(&self) -> &'static str;
    /// One value of every variant (for the catalogue and its tests).
    fn examples() -> Vec<Self>;
}

/// A module error as a [`TxError`] carries it: the module, the code, the name and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFailure {
    pub module: &'static str,
    pub code: u32,
    pub name: &'static str,
    pub message: String,
}

impl<E: ModuleError> From<E> for TxError {
    fn from(e: E) -> Self {
        TxError::Module(ModuleFailure {
            module: E::CODES.module,
            code: e.code(),
            name: e.name(),
            message: e.to_string(),
        })
    }
}

/// Why a transaction was rejected. Each variant has its own stable code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TxError {
    #[error("tx bytes do not decode: {0}")]
    Decode(String),
    #[error("tx is {size} bytes, over the limit of {max}")]
    TooLarge { size: usize, max: u64 },
    #[error("tx is for chain {got:?}, this chain is {want:?}")]
    WrongChainId { got: String, want: String },
    #[error("signature does not verify")]
    BadSignature,
    #[error("public key is invalid: {0}")]
    InvalidPublicKey(&'static str),
    #[error("nonce {got} was already used; the account's next nonce is {want}")]
    NonceReplayed { got: u64, want: u64 },
    #[error("nonce {got} skips ahead; the account's next nonce is {want}")]
    NonceGap { got: u64, want: u64 },
    #[error("fee {got} is below the minimum {min} (gas {gas} x min gas price)")]
    InsufficientFee { got: u128, min: u128, gas: u64 },
    #[error("insufficient funds: balance {balance}, needed {needed}")]
    InsufficientFunds { balance: u128, needed: u128 },
    #[error("arithmetic overflow: {0}")]
    Overflow(&'static str),
    #[error("tx has no messages")]
    EmptyMsgs,
    #[error("invalid address {addr:?}: {reason}")]
    InvalidAddress { addr: String, reason: String },
    #[error("invalid amount {amount:?}: {reason}")]
    InvalidAmount {
        amount: String,
        reason: &'static str,
    },
    #[error("message sender {sender} is not the tx signer {signer}")]
    SignerMismatch { sender: String, signer: String },
    #[error("tx timed out at height {timeout_height}, block height is {height}")]
    TimedOut { timeout_height: u64, height: u64 },
    #[error("expected exactly {want} signature(s), got {got}")]
    SignatureCount { got: usize, want: usize },
    #[error("memo is {len} bytes, over the limit of {max}")]
    MemoTooLong { len: usize, max: u64 },
    #[error("tx has {got} messages, over the limit of {max}")]
    TooManyMsgs { got: usize, max: u64 },
    #[error("invalid {field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("invalid multisig key: {0}")]
    InvalidMultisig(&'static str),
    #[error("multisig has {got} valid signature slot(s) filled, threshold is {threshold}")]
    MultisigThreshold { got: usize, threshold: u32 },
    /// The bytes decode, but are not the canonical encoding of what they decode to (an unknown field, a
    /// repeated field, a non-minimal varint, an explicit default value): the same tx under another hash.
    #[error("{0} is not canonically encoded (re-encoding what it decodes to gives other bytes)")]
    NonCanonical(&'static str),
    /// A module's own refusal (its code is in the module's range: see [`ModuleError`]).
    #[error("{}", .0.message)]
    Module(ModuleFailure),
    #[error("internal error: {0}")]
    Internal(String),
}

impl TxError {
    /// The stable ABCI code. 0 is success and is never returned here.
    pub fn code(&self) -> u32 {
        match self {
            TxError::Decode(_) => 2,
            TxError::TooLarge { .. } => 3,
            TxError::WrongChainId { .. } => 4,
            TxError::BadSignature => 5,
            TxError::InvalidPublicKey(_) => 6,
            TxError::NonceReplayed { .. } => 7,
            TxError::NonceGap { .. } => 8,
            TxError::InsufficientFee { .. } => 9,
            TxError::InsufficientFunds { .. } => 10,
            TxError::Overflow(_) => 11,
            TxError::EmptyMsgs => 12,
            TxError::InvalidAddress { .. } => 13,
            TxError::InvalidAmount { .. } => 14,
            TxError::SignerMismatch { .. } => 15,
            TxError::TimedOut { .. } => 16,
            TxError::SignatureCount { .. } => 17,
            TxError::MemoTooLong { .. } => 18,
            TxError::TooManyMsgs { .. } => 19,
            TxError::InvalidField { .. } => 20,
            TxError::InvalidMultisig(_) => 21,
            TxError::MultisigThreshold { .. } => 22,
            TxError::NonCanonical(_) => 23,
            TxError::Module(m) => m.code,
            TxError::Internal(_) => 1,
        }
    }

    /// A short stable name for logs and clients (`ERR_BAD_SIGNATURE`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            TxError::Decode(_) => "ERR_DECODE",
            TxError::TooLarge { .. } => "ERR_TX_TOO_LARGE",
            TxError::WrongChainId { .. } => "ERR_WRONG_CHAIN_ID",
            TxError::BadSignature => "ERR_BAD_SIGNATURE",
            TxError::InvalidPublicKey(_) => "ERR_INVALID_PUBLIC_KEY",
            TxError::NonceReplayed { .. } => "ERR_NONCE_REPLAYED",
            TxError::NonceGap { .. } => "ERR_NONCE_GAP",
            TxError::InsufficientFee { .. } => "ERR_INSUFFICIENT_FEE",
            TxError::InsufficientFunds { .. } => "ERR_INSUFFICIENT_FUNDS",
            TxError::Overflow(_) => "ERR_OVERFLOW",
            TxError::EmptyMsgs => "ERR_EMPTY_MSGS",
            TxError::InvalidAddress { .. } => "ERR_INVALID_ADDRESS",
            TxError::InvalidAmount { .. } => "ERR_INVALID_AMOUNT",
            TxError::SignerMismatch { .. } => "ERR_SIGNER_MISMATCH",
            TxError::TimedOut { .. } => "ERR_TX_TIMED_OUT",
            TxError::SignatureCount { .. } => "ERR_SIGNATURE_COUNT",
            TxError::MemoTooLong { .. } => "ERR_MEMO_TOO_LONG",
            TxError::TooManyMsgs { .. } => "ERR_TOO_MANY_MSGS",
            TxError::InvalidField { .. } => "ERR_INVALID_FIELD",
            TxError::InvalidMultisig(_) => "ERR_INVALID_MULTISIG",
            TxError::MultisigThreshold { .. } => "ERR_MULTISIG_THRESHOLD",
            TxError::NonCanonical(_) => "ERR_NON_CANONICAL_ENCODING",
            TxError::Module(m) => m.name,
            TxError::Internal(_) => "ERR_INTERNAL",
        }
    }

    /// One value of every shared (non-module) error, for the code catalogue
    /// ([`crate::modules::error_codes`]) and its tests.
    pub fn examples() -> Vec<TxError> {
        let s = String::new;
        vec![
            TxError::Internal(s()),
            TxError::Decode(s()),
            TxError::TooLarge { size: 0, max: 0 },
            TxError::WrongChainId {
                got: s(),
                want: s(),
            },
            TxError::BadSignature,
            TxError::InvalidPublicKey(""),
            TxError::NonceReplayed { got: 0, want: 0 },
            TxError::NonceGap { got: 0, want: 0 },
            TxError::InsufficientFee {
                got: 0,
                min: 0,
                gas: 0,
            },
            TxError::InsufficientFunds {
                balance: 0,
                needed: 0,
            },
            TxError::Overflow(""),
            TxError::EmptyMsgs,
            TxError::InvalidAddress {
                addr: s(),
                reason: s(),
            },
            TxError::InvalidAmount {
                amount: s(),
                reason: "",
            },
            TxError::SignerMismatch {
                sender: s(),
                signer: s(),
            },
            TxError::TimedOut {
                timeout_height: 0,
                height: 0,
            },
            TxError::SignatureCount { got: 0, want: 0 },
            TxError::MemoTooLong { len: 0, max: 0 },
            TxError::TooManyMsgs { got: 0, max: 0 },
            TxError::InvalidField {
                field: "",
                reason: s(),
            },
            TxError::InvalidMultisig(""),
            TxError::MultisigThreshold {
                got: 0,
                threshold: 0,
            },
            TxError::NonCanonical(""),
        ]
    }

    /// The log line an ABCI result carries: `ERR_NAME: message`.
    pub fn log(&self) -> String {
        format!("{}: {}", self.name(), self)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Internal(e.to_string())
    }
}

/// Storage failures: RocksDB I/O, corrupt records, JMT errors. These are never a client's fault.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt record under {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("merkle tree: {0}")]
    Jmt(String),
}

/// Errors of the application as a whole: opening, engine contract violations, storage.
#[derive(Debug, Error)]
pub enum StateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid genesis: {0}")]
    Genesis(String),
    #[error("ABCI protocol violation: {0}")]
    Protocol(String),
    #[error("end of block failed: {0}")]
    EndBlock(String),
    /// A module's accounting invariant does not hold after a block: the node must halt, not commit.
    #[error("halting: {0}")]
    Invariant(Box<crate::module::InvariantReport>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shared_code_is_inside_the_core_range() {
        for e in TxError::examples() {
            assert!(CORE_CODES.contains(e.code()), "{} = {}", e.name(), e.code());
        }
    }
}
