//! `EventService.Subscribe`: every committed height, in order, once, replayed from the store and then live.
//!
//! One task per subscription owns a height cursor. It reads each height from the store (the consensus store
//! for the header, the block store for the results), filters the tx results and block events, and queues one
//! [`pb::BlockEvent`] per height; when it reaches the last commit it waits for the next one on the `decided`
//! watch, which consensus updates only after Commit has written the block. Replay and live delivery are the
//! same loop over the same store, so there is no seam between them where a height could be skipped or sent
//! twice, and one message per height means a height is delivered whole or not at all.
//!
//! Bounds: at most `max_subscriptions` subscriptions at once (each holds a slot); at most
//! `subscription_buffer` events queued per subscriber. The node never waits for a subscriber: consensus only
//! updates a watch, and a subscriber's task reads the store at its own pace. When a subscriber's queue stays
//! full for `stream_stall_timeout`, its stream is ended with `RESOURCE_EXHAUSTED` after the events already
//! queued, naming the last height it was sent (message and `lode-last-height` trailer), so it can resume from
//! the next one.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tendermint_proto::v0_38::abci::Event as AbciEvent;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tonic::{Request, Response, Status};
use tracing::{debug, instrument};

use super::chain::{block_tx, event, header, CommittedBlock};
use super::grpc::{pb, NodeApi};
use super::mempool::tx_hash;
use lode_consensus::BlockStore;
use pb::event_service_server::EventService;

/// The response stream of a subscription.
pub type BlockEventStream =
    Pin<Box<dyn Stream<Item = Result<pb::BlockEvent, Status>> + Send + 'static>>;

/// Most filters one subscription may carry.
pub const MAX_FILTERS: usize = 16;
/// Longest event type or attribute key in a filter (bytes).
const MAX_FILTER_NAME: usize = 128;
/// Longest attribute value in a filter (bytes).
const MAX_FILTER_VALUE: usize = 1024;

/// The trailer naming the last height a subscription that was ended sent.
pub const LAST_HEIGHT_TRAILER: &str = "lode-last-height";

/// Checks a subscription's filters: at most [`MAX_FILTERS`], each with a type, a value only with an
/// attribute, and bounded lengths.
pub fn check_filters(filters: &[pb::EventFilter]) -> Result<(), Status> {
    if filters.len() > MAX_FILTERS {
        return Err(Status::invalid_argument(format!(
            "{} filters; at most {MAX_FILTERS}",
            filters.len()
        )));
    }
    for (i, f) in filters.iter().enumerate() {
        if f.r#type.is_empty() {
            return Err(Status::invalid_argument(format!(
                "filter {i}: the event type is empty"
            )));
        }
        if f.attribute.is_empty() && !f.value.is_empty() {
            return Err(Status::invalid_argument(format!(
                "filter {i}: a value needs an attribute"
            )));
        }
        if f.r#type.len() > MAX_FILTER_NAME
            || f.attribute.len() > MAX_FILTER_NAME
            || f.value.len() > MAX_FILTER_VALUE
        {
            return Err(Status::invalid_argument(format!(
                "filter {i}: type and attribute are at most {MAX_FILTER_NAME} bytes, value at most {MAX_FILTER_VALUE}"
            )));
        }
    }
    Ok(())
}

/// Whether `e` matches filter `f`.
fn matches(f: &pb::EventFilter, e: &AbciEvent) -> bool {
    e.r#type == f.r#type
        && (f.attribute.is_empty()
            || e.attributes
                .iter()
                .any(|a| a.key == f.attribute && a.value == f.value))
}

/// Whether `e` matches any of `filters` (every event matches no filter at all).
fn wanted(filters: &[pb::EventFilter], e: &AbciEvent) -> bool {
    filters.is_empty() || filters.iter().any(|f| matches(f, e))
}

/// A committed block as a subscriber sees it: header, tx count, and what matches its filters.
pub(crate) fn block_event(b: &CommittedBlock, filters: &[pb::EventFilter]) -> pb::BlockEvent {
    let txs = b.decided.block.txs();
    pb::BlockEvent {
        block_id: b.decided.block.id().0.to_vec(),
        header: Some(header(&b.decided.block)),
        num_txs: u32::try_from(txs.len()).unwrap_or(u32::MAX),
        txs: txs
            .iter()
            .zip(&b.results.tx_results)
            .enumerate()
            .filter(|(_, (_, r))| filters.is_empty() || r.events.iter().any(|e| wanted(filters, e)))
            .map(|(i, (raw, r))| block_tx(tx_hash(raw), i, r, &[]))
            .collect(),
        events: b
            .results
            .events
            .iter()
            .filter(|e| wanted(filters, e))
            .map(event)
            .collect(),
    }
}

/// Why a subscription's task stopped.
enum End {
    /// The client went away: nothing to tell it.
    Gone,
    /// Tell the client this, after what is queued.
    Status(Status),
}

/// The "too slow" end of a subscription whose last sent height is `last` (`None`: none sent).
fn too_slow(last: Option<u64>, buffer: usize) -> Status {
    let (msg, trailer) = match last {
        Some(h) => (
            format!(
                "subscriber too slow: {buffer} events queued and none taken; the last height sent is {h}, resume with from_height {}",
                h.saturating_add(1)
            ),
            h.to_string(),
        ),
        None => (
            format!("subscriber too slow: {buffer} events queued and none taken; no height was sent"),
            String::new(),
        ),
    };
    let mut meta = tonic::metadata::MetadataMap::new();
    if let Ok(v) = trailer.parse() {
        meta.insert(LAST_HEIGHT_TRAILER, v);
    }
    Status::with_metadata(tonic::Code::ResourceExhausted, msg, meta)
}

impl NodeApi {
    /// Starts a subscription from `from` (inclusive) with `filters` (already checked); `slot` is held until it
    /// ends.
    fn subscription(
        &self,
        from: u64,
        filters: Vec<pb::EventFilter>,
        slot: OwnedSemaphorePermit,
    ) -> BlockEventStream {
        let buffer = self.guards.limits.subscription_buffer.max(1);
        let (tx, rx) = mpsc::channel(buffer);
        let (end_tx, end_rx) = oneshot::channel::<Status>();
        let api = self.clone();
        tokio::spawn(async move {
            let _slot = slot;
            if let End::Status(s) = api.follow(from, &filters, &tx, buffer).await {
                let _ = end_tx.send(s);
            }
        });
        let events =
            futures::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
            );
        let end = futures::stream::once(end_rx).filter_map(|r| async move { r.ok().map(Err) });
        Box::pin(events.chain(end))
    }

    /// The subscription loop: send every height from `next` on, waiting for new commits at the tip.
    async fn follow(
        &self,
        mut next: u64,
        filters: &[pb::EventFilter],
        tx: &mpsc::Sender<pb::BlockEvent>,
        buffer: usize,
    ) -> End {
        let stall = self.guards.limits.stream_stall_timeout;
        let mut decided = self.decided.clone();
        let mut last_sent: Option<u64> = None;
        loop {
            // Marked seen before reading the tip: a commit after this read wakes the wait below.
            let _ = decided.borrow_and_update();
            let tip = self.last_height();
            while next <= tip {
                let api = self.clone();
                let height = next;
                let filters_owned = filters.to_vec();
                let read = tokio::task::spawn_blocking(move || {
                    api.committed_block(height)
                        .map(|b| b.map(|b| block_event(&b, &filters_owned)))
                })
                .await;
                let e = match read {
                    Ok(Ok(Some(e))) => e,
                    Ok(Ok(None)) => {
                        return End::Status(Status::internal(format!(
                            "committed block {height} is missing from the store"
                        )))
                    }
                    Ok(Err(s)) => return End::Status(s),
                    Err(e) => return End::Status(Status::internal(e.to_string())),
                };
                match tokio::time::timeout(stall, tx.send(e)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return End::Gone,
                    Err(_) => {
                        debug!(height, ?stall, "subscriber too slow; ending its stream");
                        return End::Status(too_slow(last_sent, buffer));
                    }
                }
                last_sent = Some(height);
                next = height.saturating_add(1);
            }
            tokio::select! {
                changed = decided.changed() => {
                    if changed.is_err() {
                        return End::Status(Status::unavailable("consensus stopped"));
                    }
                }
                () = tx.closed() => return End::Gone,
            }
        }
    }
}

#[tonic::async_trait]
impl EventService for NodeApi {
    type SubscribeStream = BlockEventStream;

    #[instrument(skip_all)]
    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let req = request.into_inner();
        check_filters(&req.filters)?;
        let slot = self.guards.subscription()?;
        let api = self.clone();
        let (tip, lowest) = tokio::task::spawn_blocking(move || {
            let lowest = api.blocks.min_height().ok().flatten().map(|h| h.0);
            (api.last_height(), lowest)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        let next = tip.saturating_add(1);
        let from = match req.from_height {
            None => next,
            Some(h) if h > next => {
                return Err(Status::invalid_argument(format!(
                    "from_height {h} is beyond the next height {next}"
                )))
            }
            Some(h) => h.max(lowest.unwrap_or(1)).max(1),
        };
        Ok(Response::new(self.subscription(from, req.filters, slot)))
    }
}
