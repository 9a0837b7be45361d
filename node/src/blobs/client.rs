//! [`BlobClient`]: puts and gets job matrices on a node's `BlobService`. Every full get checks the root of
//! what it received before returning it; a node (and the peers it fetched from) is never trusted.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use eyre::{bail, ensure, eyre, WrapErr};
use lode_gpu_verify::{MatrixI32, MatrixI8};
use tonic::transport::Channel;

use super::layout::{self, BlobHeader, BlobKind, LeafVerifier};
use super::{put_sign_bytes, MAX_CHUNK_BYTES, MAX_MESSAGE_BYTES};
use crate::keys::KeyFile;
use crate::services::grpc::pb::{
    self, blob_service_client::BlobServiceClient, get_response, put_request, GetRequest,
    PutRequest, StatRequest, StatResponse,
};

/// How long a `Put`'s signature stays valid.
const SIGNATURE_LIFETIME_S: u64 = 300;

/// The chunk size a put sends (at most [`MAX_CHUNK_BYTES`]).
const PUT_CHUNK_BYTES: usize = 1 << 20;

/// The largest blob a [`BlobClient`] accepts unless told otherwise ([`BlobClient::with_max_bytes`]): the
/// node's default `[blobs] max_blob_bytes`, 1 GiB.
pub const DEFAULT_MAX_GET_BYTES: u64 = 1 << 30;

/// A client of one node's `BlobService`. A get never takes more bytes than its maximum
/// ([`BlobClient::with_max_bytes`]) nor than the shape the caller expects, whatever the node's header
/// announces: it is refused on the header, before any data is received or memory reserved.
#[derive(Debug, Clone)]
pub struct BlobClient {
    inner: BlobServiceClient<Channel>,
    max_bytes: u64,
}

impl BlobClient {
    /// A client on `channel`, with message limits sized for 4 MiB chunks, taking blobs up to
    /// [`DEFAULT_MAX_GET_BYTES`].
    pub fn new(channel: Channel) -> Self {
        Self {
            inner: BlobServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            max_bytes: DEFAULT_MAX_GET_BYTES,
        }
    }

    /// The same client, taking blobs (and ranges) of at most `max_bytes`.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Downloads A for a job of shape `m`×`k`: a blob served under `root` with another header is refused.
    pub async fn get_a_for(&mut self, root: &[u8; 32], m: u64, k: u64) -> eyre::Result<MatrixI8> {
        let want = BlobHeader {
            kind: BlobKind::A,
            rows: m,
            cols: k,
            tile: 0,
            root: *root,
        };
        let (h, bytes) = self.get_expected(&want).await?;
        Ok(layout::a_from_bytes(dim(h.rows)?, dim(h.cols)?, &bytes)?)
    }

    /// Downloads B (returned k×n) for a job of shape `k`×`n`: another header is refused.
    pub async fn get_b_for(&mut self, root: &[u8; 32], k: u64, n: u64) -> eyre::Result<MatrixI8> {
        let want = BlobHeader {
            kind: BlobKind::B,
            rows: k,
            cols: n,
            tile: 0,
            root: *root,
        };
        let (h, bytes) = self.get_expected(&want).await?;
        Ok(layout::b_from_bytes(dim(h.rows)?, dim(h.cols)?, &bytes)?)
    }

    /// The whole blob `want.root`, which the node must serve under exactly the header `want` (refused on
    /// the header otherwise, before any data), checked against the root.
    pub async fn get_expected(&mut self, want: &BlobHeader) -> eyre::Result<(BlobHeader, Vec<u8>)> {
        self.get_checked(&want.root, Some(want)).await
    }

    /// Uploads A (committed by rows); returns its root.
    pub async fn put_a(
        &mut self,
        key: &KeyFile,
        chain_id: &str,
        a: &MatrixI8,
    ) -> eyre::Result<[u8; 32]> {
        let header = layout::a_header(a)?;
        self.put(key, chain_id, &header, layout::a_bytes(a)).await
    }

    /// Uploads B (committed by columns); returns its root.
    pub async fn put_b(
        &mut self,
        key: &KeyFile,
        chain_id: &str,
        b: &MatrixI8,
    ) -> eyre::Result<[u8; 32]> {
        let header = layout::b_header(b)?;
        self.put(key, chain_id, &header, layout::b_bytes(b)).await
    }

    /// Uploads C (committed by `tile`×`tile` tiles); returns its root.
    pub async fn put_c(
        &mut self,
        key: &KeyFile,
        chain_id: &str,
        c: &MatrixI32,
        tile: usize,
    ) -> eyre::Result<[u8; 32]> {
        let header = layout::c_header(c, tile)?;
        self.put(key, chain_id, &header, layout::c_bytes(c, tile)?)
            .await
    }

    /// [`BlobClient::put_c`] under a tile root already computed for this C and tile (the provider's
    /// commitment), without hashing C again; the node still checks every byte against it.
    pub async fn put_c_with_root(
        &mut self,
        key: &KeyFile,
        chain_id: &str,
        c: &MatrixI32,
        tile: usize,
        root: [u8; 32],
    ) -> eyre::Result<[u8; 32]> {
        let header = layout::c_header_with_root(c, tile, root)?;
        self.put(key, chain_id, &header, layout::c_bytes(c, tile)?)
            .await
    }

    /// Uploads a blob's bytes under `header`, signed by `key`; returns the root the node stored.
    pub async fn put(
        &mut self,
        key: &KeyFile,
        chain_id: &str,
        header: &BlobHeader,
        bytes: Vec<u8>,
    ) -> eyre::Result<[u8; 32]> {
        let signing = key.signing_key()?;
        let expires_unix = unix_now() + SIGNATURE_LIFETIME_S;
        let signature = signing.sign(&put_sign_bytes(chain_id, header, expires_unix));
        let first = PutRequest {
            part: Some(put_request::Part::Header(pb::PutHeader {
                blob: Some(pb::BlobHeader::from(header)),
                uploader: key.address.clone(),
                public_key: signing.verification_key().to_bytes().to_vec(),
                expires_unix,
                signature: signature.to_bytes().to_vec(),
            })),
        };
        let data = Bytes::from(bytes);
        let chunks = (0..data.len())
            .step_by(PUT_CHUNK_BYTES.min(MAX_CHUNK_BYTES))
            .map(move |at| PutRequest {
                part: Some(put_request::Part::Chunk(
                    data.slice(at..(at + PUT_CHUNK_BYTES).min(data.len())),
                )),
            });
        let stream = futures::stream::iter(std::iter::once(first).chain(chunks));
        let resp = self
            .inner
            .put(stream)
            .await
            .wrap_err("blob put failed")?
            .into_inner();
        ensure!(
            resp.root.as_slice() == header.root.as_slice(),
            "the node stored root {} for a put of {}",
            hex::encode(&resp.root),
            hex::encode(header.root)
        );
        Ok(header.root)
    }

    /// Downloads A and checks its row root.
    pub async fn get_a(&mut self, root: &[u8; 32]) -> eyre::Result<MatrixI8> {
        let (h, bytes) = self.get_verified(root, BlobKind::A).await?;
        Ok(layout::a_from_bytes(dim(h.rows)?, dim(h.cols)?, &bytes)?)
    }

    /// Downloads B (returned k×n) and checks its column root.
    pub async fn get_b(&mut self, root: &[u8; 32]) -> eyre::Result<MatrixI8> {
        let (h, bytes) = self.get_verified(root, BlobKind::B).await?;
        Ok(layout::b_from_bytes(dim(h.rows)?, dim(h.cols)?, &bytes)?)
    }

    /// Downloads C and checks its tile root.
    pub async fn get_c(&mut self, root: &[u8; 32]) -> eyre::Result<MatrixI32> {
        let (h, bytes) = self.get_verified(root, BlobKind::C).await?;
        c_of(&h, &bytes)
    }

    /// Downloads C for a job of shape `rows`×`cols` with tile `tile`, refusing a blob whose header says
    /// otherwise. C's root covers its tiles' bytes, not its shape: the same bytes under another (rows, cols,
    /// tile) have the same root but are another matrix, so a blob served with the wrong shape is treated as
    /// C not being available (NOT_FOUND).
    pub async fn get_c_shaped(
        &mut self,
        root: &[u8; 32],
        rows: u64,
        cols: u64,
        tile: u32,
    ) -> eyre::Result<MatrixI32> {
        let want = BlobHeader {
            kind: BlobKind::C,
            rows,
            cols,
            tile,
            root: *root,
        };
        let (h, bytes) = self.get_expected(&want).await?;
        c_of(&h, &bytes)
    }

    /// [`BlobClient::get_c_shaped`], accumulating `C·r` for a Freivalds check in `products` as C is
    /// converted from its tiles (each band of rows while in cache), so the check need not read C again
    /// (`freivalds::check_all`).
    pub async fn get_c_shaped_with_products(
        &mut self,
        root: &[u8; 32],
        (rows, cols, tile): (u64, u64, u32),
        products: &mut lode_gpu_verify::freivalds::CProducts,
    ) -> eyre::Result<MatrixI32> {
        let want = BlobHeader {
            kind: BlobKind::C,
            rows,
            cols,
            tile,
            root: *root,
        };
        let (h, bytes) = self.get_expected(&want).await?;
        Ok(layout::c_from_bytes_with(
            dim(h.rows)?,
            dim(h.cols)?,
            dim(u64::from(h.tile))?,
            &bytes,
            |row0, rows| {
                products
                    .add_rows(row0, rows)
                    .map_err(|e| layout::LayoutError::Matrix(e.to_string()))
            },
        )?)
    }

    /// Downloads tiles `[first, first + count)` of C (`count` 0: to the end), each row-major in its tile.
    /// A part cannot be checked against the root on its own: check each tile against its inclusion proof
    /// (or fetch the whole blob with [`BlobClient::get_c`]) before relying on it.
    pub async fn get_c_tiles(
        &mut self,
        root: &[u8; 32],
        first: u64,
        count: u64,
    ) -> eyre::Result<Vec<Vec<i32>>> {
        let (h, bytes) = self.get_raw(root, first, count).await?;
        ensure!(
            h.kind == BlobKind::C,
            "blob {} is not a C blob",
            hex::encode(root)
        );
        Ok(layout::c_tiles_from_bytes(&h, first, count, &bytes)?)
    }

    /// A blob's header, size and uploader on this node; `None` when the node does not store it.
    pub async fn stat(&mut self, root: &[u8; 32]) -> eyre::Result<Option<StatResponse>> {
        match self
            .inner
            .stat(StatRequest {
                root: root.to_vec(),
            })
            .await
        {
            Ok(r) => Ok(Some(r.into_inner())),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(eyre!(s).wrap_err("blob stat failed")),
        }
    }

    /// The whole blob under `root`, checked against the root and the expected kind.
    pub async fn get_verified(
        &mut self,
        root: &[u8; 32],
        kind: BlobKind,
    ) -> eyre::Result<(BlobHeader, Vec<u8>)> {
        let (header, bytes) = self.get_blob(root).await?;
        ensure!(
            header.kind == kind,
            "blob {} is a {:?} blob, not {:?}",
            hex::encode(root),
            header.kind,
            kind
        );
        Ok((header, bytes))
    }

    /// The whole blob under `root`, whatever its kind, checked against the root.
    pub async fn get_blob(&mut self, root: &[u8; 32]) -> eyre::Result<(BlobHeader, Vec<u8>)> {
        self.get_checked(root, None).await
    }

    async fn get_checked(
        &mut self,
        root: &[u8; 32],
        want: Option<&BlobHeader>,
    ) -> eyre::Result<(BlobHeader, Vec<u8>)> {
        let mut stream = self
            .inner
            .get(GetRequest {
                root: root.to_vec(),
                first_leaf: 0,
                leaf_count: 0,
            })
            .await
            .wrap_err("blob get failed")?
            .into_inner();
        let header = read_header(&mut stream, root).await?;
        if let Some(want) = want {
            if &header != want {
                return Err(tonic::Status::not_found(format!(
                    "blob {} was served as {:?} {}x{} (tile {}), but {:?} {}x{} (tile {}) was expected",
                    hex::encode(root),
                    header.kind,
                    header.rows,
                    header.cols,
                    header.tile,
                    want.kind,
                    want.rows,
                    want.cols,
                    want.tile
                ))
                .into());
            }
        }
        let size = header.size_bytes();
        ensure!(
            size <= self.max_bytes,
            "blob {} is {size} bytes, over this client's limit of {}",
            hex::encode(root),
            self.max_bytes
        );
        let mut verifier = LeafVerifier::new(&header)?;
        let mut out = Vec::with_capacity(size as usize);
        while let Some(msg) = stream.message().await.wrap_err("blob get failed")? {
            let Some(get_response::Part::Chunk(chunk)) = msg.part else {
                bail!("blob get: a second header in the stream");
            };
            verifier.push(&chunk)?;
            out.extend_from_slice(&chunk);
        }
        verifier.finish()?;
        Ok((header, out))
    }

    /// Leaves `[first, first + count)` of the blob under `root` (`count` 0: to the end), unchecked against
    /// the root, but exactly the range's length.
    pub async fn get_raw(
        &mut self,
        root: &[u8; 32],
        first: u64,
        count: u64,
    ) -> eyre::Result<(BlobHeader, Vec<u8>)> {
        let mut stream = self
            .inner
            .get(GetRequest {
                root: root.to_vec(),
                first_leaf: first,
                leaf_count: count,
            })
            .await
            .wrap_err("blob get failed")?
            .into_inner();
        let header = read_header(&mut stream, root).await?;
        let (start, end) = header.leaf_range(first, count)?;
        let want = end - start;
        ensure!(
            want <= self.max_bytes,
            "blob {} range is {want} bytes, over this client's limit of {}",
            hex::encode(root),
            self.max_bytes
        );
        let mut out = Vec::new();
        while let Some(msg) = stream.message().await.wrap_err("blob get failed")? {
            let Some(get_response::Part::Chunk(chunk)) = msg.part else {
                bail!("blob get: a second header in the stream");
            };
            ensure!(
                (out.len() + chunk.len()) as u64 <= want,
                "blob get: more than the range's {want} bytes"
            );
            out.extend_from_slice(&chunk);
        }
        ensure!(
            out.len() as u64 == want,
            "blob get: truncated range ({} of {want} bytes)",
            out.len()
        );
        Ok((header, out))
    }
}

async fn read_header(
    stream: &mut tonic::Streaming<pb::GetResponse>,
    root: &[u8; 32],
) -> eyre::Result<BlobHeader> {
    let first = stream
        .message()
        .await
        .wrap_err("blob get failed")?
        .ok_or_else(|| eyre!("blob get: the stream ended before the header"))?;
    let Some(get_response::Part::Header(h)) = first.part else {
        bail!("blob get: the stream did not start with a header");
    };
    let header = BlobHeader::try_from(&h)?;
    ensure!(
        &header.root == root,
        "blob get: asked for {}, the node answered with {}",
        hex::encode(root),
        hex::encode(header.root)
    );
    Ok(header)
}

fn dim(v: u64) -> eyre::Result<usize> {
    usize::try_from(v).map_err(|_| eyre!("dimension {v} too large"))
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// C from its verified blob bytes, in the shape its header gives.
fn c_of(h: &BlobHeader, bytes: &[u8]) -> eyre::Result<MatrixI32> {
    Ok(layout::c_from_bytes(
        dim(h.rows)?,
        dim(h.cols)?,
        dim(u64::from(h.tile))?,
        bytes,
    )?)
}
