//! The blob exchange between nodes: a libp2p request-response protocol (`/lode/blobs/1`) on the mempool
//! gossip swarm, so a `Get` of a blob this node lacks is served from whichever connected peer stores it.
//!
//! Fetching ([`Fetcher::fetch`]) is only ever for a root a live job on chain references, with the header
//! that job gives it (the caller, `Get`, looks it up): ask every connected peer whether it stores the root
//! (`stat`, bounded by [`STAT_TIMEOUT`]); a peer whose header differs from the job's is dropped. From each
//! remaining holder in turn: fetch the roots of the blob's blocks (a block: the largest power-of-two run of
//! leaves in 2 MiB, see `BlobHeader::block_leaves_log2`) and check that they make the root; then download
//! the blocks, [`WINDOW`] in flight, each bounded by [`RANGE_TIMEOUT`], exactly the block's length, hashed
//! on a blocking thread against its root as it arrives and written at its offset. The first block that does
//! not match ends the attempt: a lying peer makes this node download at most [`WINDOW`] blocks (8 × 2 MiB,
//! or 4 MiB blocks of single large leaves) besides the block list, and nothing is stored; the next holder
//! is tried. The copy is charged to nobody but counts against `[blobs] max_total_bytes`.
//!
//! Serving: a node answers only from its own store (never fetches for a peer); requests are at most
//! [`MAX_REQUEST_BYTES`], a range at most [`MAX_RANGE_BYTES`]; at most [`MAX_SERVING`] requests are answered
//! at once (disk reads on blocking threads), more are answered `error: busy` at once. A request holds its
//! serving slot until its answer is written to the peer (`ResponseSent`) or has failed (the peer went away,
//! or did not read it within [`RANGE_TIMEOUT`]): a peer that asks and does not read holds at most
//! [`MAX_SERVING`] answers of this node's memory (`MAX_SERVING` × 4 MiB), and only for that long.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt, TryStreamExt};
use libp2p::{request_response, PeerId, StreamProtocol};
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use super::grpc::pb::{
    self, peer_blob_request, peer_blob_response, PeerBlobRequest, PeerBlobResponse,
};
use crate::blobs::layout::{self, BlobHeader};
use crate::blobs::service::{store_status, Blobs};
use crate::blobs::store::BlobStore;

/// The protocol name.
pub const PROTOCOL: &str = "/lode/blobs/1";
/// Largest request frame.
pub const MAX_REQUEST_BYTES: usize = 1024;
/// Largest range one request may ask for: the largest block.
pub const MAX_RANGE_BYTES: u64 = crate::blobs::MAX_CHUNK_BYTES as u64;
/// Largest response frame: a range plus framing.
pub const MAX_RESPONSE_BYTES: usize = crate::blobs::MAX_CHUNK_BYTES + 1024;
/// Ranges in flight per download.
pub const WINDOW: usize = 8;
/// How long a peer has to answer a stat.
pub const STAT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a peer has to deliver one range.
pub const RANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests from peers answered at once; more are refused (`busy`) at once.
pub const MAX_SERVING: usize = 32;
/// Commands queued for the swarm from fetches.
pub const COMMAND_QUEUE: usize = 256;

/// The request-response codec: one length-prefixed protobuf frame each way, bounded before allocation.
#[derive(Debug, Clone, Copy, Default)]
pub struct BlobCodec;

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let n = u32::from_be_bytes(len) as usize;
    if n > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {n} bytes is over {max}"),
        ));
    }
    let mut buf = vec![0u8; n];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    let n = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    io.write_all(&n.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.flush().await
}

fn invalid_data(e: prost::DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// One protobuf message from a length-prefixed frame of at most `max` bytes (refused before allocation when
/// longer), decoded from the frame's own buffer: `bytes::Bytes` fields are slices of it, not copies. The
/// request-response protocols of the gossip swarm (`/lode/blobs/1`, `/lode/txs/1`) read every frame so.
pub(super) async fn read_message<M, T>(io: &mut T, max: usize) -> io::Result<M>
where
    M: Message + Default,
    T: AsyncRead + Unpin + Send,
{
    let buf = read_frame(io, max).await?;
    M::decode(Bytes::from(buf)).map_err(invalid_data)
}

/// `msg` as one length-prefixed frame.
pub(super) async fn write_message<M: Message, T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    msg: &M,
) -> io::Result<()> {
    write_frame(io, &msg.encode_to_vec()).await
}

#[tonic::async_trait]
impl request_response::Codec for BlobCodec {
    type Protocol = StreamProtocol;
    type Request = PeerBlobRequest;
    type Response = PeerBlobResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Self::Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_message(io, MAX_REQUEST_BYTES).await
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Self::Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_message(io, MAX_RESPONSE_BYTES).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Self::Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_message(io, &req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Self::Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        if let Some(peer_blob_response::Kind::Chunk(chunk)) = &res.kind {
            // The chunk's field written around the bytes, not copied into an encoded message first.
            let mut head = Vec::with_capacity(16);
            prost::encoding::encode_key(3, prost::encoding::WireType::LengthDelimited, &mut head);
            prost::encoding::encode_varint(chunk.len() as u64, &mut head);
            let n = u32::try_from(head.len() + chunk.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
            io.write_all(&n.to_be_bytes()).await?;
            io.write_all(&head).await?;
            io.write_all(chunk).await?;
            return io.flush().await;
        }
        write_frame(io, &res.encode_to_vec()).await
    }
}

/// The request-response behaviour for the gossip swarm.
pub fn behaviour() -> request_response::Behaviour<BlobCodec> {
    request_response::Behaviour::with_codec(
        BlobCodec,
        [(
            StreamProtocol::new(PROTOCOL),
            request_response::ProtocolSupport::Full,
        )],
        request_response::Config::default()
            .with_request_timeout(RANGE_TIMEOUT)
            .with_max_concurrent_streams(MAX_SERVING + WINDOW * 4),
    )
}

/// What a fetch asks of the swarm's task.
#[derive(Debug)]
pub enum Command {
    /// The peers connected now.
    Peers(oneshot::Sender<Vec<PeerId>>),
    /// Send `request` to `peer`; the answer (or why there is none) comes back on `reply`.
    Request {
        /// The peer.
        peer: PeerId,
        /// The request.
        request: PeerBlobRequest,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<PeerBlobResponse, String>>,
    },
}

fn error(msg: impl Into<String>) -> PeerBlobResponse {
    PeerBlobResponse {
        kind: Some(peer_blob_response::Kind::Error(msg.into())),
    }
}

/// The answer to a peer's request, from the local store only (`None`: this node has no blob service);
/// blob bytes served are added to `served`. Blocking (reads the index and up to one range from disk).
pub fn answer(
    store: Option<&BlobStore>,
    request: PeerBlobRequest,
    served: &std::sync::atomic::AtomicU64,
) -> PeerBlobResponse {
    use peer_blob_response::Kind;
    let Some(store) = store else {
        return error("this node has no blob service");
    };
    let not_found = PeerBlobResponse {
        kind: Some(Kind::NotFound(true)),
    };
    let lookup = |root: &[u8]| -> Result<Option<BlobHeader>, String> {
        let root = crate::blobs::root_from_bytes(root).map_err(|e| e.to_string())?;
        match store.entry(&root) {
            Ok(None) => Ok(None),
            Ok(Some(e)) => e.header(root).map(Some),
            Err(e) => Err(e.to_string()),
        }
    };
    match request.kind {
        Some(peer_blob_request::Kind::BlockRootsOf(root)) => match lookup(&root) {
            Ok(Some(h)) => match store.block_roots(&h.root) {
                Ok(Some(b)) if b.len() as u64 == h.block_count() * 32 => PeerBlobResponse {
                    kind: Some(Kind::BlockRoots(b)),
                },
                Ok(_) => error("no block roots stored for this blob"),
                Err(e) => error(e.to_string()),
            },
            Ok(None) => not_found,
            Err(e) => error(e),
        },
        Some(peer_blob_request::Kind::StatRoot(root)) => match lookup(&root) {
            Ok(Some(h)) => PeerBlobResponse {
                kind: Some(Kind::Header(pb::BlobHeader::from(&h))),
            },
            Ok(None) => not_found,
            Err(e) => error(e),
        },
        Some(peer_blob_request::Kind::Range(r)) => {
            let h = match lookup(&r.root) {
                Ok(Some(h)) => h,
                Ok(None) => return not_found,
                Err(e) => return error(e),
            };
            let len = u64::from(r.length);
            if len == 0 || len > MAX_RANGE_BYTES {
                return error(format!("range length {len} not in 1..={MAX_RANGE_BYTES}"));
            }
            if r.offset
                .checked_add(len)
                .is_none_or(|end| end > h.size_bytes())
            {
                return error("range past the end of the blob");
            }
            let mut buf = vec![0u8; r.length as usize];
            let read = std::fs::File::open(store.path(&h.root))
                .and_then(|f| f.read_exact_at(&mut buf, r.offset));
            match read {
                Ok(()) => {
                    served.fetch_add(len, std::sync::atomic::Ordering::Relaxed);
                    PeerBlobResponse {
                        kind: Some(Kind::Chunk(Bytes::from(buf))),
                    }
                }
                Err(e) => error(format!("cannot read the blob: {e}")),
            }
        }
        None => error("empty request"),
    }
}

/// Fetches blobs from peers through the gossip swarm's task.
#[derive(Debug, Clone)]
pub struct Fetcher {
    commands: mpsc::Sender<Command>,
}

fn unavailable(what: &str) -> Status {
    Status::unavailable(format!("blob exchange: {what}"))
}

impl Fetcher {
    /// A fetcher sending its commands to the swarm on `commands`.
    pub fn new(commands: mpsc::Sender<Command>) -> Self {
        Self { commands }
    }

    async fn peers(&self) -> Vec<PeerId> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Peers(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Sends one request and waits for its answer, at most `within`.
    async fn request(
        &self,
        peer: PeerId,
        request: PeerBlobRequest,
        within: Duration,
    ) -> Result<PeerBlobResponse, String> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Request {
                peer,
                request,
                reply,
            })
            .await
            .map_err(|_| "the swarm stopped".to_owned())?;
        match tokio::time::timeout(within, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err("the swarm dropped the request".to_owned()),
            Err(_) => Err(format!("no answer within {within:?}")),
        }
    }

    /// The peers that say they store `root` under one of the `expected` headers (those live jobs on chain
    /// give it), with that header. A peer claiming another header is dropped.
    async fn holders(&self, root: [u8; 32], expected: &[BlobHeader]) -> Vec<(PeerId, BlobHeader)> {
        let asks = self.peers().await.into_iter().map(|peer| async move {
            let req = PeerBlobRequest {
                kind: Some(peer_blob_request::Kind::StatRoot(root.to_vec())),
            };
            match self.request(peer, req, STAT_TIMEOUT).await {
                Ok(PeerBlobResponse {
                    kind: Some(peer_blob_response::Kind::Header(h)),
                }) => match BlobHeader::try_from(&h) {
                    Ok(h) if expected.contains(&h) => Some((peer, h)),
                    Ok(h) => {
                        tracing::debug!(%peer, ?h, "peer's blob header differs from the job's on chain");
                        None
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "peer sent a malformed blob header");
                        None
                    }
                },
                _ => None,
            }
        });
        futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// The roots of `header`'s blocks from `peer`, checked to make the root.
    async fn block_roots(
        &self,
        peer: PeerId,
        header: &BlobHeader,
    ) -> Result<Arc<Vec<[u8; 32]>>, Status> {
        let req = PeerBlobRequest {
            kind: Some(peer_blob_request::Kind::BlockRootsOf(header.root.to_vec())),
        };
        let bytes = match self.request(peer, req, STAT_TIMEOUT).await {
            Ok(PeerBlobResponse {
                kind: Some(peer_blob_response::Kind::BlockRoots(b)),
            }) => b,
            Ok(other) => {
                return Err(unavailable(&format!(
                    "peer {peer} refused the block roots: {:?}",
                    other.kind
                )))
            }
            Err(e) => return Err(unavailable(&format!("peer {peer}: {e}"))),
        };
        if bytes.len() as u64 != header.block_count().saturating_mul(32) {
            return Err(unavailable(&format!(
                "peer {peer} sent {} bytes of block roots for {} blocks",
                bytes.len(),
                header.block_count()
            )));
        }
        let roots: Vec<[u8; 32]> = bytes
            .chunks_exact(32)
            .filter_map(|c| <[u8; 32]>::try_from(c).ok())
            .collect();
        if layout::root_of_blocks(&roots) != Some(header.root) {
            return Err(unavailable(&format!(
                "peer {peer}'s block roots do not make the root"
            )));
        }
        Ok(Arc::new(roots))
    }

    /// Downloads `header`'s blob from `peer` into the store: each block checked against its root as it
    /// arrives; the first that does not match ends the download.
    async fn download(
        &self,
        blobs: &Blobs,
        peer: PeerId,
        header: BlobHeader,
    ) -> Result<(), Status> {
        let roots = self.block_roots(peer, &header).await?;
        let _reserved = blobs
            .store
            .reserve("", header.size_bytes())
            .map_err(store_status)?;
        let temp = blobs.store.temp().map_err(store_status)?;
        let temp_ref = &temp;
        let blocks = futures::stream::iter(0..header.block_count()).map(Ok::<u64, Status>);
        blocks
            .try_for_each_concurrent(WINDOW, |i| {
                let roots = roots.clone();
                async move {
                    let (start, end) = header.block_range(i);
                    let len = end - start;
                    let req = PeerBlobRequest {
                        kind: Some(peer_blob_request::Kind::Range(pb::PeerBlobRange {
                            root: header.root.to_vec(),
                            offset: start,
                            length: len as u32,
                        })),
                    };
                    let chunk = match self.request(peer, req, RANGE_TIMEOUT).await {
                        Ok(PeerBlobResponse {
                            kind: Some(peer_blob_response::Kind::Chunk(c)),
                        }) if c.len() as u64 == len => c,
                        Ok(PeerBlobResponse {
                            kind: Some(peer_blob_response::Kind::Chunk(c)),
                        }) => {
                            return Err(unavailable(&format!(
                                "peer {peer} sent {} bytes for a block of {len}",
                                c.len()
                            )))
                        }
                        Ok(other) => {
                            return Err(unavailable(&format!(
                                "peer {peer} refused a range: {:?}",
                                other.kind
                            )))
                        }
                        Err(e) => return Err(unavailable(&format!("peer {peer}: {e}"))),
                    };
                    let file = temp_ref.file.try_clone().map_err(internal)?;
                    tokio::task::spawn_blocking(move || {
                        let got = layout::block_root(&header, i, &chunk).map_err(internal)?;
                        if got != roots[i as usize] {
                            return Err(unavailable(&format!(
                                "peer {peer} sent block {i} with other bytes than its root"
                            )));
                        }
                        file.write_all_at(&chunk, start).map_err(internal)
                    })
                    .await
                    .map_err(internal)?
                }
            })
            .await?;
        let store = blobs.store.clone();
        let from = peer.to_string();
        tokio::task::spawn_blocking(move || store.commit(temp, &header, &roots, "", &from))
            .await
            .map_err(internal)?
            .map_err(store_status)?;
        // The copy is served at once; its file is synced off this path (see `BlobStore`).
        let store = blobs.store.clone();
        let root = header.root;
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.sync_fetched(&root) {
                tracing::warn!(root = %hex::encode(root), error = %e, "syncing a fetched blob failed");
            }
        });
        Ok(())
    }

    /// Fetches `root` from the peers that store it under one of the `expected` headers (those live jobs
    /// give it) into `blobs`' store; its header once stored. `NOT_FOUND` when no connected peer has it;
    /// `UNAVAILABLE` when every holder failed.
    pub async fn fetch(
        &self,
        blobs: &Blobs,
        root: [u8; 32],
        expected: &[BlobHeader],
    ) -> Result<BlobHeader, Status> {
        let _slot = blobs.transfer_slot()?;
        let max = blobs.store.config().max_blob_bytes;
        let expected: Vec<BlobHeader> = expected
            .iter()
            .filter(|h| h.root == root && h.size_bytes() <= max)
            .copied()
            .collect();
        let holders = self.holders(root, &expected).await;
        if holders.is_empty() {
            return Err(Status::not_found(format!(
                "blob {} is stored neither here nor (under its job's header) on a connected peer",
                hex::encode(root)
            )));
        }
        let mut last = None;
        for (peer, header) in holders {
            let started = std::time::Instant::now();
            match self.download(blobs, peer, header).await {
                Ok(()) => {
                    let secs = started.elapsed().as_secs_f64();
                    tracing::info!(
                        root = %hex::encode(root), %peer, bytes = header.size_bytes(),
                        mb_per_s = header.size_bytes() as f64 / 1e6 / secs.max(1e-9),
                        "blob fetched from a peer"
                    );
                    return Ok(header);
                }
                Err(e) if e.code() == tonic::Code::ResourceExhausted => return Err(e),
                Err(e) => {
                    tracing::warn!(root = %hex::encode(root), %peer, error = %e, "blob fetch from a peer failed");
                    // Whatever the peer did wrong (other bytes, short ranges, silence), for the client the
                    // blob is unavailable; nothing was stored.
                    last = Some(unavailable(&format!("peer {peer}: {}", e.message())));
                }
            }
        }
        Err(last.unwrap_or_else(|| unavailable("no holder answered")))
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

/// The serving side's state in the swarm's task: the store and the number of answers in progress (from
/// the request until its answer is written to the peer or has failed).
#[derive(Debug)]
pub struct Server {
    store: Option<Arc<BlobStore>>,
    /// The requests holding a serving slot, each released once by [`Server::release`].
    held: std::collections::HashSet<request_response::InboundRequestId>,
    served: Arc<std::sync::atomic::AtomicU64>,
    done: mpsc::Sender<Answer>,
}

/// A finished answer for the swarm's task to send: the request, its channel and the response.
pub type Answer = (
    request_response::InboundRequestId,
    request_response::ResponseChannel<PeerBlobResponse>,
    PeerBlobResponse,
);

impl Server {
    /// A server over `store`, sending finished answers to `done` (the swarm's task sends them).
    pub fn new(store: Option<Arc<BlobStore>>, done: mpsc::Sender<Answer>) -> Self {
        Self {
            store,
            held: Default::default(),
            served: Arc::default(),
            done,
        }
    }

    /// Blob bytes served to peers so far (range answers).
    pub fn bytes_served(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.served.clone()
    }

    /// Requests holding a serving slot now.
    pub fn serving(&self) -> usize {
        self.held.len()
    }

    /// Answers request `id` on a blocking thread, holding a serving slot until [`Server::release`] of `id`;
    /// or at once with `busy` when [`MAX_SERVING`] are held (then the answer is returned for the swarm to
    /// send, and holds nothing).
    pub fn handle(
        &mut self,
        id: request_response::InboundRequestId,
        request: PeerBlobRequest,
        channel: request_response::ResponseChannel<PeerBlobResponse>,
    ) -> Option<(
        request_response::ResponseChannel<PeerBlobResponse>,
        PeerBlobResponse,
    )> {
        if self.held.len() >= MAX_SERVING {
            return Some((channel, error("busy")));
        }
        self.held.insert(id);
        let (store, done) = (self.store.clone(), self.done.clone());
        let served = self.served.clone();
        tokio::spawn(async move {
            let resp =
                tokio::task::spawn_blocking(move || answer(store.as_deref(), request, &served))
                    .await
                    .unwrap_or_else(|e| error(format!("internal: {e}")));
            let _ = done.send((id, channel, resp)).await;
        });
        None
    }

    /// Frees request `id`'s serving slot: its answer was written to the peer, could not be, or failed.
    /// Once per request; an id that holds no slot (a `busy` answer, or one already released) is ignored.
    pub fn release(&mut self, id: request_response::InboundRequestId) {
        self.held.remove(&id);
    }
}
