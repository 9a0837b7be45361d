//! `BlobService` (gRPC) over the node's [`BlobStore`]: `Put` hashes and writes the chunks as they arrive on
//! a blocking thread and stores the blob only once its root is verified; `Get` streams a stored blob (or a
//! leaf range of it), fetching it from peers first when this node lacks it and a live job on chain
//! references it (with the header that job gives it); `Stat` reads the index.
//!
//! Uploaders must be accounts on chain: quotas are per account, and a fresh key would otherwise bring a fresh
//! quota. The node-wide `[blobs] max_total_bytes` bounds what any number of accounts can store together.
//!
//! Codes (stable; `lode blob` and the tests rely on them):
//! - `INVALID_ARGUMENT`: malformed header or request, a chunk over 4 MiB, data that hashes to another
//!   root than the header's, more bytes than the header announces;
//!   or a header other than the one a live job on chain gives that root;
//! - `UNAUTHENTICATED`: a bad signature, a public key that is not the uploader's, an expired signature or one
//!   valid farther ahead than `[blobs] max_signature_age_s`;
//! - `PERMISSION_DENIED`: an uploader that is not an account on chain (no committed balance), or whose
//!   committed balance is under `[blobs] min_uploader_balance`;
//! - `FAILED_PRECONDITION`: a blob larger than `[blobs] max_blob_bytes`;
//! - `RESOURCE_EXHAUSTED`: over the uploader's quota, over the node-wide `[blobs] max_total_bytes`, or too
//!   many transfers in progress;
//! - `ABORTED`: the stream ended before the header's size (truncated upload);
//! - `DEADLINE_EXCEEDED`: a `Put` stream that sent nothing for the stall timeout; a `Get` stream whose client
//!   read nothing for the stall timeout (its transfer slot is freed then; the chunks already queued are
//!   followed by this status, never by a clean end);
//! - `NOT_FOUND`: `Stat` of a root not stored here; `Get` of a root not stored here that no live job on chain
//!   references (answered without asking any peer), or that no connected peer stores;
//! - `OUT_OF_RANGE`: a leaf range past the blob's last leaf;
//! - `UNAVAILABLE`: `[blobs] enable = false`.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use ed25519_consensus::{Signature, VerificationKey};
use futures::Stream;
use lode_state::address::Address;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status, Streaming};

use super::client::unix_now;
use super::layout::{BlobHeader, LayoutError, LeafVerifier};
use super::store::{BlobStore, Entry, StoreError, TempBlob};
use super::{put_sign_bytes, root_from_bytes, MAX_CHUNK_BYTES};
use crate::services::grpc::pb::{
    self, blob_service_server::BlobService, get_response, put_request, GetRequest, GetResponse,
    PutRequest, PutResponse, StatRequest, StatResponse,
};
use crate::services::grpc::NodeApi;

/// Bytes per `Get` chunk.
pub const GET_CHUNK_BYTES: usize = 2 << 20;

/// Chunks queued between the network and the blocking hasher/writer (or reader), each way.
const PIPELINE_DEPTH: usize = 4;

/// The headers live jobs give their blobs, by root (see [`super::gc::live_headers`]).
pub type LiveHeaders = BTreeMap<[u8; 32], Vec<BlobHeader>>;

/// [`LiveHeaders`] as read at a committed height.
type LiveCache = Option<(u64, Arc<LiveHeaders>)>;

/// The blob service's shared parts, cheap to clone.
#[derive(Debug, Clone)]
pub struct Blobs {
    /// Files and index.
    pub store: Arc<BlobStore>,
    /// Chain id (what `Put` signatures cover).
    pub chain_id: String,
    transfers: Arc<Semaphore>,
    /// Fetches from peers; `None`: this node asks no peer.
    pub fetcher: Option<crate::services::blob_exchange::Fetcher>,
    /// The live jobs' blob headers, read once per committed height (so a flood of `Get`s for unknown roots
    /// costs one scan of the live jobs per block, not one per request).
    live: Arc<parking_lot::Mutex<LiveCache>>,
}

impl Blobs {
    /// The service over `store`.
    pub fn new(
        store: Arc<BlobStore>,
        chain_id: String,
        fetcher: Option<crate::services::blob_exchange::Fetcher>,
    ) -> Self {
        let n = store.config().max_concurrent_transfers.max(1) as usize;
        Self {
            store,
            chain_id,
            transfers: Arc::new(Semaphore::new(n)),
            fetcher,
            live: Arc::default(),
        }
    }

    /// The headers live jobs on chain (committed state) give `root`; empty when no live job references it.
    pub async fn expected_headers(&self, root: &[u8; 32]) -> Result<Vec<BlobHeader>, Status> {
        let height = self.store.app().last_commit().map_or(0, |c| c.height);
        let cached = self
            .live
            .lock()
            .as_ref()
            .filter(|(h, _)| *h == height)
            .map(|(_, m)| m.clone());
        let map = match cached {
            Some(m) => m,
            None => {
                let store = self.store.clone();
                let m = tokio::task::spawn_blocking(move || super::gc::live_headers(store.app()))
                    .await
                    .map_err(internal)?
                    .map_err(internal)?;
                let m = Arc::new(m);
                *self.live.lock() = Some((height, m.clone()));
                m
            }
        };
        Ok(map.get(root).cloned().unwrap_or_default())
    }

    /// Checks that `uploader` is an account on chain (committed state) holding at least
    /// `[blobs] min_uploader_balance`: `PERMISSION_DENIED` otherwise.
    pub fn check_uploader(&self, uploader: &str) -> Result<(), Status> {
        use lode_state::store::StateRead;
        let addr = lode_state::address::parse_address(uploader)
            .map_err(|e| Status::invalid_argument(format!("uploader: {e}")))?;
        let db = self.store.app().store();
        let key = lode_state::modules::bank::state_key::account(&addr);
        if db.get(&key).map_err(internal)?.is_none() {
            return Err(Status::permission_denied(format!(
                "uploader {uploader} is not an account on chain: fund it before uploading"
            )));
        }
        let balance = lode_state::modules::bank::account(db, &addr)
            .map_err(internal)?
            .balance;
        let min = u128::from(self.store.config().min_uploader_balance);
        if balance < min {
            return Err(Status::permission_denied(format!(
                "uploader {uploader} holds {balance}, under this node's min_uploader_balance {min}"
            )));
        }
        Ok(())
    }

    /// A transfer slot, or `RESOURCE_EXHAUSTED`.
    pub fn transfer_slot(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.transfers.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted("node busy: too many blob transfers in progress")
        })
    }

    /// The header and entry of a stored blob, checking that its file has the indexed size.
    pub fn stored(&self, root: &[u8; 32]) -> Result<Option<(BlobHeader, Entry)>, Status> {
        let Some(e) = self.store.entry(root).map_err(internal)? else {
            return Ok(None);
        };
        let h = e.header(*root).map_err(|m| {
            Status::internal(format!(
                "corrupt blob index entry {}: {m}",
                hex::encode(root)
            ))
        })?;
        Ok(Some((h, e)))
    }

    /// Checks a `Put` header: shape, size limit, signature. Returns the header.
    pub fn check_put_header(&self, h: &pb::PutHeader) -> Result<BlobHeader, Status> {
        let blob = h
            .blob
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("put header without a blob header"))?;
        let header = BlobHeader::try_from(blob).map_err(invalid)?;
        let max = self.store.config().max_blob_bytes;
        if header.size_bytes() > max {
            return Err(Status::failed_precondition(format!(
                "blob of {} bytes is over this node's max_blob_bytes {max}",
                header.size_bytes()
            )));
        }
        let pk: [u8; 32] = h
            .public_key
            .as_slice()
            .try_into()
            .map_err(|_| Status::unauthenticated("public_key must be 32 bytes"))?;
        if Address::from_public_key(&pk).to_string() != h.uploader {
            return Err(Status::unauthenticated(
                "public_key is not the uploader's key",
            ));
        }
        let now = unix_now();
        if h.expires_unix < now {
            return Err(Status::unauthenticated("put signature expired"));
        }
        let max_age = self.store.config().max_signature_age_s;
        if h.expires_unix > now.saturating_add(max_age) {
            return Err(Status::unauthenticated(format!(
                "put signature expires more than {max_age} s ahead"
            )));
        }
        let sig: [u8; 64] = h
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| Status::unauthenticated("signature must be 64 bytes"))?;
        VerificationKey::try_from(pk)
            .and_then(|vk| {
                vk.verify(
                    &Signature::from(sig),
                    &put_sign_bytes(&self.chain_id, &header, h.expires_unix),
                )
            })
            .map_err(|_| Status::unauthenticated("bad put signature"))?;
        Ok(header)
    }

    /// Receives an upload's bytes from `chunks` into a temp file, hashing as they arrive (on a blocking
    /// thread), and stores it (synced) once the root is verified, charged to `uploader`.
    pub async fn receive<S, E>(
        &self,
        header: BlobHeader,
        mut chunks: S,
        uploader: &str,
    ) -> Result<bool, Status>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<Status>,
    {
        use futures::StreamExt;
        let temp = self.store.temp().map_err(store_status)?;
        let verifier = LeafVerifier::new(&header).map_err(invalid)?;
        let (tx, rx) = mpsc::channel::<Bytes>(PIPELINE_DEPTH);
        let worker = tokio::task::spawn_blocking(move || write_and_hash(rx, temp, verifier));
        let mut failed = None;
        while let Some(item) = chunks.next().await {
            match item {
                Ok(chunk) => {
                    if chunk.len() > MAX_CHUNK_BYTES {
                        failed = Some(Status::invalid_argument(format!(
                            "chunk of {} bytes is over {MAX_CHUNK_BYTES}",
                            chunk.len()
                        )));
                        break;
                    }
                    if tx.send(chunk).await.is_err() {
                        break; // the worker stopped on an error; it reports it below
                    }
                }
                Err(e) => {
                    failed = Some(e.into());
                    break;
                }
            }
        }
        drop(tx);
        let result = worker
            .await
            .map_err(|e| Status::internal(format!("blob writer: {e}")))?;
        if let Some(s) = failed {
            return Err(s);
        }
        let (temp, blocks) = result?;
        let store = self.store.clone();
        let uploader = uploader.to_owned();
        tokio::task::spawn_blocking(move || store.commit(temp, &header, &blocks, &uploader, ""))
            .await
            .map_err(|e| Status::internal(format!("blob commit: {e}")))?
            .map_err(store_status)
            .map(|stored| !stored)
    }
}

/// The blocking half of a put: hash each chunk, write it; at the end check size and root.
fn write_and_hash(
    mut rx: mpsc::Receiver<Bytes>,
    temp: TempBlob,
    mut verifier: LeafVerifier,
) -> Result<(TempBlob, Vec<[u8; 32]>), Status> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, &temp.file);
    while let Some(chunk) = rx.blocking_recv() {
        verifier.push(&chunk).map_err(layout_status)?;
        out.write_all(&chunk).map_err(internal)?;
    }
    out.flush().map_err(internal)?;
    drop(out);
    let (_, blocks) = verifier.finish_with_blocks().map_err(layout_status)?;
    Ok((temp, blocks))
}

/// The gRPC status of a layout error (see the module docs).
pub fn layout_status(e: LayoutError) -> Status {
    match e {
        LayoutError::Truncated { .. } => Status::aborted(e.to_string()),
        LayoutError::OutOfRange { .. } => Status::out_of_range(e.to_string()),
        _ => Status::invalid_argument(e.to_string()),
    }
}

/// The gRPC status of a store error (see the module docs).
pub fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::OverQuota { .. } | StoreError::NodeFull { .. } => {
            Status::resource_exhausted(e.to_string())
        }
        StoreError::Io(_) => Status::internal(e.to_string()),
    }
}

fn invalid(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

/// Streams bytes `[start, end)` of the file at `path` in chunks, read on a blocking thread. A reader that
/// takes none of the queued chunks for `stall` loses its stream (and the transfer slot `permit` with it).
pub fn read_range(
    path: std::path::PathBuf,
    start: u64,
    end: u64,
    permit: Option<OwnedSemaphorePermit>,
    stall: std::time::Duration,
) -> mpsc::Receiver<Result<Bytes, Status>> {
    let (tx, rx) = mpsc::channel(PIPELINE_DEPTH);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(internal(format!("cannot open blob: {e}"))));
                return;
            }
        };
        let mut at = start;
        while at < end {
            let len = (end - at).min(GET_CHUNK_BYTES as u64) as usize;
            let mut buf = vec![0u8; len];
            if let Err(e) = file.read_exact_at(&mut buf, at) {
                let _ = tx.blocking_send(Err(internal(format!("cannot read blob: {e}"))));
                return;
            }
            at += len as u64;
            let sent = runtime.block_on(tokio::time::timeout(stall, tx.send(Ok(Bytes::from(buf)))));
            if !matches!(sent, Ok(Ok(()))) {
                return; // the client went away, or stopped reading
            }
        }
    });
    rx
}

/// `Get`'s response stream.
pub type GetStream = Pin<Box<dyn Stream<Item = Result<GetResponse, Status>> + Send + 'static>>;

impl NodeApi {
    fn blobs(&self) -> Result<&Blobs, Status> {
        self.blobs
            .as_ref()
            .ok_or_else(|| Status::unavailable("the blob service is disabled on this node"))
    }
}

#[tonic::async_trait]
impl BlobService for NodeApi {
    #[tracing::instrument(skip_all)]
    async fn put(
        &self,
        request: Request<Streaming<PutRequest>>,
    ) -> Result<Response<PutResponse>, Status> {
        let blobs = self.blobs()?;
        // A client that sends nothing, or stops mid-stream, is cut off after the stall timeout; the header
        // is read and its signature checked before the upload takes one of the node's transfer slots, so
        // idle or unsigned streams cannot hold them.
        let stall = self.guards.limits.stream_stall_timeout;
        let mut stream = request.into_inner();
        let first = tokio::time::timeout(stall, stream.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no put header within the stall timeout"))??
            .ok_or_else(|| Status::invalid_argument("empty put stream"))?;
        let Some(put_request::Part::Header(h)) = first.part else {
            return Err(Status::invalid_argument(
                "a put stream must start with its header",
            ));
        };
        let header = blobs.check_put_header(&h)?;
        blobs.check_uploader(&h.uploader)?;
        let expected = blobs.expected_headers(&header.root).await?;
        if !expected.is_empty() && !expected.contains(&header) {
            return Err(Status::invalid_argument(format!(
                "a live job on chain gives root {} another header ({}x{}, tile {} as {:?}) than this put's",
                hex::encode(header.root),
                expected[0].rows,
                expected[0].cols,
                expected[0].tile,
                expected[0].kind
            )));
        }
        let _slot = blobs.transfer_slot()?;
        let size = header.size_bytes();
        if blobs.stored(&header.root)?.is_some() {
            return Ok(Response::new(PutResponse {
                root: header.root.to_vec(),
                size_bytes: size,
                already_stored: true,
            }));
        }
        let _reserved = blobs
            .store
            .reserve(&h.uploader, size)
            .map_err(store_status)?;
        let chunks = futures::stream::unfold(stream, move |mut s| async move {
            let Ok(next) = tokio::time::timeout(stall, s.message()).await else {
                return Some((
                    Err(Status::deadline_exceeded(
                        "the put stream stalled past the stall timeout",
                    )),
                    s,
                ));
            };
            match next {
                Ok(Some(PutRequest {
                    part: Some(put_request::Part::Chunk(c)),
                })) => Some((Ok(c), s)),
                Ok(Some(_)) => Some((
                    Err(Status::invalid_argument(
                        "a put stream has one header, then chunks",
                    )),
                    s,
                )),
                Ok(None) => None,
                Err(e) => Some((Err(e), s)),
            }
        });
        let already = blobs.receive(header, Box::pin(chunks), &h.uploader).await?;
        tracing::info!(root = %hex::encode(header.root), size, uploader = %h.uploader, "blob stored");
        Ok(Response::new(PutResponse {
            root: header.root.to_vec(),
            size_bytes: size,
            already_stored: already,
        }))
    }

    type GetStream = GetStream;

    #[tracing::instrument(skip_all)]
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<Self::GetStream>, Status> {
        let blobs = self.blobs()?;
        let req = request.into_inner();
        let root = root_from_bytes(&req.root).map_err(invalid)?;
        let header = match blobs.stored(&root)? {
            Some((h, _)) => h,
            None => {
                // Only the data of live jobs is fetched, under the header the job gives it: a client
                // cannot make this node download arbitrary data, nor a peer pick the shape.
                let expected = blobs.expected_headers(&root).await?;
                match &blobs.fetcher {
                    Some(f) if !expected.is_empty() => f.fetch(blobs, root, &expected).await?,
                    _ => {
                        return Err(Status::not_found(format!(
                            "blob {} is not stored here{}",
                            hex::encode(root),
                            if expected.is_empty() {
                                ", and no live job on chain references it (only live jobs' data is fetched from peers)"
                            } else {
                                ""
                            }
                        )))
                    }
                }
            }
        };
        let (start, end) = header
            .leaf_range(req.first_leaf, req.leaf_count)
            .map_err(layout_status)?;
        let slot = blobs.transfer_slot()?;
        let rx = read_range(
            blobs.store.path(&root),
            start,
            end,
            Some(slot),
            self.guards.limits.stream_stall_timeout,
        );
        let head = futures::stream::once(async move {
            Ok(GetResponse {
                part: Some(get_response::Part::Header(pb::BlobHeader::from(&header))),
            })
        });
        // A stream that ends short of `end` without an error was cut off by the stall timeout (the reader
        // took nothing for that long): it ends with DEADLINE_EXCEEDED, never as a clean short blob.
        let body = futures::stream::unfold(Some((rx, end - start)), |state| async move {
            let (mut rx, left) = state?;
            match rx.recv().await {
                Some(Ok(c)) => {
                    let left = left.saturating_sub(c.len() as u64);
                    let part = GetResponse {
                        part: Some(get_response::Part::Chunk(c)),
                    };
                    Some((Ok(part), Some((rx, left))))
                }
                Some(Err(e)) => Some((Err(e), None)),
                None if left > 0 => Some((
                    Err(Status::deadline_exceeded(
                        "the get stream was cut off: the client read nothing for the stall timeout",
                    )),
                    None,
                )),
                None => None,
            }
        });
        use futures::StreamExt;
        Ok(Response::new(Box::pin(head.chain(body))))
    }

    #[tracing::instrument(skip_all)]
    async fn stat(&self, request: Request<StatRequest>) -> Result<Response<StatResponse>, Status> {
        let blobs = self.blobs()?;
        let root = root_from_bytes(&request.into_inner().root).map_err(invalid)?;
        let (h, e) = blobs.stored(&root)?.ok_or_else(|| {
            Status::not_found(format!("blob {} is not stored here", hex::encode(root)))
        })?;
        Ok(Response::new(StatResponse {
            blob: Some(pb::BlobHeader::from(&h)),
            size_bytes: e.size,
            uploader: e.uploader,
            stored_unix: e.stored_unix,
            fetched_from: e.fetched_from,
        }))
    }
}
