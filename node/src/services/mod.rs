//! Long-running services the node exposes.

pub mod abci;
pub mod app;
pub mod block_store;
pub mod gossip;
pub mod grpc;
pub mod mempool;
pub mod stream;
