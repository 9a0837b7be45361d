//! Whole-system tests: several `lode` processes, real RocksDB in temp dirs, loopback ports.
//!
//! Multi-validator devnet tests land here with consensus. The single-process ABCI socket tests live in
//! `node/tests/it/` instead, because Cargo gives only the `lode-node` package's own tests the path of the
//! `lode` binary (`CARGO_BIN_EXE_lode`).
