//! Tx fetch between nodes: a libp2p request-response protocol (`/lode/txs/1`) on the mempool gossip swarm.
//!
//! A proposal names by hash the txs its proposer expects every peer to hold already (see
//! `lode_consensus::CompactBlock`); a receiver takes them from its mempool, and asks its connected peers for
//! those it lacks ([`TxFetcher::fetch`]): every peer at once, in requests of at most
//! [`MAX_FETCH_HASHES`] hashes, keeping only the txs that hash to a name it asked for and stopping as soon
//! as it has them all, or when its wait is over. A peer that does not answer, answers junk or answers late
//! costs the asker nothing but that wait.
//!
//! Serving: a node answers from its own mempool only (never fetches for a peer). A request is at most
//! [`MAX_REQUEST_BYTES`] and [`MAX_FETCH_HASHES`] hashes of 32 bytes, or it is answered with nothing; the
//! answer holds at most [`MAX_RESPONSE_BYTES`] of txs; at most [`MAX_SERVING`] requests are answered at
//! once, [`MAX_SERVING_PER_PEER`] of one peer (looked up on blocking threads, under the mempool's lock, then
//! written), more are answered with nothing at once.

use std::collections::{HashMap, HashSet};
use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures::{AsyncRead, AsyncWrite};
use libp2p::{request_response, PeerId, StreamProtocol};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::blob_exchange::{read_message, write_message};
use super::grpc::pb::{PeerTxRequest, PeerTxResponse};
use super::mempool::Mempool;

/// Most hashes one request may carry.
pub const MAX_FETCH_HASHES: usize = 4096;

/// The protocol name.
pub const PROTOCOL: &str = "/lode/txs/1";
/// Largest request frame: [`MAX_FETCH_HASHES`] hashes with their framing.
pub const MAX_REQUEST_BYTES: usize = MAX_FETCH_HASHES * 34 + 64;
/// Most bytes of an answer, txs and their framing (a block's txs are at most `max_block_tx_bytes`, 4 MiB by
/// default): the txs that would pass it are left out, and the asker gets them from another peer or not at
/// all. A tx larger than this is never served.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// Largest answer frame read: [`MAX_RESPONSE_BYTES`] and the message's own framing.
const MAX_RESPONSE_FRAME: usize = MAX_RESPONSE_BYTES + 64;
/// Framing of one tx in an answer, at most (field tag and length varint).
const TX_FRAMING: usize = 16;
/// Requests from peers being answered at once (looked up, or written to the peer); more are answered with
/// nothing at once. A request holds its slot until its answer is written or has failed, so peers that ask
/// and do not read hold at most this many answers of this node's memory.
pub const MAX_SERVING: usize = 8;
/// Of those, the most one peer holds: one peer that asks and does not read leaves the others room.
pub const MAX_SERVING_PER_PEER: usize = 2;
/// How long a peer has to answer one request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Commands queued for the swarm from fetches.
pub const COMMAND_QUEUE: usize = 64;

/// The request-response codec: one length-prefixed protobuf frame each way, bounded before allocation.
#[derive(Debug, Clone, Copy, Default)]
pub struct TxCodec;

#[tonic::async_trait]
impl request_response::Codec for TxCodec {
    type Protocol = StreamProtocol;
    type Request = PeerTxRequest;
    type Response = PeerTxResponse;

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
        read_message(io, MAX_RESPONSE_FRAME).await
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
        write_message(io, &res).await
    }
}

/// The protocol's behaviour for the gossip swarm.
pub fn behaviour() -> request_response::Behaviour<TxCodec> {
    request_response::Behaviour::with_codec(
        TxCodec,
        [(
            StreamProtocol::new(PROTOCOL),
            request_response::ProtocolSupport::Full,
        )],
        request_response::Config::default()
            .with_request_timeout(REQUEST_TIMEOUT)
            .with_max_concurrent_streams(MAX_SERVING * 4),
    )
}

/// The hashes a request asks for, or `None` when it breaks the protocol's bounds (too many, or one that
/// is not 32 bytes): such a request is answered with nothing.
pub fn requested(req: &PeerTxRequest) -> Option<Vec<[u8; 32]>> {
    if req.hashes.len() > MAX_FETCH_HASHES {
        return None;
    }
    req.hashes
        .iter()
        .map(|h| <[u8; 32]>::try_from(h.as_ref()).ok())
        .collect()
}

/// The answer to `hashes` from `mempool`: the txs it holds, in the order asked, as long as they fit in
/// [`MAX_RESPONSE_BYTES`].
pub fn answer(mempool: &Mempool, hashes: &[[u8; 32]]) -> PeerTxResponse {
    let mut txs = Vec::new();
    let mut bytes = 0usize;
    for tx in mempool.lookup_txs(hashes).into_iter().flatten() {
        let next = bytes.saturating_add(tx.len()).saturating_add(TX_FRAMING);
        if next > MAX_RESPONSE_BYTES {
            break;
        }
        bytes = next;
        txs.push(tx);
    }
    PeerTxResponse { txs }
}

/// An answer looked up for a peer, on its way back to the swarm's task: the request it answers, the
/// channel to answer on, the answer.
pub type Answer = (
    request_response::InboundRequestId,
    request_response::ResponseChannel<PeerTxResponse>,
    PeerTxResponse,
);

/// Serving slots: a peer's request holds one from its arrival until its answer is written or has failed
/// ([`MAX_SERVING`] in all, [`MAX_SERVING_PER_PEER`] per peer). Owned by the swarm's task; `Id` names a
/// request (the behaviour's inbound request id).
#[derive(Debug)]
pub struct Serving<Id = request_response::InboundRequestId> {
    by_request: HashMap<Id, PeerId>,
    per_peer: HashMap<PeerId, usize>,
}

impl<Id> Default for Serving<Id> {
    fn default() -> Self {
        Self {
            by_request: HashMap::new(),
            per_peer: HashMap::new(),
        }
    }
}

impl<Id: Eq + std::hash::Hash> Serving<Id> {
    /// Takes a slot for `peer`'s request `id`, or `false` when none is free for it.
    pub fn take(&mut self, peer: PeerId, id: Id) -> bool {
        let held = self.per_peer.get(&peer).copied().unwrap_or(0);
        if self.by_request.len() >= MAX_SERVING || held >= MAX_SERVING_PER_PEER {
            return false;
        }
        self.by_request.insert(id, peer);
        self.per_peer.insert(peer, held.saturating_add(1));
        true
    }

    /// Gives back request `id`'s slot, if it holds one.
    pub fn release(&mut self, id: &Id) {
        let Some(peer) = self.by_request.remove(id) else {
            return;
        };
        match self.per_peer.get(&peer).copied() {
            Some(n) if n > 1 => {
                self.per_peer.insert(peer, n - 1);
            }
            _ => {
                self.per_peer.remove(&peer);
            }
        }
    }

    /// Slots held.
    pub fn len(&self) -> usize {
        self.by_request.len()
    }

    /// Whether no slot is held.
    pub fn is_empty(&self) -> bool {
        self.by_request.is_empty()
    }
}

/// What a fetch asks of the swarm's task.
#[derive(Debug)]
pub enum TxCommand {
    /// The peers connected now.
    Peers(oneshot::Sender<Vec<PeerId>>),
    /// Send `request` to `peer`; its answer (or why none came) goes to `reply`.
    Request {
        /// The peer.
        peer: PeerId,
        /// The request.
        request: PeerTxRequest,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<PeerTxResponse, String>>,
    },
}

/// Fetches txs from the connected peers (see the module doc). Cheap to clone.
#[derive(Debug, Clone)]
pub struct TxFetcher {
    commands: mpsc::Sender<TxCommand>,
}

impl TxFetcher {
    /// A fetcher sending its requests through the swarm task behind `commands`.
    pub fn new(commands: mpsc::Sender<TxCommand>) -> Self {
        Self { commands }
    }

    /// The txs with these hashes, from whichever connected peers have them, within `wait`: each returned tx
    /// hashes to one of `hashes` (each at most once); fewer than asked when peers lack some or are slow.
    pub async fn fetch(&self, hashes: Vec<[u8; 32]>, wait: Duration) -> Vec<Bytes> {
        let metrics = super::metrics::metrics();
        metrics
            .txs_fetch_asked
            .inc_by(u64::try_from(hashes.len()).unwrap_or(u64::MAX));
        let mut wanted: HashSet<[u8; 32]> = hashes.iter().copied().collect();
        let mut got = Vec::new();
        let _ = tokio::time::timeout(wait, async {
            let (tx, rx) = oneshot::channel();
            if self.commands.send(TxCommand::Peers(tx)).await.is_err() {
                return;
            }
            let Ok(peers) = rx.await else { return };
            let mut answers = futures::stream::FuturesUnordered::new();
            for peer in peers {
                for chunk in hashes.chunks(MAX_FETCH_HASHES) {
                    let (reply, rx) = oneshot::channel();
                    let request = PeerTxRequest {
                        hashes: chunk.iter().map(|h| Bytes::copy_from_slice(h)).collect(),
                    };
                    if self
                        .commands
                        .send(TxCommand::Request {
                            peer,
                            request,
                            reply,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    answers.push(rx);
                }
            }
            use futures::StreamExt;
            while let Some(answer) = answers.next().await {
                let Ok(Ok(response)) = answer else { continue };
                for tx in response.txs {
                    let h: [u8; 32] = Sha256::digest(&tx).into();
                    if wanted.remove(&h) {
                        got.push(tx);
                    }
                }
                if wanted.is_empty() {
                    return;
                }
            }
        })
        .await;
        metrics
            .txs_fetched
            .inc_by(u64::try_from(got.len()).unwrap_or(u64::MAX));
        got
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_over_the_bounds_asks_for_nothing() {
        let ok = PeerTxRequest {
            hashes: vec![Bytes::from(vec![1u8; 32]); 3],
        };
        assert_eq!(requested(&ok).map(|h| h.len()), Some(3));
        let short = PeerTxRequest {
            hashes: vec![Bytes::from(vec![1u8; 32]), Bytes::from(vec![1u8; 31])],
        };
        assert_eq!(requested(&short), None);
        let many = PeerTxRequest {
            hashes: vec![Bytes::from(vec![1u8; 32]); MAX_FETCH_HASHES + 1],
        };
        assert_eq!(requested(&many), None);
    }

    /// Two gossip swarms on loopback: the one whose mempool lacks a tx fetches it from the other by hash,
    /// gets nothing for a hash nobody holds, and gives up on its wait, not later.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_fetches_a_tx_it_lacks_from_a_peers_mempool_by_hash() {
        use crate::services::gossip::{self, GossipConfig};
        use crate::services::mempool::MempoolLimits;
        use lode_consensus::Mempool as _;
        use std::net::SocketAddr;
        use std::sync::Arc;
        let dir = tempfile::tempdir().expect("tempdir");
        let key = ed25519_consensus::SigningKey::from([5u8; 32]);
        let limits = MempoolLimits {
            max_txs: 100,
            max_bytes: 1 << 20,
            max_tx_bytes: 1 << 16,
            max_txs_per_sender: 100,
        };
        let app = |name: &str| {
            super::super::test_support::initialised_app(&dir.path().join(name), &[&key])
        };
        let holder = Arc::new(Mempool::new(app("a"), limits));
        let asker = Arc::new(Mempool::new(app("b"), limits));
        let ports = lode_test_ports::PortBlock::reserve();
        let at = |i| SocketAddr::from(([127, 0, 0, 1], ports.port(i)));
        let config = |listen, peers| GossipConfig {
            listen,
            peers,
            max_message_bytes: 1 << 17,
            max_peers: 8,
        };
        let _a = gossip::spawn(config(at(0), vec![]), [1; 32], holder.clone()).expect("swarm a");
        let b = gossip::spawn(config(at(1), vec![at(0)]), [2; 32], asker.clone()).expect("swarm b");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while b.peers.read().map(|p| p.is_empty()).unwrap_or(true) {
            assert!(
                std::time::Instant::now() < deadline,
                "the swarms did not connect"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let recipient = lode_state::Address([3; 20]);
        let tx = Bytes::from(lode_state::tx::sign_send(
            "c", &key, 0, 10_000, &recipient, 1,
        ));
        // Admitted by the holder without gossip: only a fetch brings it to the asker.
        holder.add(tx.clone()).expect("admitted");
        let hash: [u8; 32] = Sha256::digest(&tx).into();
        assert_eq!(asker.lookup(&[hash]), vec![None]);
        let got = asker.fetch(vec![hash], Duration::from_secs(5)).await;
        assert_eq!(got, vec![tx]);
        let wait = Duration::from_millis(300);
        let started = std::time::Instant::now();
        assert!(asker.fetch(vec![[0xAB; 32]], wait).await.is_empty());
        assert!(started.elapsed() < wait + Duration::from_secs(2));
    }

    #[test]
    fn serving_slots_are_bounded_in_all_and_per_peer_and_given_back() {
        let ids: Vec<u64> = (0..).take(MAX_SERVING + MAX_SERVING_PER_PEER + 1).collect();
        let mut serving = Serving::<u64>::default();
        let greedy = PeerId::random();
        for id in &ids[..MAX_SERVING_PER_PEER] {
            assert!(serving.take(greedy, *id));
        }
        let next = ids[MAX_SERVING_PER_PEER];
        assert!(
            !serving.take(greedy, next),
            "a peer holds at most its share"
        );
        for (taken, id) in (MAX_SERVING_PER_PEER..).zip(&ids[MAX_SERVING_PER_PEER..]) {
            if taken == MAX_SERVING {
                assert!(!serving.take(PeerId::random(), *id), "the total is bounded");
                break;
            }
            assert!(serving.take(PeerId::random(), *id));
        }
        assert_eq!(serving.len(), MAX_SERVING);
        serving.release(&ids[0]);
        serving.release(&ids[0]);
        assert_eq!(serving.len(), MAX_SERVING - 1);
        assert!(serving.take(greedy, ids[ids.len() - 1]));
    }
}
