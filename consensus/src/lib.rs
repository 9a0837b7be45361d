//! Lode's consensus: Malachite BFT (the `arc-malachitebft-*` 0.8 line) as the ordering engine.
//!
//! - [`context`] and [`types`]: Malachite's `Context` for Lode (block = value, ed25519 votes and proposals).
//! - [`signing`]: sign bytes, signer and verifier (ZIP-215).
//! - [`convert`]: conversions between these types and their `lode.consensus.v1` protobuf forms.
//! - [`codec`]: Malachite's codecs for gossip, WAL and value sync, built on [`convert`].
//! - [`proposer`]: Tendermint's weighted round-robin proposer selection.
//! - [`abci`]: the traits through which consensus drives the application and the mempool.
//! - [`store`]: the block-store trait, its records (encoded with [`convert`]) and an in-memory store.
//! - [`validity`]: the checks every block passes, whichever door it came through.
//! - [`streams`]: reassembly of proposal streams, bounded per peer against floods.
//! - [`bridge`] and [`service`]: Malachite's app messages turned into ABCI calls; [`run`] starts it all.
//!
//! Depends on `lode-proto` only; never on `lode-state`.

// Library code of consensus handles bytes from peers and disk: no panics, no unchecked indexing or
// arithmetic outside tests (issue 10). Each exception carries an `#[allow]` with its reason.
#![cfg_attr(
    not(test),
    deny(
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

pub mod abci;
pub mod bridge;
pub mod codec;
pub mod context;
pub mod convert;
pub mod error;
pub mod evidence;
pub mod failpoint;
pub mod peers;
pub mod proposer;
pub mod service;
pub mod signing;
pub mod store;
pub mod streams;
pub mod types;
pub mod validity;

pub use abci::{Abci, AbciExt, Mempool, MempoolLevel, TxFetch};
pub use bridge::BlockOutcome;
pub use codec::LodeCodec;
pub use context::LodeContext;
pub use error::{AbciError, BlockFault, CodecError, ConsensusError, HaltReport, StoreError};
pub use malachitebft_app_channel::app::types::codec::{Codec, HasEncodedLen};
pub use service::{run, run_with_network_codec, ConsensusConfig, Handle, Timeouts};
pub use signing::{LodeSigner, LodeVerifier};
pub use store::{
    BlockStore, DecidedBlock, HeightValidators, InMemoryBlockStore, UndecidedProposal,
};
pub use types::{
    Address, Block, BlockHeader, BlockId, BlockTime, CompactBlock, CompactTx, Height, PrivateKey,
    PublicKey, Signature, Validator, ValidatorSet,
};
