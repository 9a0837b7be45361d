//! gov's errors. Codes 50..=69; numbers are public API and never reused.

use thiserror::Error;

use crate::error::{CodeRange, ModuleError};

/// The codes gov's errors may use.
pub const CODES: CodeRange = CodeRange {
    module: "gov",
    first: 50,
    last: 69,
};

/// Why a governance message was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GovError {
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
}

impl ModuleError for GovError {
    const CODES: CodeRange = CODES;

    fn code(&self) -> u32 {
        match self {
            GovError::UnknownProposal(_) => 50,
            GovError::NotInDepositPeriod(_) => 51,
            GovError::NotInVotingPeriod(_) => 52,
            GovError::InvalidParamChange { .. } => 53,
            GovError::InvalidVote(_) => 54,
            GovError::DepositOverflow => 55,
            GovError::InvalidProposal(_) => 56,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            GovError::UnknownProposal(_) => "ERR_UNKNOWN_PROPOSAL",
            GovError::NotInDepositPeriod(_) => "ERR_NOT_IN_DEPOSIT_PERIOD",
            GovError::NotInVotingPeriod(_) => "ERR_NOT_IN_VOTING_PERIOD",
            GovError::InvalidParamChange { .. } => "ERR_INVALID_PARAM_CHANGE",
            GovError::InvalidVote(_) => "ERR_INVALID_VOTE",
            GovError::DepositOverflow => "ERR_DEPOSIT_OVERFLOW",
            GovError::InvalidProposal(_) => "ERR_INVALID_PROPOSAL",
        }
    }

    fn examples() -> Vec<Self> {
        vec![
            GovError::UnknownProposal(0),
            GovError::NotInDepositPeriod(0),
            GovError::NotInVotingPeriod(0),
            GovError::InvalidParamChange {
                path: String::new(),
                reason: String::new(),
            },
            GovError::InvalidVote(""),
            GovError::DepositOverflow,
            GovError::InvalidProposal(String::new()),
        ]
    }
}
