//! Long-running services the node exposes.

pub mod abci_socket;
pub mod blob_exchange;
pub mod block_store;
pub mod chain;
pub mod events;
pub mod evidence;
pub mod explorer;
pub mod gossip;
pub mod grpc;
pub mod in_process;
pub mod mempool;
pub mod metrics;
pub mod stream;
