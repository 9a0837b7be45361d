//! lode-state integration tests: the application driven through its ABCI methods on a real RocksDB.

mod bad_input;
mod common;
mod determinism;
mod determinism_modules;
mod gov;
mod lifecycle;
mod multisig;
mod nft;
mod store;
mod tx_index;
