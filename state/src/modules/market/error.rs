//! market's errors. Codes 100..=129; numbers are public API and never reused.

use thiserror::Error;

use crate::error::{CodeRange, ModuleError};

/// The codes market's errors may use.
pub const CODES: CodeRange = CodeRange {
    module: "market",
    first: 100,
    last: 129,
};

/// Why a marketplace message was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MarketError {
    #[error("{0} is already a provider")]
    ProviderExists(String),
    #[error("{0} is not a provider")]
    UnknownProvider(String),
    #[error("bond {bond} is below the minimum {min} for {devices} devices")]
    BondTooLow { bond: u128, min: u128, devices: u64 },
    #[error("invalid device list: {0}")]
    InvalidDevices(String),
    #[error("provider has {0} jobs in flight")]
    JobsInFlight(u32),
    #[error("provider is unbonding")]
    ProviderUnbonding,
    #[error("unknown job {0}")]
    UnknownJob(String),
    #[error("job is {actual}, expected {expected}")]
    WrongJobStatus {
        actual: &'static str,
        expected: &'static str,
    },
    #[error("{0} is not this job's consumer")]
    NotConsumer(String),
    #[error("{0} is not this job's provider")]
    NotProvider(String),
    #[error("the deadline was height {deadline}, block height is {height}")]
    DeadlinePassed { deadline: u64, height: u64 },
    #[error("job is outside the bounds: {0}")]
    JobOutOfBounds(String),
    #[error("tile {tile} does not divide m = {m} and n = {n}")]
    TileNotDivisor { tile: u32, m: u64, n: u64 },
    #[error("the market holds {0} open jobs, its maximum")]
    TooManyOpenJobs(u64),
    #[error("deadline_blocks {got} is outside {min}..={max}")]
    DeadlineOutOfBounds { got: u64, min: u64, max: u64 },
    #[error("min_reputation {0} is above 10000")]
    ReputationOutOfBounds(u32),
}

impl ModuleError for MarketError {
    const CODES: CodeRange = CODES;

    fn code(&self) -> u32 {
        match self {
            MarketError::ProviderExists(_) => 100,
            MarketError::UnknownProvider(_) => 101,
            MarketError::BondTooLow { .. } => 102,
            MarketError::InvalidDevices(_) => 103,
            MarketError::JobsInFlight(_) => 104,
            MarketError::ProviderUnbonding => 105,
            MarketError::UnknownJob(_) => 106,
            MarketError::WrongJobStatus { .. } => 107,
            MarketError::NotConsumer(_) => 108,
            MarketError::NotProvider(_) => 109,
            MarketError::DeadlinePassed { .. } => 110,
            MarketError::JobOutOfBounds(_) => 111,
            MarketError::TileNotDivisor { .. } => 112,
            MarketError::TooManyOpenJobs(_) => 113,
            MarketError::DeadlineOutOfBounds { .. } => 114,
            MarketError::ReputationOutOfBounds(_) => 115,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            MarketError::ProviderExists(_) => "ERR_PROVIDER_EXISTS",
            MarketError::UnknownProvider(_) => "ERR_UNKNOWN_PROVIDER",
            MarketError::BondTooLow { .. } => "ERR_BOND_TOO_LOW",
            MarketError::InvalidDevices(_) => "ERR_INVALID_DEVICES",
            MarketError::JobsInFlight(_) => "ERR_JOBS_IN_FLIGHT",
            MarketError::ProviderUnbonding => "ERR_PROVIDER_UNBONDING",
            MarketError::UnknownJob(_) => "ERR_UNKNOWN_JOB",
            MarketError::WrongJobStatus { .. } => "ERR_WRONG_JOB_STATUS",
            MarketError::NotConsumer(_) => "ERR_NOT_CONSUMER",
            MarketError::NotProvider(_) => "ERR_NOT_PROVIDER",
            MarketError::DeadlinePassed { .. } => "ERR_DEADLINE_PASSED",
            MarketError::JobOutOfBounds(_) => "ERR_JOB_OUT_OF_BOUNDS",
            MarketError::TileNotDivisor { .. } => "ERR_TILE_NOT_DIVISOR",
            MarketError::TooManyOpenJobs(_) => "ERR_TOO_MANY_OPEN_JOBS",
            MarketError::DeadlineOutOfBounds { .. } => "ERR_DEADLINE_OUT_OF_BOUNDS",
            MarketError::ReputationOutOfBounds(_) => "ERR_REPUTATION_OUT_OF_BOUNDS",
        }
    }

    fn examples() -> Vec<Self> {
        vec![
            MarketError::ProviderExists(String::new()),
            MarketError::UnknownProvider(String::new()),
            MarketError::BondTooLow {
                bond: 0,
                min: 0,
                devices: 0,
            },
            MarketError::InvalidDevices(String::new()),
            MarketError::JobsInFlight(0),
            MarketError::ProviderUnbonding,
            MarketError::UnknownJob(String::new()),
            MarketError::WrongJobStatus {
                actual: "",
                expected: "",
            },
            MarketError::NotConsumer(String::new()),
            MarketError::NotProvider(String::new()),
            MarketError::DeadlinePassed {
                deadline: 0,
                height: 0,
            },
            MarketError::JobOutOfBounds(String::new()),
            MarketError::TileNotDivisor {
                tile: 0,
                m: 0,
                n: 0,
            },
            MarketError::TooManyOpenJobs(0),
            MarketError::DeadlineOutOfBounds {
                got: 0,
                min: 0,
                max: 0,
            },
            MarketError::ReputationOutOfBounds(0),
        ]
    }
}
