//! Lode's state machine: the ABCI 2.0 application, its modules, and durable, provable storage.
//!
//! Deterministic by construction: no clocks, no RNG (except batch-verification coefficients, which cannot
//! change a verdict), no `HashMap` iteration, no floats. Height and time come in through ABCI.

// Library code of state handles bytes from clients, peers and disk: no panics, no unchecked indexing or
// arithmetic outside tests (issue 10). Each exception carries an `#[allow]` with its reason; the
// workspace's clippy.toml names the types whose arithmetic is modular (ed25519 scalars).
#![cfg_attr(
    not(test),
    deny(
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

pub mod address;
pub mod amount;
pub mod app;
pub mod codec;
pub mod error;
pub mod event;
pub mod exec;
pub mod fasthash;
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
