//! Durable state: one RocksDB instance with a column family per kind of data, and the Jellyfish Merkle
//! Tree whose root is the app hash.
//!
//! Contract: nothing is written while a block executes. [`Store::commit`] writes a block's whole effect
//! (state changes, JMT nodes, results, tx index, and the new last height and app hash) in one synced
//! `WriteBatch`, so after a crash the store holds each block either entirely or not at all.

pub mod block;
mod jmt_store;
mod overlay;

pub use block::{encode_block, BlockRecord, EncodedBlock};
pub use overlay::{KeyValue, Overlay, StateRead, StateWrite, Writes};

use std::{
    path::Path,
    sync::{Mutex, RwLock},
};

use borsh::{BorshDeserialize, BorshSerialize};
use jmt::{
    proof::SparseMerkleProof,
    storage::{NodeBatch, TreeUpdateBatch},
    JellyfishMerkleTree, KeyHash, RootHash,
};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB,
};
use sha2::Sha256;

use crate::error::StoreError;
use jmt_store::JmtReader;

/// Latest value of every state key (plain key → value), for fast reads during execution.
pub const CF_STATE: &str = "state";
/// JMT nodes, by borsh-encoded `NodeKey`.
pub const CF_JMT_NODES: &str = "jmt_nodes";
/// JMT value history: key hash ‖ version (big-endian) → 0x00 (deleted) or 0x01 ‖ value.
pub const CF_JMT_VALUES: &str = "jmt_values";
/// Per height (big-endian u64): the block's txs and results.
pub const CF_BLOCKS: &str = "blocks";
/// Tx hash → height (u64 BE) ‖ index in block (u32 BE).
pub const CF_TX_INDEX: &str = "tx_index";
/// Singletons: the commit record.
pub const CF_META: &str = "meta";
/// Account history: account (20 bytes) ‖ height (u64 BE) ‖ index in block (u32 BE) → tx hash (32 bytes), one
/// entry per account a committed tx touched (its signer, and every account an event of the tx names:
/// recipients, buyers, providers, …), written in the commit batch. Keys sort by account, then by position in
/// the chain, so an account's newest txs are one reverse seek away whatever the chain's length.
pub const CF_ACCOUNT_TXS: &str = "account_txs";
/// The consensus engine's block store (decided blocks, undecided proposals, validator sets); its key
/// layout belongs to the node, this crate only stores bytes.
pub const CF_CONSENSUS: &str = "consensus";
/// The node's blob index (job data stored under `data/blobs`); its key layout belongs to the node. Its own
/// column family, not a prefix of `consensus`: that one is iterated every height and written in the
/// synced commit batch, and blob uploads and garbage collection (puts and point deletes at the pace of
/// clients) must add nothing to either.
pub const CF_BLOBS: &str = "blobs";
/// JMT key preimages: SHA-256(state key) → state key, for every key ever written with a value. A proof of
/// absence (ICS-23 non-existence) names the neighbouring keys in plain form, so the tree needs the key
/// behind each hash; written in the commit batch with the key's value.
pub const CF_JMT_PREIMAGES: &str = "jmt_preimages";

const ALL_CFS: [&str; 10] = [
    CF_STATE,
    CF_JMT_NODES,
    CF_JMT_VALUES,
    CF_JMT_PREIMAGES,
    CF_BLOCKS,
    CF_TX_INDEX,
    CF_ACCOUNT_TXS,
    CF_META,
    CF_CONSENSUS,
    CF_BLOBS,
];
const META_COMMIT: &[u8] = b"commit";
/// Set once every live state key has its preimage in [`CF_JMT_PREIMAGES`] (stores written before the
/// column family existed are filled in at open).
const META_PREIMAGES: &[u8] = b"preimages_v1";

/// An account history key: account ‖ height (BE) ‖ index (BE).
fn history_key(account: &[u8; 20], height: u64, index: u32) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..20].copy_from_slice(account);
    k[20..28].copy_from_slice(&height.to_be_bytes());
    k[28..].copy_from_slice(&index.to_be_bytes());
    k
}

fn decode_history(key: &[u8], value: &[u8]) -> Result<HistoryEntry, StoreError> {
    let corrupt = || StoreError::Corrupt {
        key: format!("account_txs/{}", hex::encode(key)),
        reason: "length".into(),
    };
    let (_, rest) = key.split_first_chunk::<20>().ok_or_else(corrupt)?;
    let (h, i) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let i: [u8; 4] = i.try_into().map_err(|_| corrupt())?;
    let tx_hash: [u8; 32] = value.try_into().map_err(|_| corrupt())?;
    Ok(HistoryEntry {
        height: u64::from_be_bytes(*h),
        index: u32::from_be_bytes(i),
        tx_hash,
    })
}

/// The JMT over SHA-256, as used for the app hash.
pub type Jmt<'a> = JellyfishMerkleTree<'a, JmtReader<'a>, Sha256>;

/// The last durable commit.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CommitRecord {
    pub chain_id: String,
    /// Height of the first block (genesis is stored as the height before it).
    pub initial_height: u64,
    /// Last committed height; `initial_height - 1` right after genesis.
    pub height: u64,
    /// JMT root after that height: the app hash.
    pub app_hash: [u8; 32],
}

impl CommitRecord {
    /// The JMT version that holds the state after `height`: genesis is version 0.
    pub fn version_of(&self, height: u64) -> Option<u64> {
        height.checked_add(1)?.checked_sub(self.initial_height)
    }

    /// The height of the next block, for checks against a block not yet decided (CheckTx, simulation,
    /// proposals). Saturates at `u64::MAX`, which FinalizeBlock then refuses.
    pub fn next_height(&self) -> u64 {
        self.height.saturating_add(1)
    }
}

/// Everything a block commits.
#[derive(Debug)]
pub struct CommitBatch {
    pub record: CommitRecord,
    pub writes: Writes,
    pub tree: TreeUpdateBatch,
    /// The encoded block record ([`block::encode_block`]); None for genesis.
    pub block: Option<Vec<u8>>,
    /// The hash of each tx of the block, in block order.
    pub tx_hashes: Vec<[u8; 32]>,
    /// Whether each tx (same order) executed successfully. The tx index keeps a tx's first successful
    /// inclusion: a failed one is indexed only while the tx has no entry yet, so a byzantine proposer that
    /// replays a committed tx cannot point the index at the replay's failure.
    pub tx_ok: Vec<bool>,
    /// The accounts each tx (same order) touched, for the account history ([`CF_ACCOUNT_TXS`]); an entry is
    /// written only for a tx position the tx index points at, so history and `GetTx` always agree.
    pub tx_accounts: Vec<Vec<[u8; 20]>>,
}

/// A page of an account's history and the (height, index) to continue from, if there may be more.
pub type HistoryPage = (Vec<HistoryEntry>, Option<(u64, u32)>);

/// One entry of an account's history: where a tx that touched it was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryEntry {
    pub height: u64,
    pub index: u32,
    pub tx_hash: [u8; 32],
}

/// The most room a commit's batch starts with ([`Store::commit`]); a larger batch grows as it needs.
const MAX_BATCH_HINT: usize = 64 << 20;

/// The node's RocksDB.
#[derive(Debug)]
pub struct Store {
    db: DB,
    /// The JMT nodes the last commit wrote, which the next block's tree update reads first (it rewrites
    /// the paths to every key it changes). A node is never changed or deleted under its key (the key holds
    /// its version), so a copy kept in memory reads exactly as the stored one. Filled only after a
    /// successful commit.
    last_nodes: RwLock<NodeBatch>,
    /// Consensus writes waiting for the next commit ([`Store::stage_consensus`]).
    staged: Mutex<Vec<ConsensusWrite>>,
    /// The size of the last commit's batch: the next one starts with that much room (a quarter more), so
    /// it is allocated once instead of growing by doubling, each step a copy into freshly faulted pages.
    batch_hint: std::sync::atomic::AtomicUsize,
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&Cache::new_lru_cache(256 << 20));
        table.set_bloom_filter(10.0, false);
        let cfs = ALL_CFS.iter().map(|name| {
            let mut cf_opts = Options::default();
            cf_opts.set_block_based_table_factory(&table);
            ColumnFamilyDescriptor::new(*name, cf_opts)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        let store = Store {
            db,
            last_nodes: RwLock::default(),
            staged: Mutex::default(),
            batch_hint: Default::default(),
        };
        store.fill_preimages()?;
        Ok(store)
    }

    /// Writes the preimage of every live state key once, for a store from before [`CF_JMT_PREIMAGES`]
    /// (a fresh store only gets the mark). Keys deleted before then have none: a proof of absence that
    /// needs one of them as a neighbour at an old height fails with an error, never a wrong proof.
    fn fill_preimages(&self) -> Result<(), StoreError> {
        let meta = self.cf(CF_META)?;
        if self.db.get_cf(meta, META_PREIMAGES)?.is_some() {
            return Ok(());
        }
        let pre = self.cf(CF_JMT_PREIMAGES)?;
        let mut wb = WriteBatch::default();
        for item in self
            .db
            .iterator_cf(self.cf(CF_STATE)?, rocksdb::IteratorMode::Start)
        {
            let (k, _) = item?;
            wb.put_cf(pre, KeyHash::with::<Sha256>(&k).0, &k);
            if wb.len() >= 10_000 {
                self.db.write(std::mem::take(&mut wb))?;
            }
        }
        wb.put_cf(meta, META_PREIMAGES, [1u8]);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(wb, &wo)?;
        Ok(())
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(name).ok_or_else(|| StoreError::Corrupt {
            key: name.to_string(),
            reason: "missing column family".into(),
        })
    }

    /// The last commit, or None for a fresh database.
    pub fn commit_record(&self) -> Result<Option<CommitRecord>, StoreError> {
        match self.db.get_cf(self.cf(CF_META)?, META_COMMIT)? {
            None => Ok(None),
            Some(bytes) => {
                CommitRecord::try_from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        key: "meta/commit".into(),
                        reason: e.to_string(),
                    })
            }
        }
    }

    /// Computes the JMT root after applying `writes` on top of the tree at `version - 1` (nothing written).
    pub fn compute_root(
        &self,
        writes: &Writes,
        version: u64,
    ) -> Result<(RootHash, TreeUpdateBatch), StoreError> {
        let reader = JmtReader::new(self);
        let tree: Jmt<'_> = JellyfishMerkleTree::new(&reader);
        // The tree's shape depends only on its key set, so the batch insertion (one pass over sorted keys,
        // several times faster) and the per-key path give the same root. The batch path takes neither
        // deletions nor an empty set, so those blocks use the per-key path.
        let inserts_only = !writes.is_empty() && writes.values().all(Option::is_some);
        if inserts_only {
            let kvs: Vec<(KeyHash, Vec<u8>)> = writes
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| (KeyHash::with::<Sha256>(k), v.clone())))
                .collect();
            let (roots, batch) = tree
                .batch_put_value_sets(vec![kvs], None, version)
                .map_err(|e| StoreError::Jmt(e.to_string()))?;
            let root = roots
                .first()
                .copied()
                .ok_or_else(|| StoreError::Jmt("batch update returned no root".into()))?;
            return Ok((root, batch));
        }
        self.compute_root_per_key(writes, version)
    }

    /// The per-key JMT update (reference for [`Store::compute_root`]'s batch path; used by tests).
    pub fn compute_root_per_key(
        &self,
        writes: &Writes,
        version: u64,
    ) -> Result<(RootHash, TreeUpdateBatch), StoreError> {
        let reader = JmtReader::new(self);
        let tree: Jmt<'_> = JellyfishMerkleTree::new(&reader);
        let set = writes
            .iter()
            .map(|(k, v)| (KeyHash::with::<Sha256>(k), v.clone()));
        tree.put_value_set(set, version)
            .map_err(|e| StoreError::Jmt(e.to_string()))
    }

    /// A key's value at a JMT version with a proof against that version's root.
    pub fn get_with_proof(
        &self,
        key: &[u8],
        version: u64,
    ) -> Result<(Option<Vec<u8>>, SparseMerkleProof<Sha256>), StoreError> {
        let reader = JmtReader::new(self);
        let tree: Jmt<'_> = JellyfishMerkleTree::new(&reader);
        tree.get_with_proof(KeyHash::with::<Sha256>(key), version)
            .map_err(|e| StoreError::Jmt(e.to_string()))
    }

    /// A key's value at a JMT version with an ICS-23 proof (existence, or non-existence with the
    /// neighbouring keys) against that version's root, in Lode's form (`crate::query::proof_spec`: leaf
    /// values carried as their SHA-256).
    pub fn get_with_ics23_proof(
        &self,
        key: &[u8],
        version: u64,
    ) -> Result<(Option<Vec<u8>>, ics23::CommitmentProof), StoreError> {
        let reader = JmtReader::new(self);
        let tree: Jmt<'_> = JellyfishMerkleTree::new(&reader);
        tree.get_with_ics23_proof(key.to_vec(), version)
            .map(|(v, p)| (v, lode_form(p)))
            .map_err(|e| StoreError::Jmt(e.to_string()))
    }

    /// A key's value at a JMT version (no proof): the value history, one seek.
    pub fn get_at(&self, key: &[u8], version: u64) -> Result<Option<Vec<u8>>, StoreError> {
        use jmt::storage::TreeReader;
        JmtReader::new(self)
            .get_value_option(version, KeyHash::with::<Sha256>(key))
            .map_err(|e| StoreError::Jmt(e.to_string()))
    }

    /// The root hash of a JMT version, or None when the store does not hold that version's tree.
    pub fn root_option(&self, version: u64) -> Result<Option<[u8; 32]>, StoreError> {
        let reader = JmtReader::new(self);
        let tree: Jmt<'_> = JellyfishMerkleTree::new(&reader);
        tree.get_root_hash_option(version)
            .map(|r| r.map(|r| r.0))
            .map_err(|e| StoreError::Jmt(e.to_string()))
    }

    /// A consistent view of the last commit: its record and the latest state values as of one moment,
    /// unaffected by commits that land while it is read (a RocksDB snapshot). None for a fresh store.
    pub fn view(&self) -> Result<Option<StateView<'_>>, StoreError> {
        let snap = self.db.snapshot();
        let Some(bytes) = snap.get_cf(self.cf(CF_META)?, META_COMMIT)? else {
            return Ok(None);
        };
        let record = CommitRecord::try_from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            key: "meta/commit".into(),
            reason: e.to_string(),
        })?;
        Ok(Some(StateView {
            store: self,
            snap,
            record,
        }))
    }

    /// The root hash of a JMT version.
    pub fn root_at(&self, version: u64) -> Result<[u8; 32], StoreError> {
        let reader = JmtReader::new(self);
        let tree: Jmt<'_> = JellyfishMerkleTree::new(&reader);
        tree.get_root_hash(version)
            .map(|r| r.0)
            .map_err(|e| StoreError::Jmt(e.to_string()))
    }

    /// Writes a block's whole effect in one synced batch.
    pub fn commit(&self, mut batch: CommitBatch) -> Result<(), StoreError> {
        let hint = self.batch_hint.load(std::sync::atomic::Ordering::Relaxed);
        let mut wb =
            WriteBatch::with_capacity_bytes(hint.saturating_add(hint / 4).min(MAX_BATCH_HINT));
        let state = self.cf(CF_STATE)?;
        let preimages = self.cf(CF_JMT_PREIMAGES)?;
        for (k, v) in &batch.writes {
            match v {
                Some(v) => {
                    wb.put_cf(state, k, v);
                    wb.put_cf(preimages, KeyHash::with::<Sha256>(k).0, k);
                }
                None => wb.delete_cf(state, k),
            }
        }
        jmt_store::write_tree_batch(self, &mut wb, &batch.tree)?;
        if let Some(block) = &batch.block {
            wb.put_cf(
                self.cf(CF_BLOCKS)?,
                batch.record.height.to_be_bytes(),
                block,
            );
        }
        self.index_txs(&mut wb, &batch)?;
        let record = borsh::to_vec(&batch.record).map_err(|e| StoreError::Jmt(e.to_string()))?;
        wb.put_cf(self.cf(CF_META)?, META_COMMIT, record);
        // What the node's block store staged for this height (the decided block, the next validator sets,
        // pruned proposals) lands in the same synced batch as the block's state.
        self.take_staged(&mut wb)?;
        // The batch holds a copy of everything now; free the block's many allocations on another core
        // while this one waits for the synced write.
        let nodes = std::mem::take(&mut batch.tree.node_batch);
        rayon::spawn(move || drop(batch));
        self.batch_hint
            .store(wb.size_in_bytes(), std::sync::atomic::Ordering::Relaxed);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(wb, &wo)?;
        let old = std::mem::replace(
            &mut *self.last_nodes.write().unwrap_or_else(|e| e.into_inner()),
            nodes,
        );
        rayon::spawn(move || drop(old));
        Ok(())
    }

    /// The tx index entries of a block: each tx's (height, index), in key order (RocksDB inserts a batch into
    /// each memtable in batch order, and an insert next to the previous one is much cheaper than one at a
    /// random place). A tx keeps its first successful inclusion; a failed inclusion is written only where
    /// the tx has no entry yet (not in the store, not earlier in this block).
    fn index_txs(&self, wb: &mut WriteBatch, batch: &CommitBatch) -> Result<(), StoreError> {
        let index = self.cf(CF_TX_INDEX)?;
        let ok = |i: usize| batch.tx_ok.get(i).copied().unwrap_or(true);
        let mut locations: Vec<(&[u8; 32], u32)> = batch
            .tx_hashes
            .iter()
            .enumerate()
            .map(|(i, h)| (h, i as u32))
            .collect();
        // Per hash: a successful inclusion first, then by position in the block.
        locations.sort_by_key(|&(h, i)| (h, !ok(i as usize), i));
        locations.dedup_by_key(|&mut (h, _)| h);
        // Only failed inclusions need to know whether the tx is already indexed (a tx's bytes can succeed
        // only once: its nonce is spent), so the common block reads nothing.
        let failed: Vec<&[u8; 32]> = locations
            .iter()
            .filter(|&&(_, i)| !ok(i as usize))
            .map(|&(h, _)| h)
            .collect();
        let mut indexed = std::collections::BTreeSet::new();
        if !failed.is_empty() {
            let found = self
                .db
                .multi_get_cf(failed.iter().map(|h| (index, h.as_slice())));
            for (h, r) in failed.into_iter().zip(found) {
                if r?.is_some() {
                    indexed.insert(h);
                }
            }
        }
        let mut history: Vec<([u8; 20], u32, &[u8; 32])> = Vec::new();
        for (h, i) in locations {
            if !ok(i as usize) && indexed.contains(h) {
                continue;
            }
            let mut loc = [0u8; 12];
            loc[..8].copy_from_slice(&batch.record.height.to_be_bytes());
            loc[8..].copy_from_slice(&i.to_be_bytes());
            wb.put_cf(index, h, loc);
            if let Some(accounts) = batch.tx_accounts.get(i as usize) {
                history.extend(accounts.iter().map(|a| (*a, i, h)));
            }
        }
        // Account history entries, in key order (see above) and without duplicates.
        history.sort_unstable_by_key(|&(a, i, _)| (a, i));
        history.dedup_by_key(|&mut (a, i, _)| (a, i));
        let accounts = self.cf(CF_ACCOUNT_TXS)?;
        for (a, i, h) in history {
            wb.put_cf(accounts, history_key(&a, batch.record.height, i), h);
        }
        Ok(())
    }

    /// Up to `limit` of the txs that touched `account`, newest first, strictly before `before` ((height,
    /// index); None: from the newest), and the position to continue from when there may be more.
    pub fn account_history(
        &self,
        account: &[u8; 20],
        before: Option<(u64, u32)>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        let cf = self.cf(CF_ACCOUNT_TXS)?;
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_iterate_lower_bound(account.to_vec());
        let upper = match before {
            Some((h, i)) => history_key(account, h, i).to_vec(),
            // Above every key of this account (32 bytes) and below the next account's.
            None => {
                let mut k = account.to_vec();
                k.extend_from_slice(&[0xff; 13]);
                k
            }
        };
        let mut it = self.db.raw_iterator_cf_opt(cf, opts);
        it.seek_for_prev(&upper);
        // `before` itself is not part of the page.
        if it.valid() && it.key() == Some(upper.as_slice()) {
            it.prev();
        }
        let mut out = Vec::with_capacity(limit.min(1024));
        while it.valid() && out.len() < limit {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            out.push(decode_history(k, v)?);
            it.prev();
        }
        it.status()?;
        let more = it.valid() && out.len() == limit;
        let next = if more {
            out.last().map(|e| (e.height, e.index))
        } else {
            None
        };
        Ok((out, next))
    }

    /// A stored block, its results as the protobuf `ResponseFinalizeBlock` whichever form they are stored in.
    pub fn block(&self, height: u64) -> Result<Option<BlockRecord>, StoreError> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_BLOCKS)?, height.to_be_bytes())?
        {
            None => Ok(None),
            Some(b) => block::decode_record(&b)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    key: format!("blocks/{height}"),
                    reason: e.to_string(),
                }),
        }
    }

    /// The txs of a stored block, without decoding its results (the node's block store reads a decided
    /// block's body here: see `RocksBlockStore`).
    pub fn block_txs(&self, height: u64) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_BLOCKS)?, height.to_be_bytes())?
        {
            None => Ok(None),
            // The record starts with its txs (`BlockRecord`): read them and leave the rest.
            Some(b) => <Vec<Vec<u8>> as borsh::BorshDeserialize>::deserialize(&mut &b[..])
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    key: format!("blocks/{height}"),
                    reason: e.to_string(),
                }),
        }
    }

    /// Where a tx was committed: (height, index in block).
    pub fn tx_location(&self, hash: &[u8; 32]) -> Result<Option<(u64, u32)>, StoreError> {
        match self.db.get_cf(self.cf(CF_TX_INDEX)?, hash)? {
            None => Ok(None),
            // height (8 bytes) ‖ index (4 bytes), big-endian.
            Some(b) => b
                .split_first_chunk::<8>()
                .and_then(|(h, i)| Some((*h, <[u8; 4]>::try_from(i).ok()?)))
                .map(|(h, i)| Some((u64::from_be_bytes(h), u32::from_be_bytes(i))))
                .ok_or_else(|| StoreError::Corrupt {
                    key: format!("tx_index/{}", hex::encode(hash)),
                    reason: "length".into(),
                }),
        }
    }

    /// One page of committed (key, value) pairs under `prefix`, starting at `prefix ‖ start` (inclusive),
    /// at most `limit` of them; the second value is the suffix (after `prefix`) of the next key, if any.
    pub fn scan_page(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<(Vec<KeyValue>, Option<Vec<u8>>), StoreError> {
        let mut from = prefix.to_vec();
        from.extend_from_slice(start);
        let iter = self.db.iterator_cf(
            self.cf(CF_STATE)?,
            rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward),
        );
        page_under(iter.map(|i| i.map_err(StoreError::from)), prefix, limit)
    }

    /// Every committed (key, value) under a state-key prefix, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.scan_cf(CF_STATE, prefix)
    }

    /// Every (key, value) of a column family whose key starts with `prefix`, in key order.
    fn scan_cf(&self, cf: &str, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(cf)?,
            rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}

/// The `blobs` column family: opaque keys and values of the node's blob index, written outside block
/// commits (never part of the app hash).
impl Store {
    /// Applies `writes` in one batch, synced when `sync`.
    pub fn write_blob_index(
        &self,
        writes: Vec<ConsensusWrite>,
        sync: bool,
    ) -> Result<(), StoreError> {
        let cf = self.cf(CF_BLOBS)?;
        let mut wb = WriteBatch::default();
        for w in writes {
            match w {
                ConsensusWrite::Put(k, v) => wb.put_cf(cf, k, v),
                ConsensusWrite::Delete(k) => wb.delete_cf(cf, k),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(wb, &wo)?;
        Ok(())
    }

    /// The value under `key`.
    pub fn get_blob_index(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(CF_BLOBS)?, key)?)
    }

    /// Every (key, value) whose key starts with `prefix`, in key order.
    pub fn scan_blob_index(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.scan_cf(CF_BLOBS, prefix)
    }
}

/// One write to the `consensus` (or `blobs`) column family, staged for the next commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsensusWrite {
    /// Put the value under the key.
    Put(Vec<u8>, Vec<u8>),
    /// Delete the key (a point delete: never a range delete, see [`Store::stage_consensus`]).
    Delete(Vec<u8>),
}

/// The `consensus` column family: opaque keys and values for the node's block store.
///
/// What a height needs to start (its decided predecessor, its validator sets) is *staged* and written with
/// the application's [`Store::commit`] of that block, in the same synced `WriteBatch`, so a crash leaves
/// either all of it or none of it. Deletes are point deletes: this column family is iterated every height,
/// and every iterator re-fragments every range tombstone still in the memtable, so a range delete per
/// height makes each height slower than the last.
impl Store {
    /// Writes `puts` in one batch, synced (fsync) when `sync`. Unsynced writes still survive a killed process
    /// (they are in the OS's page cache) and become durable with the next synced write, which RocksDB's
    /// single write-ahead log orders after them.
    pub fn put_consensus(&self, puts: &[(&[u8], &[u8])], sync: bool) -> Result<(), StoreError> {
        let cf = self.cf(CF_CONSENSUS)?;
        let mut wb = WriteBatch::default();
        for (k, v) in puts {
            wb.put_cf(cf, k, v);
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(wb, &wo)?;
        Ok(())
    }

    /// Writes `writes` in one batch now, synced when `sync` (see [`Store::put_consensus`]).
    pub fn write_consensus(
        &self,
        writes: Vec<ConsensusWrite>,
        sync: bool,
    ) -> Result<(), StoreError> {
        let cf = self.cf(CF_CONSENSUS)?;
        let mut wb = WriteBatch::default();
        for w in writes {
            match w {
                ConsensusWrite::Put(k, v) => wb.put_cf(cf, k, v),
                ConsensusWrite::Delete(k) => wb.delete_cf(cf, k),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(wb, &wo)?;
        Ok(())
    }

    /// Stages `writes` for the next [`Store::commit`] (or [`Store::write_staged`]), which applies them in its
    /// one batch after the block's own writes.
    pub fn stage_consensus(&self, writes: Vec<ConsensusWrite>) {
        self.staged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(writes);
    }

    /// Drops what was staged and not yet written (after a failed commit).
    pub fn discard_staged(&self) {
        self.staged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Writes what was staged on its own, synced when `sync` (outside a block commit: genesis, start-up
    /// repairs, tools).
    pub fn write_staged(&self, sync: bool) -> Result<(), StoreError> {
        let mut wb = WriteBatch::default();
        self.take_staged(&mut wb)?;
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(wb, &wo)?;
        Ok(())
    }

    fn take_staged(&self, wb: &mut WriteBatch) -> Result<(), StoreError> {
        let cf = self.cf(CF_CONSENSUS)?;
        let staged = std::mem::take(&mut *self.staged.lock().unwrap_or_else(|e| e.into_inner()));
        for w in staged {
            match w {
                ConsensusWrite::Put(k, v) => wb.put_cf(cf, k, v),
                ConsensusWrite::Delete(k) => wb.delete_cf(cf, k),
            }
        }
        Ok(())
    }

    /// The value under `key`.
    pub fn get_consensus(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(CF_CONSENSUS)?, key)?)
    }

    /// Every (key, value) whose key starts with `prefix`, in key order.
    pub fn scan_consensus(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.scan_cf(CF_CONSENSUS, prefix)
    }

    /// Every key in `[from, to)`, in order, at most `limit` of them.
    pub fn consensus_keys(
        &self,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(CF_CONSENSUS)?,
            rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (k, _) = item?;
            if k.as_ref() >= to || out.len() == limit {
                break;
            }
            out.push(k.to_vec());
        }
        Ok(out)
    }

    /// The first key (in order) starting with `prefix`, or the last one when `last`.
    pub fn edge_consensus_key(
        &self,
        prefix: &[u8],
        last: bool,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let cf = self.cf(CF_CONSENSUS)?;
        let mut iter = if last {
            let mut end = prefix.to_vec();
            end.extend_from_slice(&[0xff; 16]);
            self.db.iterator_cf(
                cf,
                rocksdb::IteratorMode::From(&end, rocksdb::Direction::Reverse),
            )
        } else {
            self.db.iterator_cf(
                cf,
                rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward),
            )
        };
        match iter.next() {
            Some(item) => {
                let (k, _) = item?;
                Ok(k.starts_with(prefix).then(|| k.to_vec()))
            }
            None => Ok(None),
        }
    }
}

/// A jmt ICS-23 proof in Lode's form ([`proof_spec`]): every leaf's value replaced by its SHA-256.
fn lode_form(mut p: ics23::CommitmentProof) -> ics23::CommitmentProof {
    use ics23::commitment_proof::Proof;
    fn leaf(e: &mut ics23::ExistenceProof) {
        use sha2::Digest;
        e.value = sha2::Sha256::digest(&e.value).to_vec();
        if let Some(l) = e.leaf.as_mut() {
            l.prehash_value = ics23::HashOp::NoHash.into();
        }
    }
    match p.proof.as_mut() {
        Some(Proof::Exist(e)) => leaf(e),
        Some(Proof::Nonexist(n)) => {
            n.left.iter_mut().chain(n.right.iter_mut()).for_each(leaf);
        }
        _ => {}
    }
    p
}

/// The last commit as of one moment ([`Store::view`]): its record, and state reads and scans from a RocksDB
/// snapshot taken with it, so a commit landing meanwhile changes nothing it returns.
pub struct StateView<'a> {
    store: &'a Store,
    snap: rocksdb::Snapshot<'a>,
    record: CommitRecord,
}

impl std::fmt::Debug for StateView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateView")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl StateView<'_> {
    /// The commit this view shows.
    pub fn record(&self) -> &CommitRecord {
        &self.record
    }

    /// The store under the view (for reads at a past JMT version, which never change).
    pub fn store(&self) -> &Store {
        self.store
    }

    /// As [`Store::scan_page`], from the snapshot.
    pub fn scan_page(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<(Vec<KeyValue>, Option<Vec<u8>>), StoreError> {
        let mut from = prefix.to_vec();
        from.extend_from_slice(start);
        let iter = self.snap.iterator_cf(
            self.store.cf(CF_STATE)?,
            rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward),
        );
        page_under(iter.map(|i| i.map_err(StoreError::from)), prefix, limit)
    }
}

impl StateRead for StateView<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.snap.get_cf(self.store.cf(CF_STATE)?, key)?)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let mut out = Vec::new();
        let iter = self.snap.iterator_cf(
            self.store.cf(CF_STATE)?,
            rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}

/// What RocksDB did on the calling thread while a closure ran, from its perf context: the measure of a
/// read's cost that does not depend on the machine's speed or load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadCost {
    /// User-key comparisons (seeks, and the sort that fragments range tombstones when an iterator opens).
    pub key_comparisons: u64,
    /// Deleted entries an iterator stepped over.
    pub deletes_skipped: u64,
    /// Entries an iterator stepped over for any reason (deletes, older versions).
    pub keys_skipped: u64,
}

impl ReadCost {
    /// Runs `f` and counts its reads (perf counting is switched on for the calling thread while it runs).
    pub fn measure<T>(f: impl FnOnce() -> T) -> (T, ReadCost) {
        use rocksdb::perf::{set_perf_stats, PerfContext, PerfMetric, PerfStatsLevel};
        set_perf_stats(PerfStatsLevel::EnableCount);
        let mut ctx = PerfContext::default();
        ctx.reset();
        let out = f();
        let cost = ReadCost {
            key_comparisons: ctx.metric(PerfMetric::UserKeyComparisonCount),
            deletes_skipped: ctx.metric(PerfMetric::InternalDeleteSkippedCount),
            keys_skipped: ctx.metric(PerfMetric::InternalKeySkippedCount),
        };
        set_perf_stats(PerfStatsLevel::Disable);
        (out, cost)
    }
}

impl Store {
    /// Several state values at the last commit in one RocksDB `MultiGet`, in `keys` order.
    pub fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let cf = self.cf(CF_STATE)?;
        self.db
            .multi_get_cf(keys.iter().map(|k| (cf, k.as_slice())))
            .into_iter()
            .map(|r| r.map_err(StoreError::from))
            .collect()
    }
}

/// The last commit, read through values fetched ahead of need (FinalizeBlock fetches the accounts of the next
/// chunk of txs on its verifier thread while it executes the current one). Nothing writes the store while a
/// block executes, so a value fetched ahead is exactly what a read would return; the map is only looked up,
/// never iterated.
#[derive(Debug)]
pub struct Prefetched<'a> {
    store: &'a Store,
    ahead: std::sync::RwLock<std::collections::HashMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl<'a> Prefetched<'a> {
    /// Reads of `store`, with nothing fetched yet.
    pub fn new(store: &'a Store) -> Self {
        Self {
            store,
            ahead: Default::default(),
        }
    }

    /// Fetches `keys` (in one MultiGet) so later reads find them in memory. A failed fetch is ignored: the
    /// read then goes to the store and reports the error itself.
    pub fn fetch(&self, keys: Vec<Vec<u8>>) {
        let keys: Vec<Vec<u8>> = {
            let ahead = self.ahead.read().unwrap_or_else(|e| e.into_inner());
            keys.into_iter()
                .filter(|k| !ahead.contains_key(k))
                .collect()
        };
        if keys.is_empty() {
            return;
        }
        if let Ok(values) = self.store.get_many(&keys) {
            let mut ahead = self.ahead.write().unwrap_or_else(|e| e.into_inner());
            ahead.extend(keys.into_iter().zip(values));
        }
    }
}

impl StateRead for Prefetched<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self
            .ahead
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return Ok(v.clone());
        }
        self.store.get(key)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.store.scan_prefix(prefix)
    }
}

impl StateRead for Store {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(CF_STATE)?, key)?)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        Store::scan_prefix(self, prefix)
    }
}

/// One page of `items` (key-ordered (key, value) pairs starting at `prefix ‖ start`): those under `prefix`, at
/// most `limit` of them, and the suffix (after `prefix`) of the next key under `prefix`, if any. Shared by every
/// paged scan (the store, a snapshot view, a query's overlay).
pub(crate) fn page_under<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    items: impl Iterator<Item = Result<(K, V), StoreError>>,
    prefix: &[u8],
    limit: usize,
) -> Result<(Vec<KeyValue>, Option<Vec<u8>>), StoreError> {
    let mut out = Vec::new();
    for item in items {
        let (k, v) = item?;
        let Some(suffix) = k.as_ref().strip_prefix(prefix) else {
            break;
        };
        if out.len() == limit {
            return Ok((out, Some(suffix.to_vec())));
        }
        out.push((k.as_ref().to_vec(), v.as_ref().to_vec()));
    }
    Ok((out, None))
}
