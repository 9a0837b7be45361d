//! Errors of the consensus crate.

use thiserror::Error;

/// Failure to decode (or, rarely, encode) a consensus wire message.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The bytes are not a valid protobuf message of the expected type.
    #[error("protobuf decode: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A required field is absent.
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// A field has a value outside its domain (wrong length, out of range).
    #[error("invalid field `{field}`: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why it is invalid.
        reason: &'static str,
    },
}

impl CodecError {
    pub(crate) fn invalid(field: &'static str, reason: &'static str) -> Self {
        Self::Invalid { field, reason }
    }
}

/// Why a block is invalid (see [`crate::validity`]). The same faults on every door: live proposal, value
/// sync and the block store.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BlockFault {
    /// The bytes are not a block.
    #[error("not a block: {0}")]
    Malformed(CodecError),
    /// The encoded tx list (or the encoded value) is over the block limit.
    #[error("block of {bytes} bytes is over the limit of {max}")]
    TooLarge {
        /// Its size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// The encoded header is over [`crate::validity::MAX_HEADER_BYTES`].
    #[error("block header of {bytes} bytes is over the limit")]
    HeaderTooLarge {
        /// Its size.
        bytes: u64,
    },
    /// The txs do not hash to the header's tx root: the body is not the one the header (and the block id)
    /// commits to.
    #[error("txs do not match the header's tx root")]
    TxRootMismatch,
    /// The last commit does not hash to the header's last-commit hash, or holds more than
    /// [`crate::validity::MAX_COMMIT_SIGNATURES`] signatures.
    #[error("last commit does not match the header's last-commit hash, or is too large")]
    LastCommitMismatch,
    /// The last commit is missing (or present at the initial height), names a validator outside the
    /// previous height's set, holds a bad signature, or holds 2/3 of that height's power or less.
    #[error("the last commit is not a valid commit of the previous height: {0}")]
    BadLastCommit(&'static str),
    /// Another chain's block.
    #[error("block of another chain")]
    WrongChain,
    /// Not the height being decided (or not the height asked for).
    #[error("block of height {got}, expected {want}")]
    WrongHeight {
        /// The block's height.
        got: crate::types::Height,
        /// The height expected.
        want: crate::types::Height,
    },
    /// The header does not extend the last committed block.
    #[error("block does not extend the last committed block")]
    WrongLastBlock,
    /// The header's app hash is not the application's hash after the last block.
    #[error("block's app hash differs from the application's")]
    WrongAppHash,
    /// The block's time is not after the last block's.
    #[error("block time not after the last block's")]
    TimeNotAfterLast,
    /// A fresh proposal's time is too far ahead of our clock.
    #[error("block time too far ahead of the local clock")]
    TimeAhead,
    /// The proposer is not in the height's validator set.
    #[error("block proposer is not a validator of its height")]
    UnknownProposer,
    /// The application's stateless tx checks (ProcessProposal) rejected it.
    #[error("the application rejected the block's txs")]
    Rejected,
}

impl BlockFault {
    /// A stable name for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "block_malformed",
            Self::TooLarge { .. } => "block_too_large",
            Self::HeaderTooLarge { .. } => "block_header_too_large",
            Self::TxRootMismatch => "block_tx_root_mismatch",
            Self::LastCommitMismatch => "block_last_commit_mismatch",
            Self::BadLastCommit(_) => "block_bad_last_commit",
            Self::WrongChain => "block_wrong_chain",
            Self::WrongHeight { .. } => "block_wrong_height",
            Self::WrongLastBlock => "block_wrong_last_block",
            Self::WrongAppHash => "block_wrong_app_hash",
            Self::TimeNotAfterLast => "block_time_not_after_last",
            Self::TimeAhead => "block_time_ahead",
            Self::UnknownProposer => "block_unknown_proposer",
            Self::Rejected => "block_rejected_by_application",
        }
    }

    /// Whether a synced value with this fault is the serving peer's doing rather than a disagreement
    /// with the block the certificate names: the bytes are not a block, are too big, or carry another
    /// body or height than the certified header.
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            Self::Malformed(_)
                | Self::TooLarge { .. }
                | Self::HeaderTooLarge { .. }
                | Self::TxRootMismatch
                | Self::LastCommitMismatch
                | Self::WrongHeight { .. }
        )
    }
}

/// A failed call into the application through [`crate::Abci`].
#[derive(Debug, Error)]
pub enum AbciError {
    /// The application answered with an `Exception` response.
    #[error("application exception: {0}")]
    Exception(String),
    /// The application answered with a response of another kind than the request.
    #[error("unexpected ABCI response to {0}")]
    UnexpectedResponse(&'static str),
    /// The transport to the application failed (socket, channel).
    #[error("ABCI transport: {0}")]
    Transport(String),
}

/// A block store failure.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The backend failed (I/O, RocksDB).
    #[error("block store backend: {0}")]
    Backend(String),
    /// Stored bytes failed to decode.
    #[error("corrupt block store entry: {0}")]
    Corrupt(#[from] CodecError),
}

/// Errors of the consensus service.
#[derive(Debug, Error)]
pub enum ConsensusError {
    /// Configuration is unusable.
    #[error("invalid consensus config: {0}")]
    Config(String),
    /// The application failed.
    #[error(transparent)]
    Abci(#[from] AbciError),
    /// The block store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A wire message failed to decode.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Malachite's engine failed to start or stopped.
    #[error("consensus engine: {0}")]
    Engine(String),
    /// A signature could not be produced.
    #[error("signing: {0}")]
    Signing(String),
    /// The node stopped committing: its application diverged from the chain, or could not execute or commit
    /// a decided block. Retrying cannot help (the same block gives the same result), so the node halts.
    #[error("{0}")]
    Halted(Box<HaltReport>),
}

/// What an operator needs to know about a halted node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaltReport {
    /// The height whose execution failed or whose result differs from the chain's.
    pub height: u64,
    /// The app hash the chain agreed on after `height` (from the next decided header), when known.
    pub expected_app_hash: Option<Vec<u8>>,
    /// This node's app hash after `height` (before it, when executing `height` failed).
    pub local_app_hash: Vec<u8>,
    /// What went wrong.
    pub error: String,
}

impl std::fmt::Display for HaltReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "halted at height {}: {}; expected app hash {}, local app hash {}",
            self.height,
            self.error,
            self.expected_app_hash
                .as_ref()
                .map_or_else(|| "unknown".to_string(), hex::encode),
            hex::encode(&self.local_app_hash)
        )
    }
}
