//! `lode-client`: what a wallet or a tool needs to talk to a Lode chain, without the node or its storage.
//!
//! - [`address`]: `lode1…` addresses (bech32m of SHA-256(public key)[..20]), module and multisig accounts.
//! - [`hd`]: ed25519 keys from a BIP-39 mnemonic (SLIP-0010, path `m/44'/7337'/0'/0'/i'`).
//! - [`tx`]: typed tx building for every message of every module ([`tx::TxBuilder`], [`tx::TxMsg`]), sign
//!   bytes, signing and tx hashes — the chain verifies with these same functions.
//! - [`proof`]: ICS-23 verification of proven state entries against an app hash.
//! - With feature `grpc` (default): [`pb`], the node's gRPC API, and [`Client`]: sign against the chain's
//!   nonce and minimum fee, broadcast (unary, wait-for-commit, streaming), simulate, look up txs and blocks,
//!   proved queries checked against the block's app hash, and event subscriptions that resume from a height.
//!
//! See the crate's README for an example, and docs/tx-format.md and docs/proofs.md for the formats.

pub mod address;
pub mod hd;
pub mod proof;
pub mod tx;

#[cfg(feature = "grpc")]
mod client;
#[cfg(feature = "grpc")]
pub use client::{
    parse_filter, Client, Committed, Error, Next, ProvedAccount, ProvedAnswer, Subscription,
    MAX_RESPONSE_BYTES,
};

pub use address::Address;
pub use ed25519_consensus::SigningKey;

/// The gRPC metadata key that asks a module query service (`GovQueryService`, `NftQueryService`, …) for a
/// past height's state, as a decimal height; the node answers with the height it read under the same key.
/// [`at_height`] sets it. (`QueryService.Query` takes the height in its request.)
pub const HEIGHT_METADATA: &str = "x-lode-height";

/// A module query request asking for the state at `height` (0: the last commit).
#[cfg(feature = "grpc")]
pub fn at_height<T>(message: T, height: u64) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    if height != 0 {
        if let Ok(v) = height.to_string().parse() {
            r.metadata_mut().insert(HEIGHT_METADATA, v);
        }
    }
    r
}

/// The node's gRPC API (`lode.node.v1`): messages, service clients (and, with feature `server`, servers).
#[cfg(feature = "grpc")]
pub mod pb {
    #![allow(missing_debug_implementations, clippy::all)]
    tonic::include_proto!("lode.node.v1");

    /// The file descriptor set of the node's API and the tx format, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/lode_node_descriptor.bin"));
}

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
