//! The gRPC API (`lode.node.v1`): `TxService`, `QueryService`, `BlockService` (in `chain.rs`), `EventService`
//! (in `events.rs`), `BlobService` (in `crate::blobs::service`) and the module query services (`GovQueryService`, `NftQueryService`,
//! `StakingQueryService`, `ParamsService`, each RPC one ABCI query path), with server reflection (v1 and
//! v1alpha), health (NOT_SERVING while catching up or halted), gRPC-web with CORS for browsers, and per-call
//! metrics (`metrics.rs`).
//!
//! Every client is hostile, so every resource a client can hold has a bound ([`ApiLimits`], `[grpc]` in
//! `config.toml`): connections (one past the limit is accepted and closed at once), HTTP/2 streams per
//! connection, requests being served at once (past it: `RESOURCE_EXHAUSTED`, "node busy"), `BroadcastAndWait`
//! calls waiting for a commit, open `BroadcastStream`s, and the time a client may ask to wait (longer asks are
//! capped), open `EventService` subscriptions and the events queued for each. Reads of the store (accounts,
//! status, blocks, txs) run on blocking threads, never on the async workers and never under a lock shared by
//! every request. `lode start` runs consensus on its own runtime, and this API on another whose threads run at
//! a lower CPU priority, so RPC load cannot delay a height.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lode_consensus::{BlockStore, Height};
use lode_state::LodeApp;
use prost::Message;
use tendermint_proto::v0_38::abci::{
    ExecTxResult, RequestInfo, RequestQuery, ResponseCheckTx, ResponseFinalizeBlock,
};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::block_store::RocksBlockStore;
use super::gossip::PeerList;
use super::mempool::{tx_hash, AddError, Mempool};

/// Generated types and services of `lode.node.v1` (built in the client crate, servers included).
pub use lode_client::pb;

use lode_proto::{
    gov::v1 as govpb, market::v1 as mpb, nft::v1 as nftpb, query::v1 as qpb, staking::v1 as stpb,
};
use lode_state::app::query_code;
use pb::{
    account_service_server::AccountServiceServer,
    blob_service_server::BlobServiceServer,
    block_service_server::BlockServiceServer,
    event_service_server::EventServiceServer,
    gov_query_service_server::{GovQueryService, GovQueryServiceServer},
    market_query_service_server::{MarketQueryService, MarketQueryServiceServer},
    nft_query_service_server::{NftQueryService, NftQueryServiceServer},
    params_service_server::{ParamsService, ParamsServiceServer},
    query_service_server::{QueryService, QueryServiceServer},
    staking_query_service_server::{StakingQueryService, StakingQueryServiceServer},
    tx_service_server::{TxService, TxServiceServer},
};

/// How long `BroadcastAndWait` waits when the request names no timeout (capped by
/// [`ApiLimits::max_wait`]).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// The API's bounds; `[grpc]` in `config.toml` sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// Most client connections at once; one more is accepted and closed at once.
    pub max_connections: usize,
    /// Most HTTP/2 streams (calls) one connection may have open at once.
    pub max_concurrent_streams_per_connection: u32,
    /// Most requests being served at once (queries, broadcasts, the CheckTx of a `BroadcastAndWait`); past
    /// it a request fails at once with `RESOURCE_EXHAUSTED`.
    pub max_inflight_requests: usize,
    /// Most `BroadcastAndWait` calls waiting for a commit at once; past it `RESOURCE_EXHAUSTED`.
    pub max_waiting: usize,
    /// Longest wait a client may ask for (`BroadcastAndWait`, a `BroadcastStream` tx); longer asks are capped.
    pub max_wait: Duration,
    /// Most `BroadcastStream`s open at once; past it opening one fails with `RESOURCE_EXHAUSTED`.
    pub max_broadcast_streams: usize,
    /// Most admitted txs one `BroadcastStream` waits on; past it its txs are refused until some commit.
    pub max_stream_pending: usize,
    /// A `BroadcastStream` whose client reads no event for this long, while events are queued for it, is
    /// closed, and what it held is freed. An `EventService` subscription whose queue stays full this long is
    /// ended with `RESOURCE_EXHAUSTED`.
    pub stream_stall_timeout: Duration,
    /// Most `EventService` subscriptions open at once; past it subscribing fails with `RESOURCE_EXHAUSTED`.
    pub max_subscriptions: usize,
    /// Events (one per height) queued for one subscriber before it counts as stalled.
    pub subscription_buffer: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_concurrent_streams_per_connection: 128,
            max_inflight_requests: 256,
            max_waiting: 16_384,
            max_wait: Duration::from_secs(60),
            max_broadcast_streams: 256,
            max_stream_pending: 4096,
            stream_stall_timeout: Duration::from_secs(10),
            max_subscriptions: 256,
            subscription_buffer: 256,
        }
    }
}

/// The counters behind [`ApiLimits`], shared by every clone of [`NodeApi`].
#[derive(Debug)]
pub struct ApiGuards {
    /// The limits.
    pub limits: ApiLimits,
    inflight: Arc<Semaphore>,
    waiting: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    admission: Arc<Semaphore>,
    subscriptions: Arc<Semaphore>,
    /// The task that admits the `BroadcastStream`s' batches together, started by the first one.
    stream_admitter: std::sync::OnceLock<super::stream::Admitter>,
}

/// Client admissions (CheckTx batches) run at once: unary broadcasts, and the `BroadcastStream` admitter's
/// combined batches. CheckTx runs under the mempool's lock, so more in parallel add no throughput, only
/// contention with consensus's reap and commit.
const ADMISSION_PARALLELISM: usize = 2;

impl ApiGuards {
    /// Fresh counters for `limits`.
    pub fn new(limits: ApiLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            inflight: Arc::new(Semaphore::new(limits.max_inflight_requests)),
            waiting: Arc::new(Semaphore::new(limits.max_waiting)),
            streams: Arc::new(Semaphore::new(limits.max_broadcast_streams)),
            admission: Arc::new(Semaphore::new(ADMISSION_PARALLELISM)),
            subscriptions: Arc::new(Semaphore::new(limits.max_subscriptions)),
            stream_admitter: std::sync::OnceLock::new(),
        })
    }

    /// The `BroadcastStream` admitter, started on the current runtime by the first call.
    pub(crate) fn stream_admitter(&self, mempool: &Arc<Mempool>) -> &super::stream::Admitter {
        self.stream_admitter
            .get_or_init(|| super::stream::Admitter::spawn(mempool.clone(), self.admission.clone()))
    }

    /// A slot for one request being served, or `RESOURCE_EXHAUSTED`.
    pub(crate) fn request(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.inflight.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "node busy: {} requests in flight; retry later",
                self.limits.max_inflight_requests
            ))
        })
    }

    /// A slot for one request being served, waiting for one to free up (a `BroadcastStream` admitting a
    /// batch: it stops reading its client meanwhile, which is the backpressure).
    pub(crate) async fn request_or_wait(&self) -> Option<OwnedSemaphorePermit> {
        self.inflight.clone().acquire_owned().await.ok()
    }

    /// One of the few admission slots (waits for it).
    pub(crate) async fn admission(&self) -> Option<OwnedSemaphorePermit> {
        self.admission.clone().acquire_owned().await.ok()
    }

    fn waiter(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.waiting.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "node busy: {} BroadcastAndWait calls already waiting; retry later",
                self.limits.max_waiting
            ))
        })
    }

    /// A slot for one open `BroadcastStream`, held until the stream ends.
    pub(crate) fn stream(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.streams.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{} BroadcastStreams already open; retry later",
                self.limits.max_broadcast_streams
            ))
        })
    }

    /// A slot for one open `EventService` subscription, held until it ends.
    pub(crate) fn subscription(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.subscriptions.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{} subscriptions already open; retry later",
                self.limits.max_subscriptions
            ))
        })
    }

    /// How long to wait for a request naming `timeout_ms` (0: the default), capped at the limit.
    pub fn wait_for(&self, timeout_ms: u32) -> Duration {
        let asked = match timeout_ms {
            0 => DEFAULT_WAIT,
            ms => Duration::from_millis(u64::from(ms)),
        };
        asked.min(self.limits.max_wait)
    }
}

/// A committed block's tx hashes and results (the consensus bridge hands over each new one in memory).
pub use lode_consensus::BlockOutcome;

/// How many decoded blocks [`ResultsCache`] keeps.
const OUTCOME_CACHE: usize = 4;

/// One block's place in [`ResultsCache`]: its outcome once a reader has decoded it. The first reader of a
/// height decodes while holding the slot's own lock; the others wait for it there and take its copy, so a
/// block is read and decoded once however many streams wait on it (before, every stream that asked at the
/// same moment decoded it again: 13% of a loaded four-validator devnet's CPU).
#[derive(Debug)]
pub struct OutcomeSlot {
    height: u64,
    outcome: std::sync::Mutex<Option<Arc<BlockOutcome>>>,
}

/// The last few blocks waiters asked for, oldest first.
pub type ResultsCache = Arc<std::sync::Mutex<std::collections::VecDeque<Arc<OutcomeSlot>>>>;

/// Everything the services read.
#[derive(Debug, Clone)]
pub struct NodeApi {
    /// The application.
    pub app: LodeApp,
    /// The mempool.
    pub mempool: Arc<Mempool>,
    /// The block store (validator sets).
    pub blocks: RocksBlockStore,
    /// The last committed height, as consensus reports it.
    pub decided: watch::Receiver<Height>,
    /// The last committed block's outcome, as consensus hands it over just before `decided` moves (a
    /// receiver whose sender is gone, holding `None`, where nothing hands them over: `block_outcome` then reads
    /// the store).
    pub outcomes: watch::Receiver<Option<Arc<BlockOutcome>>>,
    /// Gossip peers.
    pub peers: PeerList,
    /// Chain id.
    pub chain_id: String,
    /// Node name.
    pub moniker: String,
    /// The last blocks waiters looked at, decoded once for all of them.
    pub results_cache: ResultsCache,
    /// The API's bounds and their counters.
    pub guards: Arc<ApiGuards>,
    /// The node's p2p identity (libp2p peer id of its node key), for `Status`.
    pub node_id: String,
    /// The last committed block's height and time, read once per height for `Status`.
    pub last_block_time: LastBlockTime,
    /// The blob service (`None`: `[blobs] enable = false`, every blob RPC answers `UNAVAILABLE`).
    pub blobs: Option<crate::blobs::service::Blobs>,
}

/// The last committed block's (height, BFT time), cached so `Status` reads the block once per height.
pub type LastBlockTime = Arc<std::sync::Mutex<Option<(u64, prost_types::Timestamp)>>>;

/// `Status` reports `catching_up`, and health `NOT_SERVING`, while the last block is older than this.
pub const CATCHING_UP_AFTER: Duration = Duration::from_secs(30);

/// How often the health service re-reads whether the node is catching up.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// Whether a node whose last block has BFT time `last_block` (`None`: no block yet) is catching up at
/// `now`: it has no block, or its last one is older than [`CATCHING_UP_AFTER`]. A node syncing from its peers
/// executes blocks whose times lie in the past; a node in step with the chain has one from the last few
/// seconds (an idle chain still makes an empty block every `empty_block_interval_ms`, one second by default).
pub fn catching_up(
    last_block: Option<&prost_types::Timestamp>,
    now: std::time::SystemTime,
) -> bool {
    let Some(t) = last_block else { return true };
    let now = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i128::from(now.as_secs()) - i128::from(t.seconds) > i128::from(CATCHING_UP_AFTER.as_secs())
}

/// The web pages a browser may call the API from (CORS), from `[grpc] cors_origins`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No page: browsers' cross-origin calls are refused (no CORS headers are sent).
    #[default]
    None,
    /// Any page (`["*"]`), for devnets and public read-only endpoints.
    Any,
    /// These origins exactly.
    List(Vec<http::HeaderValue>),
}

impl CorsOrigins {
    /// Checks `[grpc] cors_origins`: `*` alone, or origins `http[s]://host[:port]` with nothing after the
    /// authority (a browser's `Origin` header never has a path, so an entry with one could never match).
    pub fn parse(origins: &[String]) -> eyre::Result<Self> {
        if origins.is_empty() {
            return Ok(Self::None);
        }
        if origins.iter().any(|o| o == "*") {
            if origins.len() > 1 {
                eyre::bail!("\"*\" allows every origin and must be the only entry");
            }
            return Ok(Self::Any);
        }
        let mut list = Vec::with_capacity(origins.len());
        for o in origins {
            let uri: http::Uri = o
                .parse()
                .map_err(|e| eyre::eyre!("{o:?} is not an origin: {e}"))?;
            let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
            let bare = uri.path_and_query().is_none_or(|p| p.as_str() == "/") && !o.ends_with('/');
            if !scheme_ok || uri.host().is_none() || !bare {
                eyre::bail!(
                    "{o:?} is not an origin: expected http://host[:port] or https://host[:port]"
                );
            }
            list.push(
                http::HeaderValue::from_str(o)
                    .map_err(|e| eyre::eyre!("{o:?} is not an origin: {e}"))?,
            );
        }
        Ok(Self::List(list))
    }

    /// The CORS layer: preflights answered for gRPC-web calls, and the gRPC status headers exposed to the page.
    fn layer(&self) -> tower_http::cors::CorsLayer {
        use tower_http::cors::{AllowOrigin, CorsLayer};
        let origin = match self {
            Self::None => AllowOrigin::list(Vec::<http::HeaderValue>::new()),
            Self::Any => AllowOrigin::any(),
            Self::List(l) => AllowOrigin::list(l.clone()),
        };
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([http::Method::POST, http::Method::OPTIONS])
            .allow_headers([
                http::header::CONTENT_TYPE,
                http::HeaderName::from_static("x-grpc-web"),
                http::HeaderName::from_static("x-user-agent"),
                http::HeaderName::from_static("grpc-timeout"),
            ])
            .expose_headers([
                http::HeaderName::from_static("grpc-status"),
                http::HeaderName::from_static("grpc-message"),
                http::HeaderName::from_static("grpc-status-details-bin"),
            ])
            .max_age(Duration::from_secs(600))
    }
}

/// The API's `TxResult` from an ABCI result type; CheckTx's and FinalizeBlock's share these fields.
macro_rules! tx_result_from {
    ($(#[$doc:meta])* $name:ident, $t:ty) => {
        $(#[$doc])*
        pub(crate) fn $name(r: &$t) -> pb::TxResult {
            pb::TxResult {
                code: r.code,
                log: r.log.clone(),
                codespace: r.codespace.clone(),
                gas_wanted: r.gas_wanted,
                gas_used: r.gas_used,
            }
        }
    };
}

tx_result_from!(
    /// A CheckTx result as the API reports it.
    check_result,
    ResponseCheckTx
);
tx_result_from!(
    /// A committed tx's result as the API reports it.
    exec_result,
    ExecTxResult
);

pub(crate) fn add_error_status(e: AddError) -> Status {
    match e {
        AddError::Full { .. } | AddError::SenderLimit(_) => {
            Status::resource_exhausted(e.to_string())
        }
        AddError::Duplicate => Status::already_exists(e.to_string()),
        AddError::TooLarge(_) => Status::invalid_argument(e.to_string()),
        AddError::Invalid(_) | AddError::Rejected(_) => Status::invalid_argument(e.to_string()),
        AddError::NotReady => Status::unavailable(e.to_string()),
    }
}

/// The gRPC status of a failed ABCI query: its code picks the status code, and the message keeps the
/// application's code so clients can match on it.
pub fn query_status(code: u32, log: &str) -> Status {
    let msg = format!("code {code}: {log}");
    match code {
        query_code::INVALID_ADDRESS | query_code::INVALID_REQUEST => Status::invalid_argument(msg),
        query_code::NOT_FOUND | query_code::HEIGHT_UNAVAILABLE => Status::not_found(msg),
        query_code::HEIGHT_PRUNED | query_code::PAST_LISTING => Status::failed_precondition(msg),
        query_code::TOO_MANY_KEYS => Status::resource_exhausted(msg),
        query_code::NOT_INITIALIZED => Status::unavailable(msg),
        query_code::UNKNOWN_PATH => Status::unimplemented(msg),
        _ => Status::internal(msg),
    }
}

impl NodeApi {
    /// Serves one module query path: the request encoded as the query data, the response decoded from the
    /// query value. At the last commit, or at the height the request's `x-lode-height` metadata names
    /// (`lode_client::HEIGHT_METADATA`; the answer's height comes back under the same key), with the errors
    /// of `QueryService.Query` (NOT_FOUND above the chain, FAILED_PRECONDITION for a height not held or a
    /// listing at a past height); INVALID_ARGUMENT when the value is not a decimal height.
    async fn module_query<Req, Resp>(
        &self,
        path: &'static str,
        request: Request<Req>,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let _slot = self.guards.request()?;
        let app = self.app.clone();
        let height = match request.metadata().get(lode_client::HEIGHT_METADATA) {
            None => 0,
            Some(v) => v
                .to_str()
                .ok()
                .filter(|s| s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .and_then(|h| i64::try_from(h).ok())
                .ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "{} is not a height",
                        lode_client::HEIGHT_METADATA
                    ))
                })?,
        };
        let data = Bytes::from(request.into_inner().encode_to_vec());
        let resp = tokio::task::spawn_blocking(move || {
            app.query(RequestQuery {
                data,
                path: path.into(),
                height,
                prove: false,
            })
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        if resp.code != 0 {
            return Err(query_status(resp.code, &resp.log));
        }
        let mut answer = Resp::decode(resp.value.as_ref())
            .map(Response::new)
            .map_err(|e| Status::internal(format!("{path} answered undecodable bytes: {e}")))?;
        if let Ok(h) = resp.height.to_string().parse() {
            answer
                .metadata_mut()
                .insert(lode_client::HEIGHT_METADATA, h);
        }
        Ok(answer)
    }

    /// Admits a tx; a CheckTx failure is a normal response with its code, other failures are statuses.
    async fn broadcast(&self, tx: Bytes) -> Result<(pb::TxResult, bool), Status> {
        let mempool = self.mempool.clone();
        let admission = self.guards.admission().await;
        let res = tokio::task::spawn_blocking(move || mempool.add_local(tx))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        drop(admission);
        match res {
            Ok(r) => Ok((check_result(&r), true)),
            Err(AddError::Invalid(r) | AddError::Rejected(r)) => Ok((check_result(&r), false)),
            Err(e) => Err(add_error_status(e)),
        }
    }

    /// A committed block's tx hashes and results. Every waiter of a block asks for the same few, so the
    /// last [`OUTCOME_CACHE`] are kept decoded, each decoded once ([`OutcomeSlot`]).
    /// Blocking (a store read): call it on a blocking thread. The cache's lock is held only to find or add
    /// the height's slot, never across the read and decode, so one slow read holds up only the readers of
    /// the same block, who would otherwise decode it themselves. A failed read is not remembered.
    pub(crate) fn block_outcome(&self, height: u64) -> Result<Arc<BlockOutcome>, Status> {
        let slot = {
            let mut cache = self.results_cache.lock().unwrap_or_else(|e| e.into_inner());
            match cache.iter().find(|s| s.height == height) {
                Some(s) => s.clone(),
                None => {
                    if cache.len() >= OUTCOME_CACHE {
                        cache.pop_front();
                    }
                    let s = Arc::new(OutcomeSlot {
                        height,
                        outcome: std::sync::Mutex::new(None),
                    });
                    cache.push_back(s.clone());
                    s
                }
            }
        };
        let mut decoded = slot.outcome.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = decoded.as_ref() {
            return Ok(o.clone());
        }
        // The block just committed: consensus handed its outcome over, nothing to read or decode.
        let handed = self
            .outcomes
            .borrow()
            .as_ref()
            .filter(|o| o.height == height)
            .cloned();
        if let Some(o) = handed {
            *decoded = Some(o.clone());
            return Ok(o);
        }
        let block = self
            .app
            .store()
            .block(height)
            .map_err(|e| Status::internal(e.to_string()))?
            .ok_or_else(|| Status::internal(format!("block {height} missing")))?;
        let results = ResponseFinalizeBlock::decode(block.results.as_slice())
            .map_err(|e| Status::internal(format!("block {height} results: {e}")))?;
        #[cfg(test)]
        tests::OUTCOME_DECODES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let outcome = Arc::new(BlockOutcome {
            height,
            hashes: block.txs.iter().map(|t| tx_hash(t)).collect(),
            results,
        });
        *decoded = Some(outcome.clone());
        Ok(outcome)
    }

    /// Whether the node is catching up ([`catching_up`]) at its last committed height; a store it cannot
    /// read counts as catching up.
    async fn is_catching_up(&self) -> bool {
        let decided = self.decided.borrow().0;
        let height = self.app.last_commit().map_or(0, |r| r.height).max(decided);
        match self.block_time_blocking(height).await {
            Ok(t) => catching_up(t.as_ref(), std::time::SystemTime::now()),
            Err(_) => true,
        }
    }

    /// The BFT time of the block at `height` (None at height 0 or when it is not stored), read from the
    /// store once per height.
    async fn block_time_blocking(
        &self,
        height: u64,
    ) -> Result<Option<prost_types::Timestamp>, Status> {
        if height == 0 {
            return Ok(None);
        }
        let cached = *self
            .last_block_time
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((h, t)) = cached {
            if h == height {
                return Ok(Some(t));
            }
        }
        let blocks = self.blocks.clone();
        let decided = tokio::task::spawn_blocking(move || blocks.get_decided(Height(height)))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(e.to_string()))?;
        let Some(d) = decided else { return Ok(None) };
        let t = d.block.header().time;
        let ts = prost_types::Timestamp {
            seconds: t.seconds,
            nanos: i32::try_from(t.nanos).unwrap_or(0),
        };
        let mut cache = self
            .last_block_time
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if cache.is_none_or(|(h, _)| h < height) {
            *cache = Some((height, ts));
        }
        Ok(Some(ts))
    }

    /// [`Self::committed_result`] on a blocking thread.
    pub(crate) async fn committed_result_blocking(
        &self,
        hash: [u8; 32],
    ) -> Result<Option<(u64, pb::TxResult)>, Status> {
        let api = self.clone();
        tokio::task::spawn_blocking(move || api.committed_result(&hash))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
    }

    /// The committed result of a tx, if it is committed. Blocking (store reads).
    pub(crate) fn committed_result(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<(u64, pb::TxResult)>, Status> {
        let store = self.app.store();
        let Some((height, index)) = store
            .tx_location(hash)
            .map_err(|e| Status::internal(e.to_string()))?
        else {
            return Ok(None);
        };
        let outcome = self.block_outcome(height)?;
        let r = outcome
            .results
            .tx_results
            .get(index as usize)
            .ok_or_else(|| Status::internal(format!("block {height} has no result {index}")))?;
        Ok(Some((height, exec_result(r))))
    }
}

/// A `BroadcastAndWait` answer: the CheckTx result (none when the tx was found committed without one), and
/// the commit height and result once committed.
fn waited(
    hash: &[u8; 32],
    check: Option<pb::TxResult>,
    committed: Option<(u64, pb::TxResult)>,
) -> Response<pb::BroadcastAndWaitResponse> {
    let (height, result) = committed.map_or((0, None), |(h, r)| (h, Some(r)));
    Response::new(pb::BroadcastAndWaitResponse {
        tx_hash: hash.to_vec(),
        check,
        height,
        result,
    })
}

#[tonic::async_trait]
impl TxService for NodeApi {
    type BroadcastStreamStream = super::stream::EventStream;

    #[instrument(skip_all)]
    async fn simulate(
        &self,
        request: Request<pb::SimulateRequest>,
    ) -> Result<Response<pb::SimulateResponse>, Status> {
        NodeApi::simulate(self, request.into_inner())
            .await
            .map(Response::new)
    }

    #[instrument(skip_all)]
    async fn get_tx(
        &self,
        request: Request<pb::GetTxRequest>,
    ) -> Result<Response<pb::GetTxResponse>, Status> {
        NodeApi::get_tx(self, request.into_inner())
            .await
            .map(Response::new)
    }

    #[instrument(skip_all)]
    async fn broadcast_stream(
        &self,
        request: Request<tonic::Streaming<pb::BroadcastStreamRequest>>,
    ) -> Result<Response<Self::BroadcastStreamStream>, Status> {
        let slot = self.guards.stream()?;
        Ok(Response::new(super::stream::serve(
            self.clone(),
            request.into_inner(),
            slot,
        )))
    }

    #[instrument(skip_all)]
    async fn broadcast(
        &self,
        request: Request<pb::BroadcastRequest>,
    ) -> Result<Response<pb::BroadcastResponse>, Status> {
        let _slot = self.guards.request()?;
        let tx = Bytes::from(request.into_inner().tx);
        let hash = tx_hash(&tx);
        let (check, _) = NodeApi::broadcast(self, tx).await?;
        Ok(Response::new(pb::BroadcastResponse {
            tx_hash: hash.to_vec(),
            check: Some(check),
        }))
    }

    #[instrument(skip_all)]
    async fn broadcast_and_wait(
        &self,
        request: Request<pb::BroadcastAndWaitRequest>,
    ) -> Result<Response<pb::BroadcastAndWaitResponse>, Status> {
        let req = request.into_inner();
        let wait = self.guards.wait_for(req.timeout_ms);
        let tx = Bytes::from(req.tx);
        let hash = tx_hash(&tx);
        let mut decided = self.decided.clone();
        decided.mark_changed();
        let slot = self.guards.request()?;
        // Idempotent: a tx committed already (e.g. broadcast earlier, then waited for) answers at once, and
        // its CheckTx, which would now fail on the used nonce, is not run.
        if let Some(done) = self.committed_result_blocking(hash).await? {
            return Ok(waited(&hash, None, Some(done)));
        }
        let (check, ok) = match NodeApi::broadcast(self, tx).await {
            Ok(r) => r,
            // Already pending (e.g. a retry): wait for it like a fresh one.
            Err(s) if s.code() == tonic::Code::AlreadyExists => (pb::TxResult::default(), true),
            Err(s) => return Err(s),
        };
        if !ok {
            // Committed between the lookup above and CheckTx: report the commit, not the nonce error.
            let done = self.committed_result_blocking(hash).await?;
            let check = if done.is_some() { None } else { Some(check) };
            return Ok(waited(&hash, check, done));
        }
        // Waiting holds a waiter's slot, not a request's: waits are long and cheap, requests short and costly.
        let _waiting = self.guards.waiter()?;
        drop(slot);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(done) = self.committed_result_blocking(hash).await? {
                return Ok(waited(&hash, Some(check), Some(done)));
            }
            match tokio::time::timeout_at(deadline, decided.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Status::unavailable("consensus stopped")),
                Err(_) => {
                    return Err(Status::deadline_exceeded(format!(
                        "tx {} not committed within {} ms",
                        hex::encode(hash),
                        wait.as_millis()
                    )))
                }
            }
        }
    }
}

#[tonic::async_trait]
impl QueryService for NodeApi {
    #[instrument(skip_all)]
    async fn account(
        &self,
        request: Request<pb::AccountRequest>,
    ) -> Result<Response<pb::AccountResponse>, Status> {
        let _slot = self.guards.request()?;
        let address = request.into_inner().address;
        let app = self.app.clone();
        let mempool = self.mempool.clone();
        // The committed account and, for an address the query parsed, the nonce after its pending txs (never
        // below the committed one, should a commit land between the two reads).
        let (resp, pending) = tokio::task::spawn_blocking(move || {
            let pending = address
                .parse::<lode_state::Address>()
                .ok()
                .map(|a| mempool.pending_nonce(&a));
            let resp = app.query(RequestQuery {
                data: Bytes::from(address.into_bytes()),
                path: "/account".into(),
                height: 0,
                prove: false,
            });
            (resp, pending)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        if resp.code != 0 {
            return Err(query_status(resp.code, &resp.log));
        }
        let acct = lode_proto::query::v1::Account::decode(resp.value.as_ref())
            .map_err(|e| Status::internal(e.to_string()))?;
        let pending_nonce = pending
            .transpose()
            .map_err(|e| Status::internal(e.to_string()))?
            .unwrap_or(acct.nonce)
            .max(acct.nonce);
        Ok(Response::new(pb::AccountResponse {
            address: acct.address,
            balance: acct.balance,
            nonce: acct.nonce,
            height: u64::try_from(resp.height).unwrap_or(0),
            pending_nonce,
        }))
    }

    #[instrument(skip_all)]
    async fn query(
        &self,
        request: Request<pb::StateQueryRequest>,
    ) -> Result<Response<pb::StateQueryResponse>, Status> {
        let _slot = self.guards.request()?;
        let r = request.into_inner();
        let height = i64::try_from(r.height).map_err(|_| {
            Status::invalid_argument(format!("height {} is out of range", r.height))
        })?;
        let app = self.app.clone();
        let answer = tokio::task::spawn_blocking(move || {
            app.query_answer(&lode_state::query::QueryRequest {
                path: &r.path,
                data: &r.data,
                height,
                prove: r.prove,
            })
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|(code, log)| query_status(code, &log))?;
        Ok(Response::new(pb::StateQueryResponse {
            value: answer.value,
            height: answer.height,
            app_hash: answer.app_hash.to_vec(),
            proofs: answer
                .proofs
                .into_iter()
                .map(|p| pb::ProvenEntry {
                    key: p.key,
                    exists: p.value.is_some(),
                    value: p.value.unwrap_or_default(),
                    proof: p.proof,
                })
                .collect(),
        }))
    }

    #[instrument(skip_all)]
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let _slot = self.guards.request()?;
        let (app, blocks) = (self.app.clone(), self.blocks.clone());
        let (info, validators) = tokio::task::spawn_blocking(move || {
            let info = app.info(RequestInfo::default());
            let height = u64::try_from(info.last_block_height).unwrap_or(0);
            (info, blocks.get_validators(Height(height + 1)))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        let height = u64::try_from(info.last_block_height).unwrap_or(0);
        let validators = validators
            .ok()
            .flatten()
            .map(|hv| {
                hv.current
                    .validators()
                    .iter()
                    .map(|v| pb::Validator {
                        pub_key: v.public_key.0.to_vec(),
                        power: v.voting_power,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (txs, bytes) = self.mempool.size();
        let latest_block_time = self.block_time_blocking(height).await?;
        let catching_up = catching_up(latest_block_time.as_ref(), std::time::SystemTime::now());
        Ok(Response::new(pb::StatusResponse {
            version: env!("CARGO_PKG_VERSION").into(),
            catching_up,
            latest_block_time,
            node_id: self.node_id.clone(),
            chain_id: self.chain_id.clone(),
            moniker: self.moniker.clone(),
            latest_height: height,
            app_hash: info.last_block_app_hash.to_vec(),
            validators,
            peers: self.peers.read().unwrap_or_else(|e| e.into_inner()).clone(),
            mempool_txs: txs as u64,
            mempool_bytes: bytes,
        }))
    }
}

/// Implements a module query service: each listed RPC serves its ABCI query path.
macro_rules! module_queries {
    ($service:ident { $($rpc:ident($req:ty) -> $resp:ty = $path:literal;)* }) => {
        #[tonic::async_trait]
        impl $service for NodeApi {
            $(
                #[instrument(skip_all)]
                async fn $rpc(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    self.module_query($path, request).await
                }
            )*
        }
    };
}

module_queries!(GovQueryService {
    proposals(govpb::ProposalsRequest) -> govpb::ProposalsResponse = "/gov/proposals";
    proposal(govpb::ProposalRequest) -> govpb::ProposalResponse = "/gov/proposal";
    votes(govpb::VotesRequest) -> govpb::VotesResponse = "/gov/votes";
    deposits(govpb::DepositsRequest) -> govpb::DepositsResponse = "/gov/deposits";
    treasury(govpb::TreasuryRequest) -> govpb::TreasuryResponse = "/gov/treasury";
});

module_queries!(NftQueryService {
    collections(nftpb::CollectionsRequest) -> nftpb::CollectionsResponse = "/nft/collections";
    collection(nftpb::CollectionRequest) -> nftpb::CollectionResponse = "/nft/collection";
    tokens_by_owner(nftpb::TokensByOwnerRequest) -> nftpb::TokensByOwnerResponse = "/nft/tokens_by_owner";
    token(nftpb::TokenRequest) -> nftpb::TokenResponse = "/nft/token";
    listings(nftpb::ListingsRequest) -> nftpb::ListingsResponse = "/nft/listings";
});

module_queries!(MarketQueryService {
    providers(mpb::ProvidersRequest) -> mpb::ProvidersResponse = "/market/providers";
    provider(mpb::ProviderRequest) -> mpb::ProviderResponse = "/market/provider";
    jobs(mpb::JobsRequest) -> mpb::JobsResponse = "/market/jobs";
    job(mpb::JobRequest) -> mpb::JobResponse = "/market/job";
    stats(mpb::StatsRequest) -> mpb::StatsResponse = "/market/stats";
});

module_queries!(StakingQueryService {
    validators(stpb::ValidatorsRequest) -> stpb::ValidatorsResponse = "/staking/validators";
    delegations(stpb::DelegationsRequest) -> stpb::DelegationsResponse = "/staking/delegations";
    power(stpb::PowerRequest) -> stpb::PowerResponse = "/staking/power";
    link(stpb::LinkRequest) -> stpb::LinkResponse = "/staking/link";
    signing_info(stpb::SigningInfoRequest) -> stpb::SigningInfoResponse = "/staking/signing_info";
    double_sign(stpb::DoubleSignRequest) -> stpb::DoubleSignResponse = "/evidence/double_sign";
});

module_queries!(ParamsService {
    params(qpb::ParamsRequest) -> qpb::ParamsResponse = "/params";
});

/// Every service the server hosts, by its gRPC name, and `""` (the server as a whole), as health reports them.
const SERVICE_NAMES: [&str; 12] = [
    "",
    <AccountServiceServer<NodeApi> as tonic::server::NamedService>::NAME,
    <TxServiceServer<NodeApi> as tonic::server::NamedService>::NAME,
    <QueryServiceServer<NodeApi> as tonic::server::NamedService>::NAME,
    <GovQueryServiceServer<NodeApi> as tonic::server::NamedService>::NAME,
    <NftQueryServiceServer<NodeApi> as tonic::server::NamedService>::NAME,
    <MarketQueryServiceServer<NodeApi> as tonic::server::NamedService>::NAME,
    <StakingQueryServiceServer<NodeApi> as tonic::server::NamedService>::NAME,
    <ParamsServiceServer<NodeApi> as tonic::server::NamedService>::NAME,
    <BlockServiceServer<NodeApi> as tonic::server::NamedService>::NAME,
    <EventServiceServer<NodeApi> as tonic::server::NamedService>::NAME,
    <BlobServiceServer<NodeApi> as tonic::server::NamedService>::NAME,
];

/// Serves the API on `listen` until `shutdown` completes, over HTTP/2 (gRPC) and HTTP/1.1 (gRPC-web, with
/// `cors` deciding which web pages may call it), and the explorer's page when `explorer` is enabled. Health reports every service, and the server as a whole,
/// `NOT_SERVING` while the node catches up ([`catching_up`], re-read at each new height and every
/// [`HEALTH_INTERVAL`]) and for good once `halted` completes (consensus halted on a divergence or a block it
/// could not execute).
pub async fn serve(
    api: NodeApi,
    listener: tokio::net::TcpListener,
    cors: CorsOrigins,
    explorer: super::explorer::ExplorerLayer,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    halted: impl std::future::Future<Output = ()> + Send + 'static,
) -> eyre::Result<()> {
    // Reflection as both `grpc.reflection.v1` and `v1alpha`: many clients (Python's grpcio-reflection,
    // Postman, older grpcurl) speak only the latter.
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let (health_reporter, health) = tonic_health::server::health_reporter();
    // Health follows the node: SERVING while it is in step with the chain, NOT_SERVING while it catches up
    // (checked every `HEALTH_INTERVAL`), and NOT_SERVING for good once consensus halted.
    let set_all = |reporter: tonic_health::server::HealthReporter, status| async move {
        for name in SERVICE_NAMES {
            reporter.set_service_status(name, status).await;
        }
    };
    let serving = |up: bool| {
        if up {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        }
    };
    let mut up = !api.is_catching_up().await;
    set_all(health_reporter.clone(), serving(up)).await;
    {
        let (reporter, api) = (health_reporter.clone(), api.clone());
        let mut decided = api.decided.clone();
        tokio::spawn(async move {
            let mut halted = std::pin::pin!(halted);
            let mut tick = tokio::time::interval(HEALTH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut decided_open = true;
            loop {
                tokio::select! {
                    _ = &mut halted => {
                        set_all(reporter, tonic_health::ServingStatus::NotServing).await;
                        return;
                    }
                    // A new height, or a second gone by (a last block only grows older).
                    changed = decided.changed(), if decided_open => decided_open = changed.is_ok(),
                    _ = tick.tick() => {}
                }
                let now_up = !api.is_catching_up().await;
                if now_up != up {
                    up = now_up;
                    set_all(reporter.clone(), serving(up)).await;
                }
            }
        });
    }
    let limits = api.guards.limits;
    let incoming = limited_incoming(listener, limits.max_connections);
    // HTTP/1.1 as well as HTTP/2, for gRPC-web: browsers (and any client) may call every service that way.
    tonic::transport::Server::builder()
        .accept_http1(true)
        .max_concurrent_streams(limits.max_concurrent_streams_per_connection)
        .layer(cors.layer())
        // The explorer's page (GET only) in front of the API, outside the request metrics.
        .layer(explorer)
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(super::metrics::GrpcMetricsLayer)
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(TxServiceServer::new(api.clone()))
        .add_service(QueryServiceServer::new(api.clone()))
        .add_service(GovQueryServiceServer::new(api.clone()))
        .add_service(NftQueryServiceServer::new(api.clone()))
        .add_service(MarketQueryServiceServer::new(api.clone()))
        .add_service(StakingQueryServiceServer::new(api.clone()))
        .add_service(AccountServiceServer::new(api.clone()))
        .add_service(BlockServiceServer::new(api.clone()))
        .add_service(EventServiceServer::new(api.clone()))
        .add_service(
            BlobServiceServer::new(api.clone())
                .max_decoding_message_size(crate::blobs::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(crate::blobs::MAX_MESSAGE_BYTES),
        )
        .add_service(ParamsServiceServer::new(api))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// A client connection holding one of the server's connection slots until it closes.
#[derive(Debug)]
pub struct LimitedConnection {
    io: tokio::net::TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl tonic::transport::server::Connected for LimitedConnection {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl tokio::io::AsyncRead for LimitedConnection {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for LimitedConnection {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Accepted connections, at most `max` open at once: one past the limit is closed as soon as it is accepted
/// (the client fails fast instead of waiting in the backlog). Accept errors (a peer that reset, no file
/// descriptors left) are logged and retried after a short pause.
fn limited_incoming(
    listener: tokio::net::TcpListener,
    max: usize,
) -> impl futures::Stream<Item = Result<LimitedConnection, std::io::Error>> {
    let slots = Arc::new(Semaphore::new(max));
    futures::stream::unfold((listener, slots), move |(listener, slots)| async move {
        loop {
            match listener.accept().await {
                Ok((io, peer)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, limit = max, "grpc connection limit reached; closing the new connection");
                        drop(io);
                        continue;
                    };
                    let _ = io.set_nodelay(true);
                    let conn = LimitedConnection { io, _slot: slot };
                    return Some((Ok(conn), (listener, slots)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "grpc accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
}

/// Binds the gRPC listener (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> eyre::Result<tokio::net::TcpListener> {
    Ok(tokio::net::TcpListener::bind(addr).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An API over `app` and `blocks` whose last decided height is `decided`, with a one-tx mempool.
    fn test_api(app: LodeApp, blocks: RocksBlockStore, decided: Height) -> NodeApi {
        NodeApi {
            mempool: Arc::new(Mempool::new(
                app.clone(),
                crate::services::mempool::MempoolLimits {
                    max_txs: 1,
                    max_bytes: 1 << 10,
                    max_tx_bytes: 1 << 10,
                    max_txs_per_sender: 1,
                },
            )),
            blocks,
            app,
            decided: watch::channel(decided).1,
            outcomes: watch::channel(None).1,
            peers: Default::default(),
            chain_id: "c".into(),
            moniker: "m".into(),
            results_cache: Default::default(),
            guards: ApiGuards::new(ApiLimits::default()),
            node_id: "node".into(),
            last_block_time: Default::default(),
            blobs: None,
        }
    }

    /// Blocks [`NodeApi::block_outcome`] decoded, in this test process.
    pub(super) static OUTCOME_DECODES: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(0);

    #[test]
    fn a_block_is_decoded_once_however_many_streams_ask_and_not_at_all_when_consensus_hands_it_over(
    ) {
        use ed25519_consensus::SigningKey;
        use tendermint_proto::v0_38::abci::RequestFinalizeBlock;
        let dir = tempfile::tempdir().expect("tempdir");
        let sender = SigningKey::from([7u8; 32]);
        let app = crate::services::test_support::initialised_app(dir.path(), &[&sender]);
        // A block of 2,000 transfers: decoding its results takes long enough that readers overlap.
        let to = lode_state::tx::address_of(&SigningKey::from([8u8; 32]));
        let txs = (0..2_000)
            .map(|n| Bytes::from(lode_state::tx::sign_send("c", &sender, n, 10_000, &to, 1)))
            .collect();
        let fin = app
            .try_finalize_block(RequestFinalizeBlock {
                height: 1,
                txs,
                ..Default::default()
            })
            .expect("finalize");
        assert!(
            fin.tx_results.iter().all(|r| r.code == 0),
            "a transfer failed"
        );
        app.try_commit().expect("commit");
        let api = test_api(app.clone(), RocksBlockStore::new(app), Height(1));
        // Sixteen streams see block 1 committed at the same moment and all ask for its results.
        let readers = 16;
        let start = std::sync::Barrier::new(readers);
        let before = OUTCOME_DECODES.load(std::sync::atomic::Ordering::Relaxed);
        let outcomes: Vec<Arc<BlockOutcome>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..readers)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        api.block_outcome(1).expect("outcome")
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("reader"))
                .collect()
        });
        // Only this test decodes blocks in this process (the other tests here commit none).
        let decodes = OUTCOME_DECODES.load(std::sync::atomic::Ordering::Relaxed) - before;
        assert_eq!(
            decodes, 1,
            "block 1 decoded {decodes} times for {readers} readers"
        );
        assert!(outcomes
            .iter()
            .all(|o| Arc::ptr_eq(o, &outcomes[0]) && o.height == 1));
        // An unknown height is an error each time, and is not remembered as an outcome.
        assert!(api.block_outcome(7).is_err());
        assert!(api.block_outcome(7).is_err());

        // What the store gives back is what FinalizeBlock returned, so an outcome consensus hands over in
        // memory (below) is the same one a reader that falls back to the store decodes.
        assert_eq!(
            outcomes[0].results, fin,
            "the stored results differ from FinalizeBlock's"
        );
        // Consensus handed block 1's outcome over: it is served as is, nothing read or decoded.
        let handed = Arc::new(BlockOutcome {
            height: 1,
            hashes: outcomes[0].hashes.clone(),
            results: fin.clone(),
        });
        let (outcomes_tx, outcomes_rx) = watch::channel(Some(handed.clone()));
        let api = NodeApi {
            outcomes: outcomes_rx,
            results_cache: Default::default(),
            ..api
        };
        let before = OUTCOME_DECODES.load(std::sync::atomic::Ordering::Relaxed);
        assert!(Arc::ptr_eq(
            &api.block_outcome(1).expect("outcome"),
            &handed
        ));
        // Once consensus has moved on, the height is still answered from the cache, not decoded again.
        outcomes_tx.send_replace(None);
        assert!(Arc::ptr_eq(
            &api.block_outcome(1).expect("outcome"),
            &handed
        ));
        assert_eq!(
            OUTCOME_DECODES.load(std::sync::atomic::Ordering::Relaxed),
            before
        );
        // A handed-over outcome of another height is not taken for this one.
        assert!(api.block_outcome(7).is_err());
    }

    /// Serves an API over a store whose last decided block (height 1) has BFT time `block_time` (none: no
    /// block yet), halts consensus when `halt_now`, and returns what health says about `QueryService`.
    async fn health_after(block_time: Option<std::time::SystemTime>, halt_now: bool) -> i32 {
        use lode_consensus::{Block, BlockHeader, BlockTime, DecidedBlock};
        use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
        let dir = tempfile::tempdir().expect("tempdir");
        let app = LodeApp::open(dir.path()).expect("open");
        let blocks = RocksBlockStore::new(app.clone());
        let mut decided = Height(0);
        if let Some(t) = block_time {
            let since = t.duration_since(std::time::UNIX_EPOCH).expect("time");
            let block = Block::new(
                BlockHeader {
                    chain_id: "c".into(),
                    height: Height(1),
                    time: BlockTime {
                        seconds: i64::try_from(since.as_secs()).expect("secs"),
                        nanos: since.subsec_nanos(),
                    },
                    proposer: lode_consensus::Address([1; 20]),
                    last_block_id: None,
                    tx_root: lode_consensus::types::tx_root(&[]),
                    app_hash: Bytes::new(),
                    last_commit_hash: None,
                },
                Vec::new(),
            );
            let certificate = malachitebft_core_types::CommitCertificate {
                height: Height(1),
                round: malachitebft_core_types::Round::new(0),
                value_id: block.id(),
                commit_signatures: Vec::new(),
            };
            blocks
                .put_decided(&DecidedBlock { block, certificate })
                .expect("put");
            decided = Height(1);
        }
        let api = test_api(app, blocks, decided);
        let listener = bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (halt, halted) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            api,
            listener,
            CorsOrigins::None,
            crate::services::explorer::ExplorerLayer { enabled: true },
            async move {
                let _ = stopped.await;
            },
            async move {
                let _ = halted.await;
            },
        ));
        if halt_now {
            let _ = halt.send(());
        }
        let mut status = 0;
        for _ in 0..100 {
            let channel = tonic::transport::Channel::from_shared(url.clone()).expect("url");
            if let Ok(mut c) = channel.connect().await.map(HealthClient::new) {
                if let Ok(r) = c
                    .check(HealthCheckRequest {
                        service: <QueryServiceServer<NodeApi> as tonic::server::NamedService>::NAME
                            .into(),
                    })
                    .await
                {
                    status = r.into_inner().status;
                    if !halt_now
                        || status
                            == tonic_health::pb::health_check_response::ServingStatus::NotServing
                                as i32
                    {
                        break;
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _ = stop.send(());
        let _ = server.await;
        status
    }

    #[tokio::test]
    async fn health_is_serving_only_when_in_step_with_the_chain_and_not_halted() {
        use tonic_health::pb::health_check_response::ServingStatus;
        let now = std::time::SystemTime::now();
        let old = now - CATCHING_UP_AFTER - Duration::from_secs(5);
        assert_eq!(
            health_after(Some(now), false).await,
            ServingStatus::Serving as i32
        );
        assert_eq!(
            health_after(Some(now), true).await,
            ServingStatus::NotServing as i32,
            "a halted node serves stale state"
        );
        assert_eq!(
            health_after(Some(old), false).await,
            ServingStatus::NotServing as i32,
            "a node whose last block is old is catching up"
        );
        assert_eq!(
            health_after(None, false).await,
            ServingStatus::NotServing as i32,
            "a node without a block is catching up"
        );
    }

    #[test]
    fn a_node_is_catching_up_without_a_block_or_with_an_old_one() {
        let now = std::time::SystemTime::now();
        let at = |ago: Duration| {
            let t = (now - ago)
                .duration_since(std::time::UNIX_EPOCH)
                .expect("time");
            prost_types::Timestamp {
                seconds: i64::try_from(t.as_secs()).expect("secs"),
                nanos: 0,
            }
        };
        assert!(catching_up(None, now));
        assert!(!catching_up(Some(&at(Duration::from_secs(2))), now));
        assert!(!catching_up(Some(&at(CATCHING_UP_AFTER)), now));
        assert!(catching_up(
            Some(&at(CATCHING_UP_AFTER + Duration::from_secs(2))),
            now
        ));
        // A block from the future (clock skew) is not "catching up".
        assert!(!catching_up(
            Some(&at(Duration::ZERO)),
            now - Duration::from_secs(60)
        ));
    }

    #[test]
    fn cors_origins_are_star_alone_or_bare_http_origins() {
        assert_eq!(CorsOrigins::parse(&[]).ok(), Some(CorsOrigins::None));
        assert_eq!(
            CorsOrigins::parse(&["*".into()]).ok(),
            Some(CorsOrigins::Any)
        );
        let ok = CorsOrigins::parse(&[
            "http://localhost:5173".into(),
            "https://explorer.example.org".into(),
        ])
        .expect("origins");
        assert!(matches!(ok, CorsOrigins::List(l) if l.len() == 2));
        for bad in [
            vec!["*".to_string(), "http://a.org".into()],
            vec!["a.org".into()],
            vec!["ftp://a.org".into()],
            vec!["http://a.org/".into()],
            vec!["http://a.org/path".into()],
            vec!["http://a.org?x=1".into()],
            vec!["http://".into()],
            vec!["".into()],
            vec!["http://a.org\n".into()],
        ] {
            assert!(CorsOrigins::parse(&bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn query_codes_map_to_stable_grpc_codes() {
        use tonic::Code;
        for (code, want) in [
            (query_code::INVALID_ADDRESS, Code::InvalidArgument),
            (query_code::INVALID_REQUEST, Code::InvalidArgument),
            (query_code::NOT_FOUND, Code::NotFound),
            (query_code::HEIGHT_UNAVAILABLE, Code::NotFound),
            (query_code::HEIGHT_PRUNED, Code::FailedPrecondition),
            (query_code::PAST_LISTING, Code::FailedPrecondition),
            (query_code::TOO_MANY_KEYS, Code::ResourceExhausted),
            (query_code::NOT_INITIALIZED, Code::Unavailable),
            (query_code::UNKNOWN_PATH, Code::Unimplemented),
            (query_code::INTERNAL, Code::Internal),
        ] {
            let s = query_status(code, "why");
            assert_eq!(s.code(), want, "query code {code}");
            assert_eq!(s.message(), format!("code {code}: why"));
        }
    }

    #[test]
    fn a_clients_wait_is_capped_and_zero_means_the_default() {
        let g = ApiGuards::new(ApiLimits::default());
        assert_eq!(g.wait_for(0), DEFAULT_WAIT);
        assert_eq!(g.wait_for(1_500), Duration::from_millis(1_500));
        // 49 days asked, the cap given.
        assert_eq!(g.wait_for(u32::MAX), ApiLimits::default().max_wait);
        let tight = ApiGuards::new(ApiLimits {
            max_wait: Duration::from_secs(5),
            ..ApiLimits::default()
        });
        assert_eq!(tight.wait_for(0), Duration::from_secs(5));
    }

    #[test]
    fn requests_waiters_and_streams_past_their_limits_are_refused_until_one_ends() {
        let g = ApiGuards::new(ApiLimits {
            max_inflight_requests: 2,
            max_waiting: 1,
            max_broadcast_streams: 1,
            max_subscriptions: 1,
            ..ApiLimits::default()
        });
        let held = [g.request().expect("1"), g.request().expect("2")];
        let busy = g.request().expect_err("a third request");
        assert_eq!(busy.code(), tonic::Code::ResourceExhausted);
        assert!(busy.message().contains("node busy"), "{busy:?}");
        drop(held);
        drop(g.request().expect("a slot came back"));
        let w = g.waiter().expect("a waiter");
        assert_eq!(
            g.waiter().map(drop).map_err(|s| s.code()),
            Err(tonic::Code::ResourceExhausted)
        );
        drop(w);
        drop(g.waiter().expect("the waiter slot came back"));
        let s = g.stream().expect("a stream");
        assert_eq!(
            g.stream().map(drop).map_err(|s| s.code()),
            Err(tonic::Code::ResourceExhausted)
        );
        drop(s);
        drop(g.stream().expect("the stream slot came back"));
        let sub = g.subscription().expect("a subscription");
        assert_eq!(
            g.subscription().map(drop).map_err(|s| s.code()),
            Err(tonic::Code::ResourceExhausted)
        );
        drop(sub);
        drop(g.subscription().expect("the subscription slot came back"));
    }

    #[test]
    fn mempool_errors_map_to_stable_grpc_codes() {
        let full = add_error_status(AddError::Full { txs: 1, bytes: 2 });
        assert_eq!(full.code(), tonic::Code::ResourceExhausted);
        assert!(full.message().contains("mempool full"));
        assert_eq!(
            add_error_status(AddError::Duplicate).code(),
            tonic::Code::AlreadyExists
        );
        assert_eq!(
            add_error_status(AddError::TooLarge(9)).code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            add_error_status(AddError::SenderLimit(9)).code(),
            tonic::Code::ResourceExhausted
        );
        assert_eq!(
            add_error_status(AddError::NotReady).code(),
            tonic::Code::Unavailable
        );
    }
}
