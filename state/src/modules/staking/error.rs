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
}

impl ModuleError for StakingError {
    const CODES: CodeRange = CODES;

    fn code(&self) -> u32 {
        match self {
            StakingError::ValidatorExists(_) => 40,
            StakingError::UnknownValidator(_) => 41,
            StakingError::InsufficientBond { .. } => 42,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            StakingError::ValidatorExists(_) => "ERR_VALIDATOR_EXISTS",
            StakingError::UnknownValidator(_) => "ERR_UNKNOWN_VALIDATOR",
            StakingError::InsufficientBond { .. } => "ERR_INSUFFICIENT_BOND",
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
        ]
    }
}
