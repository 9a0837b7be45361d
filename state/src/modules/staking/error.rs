//! staking's errors. Codes 40..=49; numbers are public API and never reused.

use thiserror::Error;

use crate::error::{CodeRange, ModuleError};

/// The codes staking's errors may use.
pub const CODES: CodeRange = CodeRange {
    module: "staking",
    first: 40,
    last: 49,
};

/// Why a staking message was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StakingError {
    #[error("validator {0} already exists")]
    ValidatorExists(String),
    #[error("unknown validator {0}")]
    UnknownValidator(String),
    #[error("bonded {bonded} to this validator, cannot undelegate {needed}")]
    InsufficientBond { bonded: u128, needed: u128 },
    #[error("validator {0} is not jailed")]
    NotJailed(String),
    #[error("validator is jailed until height {until}; this is height {height}")]
    StillJailed { until: u64, height: u64 },
}

impl ModuleError for StakingError {
    const CODES: CodeRange = CODES;

    fn code(&self) -> u32 {
        match self {
            StakingError::ValidatorExists(_) => 40,
            StakingError::UnknownValidator(_) => 41,
            StakingError::InsufficientBond { .. } => 42,
            StakingError::NotJailed(_) => 43,
            StakingError::StillJailed { .. } => 44,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            StakingError::ValidatorExists(_) => "ERR_VALIDATOR_EXISTS",
            StakingError::UnknownValidator(_) => "ERR_UNKNOWN_VALIDATOR",
            StakingError::InsufficientBond { .. } => "ERR_INSUFFICIENT_BOND",
            StakingError::NotJailed(_) => "ERR_NOT_JAILED",
            StakingError::StillJailed { .. } => "ERR_STILL_JAILED",
        }
    }

    fn examples() -> Vec<Self> {
        vec![
            StakingError::ValidatorExists(String::new()),
            StakingError::UnknownValidator(String::new()),
            StakingError::InsufficientBond {
                bonded: 0,
                needed: 1,
            },
            StakingError::NotJailed(String::new()),
            StakingError::StillJailed {
                until: 2,
                height: 1,
            },
        ]
    }
}
