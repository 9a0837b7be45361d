//! Lode's state machine: the ABCI 2.0 application, its modules, and durable, provable storage.
//!
//! Deterministic by construction: no clocks, no RNG (except batch-verification coefficients, which cannot
//! change a verdict), no `HashMap` iteration, no floats. Height and time come in through ABCI.

// Non-test code never panics on purpose. `clippy::indexing_slicing` (35 hits) and
// `clippy::arithmetic_side_effects` (49 hits) are still to be fixed or justified one by one.
#![cfg_attr(not(test), warn(clippy::expect_used, clippy::panic))]

pub mod address;
pub mod amount;
pub mod app;
pub mod codec;
pub mod error;
pub mod event;
pub mod exec;
pub mod genesis;
pub mod module;
pub mod modules;
pub mod params;
pub mod query;
pub mod store;
pub mod tx;
pub mod validators;

pub use address::Address;
pub use app::LodeApp;
pub use error::{StateError, StoreError, TxError};
pub use params::Params;
