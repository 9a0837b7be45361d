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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use lode_state::address::parse_address;
use lode_state::modules::market::{self, state_key, JobStatus};

use super::client::unix_now;
use super::layout::{BlobHeader, BlobKind};
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

/// The headers of a job's blobs as the chain records them: A (m×k by rows), B (k×n by columns) and, once
/// committed, C (m×n in tiles of `tile`).
pub fn job_headers(j: &market::Job) -> impl Iterator<Item = BlobHeader> {
    let a = BlobHeader {
        kind: BlobKind::A,
        rows: j.m,
        cols: j.k,
        tile: 0,
        root: j.a_root,
    };
    let b = BlobHeader {
        kind: BlobKind::B,
        rows: j.k,
        cols: j.n,
        tile: 0,
        root: j.b_root,
    };
    let c = j.output_root.map(|root| BlobHeader {
        kind: BlobKind::C,
        rows: j.m,
        cols: j.n,
        tile: j.tile,
        root,
    });
    [Some(a), Some(b), c].into_iter().flatten()
}

/// The blobs live jobs reference (read from the committed state), by root, with the header each job
/// gives it (more than one only if jobs of different shapes name one root).
pub fn live_headers(
    app: &lode_state::LodeApp,
) -> eyre::Result<BTreeMap<[u8; 32], Vec<BlobHeader>>> {
    let db = app.store();
    let mut out: BTreeMap<[u8; 32], Vec<BlobHeader>> = BTreeMap::new();
    for status in LIVE {
        let prefix = state_key::by_status_of(status as u8);
        for (k, _) in db.scan_prefix(&prefix)? {
            let Ok(id) = <[u8; 32]>::try_from(&k[prefix.len()..]) else {
                continue;
            };
            if let Some(j) = market::job(db, &id)? {
                for h in job_headers(&j) {
                    let v = out.entry(h.root).or_default();
                    if !v.contains(&h) {
                        v.push(h);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The roots live jobs reference.
fn live_roots(store: &BlobStore) -> eyre::Result<BTreeSet<[u8; 32]>> {
    Ok(live_headers(store.app())?.into_keys().collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::layout;
    use crate::config::BlobsConfig;
    use lode_gpu_verify::MatrixI8;
    use std::io::Write;

    fn put(store: &BlobStore, salt: usize) -> ([u8; 32], u64) {
        let a = MatrixI8::from_fn(8, 16, |i, j| (i * 16 + j + salt) as i8).expect("a");
        let h = layout::a_header(&a).expect("h");
        let mut t = store.temp().expect("temp");
        t.file.write_all(&layout::a_bytes(&a)).expect("write");
        assert!(store
            .commit(t, &h, &[], "lode1someone", "")
            .expect("commit"));
        (
            h.root,
            store
                .entry(&h.root)
                .expect("entry")
                .expect("stored")
                .stored_unix,
        )
    }

    #[test]
    fn unreferenced_blobs_go_after_the_grace_and_referenced_ones_a_retention_after_their_jobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = lode_state::LodeApp::open(&dir.path().join("db")).expect("app");
        let cfg = BlobsConfig {
            unreferenced_grace_s: 100,
            retention_s: 50,
            ..BlobsConfig::default()
        };
        let store = BlobStore::open(dir.path(), app, cfg).expect("store");
        let (r1, t1) = put(&store, 1);
        let (r2, _) = put(&store, 2);
        assert_eq!(store.usage("lode1someone").expect("usage"), 2 * 128);
        // r2 was referenced by a job (seen live by an earlier pass); no job is live now.
        store.set_marks(&r2, true, 0).expect("mark");

        let r = pass(&store, t1 + 10).expect("pass");
        assert_eq!((r.deleted, r.waiting), (0, 2));
        let since = store.entry(&r2).expect("e").expect("kept").final_since_unix;
        assert_eq!(
            since,
            t1 + 10,
            "the first pass that saw its jobs over starts the retention"
        );

        let r = pass(&store, t1 + 59).expect("pass");
        assert_eq!(r.deleted, 0);
        let r = pass(&store, t1 + 60).expect("pass");
        assert_eq!(r.deleted, 1);
        assert!(store.entry(&r2).expect("e").is_none());
        assert!(!store.path(&r2).exists());

        let r = pass(&store, t1 + 99).expect("pass");
        assert_eq!(r.deleted, 0);
        assert!(store.entry(&r1).expect("e").is_some());
        let r = pass(&store, t1 + 100).expect("pass");
        assert_eq!(r.deleted, 1);
        assert!(!store.path(&r1).exists());
        assert_eq!(store.usage("lode1someone").expect("usage"), 0);
    }

    #[test]
    fn a_restart_sweeps_temp_files_and_unindexed_blob_files_and_keeps_indexed_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = lode_state::LodeApp::open(&dir.path().join("db")).expect("app");
        let store =
            BlobStore::open(dir.path(), app.clone(), BlobsConfig::default()).expect("store");
        let (root, _) = put(&store, 3);
        // What a crash leaves: an upload in progress, a renamed file whose index write never happened.
        std::fs::write(dir.path().join("blobs/tmp/1-0.part"), b"partial").expect("tmp");
        std::fs::write(dir.path().join("blobs").join(hex::encode([5u8; 32])), b"x")
            .expect("orphan");
        drop(store);
        let store = BlobStore::open(dir.path(), app, BlobsConfig::default()).expect("reopen");
        let names: Vec<String> = std::fs::read_dir(dir.path().join("blobs"))
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&hex::encode(root)) && names.contains(&"tmp".to_owned()));
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs/tmp"))
                .expect("tmp")
                .count(),
            0
        );
        assert!(store.entry(&root).expect("e").is_some());
    }
}
