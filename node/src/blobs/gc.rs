//! Garbage collection of blobs, off the consensus path (a periodic task on the services runtime; each pass
//! runs on a blocking thread and reads only committed state).
//!
//! - A blob referenced by a job that is not over yet (open, matched, accepted, committed, revealing, or
//!   settled and inside its fraud window) is kept.
//! - Once no such job references it, a blob a job did reference is deleted `[blobs] retention_s` after the
//!   first pass that saw it so (the job went final, refunded, cancelled, fraud-proven or withheld).
//! - A blob no job ever referenced is deleted `[blobs] unreferenced_grace_s` after it was stored. Before
//!   that, the jobs of its uploader (as consumer and as provider) are checked, so a job that started and
//!   ended between two passes still gets the retention period.
//!
//! The jobs read per pass are the live ones (the `market/by_status/` index of the non-terminal statuses) plus,
//! for a blob about to be deleted as unreferenced, its uploader's own jobs: the work does not grow with the
//! chain's history.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use lode_state::address::parse_address;
use lode_state::modules::market::{self, state_key, JobStatus};

use super::client::unix_now;
use super::store::BlobStore;

/// Statuses whose jobs still need their blobs.
const LIVE: [JobStatus; 6] = [
    JobStatus::Open,
    JobStatus::Matched,
    JobStatus::Accepted,
    JobStatus::Committed,
    JobStatus::Revealing,
    JobStatus::Settled,
];

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs kept for a live job.
    pub live: usize,
    /// Blobs deleted.
    pub deleted: usize,
    /// Blobs in their retention or grace period.
    pub waiting: usize,
}

fn job_roots(j: &market::Job) -> impl Iterator<Item = [u8; 32]> {
    [Some(j.a_root), Some(j.b_root), j.output_root]
        .into_iter()
        .flatten()
}

/// The roots live jobs reference.
fn live_roots(store: &BlobStore) -> eyre::Result<BTreeSet<[u8; 32]>> {
    let db = store.app().store();
    let mut roots = BTreeSet::new();
    for status in LIVE {
        let prefix = state_key::by_status_of(status as u8);
        for (k, _) in db.scan_prefix(&prefix)? {
            let Ok(id) = <[u8; 32]>::try_from(&k[prefix.len()..]) else {
                continue;
            };
            if let Some(j) = market::job(db, &id)? {
                roots.extend(job_roots(&j));
            }
        }
    }
    Ok(roots)
}

/// Whether any job of `account` (as consumer or provider) references `root`.
fn uploader_job_references(
    store: &BlobStore,
    account: &str,
    root: &[u8; 32],
) -> eyre::Result<bool> {
    let Ok(addr) = parse_address(account) else {
        return Ok(false);
    };
    let db = store.app().store();
    for prefix in [
        state_key::by_consumer_of(&addr),
        state_key::by_provider_of(&addr),
    ] {
        for (k, _) in db.scan_prefix(&prefix)? {
            // key: prefix ‖ height (8) ‖ id (32)
            let Some(id) = k
                .get(prefix.len() + 8..)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            else {
                continue;
            };
            if let Some(j) = market::job(db, &id)? {
                if job_roots(&j).any(|r| &r == root) {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

/// One pass at `now` (Unix seconds).
pub fn pass(store: &BlobStore, now: u64) -> eyre::Result<GcReport> {
    let cfg = *store.config();
    let live = live_roots(store)?;
    let mut report = GcReport::default();
    for (root, e) in store.entries()? {
        if live.contains(&root) {
            report.live += 1;
            if !e.referenced || e.final_since_unix != 0 {
                store.set_marks(&root, true, 0)?;
            }
            continue;
        }
        let (referenced, since) = if e.referenced {
            (true, e.final_since_unix)
        } else if now >= e.stored_unix.saturating_add(cfg.unreferenced_grace_s) {
            if uploader_job_references(store, &e.uploader, &root)? {
                (true, 0)
            } else {
                store.delete(&root)?;
                report.deleted += 1;
                tracing::info!(root = %hex::encode(root), "blob deleted: no job references it");
                continue;
            }
        } else {
            report.waiting += 1;
            continue;
        };
        if since == 0 {
            store.set_marks(&root, referenced, now)?;
            report.waiting += 1;
        } else if now >= since.saturating_add(cfg.retention_s) {
            store.delete(&root)?;
            report.deleted += 1;
            tracing::info!(root = %hex::encode(root), "blob deleted: its jobs are over");
        } else {
            report.waiting += 1;
        }
    }
    Ok(report)
}

/// Runs a pass every `[blobs] gc_interval_s` until the runtime stops.
pub fn spawn(store: Arc<BlobStore>) {
    let every = Duration::from_secs(store.config().gc_interval_s.max(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let s = store.clone();
            match tokio::task::spawn_blocking(move || pass(&s, unix_now())).await {
                Ok(Ok(r)) if r.deleted > 0 => tracing::info!(
                    deleted = r.deleted,
                    live = r.live,
                    waiting = r.waiting,
                    "blob gc"
                ),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "blob gc pass failed"),
                Err(e) => tracing::warn!(error = %e, "blob gc task failed"),
            }
        }
    });
}
