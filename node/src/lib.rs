//! The `lode` node: command line, configuration, key files and the services that expose the application
//! (for now the ABCI socket server that lets CometBFT v0.38 drive it).
//!
//! This is the only crate that owns tokio runtimes, reads config files and the environment, and installs a
//! tracing subscriber.

pub mod blobs;
pub mod cli;
pub mod config;
pub mod fuzz;
/// Keys from a BIP-39 mnemonic (the client crate's).
pub use lode_client::hd;
pub mod home;
pub mod keys;
pub mod proof;
pub mod provider;
pub mod services;
pub mod testnet;
