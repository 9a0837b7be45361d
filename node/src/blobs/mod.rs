//! Job data: the matrices of marketplace jobs (A, B and C), stored by the node and addressed by the Merkle
//! roots the chain records, so what a provider fetches is exactly what the job committed to.
//!
//! - [`layout`]: a blob's bytes (the matrix's Merkle leaves in order) and [`layout::LeafVerifier`], which
//!   checks a root as the bytes arrive;
//! - [`client`]: [`client::BlobClient`], the gRPC client (`lode blob`, the provider, `lode job`);
//! - [`store`]: files under `data/blobs/` indexed in RocksDB, quotas;
//! - [`service`]: the gRPC `BlobService`;
//! - [`gc`]: garbage collection after the jobs referencing a blob are over.
//!
//! The wire header ([`pb::BlobHeader`]) is converted at the edge into [`layout::BlobHeader`]; a `Put` is
//! signed by the uploading account over [`put_sign_bytes`].

pub mod client;
pub mod gc;
pub mod layout;
pub mod service;
pub mod store;

use crate::services::grpc::pb;
use layout::{BlobHeader, BlobKind, LayoutError};

/// The largest chunk of blob bytes in one `Put` or `Get` message.
pub const MAX_CHUNK_BYTES: usize = 4 << 20;

/// The gRPC message size limit of the blob service: one chunk plus room for the framing.
pub const MAX_MESSAGE_BYTES: usize = MAX_CHUNK_BYTES + (64 << 10);

/// Domain tag of a `Put` signature.
pub const PUT_SIGN_TAG: &[u8] = b"lode/blob-put/v1";

impl From<BlobKind> for pb::BlobKind {
    fn from(k: BlobKind) -> Self {
        match k {
            BlobKind::A => pb::BlobKind::ARows,
            BlobKind::B => pb::BlobKind::BCols,
            BlobKind::C => pb::BlobKind::CTiles,
        }
    }
}

impl From<&BlobHeader> for pb::BlobHeader {
    fn from(h: &BlobHeader) -> Self {
        pb::BlobHeader {
            kind: pb::BlobKind::from(h.kind) as i32,
            rows: h.rows,
            cols: h.cols,
            tile: h.tile,
            root: h.root.to_vec(),
        }
    }
}

impl TryFrom<&pb::BlobHeader> for BlobHeader {
    type Error = LayoutError;

    /// The header, after [`BlobHeader::validate`].
    fn try_from(h: &pb::BlobHeader) -> Result<Self, LayoutError> {
        let kind = match pb::BlobKind::try_from(h.kind) {
            Ok(pb::BlobKind::ARows) => BlobKind::A,
            Ok(pb::BlobKind::BCols) => BlobKind::B,
            Ok(pb::BlobKind::CTiles) => BlobKind::C,
            _ => return Err(LayoutError::Header(format!("unknown kind {}", h.kind))),
        };
        let header = BlobHeader {
            kind,
            rows: h.rows,
            cols: h.cols,
            tile: h.tile,
            root: root_from_bytes(&h.root)?,
        };
        header.validate()?;
        Ok(header)
    }
}

/// A 32-byte root from the wire.
pub fn root_from_bytes(b: &[u8]) -> Result<[u8; 32], LayoutError> {
    b.try_into()
        .map_err(|_| LayoutError::Header(format!("root must be 32 bytes, got {}", b.len())))
}

/// What a `Put`'s signature covers: `"lode/blob-put/v1"`, then the chain id and the canonical encoding of
/// the header (each as u32 big-endian length then bytes), then `expires_unix` (u64 big-endian). The header
/// is re-encoded from its validated form, so unknown or reordered wire fields cannot change what was signed.
pub fn put_sign_bytes(chain_id: &str, header: &BlobHeader, expires_unix: u64) -> Vec<u8> {
    let encoded = prost::Message::encode_to_vec(&pb::BlobHeader::from(header));
    let mut out = Vec::with_capacity(PUT_SIGN_TAG.len() + chain_id.len() + encoded.len() + 16);
    out.extend_from_slice(PUT_SIGN_TAG);
    for part in [chain_id.as_bytes(), &encoded] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&expires_unix.to_be_bytes());
    out
}
