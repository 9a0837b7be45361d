//! Support shared by the whole-system tests of every crate (`node/tests/it`, `consensus/tests/it`).
//!
//! The multi-process tests themselves live in `node/tests/it/`, because Cargo gives only the `lode-node`
//! package's own tests the path of the `lode` binary (`CARGO_BIN_EXE_lode`).

pub mod ports;
