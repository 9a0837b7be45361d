//! Errors of the consensus crate.

use thiserror::Error;

/// Failure to decode (or, rarely, encode) a consensus wire message.
#[derive(Debug, Error)]
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
