//! bank's errors. Codes 90..=99 are reserved for bank; bank refuses transfers today with the shared codes
//! of [`crate::error::TxError`] (`ERR_INSUFFICIENT_FUNDS` 10, `ERR_OVERFLOW` 11, `ERR_INVALID_AMOUNT` 14),
//! which kept their numbers when bank became a module.

use thiserror::Error;

use crate::error::{CodeRange, ModuleError};

/// The codes bank's own errors may use.
pub const CODES: CodeRange = CodeRange {
    module: "bank",
    first: 90,
    last: 99,
};

/// Bank-only refusals (none yet: see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BankError {}

impl ModuleError for BankError {
    const CODES: CodeRange = CODES;

    fn code(&self) -> u32 {
        match *self {}
    }

    fn name(&self) -> &'static str {
        match *self {}
    }

    fn examples() -> Vec<Self> {
        Vec::new()
    }
}
