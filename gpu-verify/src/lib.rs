//! Exact int8 compute, Merkle commitments, sampled verification and fraud proofs.
pub mod error;
pub mod gemm;
pub mod matrix;
pub mod merkle;
