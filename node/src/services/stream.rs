//! `TxService.BroadcastStream`: many txs over one gRPC stream.
//!
//! One task per stream reads the client's txs, admits whatever has arrived together as one batch (one
//! hand-off to a blocking thread, one signature batch), answers each with `checked`, and remembers the
//! admitted ones by hash. The same task follows the committed height and, for each new block, answers the
//! remembered txs that block committed. Admission and block reports run in that one task, so a tx is always
//! remembered before the block that commits it is looked at: a tx admitted while height H is the latest
//! commit can only be committed at H + 1 or later, and the task has reported at most H.
//!
//! Bounds (see [`super::grpc::ApiLimits`]): the number of open streams, the txs one stream waits on, the wait
//! a tx may ask for, and the events queued for a client: a client that stops reading finds its stream closed
//! after `stream_stall_timeout`, and everything the stream held is freed.

use lode_state::fasthash::HashMap;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{channel::mpsc, FutureExt, SinkExt, Stream, StreamExt};
use tokio::time::Instant;
use tonic::{Status, Streaming};
use tracing::debug;

use tokio::sync::OwnedSemaphorePermit;

use super::grpc::{add_error_status, check_result, exec_result, pb, NodeApi};
use super::mempool::{tx_hash, AddError};
use pb::broadcast_stream_event::Event;

/// The response stream.
pub type EventStream =
    Pin<Box<dyn Stream<Item = Result<pb::BroadcastStreamEvent, Status>> + Send + 'static>>;

/// Most txs admitted as one batch.
const MAX_BATCH: usize = 256;
/// Events buffered for a slow reader before the task waits for it (and stops reading txs); if the reader takes
/// none for `stream_stall_timeout`, the stream is closed.
const EVENT_BUFFER: usize = 1024;
/// How often expired txs are looked for.
const EXPIRY_TICK: Duration = Duration::from_millis(250);

/// An admitted tx waiting for its block.
struct Waiting {
    id: u64,
    deadline: Instant,
}

/// Admitted txs by hash (the same tx sent twice waits twice, under each id).
type Waiters = HashMap<[u8; 32], Vec<Waiting>>;

/// The events going to the client, and how long one may wait for room.
struct Out {
    tx: mpsc::Sender<Result<pb::BroadcastStreamEvent, Status>>,
    stall: Duration,
}

impl Out {
    /// Queues an event; a client that has not made room within the stall timeout is gone.
    async fn send(&mut self, e: Result<pb::BroadcastStreamEvent, Status>) -> Result<(), Gone> {
        match tokio::time::timeout(self.stall, self.tx.send(e)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Gone),
            Err(_) => {
                debug!(stall = ?self.stall, "broadcast stream: the client stopped reading; closing");
                Err(Gone)
            }
        }
    }
}

/// The client went away (or stopped reading): stop.
struct Gone;

/// Starts serving one stream. `slot` (one of the open-stream slots) is held by the task that serves it: a
/// client that stops reading loses its stream after the stall timeout, and with it the slot and the txs the
/// stream waited on. What such a client still pins is its queued events ([`EVENT_BUFFER`]) and its HTTP/2
/// window, per stream, with streams bounded per connection and connections bounded.
pub(crate) fn serve(
    api: NodeApi,
    inbound: Streaming<pb::BroadcastStreamRequest>,
    slot: OwnedSemaphorePermit,
) -> EventStream {
    let (tx, events) = mpsc::channel(EVENT_BUFFER);
    let out = Out {
        tx,
        stall: api.guards.limits.stream_stall_timeout,
    };
    tokio::spawn(async move {
        let _slot = slot;
        let _ = run(api, inbound, out).await;
    });
    Box::pin(events)
}

fn event(id: u64, hash: &[u8; 32], e: Event) -> Result<pb::BroadcastStreamEvent, Status> {
    Ok(pb::BroadcastStreamEvent {
        id,
        tx_hash: hash.to_vec(),
        event: Some(e),
    })
}

async fn run(
    api: NodeApi,
    mut inbound: Streaming<pb::BroadcastStreamRequest>,
    mut out: Out,
) -> Result<(), Gone> {
    let mut decided = api.decided.clone();
    let mut reported = decided.borrow_and_update().0;
    let mut waiting = Waiters::default();
    let mut open = true;
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while open || !waiting.is_empty() {
        tokio::select! {
            first = inbound.next(), if open => {
                let mut batch = Vec::new();
                let mut next = first;
                loop {
                    match next {
                        Some(Ok(r)) => batch.push(r),
                        Some(Err(status)) => {
                            debug!(%status, "broadcast stream: client stream failed");
                            return Err(Gone);
                        }
                        None => {
                            open = false;
                            break;
                        }
                    }
                    if batch.len() >= MAX_BATCH {
                        break;
                    }
                    match inbound.next().now_or_never() {
                        Some(n) => next = n,
                        None => break,
                    }
                }
                if !batch.is_empty() {
                    admit(&api, batch, &mut waiting, &mut out).await?;
                }
            }
            changed = decided.changed() => {
                if changed.is_err() {
                    let _ = out.send(Err(Status::unavailable("consensus stopped"))).await;
                    return Err(Gone);
                }
                let latest = decided.borrow_and_update().0;
                while reported < latest {
                    reported += 1;
                    if !waiting.is_empty() {
                        report_block(&api, reported, &mut waiting, &mut out).await?;
                    }
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let mut expired = Vec::new();
                waiting.retain(|h, ws| {
                    ws.retain(|w| {
                        let keep = w.deadline > now;
                        if !keep {
                            expired.push((w.id, *h));
                        }
                        keep
                    });
                    !ws.is_empty()
                });
                for (id, h) in expired {
                    out.send(event(id, &h, Event::Expired(pb::StreamExpired {}))).await?;
                }
            }
        }
    }
    Ok(())
}

/// Admits a batch in order and answers each tx.
async fn admit(
    api: &NodeApi,
    batch: Vec<pb::BroadcastStreamRequest>,
    waiting: &mut Waiters,
    out: &mut Out,
) -> Result<(), Gone> {
    let mut reqs = Vec::with_capacity(batch.len());
    let mut txs = Vec::with_capacity(batch.len());
    for r in batch {
        let tx = Bytes::from(r.tx);
        reqs.push((r.id, r.timeout_ms, tx_hash(&tx)));
        txs.push(tx);
    }
    // Over the stream's own limit: refused without being checked.
    let max_pending = api.guards.limits.max_stream_pending;
    let room = max_pending.saturating_sub(waiting.values().map(Vec::len).sum());
    let refused = txs.split_off(txs.len().min(room));
    // One of the API's request slots while CheckTx runs: streams share the bound on blocking work.
    let Some(slot) = api.guards.request_or_wait().await else {
        return Err(Gone);
    };
    let results = api.guards.stream_admitter(&api.mempool).admit(txs).await;
    drop(slot);
    let results = match results {
        Ok(r) => r,
        Err(e) => {
            let _ = out.send(Err(Status::internal(e))).await;
            return Err(Gone);
        }
    };
    let outcomes = results
        .into_iter()
        .map(Some)
        .chain(refused.iter().map(|_| None));
    for ((id, timeout_ms, hash), result) in reqs.into_iter().zip(outcomes) {
        let wait = api.guards.wait_for(timeout_ms);
        let e = match result {
            None => Event::Refused(pb::StreamRefused {
                grpc_code: tonic::Code::ResourceExhausted as u32,
                message: format!("this stream already waits on {max_pending} txs"),
            }),
            // Already pending (sent before, here or to a peer): wait for it like a fresh one.
            Some(Ok(_)) | Some(Err(AddError::Duplicate)) => {
                let check = match &result {
                    Some(Ok(r)) => check_result(r),
                    _ => pb::TxResult::default(),
                };
                waiting.entry(hash).or_default().push(Waiting {
                    id,
                    deadline: Instant::now() + wait,
                });
                Event::Checked(check)
            }
            // Invalid in itself (undecodable, badly signed): never committed, so no tx index read.
            Some(Err(AddError::Invalid(r))) => Event::Checked(check_result(&r)),
            Some(Err(AddError::Rejected(r))) => {
                // A tx committed already fails CheckTx on its used nonce: report the commit instead.
                match api.committed_result_blocking(hash).await {
                    Ok(Some((height, result))) => Event::Committed(pb::StreamCommitted {
                        height,
                        result: Some(result),
                    }),
                    _ => Event::Checked(check_result(&r)),
                }
            }
            Some(Err(e)) => {
                let status = add_error_status(e);
                Event::Refused(pb::StreamRefused {
                    grpc_code: status.code() as u32,
                    message: status.message().to_owned(),
                })
            }
        };
        out.send(event(id, &hash, e)).await?;
    }
    Ok(())
}

/// Most txs of several streams' batches admitted together.
const MAX_COALESCED_TXS: usize = 4096;
/// Stream batches waiting for the admitter; a stream whose batch finds the queue full waits for room.
const ADMIT_QUEUE: usize = 256;

/// One stream's batch for the admitter, and where its verdicts go.
struct Admission {
    txs: Vec<Bytes>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<AdmitResult>, String>>,
}

/// One tx's admission verdict.
type AdmitResult = Result<tendermint_proto::v0_38::abci::ResponseCheckTx, AddError>;

/// Admits the batches of all `BroadcastStream`s: whatever batches are waiting when it gets to them, up
/// to [`MAX_COALESCED_TXS`] txs, go to the mempool as one batch, in arrival order (one signature batch,
/// one blocking hand-off and one acquisition of the mempool's lock, under one of the API's admission
/// slots), and each stream gets its own txs' verdicts, the same as admitting the batches one after the
/// other. Sixteen streams each admitting a few txs at a time had made sixteen small signature batches and
/// sixteen hand-offs of the lock.
#[derive(Debug, Clone)]
pub(crate) struct Admitter {
    queue: tokio::sync::mpsc::Sender<Admission>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("txs", &self.txs.len())
            .finish()
    }
}

impl Admitter {
    /// Starts the admitter's task on the current runtime.
    pub(crate) fn spawn(
        mempool: std::sync::Arc<super::mempool::Mempool>,
        admission: std::sync::Arc<tokio::sync::Semaphore>,
    ) -> Self {
        let (queue, mut waiting) = tokio::sync::mpsc::channel::<Admission>(ADMIT_QUEUE);
        tokio::spawn(async move {
            while let Some(first) = waiting.recv().await {
                let mut group =
                    super::take_queued(first, &mut waiting, MAX_COALESCED_TXS, |a| a.txs.len());
                let lens: Vec<usize> = group.iter().map(|a| a.txs.len()).collect();
                let all: Vec<Bytes> = group
                    .iter_mut()
                    .flat_map(|a| std::mem::take(&mut a.txs))
                    .collect();
                let _slot = admission.clone().acquire_owned().await;
                let pool = mempool.clone();
                match tokio::task::spawn_blocking(move || pool.add_local_batch(all)).await {
                    Ok(results) => {
                        let mut results = results.into_iter();
                        for (a, n) in group.into_iter().zip(lens) {
                            let _ = a.reply.send(Ok(results.by_ref().take(n).collect()));
                        }
                    }
                    Err(e) => {
                        for a in group {
                            let _ = a.reply.send(Err(e.to_string()));
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    /// Admits `txs` in order with whatever other streams' batches are waiting; one verdict per tx.
    async fn admit(&self, txs: Vec<Bytes>) -> Result<Vec<AdmitResult>, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue
            .send(Admission { txs, reply })
            .await
            .map_err(|_| "the admitter stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the admitter dropped a batch".to_string())?
    }
}

/// Answers the waiting txs that block `height` committed.
async fn report_block(
    api: &NodeApi,
    height: u64,
    waiting: &mut Waiters,
    out: &mut Out,
) -> Result<(), Gone> {
    // A block's results are read and decoded once for every waiter (and every stream), off the async workers.
    let reader = api.clone();
    let outcome = match tokio::task::spawn_blocking(move || reader.block_outcome(height)).await {
        Ok(Ok(o)) => o,
        Ok(Err(status)) => {
            let _ = out.send(Err(status)).await;
            return Err(Gone);
        }
        Err(e) => {
            let _ = out.send(Err(Status::internal(e.to_string()))).await;
            return Err(Gone);
        }
    };
    for (hash, result) in outcome.hashes.iter().zip(&outcome.results.tx_results) {
        for w in waiting.remove(hash).unwrap_or_default() {
            let e = Event::Committed(pb::StreamCommitted {
                height,
                result: Some(exec_result(result)),
            });
            out.send(event(w.id, hash, e)).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two streams' batches admitted together: each stream gets its own txs' verdicts, in its order, and
    /// the txs are admitted in arrival order across the two.
    #[tokio::test(flavor = "current_thread")]
    async fn streams_admitted_together_each_get_their_own_verdicts() {
        use ed25519_consensus::SigningKey;
        use lode_state::tx::{address_of, sign_send};
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (SigningKey::from([7u8; 32]), SigningKey::from([10u8; 32]));
        let app = crate::services::test_support::initialised_app(dir.path(), &[&a, &b]);
        let pool = std::sync::Arc::new(super::super::mempool::Mempool::new(
            app,
            super::super::mempool::MempoolLimits {
                max_txs: 100,
                max_bytes: 1 << 20,
                max_tx_bytes: 1 << 16,
                max_txs_per_sender: 100,
            },
        ));
        let to = address_of(&SigningKey::from([8u8; 32]));
        let send = |k: &SigningKey, nonce| Bytes::from(sign_send("c", k, nonce, 10_000, &to, 1));
        let mut forged = send(&a, 1).to_vec();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let admitter = Admitter::spawn(
            pool.clone(),
            std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
        );
        // On this one-thread runtime both batches are queued before the admitter runs: one group.
        let first = vec![send(&a, 0), Bytes::from(forged), send(&a, 2)];
        let second = vec![send(&b, 0), send(&b, 0), send(&b, 1)];
        let (x, y) = tokio::join!(
            admitter.admit(first.clone()),
            admitter.admit(second.clone())
        );
        let (x, y) = (x.expect("first"), y.expect("second"));
        assert_eq!(x.len(), 3);
        assert!(x[0].is_ok(), "{:?}", x[0]);
        assert!(
            matches!(&x[1], Err(AddError::Invalid(r)) if r.code == 5),
            "{:?}",
            x[1]
        );
        // a's nonce 1 never got in: nonce 2 is a gap.
        assert!(
            matches!(&x[2], Err(AddError::Rejected(r)) if r.code == 8),
            "{:?}",
            x[2]
        );
        assert_eq!(y.len(), 3);
        assert!(
            y[0].is_ok() && matches!(y[1], Err(AddError::Duplicate)) && y[2].is_ok(),
            "{y:?}"
        );
        assert_eq!(
            pool.reap_txs(u64::MAX),
            vec![first[0].clone(), second[0].clone(), second[2].clone()]
        );
    }

    #[tokio::test]
    async fn a_client_that_takes_no_events_for_the_stall_timeout_is_given_up() {
        let (tx, rx) = mpsc::channel(1);
        let mut out = Out {
            tx,
            stall: Duration::from_millis(200),
        };
        let ev = || event(1, &[0; 32], Event::Expired(pb::StreamExpired {}));
        // Nobody reads: the queue fills, and the first send that finds no room gives up after the timeout.
        let mut queued = 0;
        let given_up = loop {
            let started = Instant::now();
            if out.send(ev()).await.is_err() {
                break started.elapsed();
            }
            queued += 1;
            assert!(queued < 10, "the queue never filled");
        };
        assert!(queued >= 1, "no event was queued at all");
        assert!(
            given_up >= Duration::from_millis(200) && given_up < Duration::from_secs(5),
            "{given_up:?}"
        );
        drop(rx);
    }
}
