//! Exact int8 compute on GPU and CPU, Merkle commitments, sampled verification and fraud
//! proofs for the Lode GPU marketplace (job kind `MatMulI8 {m, k, n}`).
//!
//! # Protocol
//!
//! `C (m×n, i32) = A (m×k, i8) × B (k×n, i8)` with `k <= 131071`, so every result fits in
//! i32 and integer arithmetic makes every backend bit-identical.
//!
//! 1. The consumer posts the roots of A (committed by rows) and B (by columns)
//!    ([`commit`], [`merkle`]).
//! 2. The provider computes C ([`gemm`], [`cuda`], chosen through [`backend`]) and posts
//!    the root of C committed by T×T tiles.
//! 3. A later block hash yields the challenge seed; `s` distinct tile indices follow from
//!    it ([`challenge`]).
//! 4. The provider reveals each sampled tile with its proof, plus the T rows of A and T
//!    columns of B it needs with their proofs; validators check every proof and recompute
//!    the tiles ([`verify`], [`verify::BatchVerifier`] for many jobs).
//! 5. The consumer can check all of C with Freivalds' algorithm ([`freivalds`]) and turn a
//!    wrong element into a [`fraud::FraudProof`] anyone can check with one dot product.
//!
//! # Defaults and cost
//!
//! A sample costs the validator `2·T·k` bytes of SHA-256 (rows and columns must be hashed
//! to check their proofs), about `2·T·log₂(m) + log₂(tiles)` node hashes, and `2·T²·k`
//! integer operations; computing C costs `2·m·n·k` operations. Hashing dominates, so with
//! `R_h` bytes/s of SHA-256 and `R_g` ops/s of GEMM,
//!
//! ```text
//! verify / compute ≈ s·T·R_g / (R_h·m·n)
//! ```
//!
//! On the reference CPU (leaves hashed sixteen at a time with AVX-512 ≈ 2.4 GB/s, node
//! pairs on SHA-NI, VNNI GEMM ≈ 0.3–0.47 TOPS per core) a sample of a 2048³ job costs
//! ≈ 11–16 µs against 46–67 ms of compute. The defaults are [`verify::DEFAULT_TILE`]
//! `T = 4` and [`verify::DEFAULT_SAMPLES`] `s = 2`, measured at 1/1917–1/2265 (wall
//! clock) and 1/1468–1/1726 (thread CPU time) under load, against the 1/1000 target
//! (README.md).
//! `T = 2, s = 2` detects the same fraction of tiles more cheaply for validators but
//! quadruples the tiles (three times the provider's commitment cost); `s = 1` catches
//! only `f` per job.
//! A provider corrupting a fraction `f` of tiles escapes one job with probability
//! `(1 − f)^s` (distinct samples make it slightly smaller, see
//! [`challenge::escape_probability`]): caught 19% at f = 0.1, 36% at f = 0.2, 75% at
//! f = 0.5, and `1 − (1 − f)^(s·N)` over N jobs. Sampling is the cheap, always-on
//! deterrent; jobs can raise `s` (cost grows linearly), and full coverage comes from
//! consumers' Freivalds checks and fraud proofs.
//!
//! Freivalds: each trial with a uniform vector over `F_p`, `p = 2⁶¹ − 1`, accepts a wrong
//! C with probability `<= 1/p`.

pub mod backend;
pub mod challenge;
pub mod commit;
pub mod cuda;
pub mod error;
pub mod format;
pub mod fraud;
pub mod freivalds;
pub mod gemm;
pub mod matrix;
pub mod merkle;
mod sha_mb;
mod sha_x2;
pub mod sim;
pub mod verify;

pub use backend::{Backend, Engine};
pub use error::{Error, Result};
pub use gemm::{CpuGemm, CpuKernel, MAX_K};
pub use matrix::{Matrix, MatrixI32, MatrixI8};
pub use merkle::Hash;
