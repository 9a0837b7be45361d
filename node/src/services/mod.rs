//! Long-running services the node exposes.

pub mod abci;
