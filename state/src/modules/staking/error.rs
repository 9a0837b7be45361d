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
    #[error("provider {provider} is already linked to validator {validator}")]
    ProviderLinkedElsewhere { provider: String, validator: String },
    #[error(
        "the provider link changed in epoch {changed}; the next change is allowed in epoch {next}"
    )]
    LinkCooldown { changed: u64, next: u64 },
    #[error("the provider's consent does not verify: {0}")]
    BadProviderSignature(String),
    #[error("{provider} is not the provider linked to validator {validator}")]
    NotLinked { provider: String, validator: String },
    #[error("validator {0} is not jailed")]
    NotJailed(String),
    #[error("validator is jailed until height {until}; this is height {height}")]
    StillJailed { until: u64, height: u64 },
    #[error("validator {0} is tombstoned for double signing and never returns")]
    Tombstoned(String),
}

impl ModuleError for StakingError {
    const CODES: CodeRange = CODES;

    fn code(&self) -> u32 {
        match self {
            StakingError::ValidatorExists(_) => 40,
            StakingError::UnknownValidator(_) => 41,
            StakingError::InsufficientBond { .. } => 42,
            StakingError::ProviderLinkedElsewhere { .. } => 46,
            StakingError::LinkCooldown { .. } => 47,
            StakingError::BadProviderSignature(_) => 48,
            StakingError::NotLinked { .. } => 49,
            StakingError::NotJailed(_) => 43,
            StakingError::StillJailed { .. } => 44,
            StakingError::Tombstoned(_) => 45,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            StakingError::ValidatorExists(_) => "ERR_VALIDATOR_EXISTS",
            StakingError::UnknownValidator(_) => "ERR_UNKNOWN_VALIDATOR",
            StakingError::InsufficientBond { .. } => "ERR_INSUFFICIENT_BOND",
            StakingError::ProviderLinkedElsewhere { .. } => "ERR_PROVIDER_LINKED_ELSEWHERE",
            StakingError::LinkCooldown { .. } => "ERR_LINK_COOLDOWN",
            StakingError::BadProviderSignature(_) => "ERR_BAD_PROVIDER_SIGNATURE",
            StakingError::NotLinked { .. } => "ERR_NOT_LINKED",
            StakingError::NotJailed(_) => "ERR_NOT_JAILED",
            StakingError::StillJailed { .. } => "ERR_STILL_JAILED",
            StakingError::Tombstoned(_) => "ERR_TOMBSTONED",
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
            StakingError::ProviderLinkedElsewhere {
                provider: String::new(),
                validator: String::new(),
            },
            StakingError::LinkCooldown {
                changed: 0,
                next: 1,
            },
            StakingError::BadProviderSignature(String::new()),
            StakingError::NotLinked {
                provider: String::new(),
                validator: String::new(),
            },
            StakingError::NotJailed(String::new()),
            StakingError::StillJailed {
                until: 2,
                height: 1,
            },
            StakingError::Tombstoned(String::new()),
        ]
    }
}
