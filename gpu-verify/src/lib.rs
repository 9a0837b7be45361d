//! Exact int8 compute, Merkle commitments, sampled verification and fraud proofs.
pub mod error;
pub mod gemm;
pub mod matrix;
pub mod merkle;
pub mod challenge;
pub mod commit;
pub mod cuda;
pub mod backend;
pub mod verify;
pub mod freivalds;
pub mod fraud;
pub mod format;
