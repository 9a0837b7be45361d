//! Errors of the state machine. Every transaction error carries a stable numeric [`TxError::code`] that ABCI
//! results (and later gRPC statuses) use; codes are public API and never renumbered.

use thiserror::Error;

/// The ABCI codespace of every error below.
pub const CODESPACE: &str = "lode";

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
            TxError::Internal(_) => "ERR_INTERNAL",
        }
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
}
