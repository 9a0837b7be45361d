//! The blob exchange between nodes: a libp2p request-response protocol (`/lode/blobs/1`) on the mempool
//! gossip swarm, so a `Get` of a blob this node lacks is served from whichever connected peer stores it.
//!
//! Fetching ([`Fetcher::fetch`]): ask every connected peer whether it stores the root (`stat`, bounded by
//! [`STAT_TIMEOUT`]); from each peer that answers with a well-formed header for that root and a size within
//! `[blobs] max_blob_bytes`, in turn, download the blob in byte ranges of [`RANGE_BYTES`], [`WINDOW`] in
//! flight, each bounded by [`RANGE_TIMEOUT`] and required to be exactly the length asked for. The ranges go,
//! in order, through the same hash-as-it-arrives path as a client's `Put`; the blob is stored only if it
//! hashes to the root asked for. A peer that lies (wrong header, short or long ranges, other bytes) costs at
//! most one download attempt and stores nothing; the next holder is tried.
//!
//! Serving: requests are at most [`MAX_REQUEST_BYTES`], a range at most [`RANGE_BYTES`]; at most
//! [`MAX_SERVING`] requests are answered at once (disk reads on blocking threads), more are answered
//! `error: busy` at once.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::{request_response, PeerId, StreamProtocol};
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use super::grpc::pb::{
    self, peer_blob_request, peer_blob_response, PeerBlobRequest, PeerBlobResponse,
};
use crate::blobs::layout::BlobHeader;
use crate::blobs::service::Blobs;
use crate::blobs::store::BlobStore;

/// The protocol name.
pub const PROTOCOL: &str = "/lode/blobs/1";
/// Largest request frame.
pub const MAX_REQUEST_BYTES: usize = 1024;
/// Largest range one request may ask for.
pub const RANGE_BYTES: u64 = 2 << 20;
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

#[tonic::async_trait]
impl request_response::Codec for BlobCodec {
    type Protocol = StreamProtocol;
    type Request = PeerBlobRequest;
    type Response = PeerBlobResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Self::Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let buf = read_frame(io, MAX_REQUEST_BYTES).await?;
        PeerBlobRequest::decode(buf.as_slice()).map_err(invalid_data)
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Self::Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        let buf = read_frame(io, MAX_RESPONSE_BYTES).await?;
        PeerBlobResponse::decode(Bytes::from(buf)).map_err(invalid_data)
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
        write_frame(io, &req.encode_to_vec()).await
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

/// The answer to a peer's request, from the local store (`None`: this node has no blob service). Blocking
/// (reads the index and up to one range from disk).
pub fn answer(store: Option<&BlobStore>, request: PeerBlobRequest) -> PeerBlobResponse {
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
            if len == 0 || len > RANGE_BYTES {
                return error(format!("range length {len} not in 1..={RANGE_BYTES}"));
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
                Ok(()) => PeerBlobResponse {
                    kind: Some(Kind::Chunk(Bytes::from(buf))),
                },
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

    /// The peers that say they store `root`, with the header each claims (well-formed, for that root, and
    /// within `max_bytes`).
    async fn holders(&self, root: [u8; 32], max_bytes: u64) -> Vec<(PeerId, BlobHeader)> {
        let asks = self.peers().await.into_iter().map(|peer| async move {
            let req = PeerBlobRequest {
                kind: Some(peer_blob_request::Kind::StatRoot(root.to_vec())),
            };
            match self.request(peer, req, STAT_TIMEOUT).await {
                Ok(PeerBlobResponse {
                    kind: Some(peer_blob_response::Kind::Header(h)),
                }) => match BlobHeader::try_from(&h) {
                    Ok(h) if h.root == root && h.size_bytes() <= max_bytes => Some((peer, h)),
                    Ok(h) => {
                        tracing::debug!(%peer, size = h.size_bytes(), "peer's blob header refused");
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

    /// Downloads `header`'s blob from `peer` into the store (verified before it is stored).
    async fn download(
        &self,
        blobs: &Blobs,
        peer: PeerId,
        header: BlobHeader,
    ) -> Result<(), Status> {
        let size = header.size_bytes();
        let root = header.root;
        let ranges = (0..size.div_ceil(RANGE_BYTES)).map(move |i| {
            let offset = i * RANGE_BYTES;
            (offset, (size - offset).min(RANGE_BYTES))
        });
        let chunks = futures::stream::iter(ranges)
            .map(|(offset, len)| async move {
                let req = PeerBlobRequest {
                    kind: Some(peer_blob_request::Kind::Range(pb::PeerBlobRange {
                        root: root.to_vec(),
                        offset,
                        length: len as u32,
                    })),
                };
                match self.request(peer, req, RANGE_TIMEOUT).await {
                    Ok(PeerBlobResponse {
                        kind: Some(peer_blob_response::Kind::Chunk(c)),
                    }) if c.len() as u64 == len => Ok(c),
                    Ok(PeerBlobResponse {
                        kind: Some(peer_blob_response::Kind::Chunk(c)),
                    }) => Err(unavailable(&format!(
                        "peer {peer} sent {} bytes for a range of {len}",
                        c.len()
                    ))),
                    Ok(other) => Err(unavailable(&format!(
                        "peer {peer} refused a range: {:?}",
                        other.kind
                    ))),
                    Err(e) => Err(unavailable(&format!("peer {peer}: {e}"))),
                }
            })
            .buffered(WINDOW);
        blobs
            .receive(header, Box::pin(chunks), "", &peer.to_string())
            .await
            .map(|_| ())
    }

    /// Fetches `root` from the peers that store it into `blobs`' store; its header once stored.
    /// `NOT_FOUND` when no connected peer has it; `UNAVAILABLE` when every holder failed.
    pub async fn fetch(&self, blobs: &Blobs, root: [u8; 32]) -> Result<BlobHeader, Status> {
        let _slot = blobs.transfer_slot()?;
        let holders = self
            .holders(root, blobs.store.config().max_blob_bytes)
            .await;
        if holders.is_empty() {
            return Err(Status::not_found(format!(
                "blob {} is stored neither here nor on a connected peer",
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

/// The serving side's state in the swarm's task: the store and the number of answers in progress.
#[derive(Debug, Clone)]
pub struct Server {
    store: Option<Arc<BlobStore>>,
    serving: Arc<std::sync::atomic::AtomicUsize>,
    done: mpsc::Sender<(
        request_response::ResponseChannel<PeerBlobResponse>,
        PeerBlobResponse,
    )>,
}

impl Server {
    /// A server over `store`, sending finished answers to `done` (the swarm's task sends them).
    pub fn new(
        store: Option<Arc<BlobStore>>,
        done: mpsc::Sender<(
            request_response::ResponseChannel<PeerBlobResponse>,
            PeerBlobResponse,
        )>,
    ) -> Self {
        Self {
            store,
            serving: Arc::default(),
            done,
        }
    }

    /// Answers `request` on a blocking thread, or at once with `busy` when [`MAX_SERVING`] are in progress
    /// (then the answer is returned for the swarm to send).
    pub fn handle(
        &self,
        request: PeerBlobRequest,
        channel: request_response::ResponseChannel<PeerBlobResponse>,
    ) -> Option<(
        request_response::ResponseChannel<PeerBlobResponse>,
        PeerBlobResponse,
    )> {
        use std::sync::atomic::Ordering;
        if self.serving.fetch_add(1, Ordering::AcqRel) >= MAX_SERVING {
            self.serving.fetch_sub(1, Ordering::AcqRel);
            return Some((channel, error("busy")));
        }
        let (store, serving, done) = (self.store.clone(), self.serving.clone(), self.done.clone());
        tokio::spawn(async move {
            let resp = tokio::task::spawn_blocking(move || answer(store.as_deref(), request))
                .await
                .unwrap_or_else(|e| error(format!("internal: {e}")));
            serving.fetch_sub(1, Ordering::AcqRel);
            let _ = done.send((channel, resp)).await;
        });
        None
    }
}
