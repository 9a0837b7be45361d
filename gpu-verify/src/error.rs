//! The crate's error type.
//!
//! Every fallible operation returns [`Error`]. Bad input from the outside world (files,
//! proofs, reveals, indices) is always reported through this type and never panics, because
//! a validator must be able to reject a malicious provider without crashing.

use crate::merkle::Hash;

/// Convenience alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate, except verification verdicts (see
/// [`Rejection`](crate::verify::Rejection)), which wrap this type where needed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A matrix dimension was zero; empty matrices have no Merkle commitment.
    #[error("matrix dimension {what} is zero")]
    ZeroDimension {
        /// Which dimension.
        what: &'static str,
    },
    /// `rows * cols` (or a derived buffer size) does not fit in memory addressing.
    #[error("matrix of {rows}x{cols} is too large")]
    TooLarge {
        /// Rows requested.
        rows: u64,
        /// Columns requested.
        cols: u64,
    },
    /// A data buffer has the wrong number of elements or bytes.
    #[error("{what}: expected length {expected}, got {actual}")]
    Length {
        /// What was being checked.
        what: &'static str,
        /// Expected length.
        expected: u64,
        /// Actual length.
        actual: u64,
    },
    /// The inner dimensions of a product do not agree.
    #[error("shape mismatch: A is {a_rows}x{a_cols} but B is {b_rows}x{b_cols}")]
    ShapeMismatch {
        /// Rows of A.
        a_rows: usize,
        /// Columns of A.
        a_cols: usize,
        /// Rows of B.
        b_rows: usize,
        /// Columns of B.
        b_cols: usize,
    },
    /// The shared dimension is larger than [`MAX_K`](crate::gemm::MAX_K): an i32 result
    /// could overflow, so the job is refused rather than silently wrapped.
    #[error("k = {k} exceeds the maximum {max} for exact i32 accumulation")]
    KTooLarge {
        /// Requested k.
        k: usize,
        /// Largest allowed k.
        max: usize,
    },
    /// An index (row, column, tile, leaf) is outside its range.
    #[error("{what} index {index} out of range (count {count})")]
    IndexOutOfRange {
        /// What the index addresses.
        what: &'static str,
        /// The index.
        index: u64,
        /// Number of valid indices.
        count: u64,
    },
    /// A parameter (tile size, sample count, thread count...) is invalid.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// A Merkle inclusion proof does not have the structure its index and leaf count imply.
    #[error("malformed Merkle proof: {0}")]
    MalformedProof(String),
    /// A Merkle inclusion proof is well formed but does not lead to the expected root.
    #[error("Merkle proof does not match root {}", hex32(.expected))]
    RootMismatch {
        /// The root the proof should lead to.
        expected: Hash,
    },
    /// The requested CPU kernel is not supported on this machine.
    #[error("CPU kernel {0} is not supported on this CPU")]
    KernelUnsupported(&'static str),
    /// CUDA was requested but is not usable; the string says why.
    #[error("CUDA unavailable: {0}")]
    CudaUnavailable(String),
    /// A CUDA call failed after initialisation.
    #[error("CUDA error: {0}")]
    Cuda(String),
    /// A matrix file is malformed.
    #[error("malformed matrix file: {0}")]
    Format(String),
    /// A fraud proof does not demonstrate fraud (bad proof, or the element is correct).
    #[error("fraud proof rejected: {0}")]
    FraudProofInvalid(String),
    /// An I/O error while reading or writing a file.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Hex rendering for error messages (no extra dependency for such a small need).
pub(crate) fn hex32(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}
