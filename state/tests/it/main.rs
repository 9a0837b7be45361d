//! lode-state integration tests: the application driven through its ABCI methods on a real RocksDB.

mod bad_input;
mod common;
mod determinism;
mod determinism_modules;
mod error_codes_are_stable;
mod golden_app_hashes_are_unchanged;
mod gov;
mod lifecycle;
mod multisig;
mod nft;
mod store;
