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
    #[error("invalid {field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("invalid multisig key: {0}")]
    InvalidMultisig(&'static str),
    #[error("multisig has {got} valid signature slot(s) filled, threshold is {threshold}")]
    MultisigThreshold { got: usize, threshold: u32 },
    // staking
    #[error("validator {0} already exists")]
    ValidatorExists(String),
    #[error("unknown validator {0}")]
    UnknownValidator(String),
    #[error("bonded {bonded} to this validator, cannot undelegate {needed}")]
    InsufficientBond { bonded: u128, needed: u128 },
    // gov
    #[error("unknown proposal {0}")]
    UnknownProposal(u64),
    #[error("proposal {0} is not in its deposit period")]
    NotInDepositPeriod(u64),
    #[error("proposal {0} is not in its voting period")]
    NotInVotingPeriod(u64),
    #[error("invalid parameter change {path:?}: {reason}")]
    InvalidParamChange { path: String, reason: String },
    #[error("invalid vote: {0}")]
    InvalidVote(&'static str),
    #[error("deposit overflows the proposal's total deposit")]
    DepositOverflow,
    #[error("invalid proposal: {0}")]
    InvalidProposal(String),
    // nft
    #[error("collection {0:?} already exists")]
    CollectionExists(String),
    #[error("unknown collection {0:?}")]
    UnknownCollection(String),
    #[error("token {token:?} already exists in collection {collection:?}")]
    TokenExists { collection: String, token: String },
    #[error("unknown token {token:?} in collection {collection:?}")]
    UnknownToken { collection: String, token: String },
    #[error("royalty {bps} bps is above the cap of {cap} bps")]
    RoyaltyAboveCap { bps: u32, cap: u32 },
    #[error("collection {0:?} reached its max supply")]
    MaxSupplyReached(String),
    #[error("{0} may not mint into this collection")]
    NotMinter(String),
    #[error("{0} is neither the owner, the approved address nor an operator")]
    NotAuthorized(String),
    #[error("approval expired at height {expiry}, block height is {height}")]
    ApprovalExpired { expiry: u64, height: u64 },
    #[error("{0} does not own this token")]
    NotOwner(String),
    #[error("token is not listed")]
    NotListed,
    #[error("listed at {listed}, buyer expected {expected}")]
    PriceMismatch { listed: u128, expected: u128 },
    #[error("the seller cannot buy their own listing")]
    SelfPurchase,
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
            TxError::ValidatorExists(_) => 40,
            TxError::UnknownValidator(_) => 41,
            TxError::InsufficientBond { .. } => 42,
            TxError::UnknownProposal(_) => 50,
            TxError::NotInDepositPeriod(_) => 51,
            TxError::NotInVotingPeriod(_) => 52,
            TxError::InvalidParamChange { .. } => 53,
            TxError::InvalidVote(_) => 54,
            TxError::DepositOverflow => 55,
            TxError::InvalidProposal(_) => 56,
            TxError::CollectionExists(_) => 70,
            TxError::UnknownCollection(_) => 71,
            TxError::TokenExists { .. } => 72,
            TxError::UnknownToken { .. } => 73,
            TxError::RoyaltyAboveCap { .. } => 74,
            TxError::MaxSupplyReached(_) => 75,
            TxError::NotMinter(_) => 76,
            TxError::NotAuthorized(_) => 77,
            TxError::ApprovalExpired { .. } => 78,
            TxError::NotOwner(_) => 79,
            TxError::NotListed => 80,
            TxError::PriceMismatch { .. } => 81,
            TxError::SelfPurchase => 82,
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
            TxError::ValidatorExists(_) => "ERR_VALIDATOR_EXISTS",
            TxError::UnknownValidator(_) => "ERR_UNKNOWN_VALIDATOR",
            TxError::InsufficientBond { .. } => "ERR_INSUFFICIENT_BOND",
            TxError::UnknownProposal(_) => "ERR_UNKNOWN_PROPOSAL",
            TxError::NotInDepositPeriod(_) => "ERR_NOT_IN_DEPOSIT_PERIOD",
            TxError::NotInVotingPeriod(_) => "ERR_NOT_IN_VOTING_PERIOD",
            TxError::InvalidParamChange { .. } => "ERR_INVALID_PARAM_CHANGE",
            TxError::InvalidVote(_) => "ERR_INVALID_VOTE",
            TxError::DepositOverflow => "ERR_DEPOSIT_OVERFLOW",
            TxError::InvalidProposal(_) => "ERR_INVALID_PROPOSAL",
            TxError::CollectionExists(_) => "ERR_COLLECTION_EXISTS",
            TxError::UnknownCollection(_) => "ERR_UNKNOWN_COLLECTION",
            TxError::TokenExists { .. } => "ERR_TOKEN_EXISTS",
            TxError::UnknownToken { .. } => "ERR_UNKNOWN_TOKEN",
            TxError::RoyaltyAboveCap { .. } => "ERR_ROYALTY_ABOVE_CAP",
            TxError::MaxSupplyReached(_) => "ERR_MAX_SUPPLY_REACHED",
            TxError::NotMinter(_) => "ERR_NOT_MINTER",
            TxError::NotAuthorized(_) => "ERR_NOT_AUTHORIZED",
            TxError::ApprovalExpired { .. } => "ERR_APPROVAL_EXPIRED",
            TxError::NotOwner(_) => "ERR_NOT_OWNER",
            TxError::NotListed => "ERR_NOT_LISTED",
            TxError::PriceMismatch { .. } => "ERR_PRICE_MISMATCH",
            TxError::SelfPurchase => "ERR_SELF_PURCHASE",
            TxError::Internal(_) => "ERR_INTERNAL",
        }
    }

    /// Every code in use, for uniqueness tests and documentation.
    pub const ALL_CODES: &'static [u32] = &[
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 40, 41, 42,
        50, 51, 52, 53, 54, 55, 56, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82,
    ];

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_listed() {
        let mut seen = std::collections::BTreeSet::new();
        for c in TxError::ALL_CODES {
            assert!(seen.insert(*c), "code {c} listed twice");
        }
        for e in [
            TxError::UnknownProposal(1),
            TxError::NotInVotingPeriod(1),
            TxError::DepositOverflow,
            TxError::RoyaltyAboveCap { bps: 1, cap: 0 },
            TxError::MultisigThreshold {
                got: 1,
                threshold: 2,
            },
            TxError::SelfPurchase,
        ] {
            assert!(TxError::ALL_CODES.contains(&e.code()), "{}", e.name());
        }
    }
}
