//! evidence's errors. Codes 160..=169; numbers are public API and never reused.

use thiserror::Error;

use crate::error::{CodeRange, ModuleError};

/// The codes evidence's errors may use.
pub const CODES: CodeRange = CodeRange {
    module: "evidence",
    first: 160,
    last: 169,
};

/// Why double-sign evidence was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EvidenceError {
    #[error("no validator has consensus address {0}")]
    UnknownValidator(String),
    #[error(
        "the votes are for height {height}; evidence older than {max_age} blocks (this is height \
         {current}) is not accepted"
    )]
    TooOld {
        height: u64,
        current: u64,
        max_age: u64,
    },
    #[error("validator {0} is already tombstoned for double signing")]
    Duplicate(String),
    #[error("{0} does not verify with the validator's consensus key")]
    BadSignature(&'static str),
    #[error("the votes do not conflict: {0}")]
    NotConflicting(String),
    #[error("the votes are for height {height}, past this block's height {current}")]
    FromTheFuture { height: u64, current: u64 },
}

impl ModuleError for EvidenceError {
    const CODES: CodeRange = CODES;

    fn code(&self) -> u32 {
        match self {
            EvidenceError::UnknownValidator(_) => 160,
            EvidenceError::TooOld { .. } => 161,
            EvidenceError::Duplicate(_) => 162,
            EvidenceError::BadSignature(_) => 163,
            EvidenceError::NotConflicting(_) => 164,
            EvidenceError::FromTheFuture { .. } => 165,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            EvidenceError::UnknownValidator(_) => "ERR_EVIDENCE_UNKNOWN_VALIDATOR",
            EvidenceError::TooOld { .. } => "ERR_EVIDENCE_TOO_OLD",
            EvidenceError::Duplicate(_) => "ERR_EVIDENCE_DUPLICATE",
            EvidenceError::BadSignature(_) => "ERR_EVIDENCE_BAD_SIGNATURE",
            EvidenceError::NotConflicting(_) => "ERR_EVIDENCE_NOT_CONFLICTING",
            EvidenceError::FromTheFuture { .. } => "ERR_EVIDENCE_FROM_THE_FUTURE",
        }
    }

    fn examples() -> Vec<Self> {
        vec![
            EvidenceError::UnknownValidator(String::new()),
            EvidenceError::TooOld {
                height: 1,
                current: 3,
                max_age: 1,
            },
            EvidenceError::Duplicate(String::new()),
            EvidenceError::BadSignature("vote_a"),
            EvidenceError::NotConflicting(String::new()),
            EvidenceError::FromTheFuture {
                height: 2,
                current: 1,
            },
        ]
    }
}
