//! Lode's consensus: Malachite BFT (the `arc-malachitebft-*` 0.8 line) as the ordering engine.
//!
//! - [`context`] and [`types`]: Malachite's `Context` for Lode (block = value, ed25519 votes and proposals).
//! - [`signing`]: sign bytes, signer and verifier (ZIP-215).
//! - [`codec`]: the wire codec for gossip, WAL and value sync, on `lode.consensus.v1` protos.
//! - [`proposer`]: Tendermint's weighted round-robin proposer selection.
//! - [`abci`]: the traits through which consensus drives the application and the mempool.
//! - [`store`]: the block-store trait and an in-memory implementation.
//! - [`bridge`] and [`service`]: Malachite's app messages turned into ABCI calls; [`run`] starts it all.
//!
//! Depends on `lode-proto` only; never on `lode-state`.

pub mod abci;
pub mod bridge;
pub mod codec;
pub mod context;
pub mod error;
pub mod failpoint;
pub mod proposer;
pub mod service;
pub mod signing;
pub mod store;
pub mod types;

pub use abci::{Abci, AbciExt, Mempool};
pub use codec::{DecidedBlock, LodeCodec};
pub use context::LodeContext;
pub use error::{AbciError, CodecError, ConsensusError, HaltReport, StoreError};
pub use malachitebft_app_channel::app::types::codec::{Codec, HasEncodedLen};
pub use service::{run, run_with_network_codec, ConsensusConfig, Handle, Timeouts};
pub use signing::{LodeSigner, LodeVerifier};
pub use store::{BlockStore, HeightValidators, InMemoryBlockStore, UndecidedProposal};
pub use types::{
    Address, Block, BlockHeader, BlockId, BlockTime, Height, PrivateKey, PublicKey, Signature,
    Validator, ValidatorSet,
};
