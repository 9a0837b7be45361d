//! Integration tests for lode-gpu-verify (one binary; modules by topic).

mod challenge;
mod common;
mod detection;
mod format;
mod fraud;
mod freivalds;
mod gemm;
mod merkle;
mod verify;
