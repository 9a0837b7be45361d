//! Blob storage: one file per blob under `<home>/data/blobs/`, named by its root, indexed in the node's
//! RocksDB (column family `blobs`).
//!
//! A blob is written to a temp file under `data/blobs/tmp/`, synced, checked against its root, then renamed
//! into place, and only then indexed. The index is the truth: a crash leaves at worst a temp file or an
//! unindexed blob file, and [`BlobStore::open`] deletes both. Deleting removes the index entry first, then
//! the file, for the same reason.
//!
//! A copy fetched from a peer is not synced before it is indexed and served (it exists elsewhere, and an
//! fsync of hundreds of MiB would bound a fetch by the disk's sync rate): its entry is marked
//! `pending_sync` until a background sync of the file and the directory clears the mark, and
//! [`BlobStore::open`] deletes every entry still marked (a crash may have lost part of its file). An
//! upload is synced before it is indexed and acknowledged.
//!
//! Index keys (the column family holds nothing else):
//! - `b` ‖ root (32 bytes) → [`Entry`] (JSON);
//! - `k` ‖ root → the roots of the blob's blocks (32 bytes each, in order; see
//!   [`super::layout::BlobHeader::block_leaves_log2`]), served to peers so they check each block on arrival;
//! - `u` ‖ uploader address → bytes the account holds (u64 big-endian), for the quota.
//!
//! Two limits apply to every new blob, pending uploads and fetches included: the uploader's
//! `[blobs] quota_bytes_per_account`, and the node-wide `[blobs] max_total_bytes` over all blobs stored
//! (uploads and fetched copies).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lode_state::store::{ConsensusWrite, Store};
use lode_state::LodeApp;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::layout::{BlobHeader, BlobKind};
use crate::config::BlobsConfig;

const ENTRY: u8 = b'b';
const BLOCKS: u8 = b'k';
const USAGE: u8 = b'u';

/// What the index holds about a stored blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// `a`, `b` or `c`.
    pub kind: String,
    /// The matrix's rows.
    pub rows: u64,
    /// The matrix's columns.
    pub cols: u64,
    /// C's tile side (0 for A and B).
    pub tile: u32,
    /// Size in bytes.
    pub size: u64,
    /// The uploading account (empty when fetched from a peer; a fetched copy is charged to nobody).
    pub uploader: String,
    /// Unix seconds when stored here.
    pub stored_unix: u64,
    /// The peer it was fetched from, empty when uploaded here.
    pub fetched_from: String,
    /// Whether garbage collection has seen a job referencing it.
    #[serde(default)]
    pub referenced: bool,
    /// Unix seconds when garbage collection first saw every job referencing it final (0: not yet).
    #[serde(default)]
    pub final_since_unix: u64,
    /// A fetched copy whose file is not known synced yet (deleted at the next start while set).
    #[serde(default)]
    pub pending_sync: bool,
}

impl Entry {
    /// The blob's header (with `root`), after validating what the disk said.
    pub fn header(&self, root: [u8; 32]) -> Result<BlobHeader, String> {
        let kind: BlobKind = self.kind.parse().map_err(|e| format!("{e}"))?;
        let h = BlobHeader {
            kind,
            rows: self.rows,
            cols: self.cols,
            tile: self.tile,
            root,
        };
        h.validate().map_err(|e| e.to_string())?;
        if h.size_bytes() != self.size {
            return Err(format!(
                "index size {} differs from the header's {}",
                self.size,
                h.size_bytes()
            ));
        }
        Ok(h)
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The account would exceed `[blobs] quota_bytes_per_account`.
    #[error("over quota: {account} holds {used} bytes, {pending} more are being uploaded, the quota is {quota}; this blob is {size}")]
    OverQuota {
        /// The account.
        account: String,
        /// Bytes stored.
        used: u64,
        /// Bytes in uploads in progress.
        pending: u64,
        /// The quota.
        quota: u64,
        /// The new blob's size.
        size: u64,
    },
    /// All blobs stored plus those being received would exceed `[blobs] max_total_bytes`.
    #[error("node full: {stored} bytes of blobs stored, {pending} more being received, the node-wide cap is {cap}; this blob is {size}")]
    NodeFull {
        /// Bytes stored.
        stored: u64,
        /// Bytes in transfers in progress.
        pending: u64,
        /// `[blobs] max_total_bytes`.
        cap: u64,
        /// The new blob's size.
        size: u64,
    },
    /// Disk or database failure.
    #[error("blob storage: {0}")]
    Io(String),
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

/// The blob files and their index.
#[derive(Debug)]
pub struct BlobStore {
    dir: PathBuf,
    tmp: PathBuf,
    app: LodeApp,
    config: BlobsConfig,
    /// Bytes reserved by uploads in progress, per account (released when the upload ends either way).
    pending: Mutex<Pending>,
    /// Serializes index read-modify-writes (usage counters).
    index_lock: Mutex<()>,
    next_tmp: AtomicU64,
}

/// What is reserved and stored, in memory (the stored total is counted from the index at start).
#[derive(Debug, Default)]
struct Pending {
    /// Bytes reserved per uploading account.
    by_account: BTreeMap<String, u64>,
    /// Bytes reserved by every transfer (uploads and fetches).
    total: u64,
    /// Bytes of every stored blob.
    stored: u64,
}

/// Bytes a transfer reserved against its account's quota (none for a fetch) and the node-wide cap;
/// released on drop.
#[derive(Debug)]
pub struct Reservation {
    store: Arc<BlobStore>,
    account: String,
    size: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut p = self.store.pending.lock();
        p.total = p.total.saturating_sub(self.size);
        if let Some(v) = p.by_account.get_mut(&self.account) {
            *v = v.saturating_sub(self.size);
            if *v == 0 {
                p.by_account.remove(&self.account);
            }
        }
    }
}

/// A blob being written: a temp file that becomes the blob only through [`BlobStore::commit`]; dropped
/// uncommitted, it is deleted.
#[derive(Debug)]
pub struct TempBlob {
    path: PathBuf,
    /// The open file.
    pub file: std::fs::File,
    committed: bool,
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn entry_key(root: &[u8; 32]) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(ENTRY);
    k.extend_from_slice(root);
    k
}

fn blocks_key(root: &[u8; 32]) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(BLOCKS);
    k.extend_from_slice(root);
    k
}

fn usage_key(account: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + account.len());
    k.push(USAGE);
    k.extend_from_slice(account.as_bytes());
    k
}

fn u64_of(v: &[u8]) -> u64 {
    <[u8; 8]>::try_from(v).map_or(0, u64::from_be_bytes)
}

impl BlobStore {
    /// Opens the store under `data_dir/blobs`, deleting temp files and blob files the index does not know
    /// (what a crash mid-write leaves).
    pub fn open(data_dir: &Path, app: LodeApp, config: BlobsConfig) -> eyre::Result<Arc<Self>> {
        let dir = data_dir.join("blobs");
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        let store = Arc::new(Self {
            dir,
            tmp,
            app,
            config,
            pending: Mutex::default(),
            index_lock: Mutex::default(),
            next_tmp: AtomicU64::new(0),
        });
        let swept = store.sweep()?;
        if swept > 0 {
            tracing::info!(
                files = swept,
                "blob store: removed partial and unindexed files"
            );
        }
        Ok(store)
    }

    /// The configuration.
    pub fn config(&self) -> &BlobsConfig {
        &self.config
    }

    fn db(&self) -> &Store {
        self.app.store()
    }

    /// The application (market state, for garbage collection).
    pub fn app(&self) -> &LodeApp {
        &self.app
    }

    /// Deletes every temp file, every fetched copy not known synced, and every blob file without an index
    /// entry; returns how many; counts the bytes stored.
    pub fn sweep(&self) -> eyre::Result<usize> {
        let mut n = 0;
        let mut stored = 0u64;
        for (root, e) in self.entries()? {
            if e.pending_sync {
                self.delete(&root)?;
                n += 1;
            } else {
                stored = stored.saturating_add(e.size);
            }
        }
        self.pending.lock().stored = stored;
        for e in std::fs::read_dir(&self.tmp)? {
            let e = e?;
            if e.file_type()?.is_file() {
                std::fs::remove_file(e.path())?;
                n += 1;
            }
        }
        for e in std::fs::read_dir(&self.dir)? {
            let e = e?;
            if !e.file_type()?.is_file() {
                continue;
            }
            let name = e.file_name();
            let known = name
                .to_str()
                .and_then(|s| hex::decode(s).ok())
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .map(|root| self.entry(&root))
                .transpose()?
                .flatten()
                .is_some();
            if !known {
                std::fs::remove_file(e.path())?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The path of a stored blob's file.
    pub fn path(&self, root: &[u8; 32]) -> PathBuf {
        self.dir.join(hex::encode(root))
    }

    /// The index entry of `root`, if stored.
    pub fn entry(&self, root: &[u8; 32]) -> eyre::Result<Option<Entry>> {
        match self.db().get_blob_index(&entry_key(root))? {
            None => Ok(None),
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(|e| {
                eyre::eyre!("corrupt blob index entry {}: {e}", hex::encode(root))
            })?)),
        }
    }

    /// Every stored blob's root and entry.
    pub fn entries(&self) -> eyre::Result<Vec<([u8; 32], Entry)>> {
        let mut out = Vec::new();
        for (k, v) in self.db().scan_blob_index(&[ENTRY])? {
            let Ok(root) = <[u8; 32]>::try_from(&k[1..]) else {
                continue;
            };
            match serde_json::from_slice(&v) {
                Ok(e) => out.push((root, e)),
                Err(e) => {
                    tracing::warn!(root = %hex::encode(root), error = %e, "corrupt blob index entry")
                }
            }
        }
        Ok(out)
    }

    /// Bytes `account` holds.
    pub fn usage(&self, account: &str) -> eyre::Result<u64> {
        Ok(self
            .db()
            .get_blob_index(&usage_key(account))?
            .map_or(0, |v| u64_of(&v)))
    }

    /// Bytes of all blobs stored.
    pub fn stored_total(&self) -> u64 {
        self.pending.lock().stored
    }

    /// Reserves `size` bytes for a transfer: against `account`'s quota (an upload; empty for a fetch,
    /// charged to nobody) and against the node-wide `max_total_bytes`, counting what is stored and every
    /// reservation in progress.
    pub fn reserve(self: &Arc<Self>, account: &str, size: u64) -> Result<Reservation, StoreError> {
        let used = if account.is_empty() {
            0
        } else {
            self.usage(account).map_err(io)?
        };
        let mut p = self.pending.lock();
        let cap = self.config.max_total_bytes;
        if p.stored.saturating_add(p.total).saturating_add(size) > cap {
            return Err(StoreError::NodeFull {
                stored: p.stored,
                pending: p.total,
                cap,
                size,
            });
        }
        if !account.is_empty() {
            let pending = p.by_account.get(account).copied().unwrap_or(0);
            let quota = self.config.quota_bytes_per_account;
            if used.saturating_add(pending).saturating_add(size) > quota {
                return Err(StoreError::OverQuota {
                    account: account.to_owned(),
                    used,
                    pending,
                    quota,
                    size,
                });
            }
            *p.by_account.entry(account.to_owned()).or_insert(0) += size;
        }
        p.total = p.total.saturating_add(size);
        Ok(Reservation {
            store: self.clone(),
            account: account.to_owned(),
            size,
        })
    }

    /// A new temp file.
    pub fn temp(&self) -> Result<TempBlob, StoreError> {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let path = self.tmp.join(format!("{}-{n}.part", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(&path)
            .map_err(io)?;
        Ok(TempBlob {
            path,
            file,
            committed: false,
        })
    }

    /// The roots of a stored blob's blocks (32 bytes each), if stored.
    pub fn block_roots(&self, root: &[u8; 32]) -> eyre::Result<Option<Vec<u8>>> {
        Ok(self.db().get_blob_index(&blocks_key(root))?)
    }

    /// Makes a verified temp file the blob `header.root` with its blocks' roots `blocks`: sync (unless it
    /// is a fetched copy: `fetched_from` non-empty, see the module docs), rename into place, index (with the
    /// uploader's usage). Returns false when the blob was already stored (the temp file is dropped and
    /// nothing is charged).
    pub fn commit(
        &self,
        mut temp: TempBlob,
        header: &BlobHeader,
        blocks: &[[u8; 32]],
        uploader: &str,
        fetched_from: &str,
    ) -> Result<bool, StoreError> {
        let _g = self.index_lock.lock();
        if self.entry(&header.root).map_err(io)?.is_some() {
            return Ok(false);
        }
        let durable = fetched_from.is_empty();
        if durable {
            temp.file.sync_all().map_err(io)?;
        }
        let path = self.path(&header.root);
        std::fs::rename(&temp.path, &path).map_err(io)?;
        temp.committed = true;
        let entry = Entry {
            kind: header.kind.name().to_owned(),
            rows: header.rows,
            cols: header.cols,
            tile: header.tile,
            size: header.size_bytes(),
            uploader: uploader.to_owned(),
            stored_unix: super::client::unix_now(),
            fetched_from: fetched_from.to_owned(),
            referenced: false,
            final_since_unix: 0,
            pending_sync: !durable,
        };
        let mut writes = vec![
            ConsensusWrite::Put(
                entry_key(&header.root),
                serde_json::to_vec(&entry).map_err(io)?,
            ),
            ConsensusWrite::Put(blocks_key(&header.root), blocks.concat()),
        ];
        if !uploader.is_empty() {
            let used = self.usage(uploader).map_err(io)?;
            writes.push(ConsensusWrite::Put(
                usage_key(uploader),
                used.saturating_add(entry.size).to_be_bytes().to_vec(),
            ));
        }
        if let Err(e) = self.db().write_blob_index(writes, durable) {
            let _ = std::fs::remove_file(&path);
            return Err(io(e));
        }
        let mut p = self.pending.lock();
        p.stored = p.stored.saturating_add(entry.size);
        Ok(true)
    }

    /// Syncs a fetched copy's file and the blob directory, then clears its `pending_sync` mark (blocking;
    /// run off the transfer's path).
    pub fn sync_fetched(&self, root: &[u8; 32]) -> eyre::Result<()> {
        std::fs::File::open(self.path(root))?.sync_all()?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        let _g = self.index_lock.lock();
        if let Some(mut e) = self.entry(root)? {
            if e.pending_sync {
                e.pending_sync = false;
                self.db().write_blob_index(
                    vec![ConsensusWrite::Put(
                        entry_key(root),
                        serde_json::to_vec(&e)?,
                    )],
                    true,
                )?;
            }
        }
        Ok(())
    }

    /// Rewrites an entry's garbage-collection marks.
    pub fn set_marks(
        &self,
        root: &[u8; 32],
        referenced: bool,
        final_since: u64,
    ) -> eyre::Result<()> {
        let _g = self.index_lock.lock();
        if let Some(mut e) = self.entry(root)? {
            e.referenced = referenced;
            e.final_since_unix = final_since;
            self.db().write_blob_index(
                vec![ConsensusWrite::Put(
                    entry_key(root),
                    serde_json::to_vec(&e)?,
                )],
                false,
            )?;
        }
        Ok(())
    }

    /// Deletes a blob: its index entry (and its uploader's usage) first, then its file.
    pub fn delete(&self, root: &[u8; 32]) -> eyre::Result<bool> {
        let _g = self.index_lock.lock();
        let Some(e) = self.entry(root)? else {
            return Ok(false);
        };
        let mut writes = vec![
            ConsensusWrite::Delete(entry_key(root)),
            ConsensusWrite::Delete(blocks_key(root)),
        ];
        if !e.uploader.is_empty() {
            let used = self.usage(&e.uploader)?.saturating_sub(e.size);
            writes.push(if used == 0 {
                ConsensusWrite::Delete(usage_key(&e.uploader))
            } else {
                ConsensusWrite::Put(usage_key(&e.uploader), used.to_be_bytes().to_vec())
            });
        }
        self.db().write_blob_index(writes, true)?;
        {
            let mut p = self.pending.lock();
            p.stored = p.stored.saturating_sub(e.size);
        }
        match std::fs::remove_file(self.path(root)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(true)
    }
}
