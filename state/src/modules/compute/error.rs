//! compute's errors. Codes 130..=159; numbers are public API and never reused.
//!
//! A reveal whose proofs hold but whose recomputed tile differs from the committed one is not an error: it
//! is the verdict "wrong result", and the provider is slashed in a successful tx. Every other rejection of
//! a reveal is malformed input and refused with its own code (the provider may still send a correct one
//! before the deadline).

use thiserror::Error;

use crate::error::{CodeRange, ModuleError};

/// The codes compute's errors may use.
pub const CODES: CodeRange = CodeRange {
    module: "compute",
    first: 130,
    last: 159,
};

/// Why a compute message was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ComputeError {
    #[error("job has no open request for tiles (it is {0})")]
    NothingToReveal(&'static str),
    #[error("tile {0} was not asked for")]
    TileNotChallenged(u64),
    #[error("tile {0} was already revealed")]
    TileAlreadyRevealed(u64),
    #[error("tile {0} appears twice")]
    DuplicateTile(u64),
    #[error("tile {index}: wrong shape: {reason}")]
    TileShape { index: u64, reason: String },
    #[error("tile {index}: proof against the output root rejected: {reason}")]
    TileProof { index: u64, reason: String },
    #[error("tile {index}: row {row} of A rejected against the job's a_root: {reason}")]
    RowProof {
        index: u64,
        row: u64,
        reason: String,
    },
    #[error("tile {index}: column {col} of B rejected against the job's b_root: {reason}")]
    ColumnProof {
        index: u64,
        col: u64,
        reason: String,
    },
    #[error("malformed proof: {0}")]
    MalformedProof(String),
    #[error("reveal too large: {0}")]
    RevealTooLarge(String),
    #[error("the fraud window closed at height {closed}, block height is {height}")]
    WindowClosed { closed: u64, height: u64 },
    #[error("an availability challenge is already open")]
    ChallengeOpen,
    #[error("fraud proof rejected: {0}")]
    FraudProofInvalid(String),
    #[error("fraud was already proven for this job")]
    FraudAlreadyProven,
    #[error("verification backend failed: {0}")]
    Backend(String),
}

impl ModuleError for ComputeError {
    const CODES: CodeRange = CODES;

    fn code(&self) -> u32 {
        match self {
            ComputeError::NothingToReveal(_) => 130,
            ComputeError::TileNotChallenged(_) => 131,
            ComputeError::TileAlreadyRevealed(_) => 132,
            ComputeError::DuplicateTile(_) => 133,
            ComputeError::TileShape { .. } => 134,
            ComputeError::TileProof { .. } => 135,
            ComputeError::RowProof { .. } => 136,
            ComputeError::ColumnProof { .. } => 137,
            ComputeError::MalformedProof(_) => 138,
            ComputeError::RevealTooLarge(_) => 139,
            ComputeError::WindowClosed { .. } => 140,
            ComputeError::ChallengeOpen => 141,
            ComputeError::FraudProofInvalid(_) => 142,
            ComputeError::FraudAlreadyProven => 143,
            ComputeError::Backend(_) => 144,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            ComputeError::NothingToReveal(_) => "ERR_NOTHING_TO_REVEAL",
            ComputeError::TileNotChallenged(_) => "ERR_TILE_NOT_CHALLENGED",
            ComputeError::TileAlreadyRevealed(_) => "ERR_TILE_ALREADY_REVEALED",
            ComputeError::DuplicateTile(_) => "ERR_DUPLICATE_TILE",
            ComputeError::TileShape { .. } => "ERR_TILE_SHAPE",
            ComputeError::TileProof { .. } => "ERR_TILE_PROOF",
            ComputeError::RowProof { .. } => "ERR_ROW_PROOF",
            ComputeError::ColumnProof { .. } => "ERR_COLUMN_PROOF",
            ComputeError::MalformedProof(_) => "ERR_MALFORMED_PROOF",
            ComputeError::RevealTooLarge(_) => "ERR_REVEAL_TOO_LARGE",
            ComputeError::WindowClosed { .. } => "ERR_WINDOW_CLOSED",
            ComputeError::ChallengeOpen => "ERR_CHALLENGE_OPEN",
            ComputeError::FraudProofInvalid(_) => "ERR_FRAUD_PROOF_INVALID",
            ComputeError::FraudAlreadyProven => "ERR_FRAUD_ALREADY_PROVEN",
            ComputeError::Backend(_) => "ERR_VERIFY_BACKEND",
        }
    }

    fn examples() -> Vec<Self> {
        vec![
            ComputeError::NothingToReveal(""),
            ComputeError::TileNotChallenged(0),
            ComputeError::TileAlreadyRevealed(0),
            ComputeError::DuplicateTile(0),
            ComputeError::TileShape {
                index: 0,
                reason: String::new(),
            },
            ComputeError::TileProof {
                index: 0,
                reason: String::new(),
            },
            ComputeError::RowProof {
                index: 0,
                row: 0,
                reason: String::new(),
            },
            ComputeError::ColumnProof {
                index: 0,
                col: 0,
                reason: String::new(),
            },
            ComputeError::MalformedProof(String::new()),
            ComputeError::RevealTooLarge(String::new()),
            ComputeError::WindowClosed {
                closed: 0,
                height: 0,
            },
            ComputeError::ChallengeOpen,
            ComputeError::FraudProofInvalid(String::new()),
            ComputeError::FraudAlreadyProven,
            ComputeError::Backend(String::new()),
        ]
    }
}
