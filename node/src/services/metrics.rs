//! Prometheus metrics: the node's own (`lode_…`) next to Malachite's (`malachitebft_…`: height, round, block
//! time, peers), in Malachite's process-wide registry, served as Prometheus text on `GET /metrics` at
//! `[metrics] listen`.
//!
//! The node's metrics ([`NodeMetrics`]) are recorded where the work happens: FinalizeBlock in the in-process
//! driver (latency, block interval by BFT time, txs and bytes per block), CheckTx in the mempool, gRPC calls in
//! a tower layer around the API ([`GrpcMetricsLayer`]). Gauges that mirror a state (height, mempool size) are
//! set when scraped.
//!
//! The HTTP server is deliberately small (one request per connection, `GET /metrics` only): every client is
//! hostile, so connections are bounded ([`MAX_CONNECTIONS`]; more are closed at once), a request head is read
//! up to [`MAX_REQUEST_BYTES`] within [`REQUEST_TIMEOUT`], and anything else gets a 4xx.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use malachitebft_app_channel::app::metrics::{
    self as mm,
    prometheus::metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    SharedRegistry,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// Labels of `lode_grpc_requests_total`: the method's path and the status code's name.
type GrpcLabels = Vec<(&'static str, String)>;
/// Labels of `lode_events_total`: the event type.
type EventLabels = Vec<(&'static str, String)>;
/// Labels of `lode_gossip_dropped_total`: the reason.
type ReasonLabels = Vec<(&'static str, &'static str)>;
/// Labels of `lode_jobs`: the job state.
type StateLabels = Vec<(&'static str, &'static str)>;

/// The job states `lode_jobs` reports: those a job leaves again (open through settled, its held-back share
/// waiting for the fraud window), so their counts stay bounded by the market's live work. Jobs that ended
/// (final, refunded, cancelled, fraud proven, withheld) only grow; `lode_events_total` counts them as rates.
const LIVE_JOB_STATES: [lode_state::modules::market::JobStatus; 6] = {
    use lode_state::modules::market::JobStatus as S;
    [
        S::Open,
        S::Matched,
        S::Accepted,
        S::Committed,
        S::Revealing,
        S::Settled,
    ]
};

/// Most distinct event types counted; later ones are counted as `other`. Event types come from the
/// modules' code, not from clients, so this is a guard, never reached by today's modules.
const MAX_EVENT_TYPES: usize = 256;

/// The node's metrics.
#[derive(Debug)]
pub struct NodeMetrics {
    /// `lode_height`: the last committed height.
    pub height: Gauge,
    /// `lode_block_interval_seconds`: BFT time between consecutive blocks.
    pub block_interval_seconds: Histogram,
    /// `lode_block_txs`: txs per block.
    pub block_txs: Histogram,
    /// `lode_block_bytes`: tx bytes per block.
    pub block_bytes: Histogram,
    /// `lode_mempool_txs`: txs in the mempool.
    pub mempool_txs: Gauge,
    /// `lode_mempool_bytes`: bytes in the mempool.
    pub mempool_bytes: Gauge,
    /// `lode_check_tx_seconds`: CheckTx latency (one tx, mempool admission included).
    pub check_tx_seconds: Histogram,
    /// `lode_finalize_block_seconds`: FinalizeBlock latency (execution and the app hash of one block).
    pub finalize_block_seconds: Histogram,
    /// `lode_block_verification_seconds`: what verifying the reveals of one block cost this node (each
    /// verdict the block used, at the time it took to compute, whenever it was computed); observed for
    /// blocks with reveals only, so `_count` is the number of such blocks and `_sum` the total time.
    pub block_verification_seconds: Histogram,
    /// `lode_grpc_requests_total{method, code}`: gRPC calls answered, by method and status.
    pub grpc_requests: Family<GrpcLabels, Counter>,
    /// `lode_events_total{type}`: events of committed blocks by type (`market_job_posted`,
    /// `market_job_matched`, `market_job_settled`, `market_job_failed`, `compute_fraud_proven`,
    /// `market_provider_slashed`, …): the marketplace's flows (jobs posted, matched, settled, failed) as rates.
    pub events: Family<EventLabels, Counter>,
    /// `lode_gossip_dropped_total{reason}`: gossiped tx batches or txs dropped unrelayed: `malformed`
    /// (batch does not decode or is too long), `peer_backlog` (the peer has too many batches waiting),
    /// `queue_full` (CheckTx queue full), `invalid_tx` (a tx invalid in itself: undecodable, failing a
    /// stateless check, badly signed, too large), `refused_tx` (a tx CheckTx refused against this node's
    /// state, most often one committed before it arrived), `not_ready` (a tx that came before this node's
    /// InitChain); duplicates are not counted.
    pub gossip_dropped: Family<ReasonLabels, Counter>,
    /// `lode_txs_fetch_asked_total`: txs this node asked its peers for because a proposal named them by hash
    /// and its mempool lacked them (a proposer names only txs its peers most likely hold: a steady rate
    /// here means gossip is slower than the proposer assumes).
    pub txs_fetch_asked: Counter,
    /// `lode_txs_fetched_total`: of those, the txs peers sent that hashed to a name asked for.
    pub txs_fetched: Counter,
    /// `lode_txs_served_total`: txs this node sent to peers that asked for them.
    pub txs_served: Counter,
    /// `lode_jobs{state}`: jobs in each live state (`open`, `matched`, `accepted`, `committed`, `revealing`,
    /// `settled`) at the last commit, counted from the market's status index when `/metrics` is read.
    pub jobs: Family<StateLabels, Gauge>,
    /// Event types seen so far (bounded by [`MAX_EVENT_TYPES`]).
    event_types: Mutex<std::collections::HashSet<String>>,
    /// BFT time (Unix nanoseconds) of the last finalized block, for the interval.
    last_block_time: Mutex<Option<i128>>,
}

/// The node's metrics, registered in Malachite's global registry on first use.
pub fn metrics() -> &'static NodeMetrics {
    static METRICS: OnceLock<NodeMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let m = NodeMetrics {
            height: Gauge::default(),
            // 10 ms .. ~82 s.
            block_interval_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            // 1 .. 65,536 txs.
            block_txs: Histogram::new(exponential_buckets(1.0, 4.0, 9)),
            // 256 B .. 64 MiB.
            block_bytes: Histogram::new(exponential_buckets(256.0, 4.0, 10)),
            mempool_txs: Gauge::default(),
            mempool_bytes: Gauge::default(),
            // 10 µs .. ~0.3 s.
            check_tx_seconds: Histogram::new(exponential_buckets(0.000_01, 2.0, 15)),
            // 100 µs .. ~3 s.
            finalize_block_seconds: Histogram::new(exponential_buckets(0.000_1, 2.0, 15)),
            // 10 µs .. ~5 s.
            block_verification_seconds: Histogram::new(exponential_buckets(0.000_01, 2.0, 20)),
            grpc_requests: Family::default(),
            events: Family::default(),
            gossip_dropped: Family::default(),
            txs_fetch_asked: Counter::default(),
            txs_fetched: Counter::default(),
            txs_served: Counter::default(),
            jobs: Family::default(),
            event_types: Mutex::new(std::collections::HashSet::new()),
            last_block_time: Mutex::new(None),
        };
        SharedRegistry::global().with_prefix("lode", |r| {
            r.register("height", "Last committed height", m.height.clone());
            r.register(
                "block_interval_seconds",
                "BFT time between consecutive blocks",
                m.block_interval_seconds.clone(),
            );
            r.register("block_txs", "Transactions per block", m.block_txs.clone());
            r.register(
                "block_bytes",
                "Transaction bytes per block",
                m.block_bytes.clone(),
            );
            r.register(
                "mempool_txs",
                "Transactions in the mempool",
                m.mempool_txs.clone(),
            );
            r.register(
                "mempool_bytes",
                "Bytes in the mempool",
                m.mempool_bytes.clone(),
            );
            r.register(
                "check_tx_seconds",
                "CheckTx latency, mempool admission included",
                m.check_tx_seconds.clone(),
            );
            r.register(
                "finalize_block_seconds",
                "FinalizeBlock latency: a block's execution and app hash",
                m.finalize_block_seconds.clone(),
            );
            r.register(
                "block_verification_seconds",
                "Verification time of the reveals in one block (blocks with reveals only)",
                m.block_verification_seconds.clone(),
            );
            // prometheus-client appends `_total` to a counter's name.
            r.register(
                "grpc_requests",
                "gRPC calls answered, by method and status code",
                m.grpc_requests.clone(),
            );
            r.register(
                "events",
                "Events of committed blocks by type (the marketplace's and every module's flows)",
                m.events.clone(),
            );
            r.register(
                "gossip_dropped",
                "Gossiped tx batches or txs dropped unrelayed, by reason",
                m.gossip_dropped.clone(),
            );
            r.register(
                "txs_fetch_asked",
                "Txs asked of peers because a proposal named them and the mempool lacked them",
                m.txs_fetch_asked.clone(),
            );
            r.register(
                "txs_fetched",
                "Txs peers sent for a proposal that named them",
                m.txs_fetched.clone(),
            );
            r.register(
                "txs_served",
                "Txs sent to peers that asked for them",
                m.txs_served.clone(),
            );
            r.register(
                "jobs",
                "Jobs in each live state at the last commit",
                m.jobs.clone(),
            );
        });
        m
    })
}

impl NodeMetrics {
    /// Records a finalized block: its FinalizeBlock latency, tx count and bytes, and the BFT time since the
    /// previous one.
    /// `verification` is what verifying its reveals cost ([`lode_state::LodeApp::last_block_verification`]);
    /// zero for a block without reveals, which is not observed.
    pub fn finalized(
        &self,
        latency: Duration,
        verification: Duration,
        txs: usize,
        bytes: u64,
        time_nanos: Option<i128>,
    ) {
        self.finalize_block_seconds.observe(latency.as_secs_f64());
        if !verification.is_zero() {
            self.block_verification_seconds
                .observe(verification.as_secs_f64());
        }
        self.block_txs.observe(txs as f64);
        self.block_bytes.observe(bytes as f64);
        if let Some(t) = time_nanos {
            let mut last = self
                .last_block_time
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(prev) = *last {
                if t > prev {
                    self.block_interval_seconds
                        .observe((t - prev) as f64 / 1_000_000_000.0);
                }
            }
            *last = Some(t);
        }
    }
}

impl NodeMetrics {
    /// Counts the events of a finalized block (block-level and every tx's) by type: tallied per block
    /// first, so the labelled counters are touched once per distinct type, not once per event.
    pub fn block_events<'a>(&self, types: impl Iterator<Item = &'a str>) {
        let mut tally: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
        for t in types {
            *tally.entry(t).or_default() += 1;
        }
        if tally.is_empty() {
            return;
        }
        let mut seen = self.event_types.lock().unwrap_or_else(|e| e.into_inner());
        for (t, n) in tally {
            let label = if seen.contains(t) {
                t.to_owned()
            } else if seen.len() < MAX_EVENT_TYPES {
                seen.insert(t.to_owned());
                t.to_owned()
            } else {
                "other".to_owned()
            };
            self.events.get_or_create(&vec![("type", label)]).inc_by(n);
        }
    }

    /// Sets `lode_jobs{state}` from the market's status index in `state` (one key-range count per live
    /// state; a state whose count fails to read keeps its last value).
    pub fn count_jobs(&self, state: &dyn lode_state::store::StateRead) {
        for st in LIVE_JOB_STATES {
            let prefix = lode_state::modules::market::state_key::by_status_of(st as u8);
            if let Ok(entries) = state.scan_prefix(&prefix) {
                self.jobs
                    .get_or_create(&vec![("state", st.as_str())])
                    .set(i64::try_from(entries.len()).unwrap_or(i64::MAX));
            }
        }
    }

    /// Counts `n` gossip drops for `reason`.
    pub fn gossip_dropped(&self, reason: &'static str, n: u64) {
        self.gossip_dropped
            .get_or_create(&vec![("reason", reason)])
            .inc_by(n);
    }
}

/// The Prometheus text of every registered metric (Malachite's and the node's).
pub fn render() -> String {
    let mut out = String::new();
    mm::export(&mut out);
    out
}

/// A gRPC status code's canonical name.
fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "OTHER",
    }
}

/// Counts gRPC calls by method and status. The status is the `grpc-status` of the response headers (where
/// tonic puts a failed call's status); a call whose headers carry none is counted as `OK` (a unary success,
/// or a stream, whose status comes later in its trailers). A path that names no method of this server
/// (answered `UNIMPLEMENTED`) is counted as method `unknown`, so clients cannot grow the label set.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower_layer::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

/// The service [`GrpcMetricsLayer`] wraps around the API.
#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, B, RB> tower_service::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_owned();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            if let Ok(r) = &res {
                let code = r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| s.parse::<i32>().ok())
                    .unwrap_or(0);
                let method = if code == 12 {
                    "unknown".to_owned()
                } else {
                    path
                };
                metrics()
                    .grpc_requests
                    .get_or_create(&vec![
                        ("method", method),
                        ("code", code_name(code).to_owned()),
                    ])
                    .inc();
            }
            res
        })
    }
}

/// Most `/metrics` connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Longest request head read (bytes).
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Time a client has to send its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `GET /metrics` on `listener` until the task is dropped. `before_render` runs before each scrape (it
/// sets the gauges that mirror state).
pub async fn serve(listener: tokio::net::TcpListener, before_render: Arc<dyn Fn() + Send + Sync>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (io, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "metrics connection limit reached; closing");
            continue;
        };
        let before = before_render.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(REQUEST_TIMEOUT * 2, answer(io, before)).await;
        });
    }
}

/// Reads one request head and answers it.
async fn answer(
    mut io: tokio::net::TcpStream,
    before_render: Arc<dyn Fn() + Send + Sync>,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let complete = tokio::time::timeout(REQUEST_TIMEOUT, async {
        loop {
            let n = io.read(&mut buf).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(true);
            }
            if head.len() > MAX_REQUEST_BYTES {
                return Ok(false);
            }
        }
    })
    .await
    .unwrap_or(Ok(false))?;
    let line = head
        .split(|&b| b == b'\r')
        .next()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .unwrap_or_default();
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = if !complete {
        ("400 Bad Request", "text/plain", "bad request\n".to_owned())
    } else if target != "/metrics" && !target.starts_with("/metrics?") {
        (
            "404 Not Found",
            "text/plain",
            "only /metrics here\n".to_owned(),
        )
    } else if method != "GET" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_owned(),
        )
    } else {
        before_render();
        (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    io.write_all(response.as_bytes()).await?;
    io.shutdown().await
}
