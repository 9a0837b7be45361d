//! The consensus block store on the node's RocksDB (the state's `consensus` column family).
//!
//! Keys (all integers big-endian, so key order is height order):
//! - `d ‖ height` → [`DecidedBlock`] without its txs: they are the application's block record of the same
//!   height (`CF_BLOCKS`), written by the same Commit, and [`BlockStore::get_decided`] reads them from there
//!   and checks them against the header's tx root. A record written whole (by `put_decided`, or by a node
//!   from before) is read as it is.
//! - `u ‖ height ‖ round ‖ block id` → [`UndecidedProposal`] (round `u32::MAX` stands for nil)
//! - `v ‖ height` → [`HeightValidators`]
//!
//! What a height needs to start (the decided block before it, its validator sets) and the pruning of the
//! decided height's proposals are staged by [`BlockStore::stage_commit`] and written by the application's
//! Commit in its one synced batch. Pruning uses point deletes of the keys it finds from where the last prune
//! stopped, never a range delete and never a scan from the start of the prefix: this column family is read
//! every height, and both would make each height cost more than the last.

use bytes::Bytes;
use lode_consensus::{
    Block, BlockId, BlockStore, DecidedBlock, Height, HeightValidators, LodeContext, StoreError,
    UndecidedProposal,
};
use malachitebft_core_types::CommitCertificate;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use lode_state::{
    store::{ConsensusWrite, Store},
    LodeApp,
};
use malachitebft_core_types::Round;

const DECIDED: u8 = b'd';
const UNDECIDED: u8 = b'u';
const VALIDATORS: u8 = b'v';
/// Proposals kept in memory after they are written (see `RocksBlockStore::recent`).
const RECENT_PROPOSALS: usize = 16;

/// [`BlockStore`] over the application's database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RocksBlockStore {
    app: LodeApp,
    /// Every undecided proposal below this height is deleted (0: unknown since the store opened, so the
    /// next prune sweeps the whole prefix once).
    pruned_below: Arc<AtomicU64>,
    /// The last proposals written that passed their checks (`valid`), oldest first: at each decision
    /// consensus looks the decided block up by id, and finding it here spares reading it back, decoding
    /// every tx and hashing them all again. It follows the store: an entry is added once its write
    /// succeeded, replaces an older write of the same key (and leaves if that write is not valid), and
    /// leaves with the heights a prune deletes; what is not here is read from the store. Only valid
    /// proposals: a body whose txs match its header's tx root is the only body of that block id, while the
    /// store also keeps bodies that failed (a hostile proposer's under a good block's id), and the store's
    /// answer is its lowest round's, whatever its verdict.
    recent: Arc<Mutex<VecDeque<UndecidedProposal>>>,
}

impl RocksBlockStore {
    /// The block store inside `app`'s database.
    pub fn new(app: LodeApp) -> Self {
        Self {
            app,
            pruned_below: Arc::default(),
            recent: Arc::default(),
        }
    }

    fn recent(&self) -> MutexGuard<'_, VecDeque<UndecidedProposal>> {
        // A cache of what the store holds: a guard poisoned elsewhere still holds valid entries.
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a proposal just written if it passed its checks (an older entry of the same key leaves).
    fn remember(&self, p: &UndecidedProposal) {
        let id = p.block.id();
        let mut recent = self.recent();
        recent.retain(|r| !(r.height == p.height && r.round == p.round && r.block.id() == id));
        if !p.valid {
            return;
        }
        recent.push_back(p.clone());
        while recent.len() > RECENT_PROPOSALS {
            recent.pop_front();
        }
    }

    /// Drops the kept proposals below `below` (those a prune deletes).
    fn forget_below(&self, below: Height) {
        self.recent().retain(|r| r.height >= below);
    }

    fn store(&self) -> &Store {
        self.app.store()
    }

    /// The decided record of `height` as stored: since `stage_commit` writes it, without its txs.
    fn decided_record(&self, height: Height) -> Result<Option<DecidedBlock>, StoreError> {
        self.store()
            .get_consensus(&height_key(DECIDED, height))
            .map_err(backend)?
            .map(|b| DecidedBlock::decode(&b).map_err(StoreError::from))
            .transpose()
    }

    /// Point deletes of every undecided proposal below `below` not yet pruned; advances the mark.
    fn prune_deletes(&self, below: Height) -> Result<Vec<ConsensusWrite>, StoreError> {
        let done = self.pruned_below.load(Ordering::Acquire);
        if done >= below.0 {
            return Ok(Vec::new());
        }
        let from = if done == 0 {
            vec![UNDECIDED]
        } else {
            height_key(UNDECIDED, Height(done)).to_vec()
        };
        let keys = self
            .store()
            .consensus_keys(&from, &height_key(UNDECIDED, below), usize::MAX)
            .map_err(backend)?;
        self.pruned_below.store(below.0, Ordering::Release);
        Ok(keys.into_iter().map(ConsensusWrite::Delete).collect())
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn height_key(tag: u8, h: Height) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = tag;
    k[1..].copy_from_slice(&h.0.to_be_bytes());
    k
}

fn round_key(r: Round) -> u32 {
    r.as_u32().unwrap_or(u32::MAX)
}

fn undecided_prefix(h: Height, round: Option<Round>) -> Vec<u8> {
    let mut k = height_key(UNDECIDED, h).to_vec();
    if let Some(r) = round {
        k.extend_from_slice(&round_key(r).to_be_bytes());
    }
    k
}

fn height_of(key: &[u8]) -> Result<Height, StoreError> {
    let b: [u8; 8] = key
        .get(1..9)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| StoreError::Backend(format!("bad block store key {}", hex::encode(key))))?;
    Ok(Height(u64::from_be_bytes(b)))
}

impl BlockStore for RocksBlockStore {
    fn put_decided(&self, decided: &DecidedBlock) -> Result<(), StoreError> {
        let key = height_key(DECIDED, decided.block.header().height);
        self.store()
            .put_consensus(&[(&key, &decided.encode())], true)
            .map_err(backend)
    }

    fn get_decided(&self, height: Height) -> Result<Option<DecidedBlock>, StoreError> {
        let Some(decided) = self.decided_record(height)? else {
            return Ok(None);
        };
        // Written whole (`put_decided`, or a store from before bodies were shared) or without txs at all:
        // either way a block whose body matches its header is complete.
        if decided.block.tx_root_matches() {
            return Ok(Some(decided));
        }
        if !decided.block.txs().is_empty() {
            return Err(StoreError::Backend(format!(
                "decided block at {height}: its txs do not match its header's tx root"
            )));
        }
        // Staged by `stage_commit` without its txs: they are the application's block record of this
        // height, written in the same batch. Both are read from disk, so they are checked to match.
        let txs = self
            .store()
            .block_txs(height.0)
            .map_err(backend)?
            .ok_or_else(|| {
                StoreError::Backend(format!(
                    "decided block at {height}: the application has no block record for its txs"
                ))
            })?;
        let block = Block::with_last_commit(
            decided.block.header().clone(),
            txs.into_iter().map(Bytes::from).collect(),
            decided.block.last_commit().cloned(),
        );
        if !block.tx_root_matches() {
            return Err(StoreError::Backend(format!(
                "decided block at {height}: the application's block record does not match its tx root"
            )));
        }
        Ok(Some(DecidedBlock {
            block,
            certificate: decided.certificate,
        }))
    }

    fn decided_certificate(
        &self,
        height: Height,
    ) -> Result<Option<CommitCertificate<LodeContext>>, StoreError> {
        Ok(self.decided_record(height)?.map(|d| d.certificate))
    }

    fn min_height(&self) -> Result<Option<Height>, StoreError> {
        self.store()
            .edge_consensus_key(&[DECIDED], false)
            .map_err(backend)?
            .map(|k| height_of(&k))
            .transpose()
    }

    fn max_height(&self) -> Result<Option<Height>, StoreError> {
        self.store()
            .edge_consensus_key(&[DECIDED], true)
            .map_err(backend)?
            .map(|k| height_of(&k))
            .transpose()
    }

    fn put_undecided(&self, p: &UndecidedProposal) -> Result<(), StoreError> {
        let mut key = undecided_prefix(p.height, Some(p.round));
        key.extend_from_slice(&p.block.id().0);
        self.store()
            .put_consensus(&[(&key, &p.encode())], true)
            .map_err(backend)?;
        self.remember(p);
        Ok(())
    }

    fn put_received(&self, p: &UndecidedProposal) -> Result<(), StoreError> {
        let mut key = undecided_prefix(p.height, Some(p.round));
        key.extend_from_slice(&p.block.id().0);
        self.store()
            .put_consensus(&[(&key, &p.encode())], false)
            .map_err(backend)?;
        self.remember(p);
        Ok(())
    }

    fn undecided(
        &self,
        height: Height,
        round: Round,
    ) -> Result<Vec<UndecidedProposal>, StoreError> {
        self.store()
            .scan_consensus(&undecided_prefix(height, Some(round)))
            .map_err(backend)?
            .iter()
            .map(|(_, v)| UndecidedProposal::decode(v).map_err(StoreError::from))
            .collect()
    }

    fn undecided_by_id(
        &self,
        height: Height,
        id: BlockId,
    ) -> Result<Option<UndecidedProposal>, StoreError> {
        // Any valid proposal of this id holds the block's one body (its txs match the header's tx root).
        let kept = self
            .recent()
            .iter()
            .filter(|r| r.height == height && r.block.id() == id)
            .min_by_key(|r| round_key(r.round))
            .cloned();
        if kept.is_some() {
            return Ok(kept);
        }
        for (k, v) in self
            .store()
            .scan_consensus(&undecided_prefix(height, None))
            .map_err(backend)?
        {
            if k.ends_with(&id.0) {
                return Ok(Some(UndecidedProposal::decode(&v)?));
            }
        }
        Ok(None)
    }

    fn prune_undecided(&self, below: Height) -> Result<(), StoreError> {
        self.forget_below(below);
        let deletes = self.prune_deletes(below)?;
        // Losing a prune in a crash costs nothing (the next sweep finds the keys again): no fsync.
        self.store()
            .write_consensus(deletes, false)
            .map_err(backend)
    }

    fn stage_commit(
        &self,
        decided: &DecidedBlock,
        next: &HeightValidators,
    ) -> Result<(), StoreError> {
        let height = decided.block.header().height;
        // The decided block without its txs: the application's Commit writes them in the same batch, in
        // its block record of this height, where `get_decided` reads them back. Each block's txs are thus
        // written once less per node (they were also the largest part of this record).
        let bodiless = DecidedBlock {
            block: Block::with_last_commit(
                decided.block.header().clone(),
                Vec::new(),
                decided.block.last_commit().cloned(),
            ),
            certificate: decided.certificate.clone(),
        };
        let mut writes = vec![
            ConsensusWrite::Put(
                height_key(DECIDED, height).to_vec(),
                bodiless.encode().to_vec(),
            ),
            ConsensusWrite::Put(
                height_key(VALIDATORS, next.height).to_vec(),
                next.encode().to_vec(),
            ),
        ];
        self.forget_below(Height(height.0.saturating_add(1)));
        writes.extend(self.prune_deletes(Height(height.0.saturating_add(1)))?);
        self.store().stage_consensus(writes);
        Ok(())
    }

    fn discard_staged(&self) {
        self.store().discard_staged();
        // The staged deletes are gone: sweep again next time.
        self.pruned_below.store(0, Ordering::Release);
    }

    fn put_validators(&self, v: &HeightValidators) -> Result<(), StoreError> {
        let key = height_key(VALIDATORS, v.height);
        self.store()
            .put_consensus(&[(&key, &v.encode())], true)
            .map_err(backend)
    }

    fn get_validators(&self, height: Height) -> Result<Option<HeightValidators>, StoreError> {
        match self
            .store()
            .get_consensus(&height_key(VALIDATORS, height))
            .map_err(backend)?
        {
            Some(b) => Ok(Some(HeightValidators::decode(&b)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use lode_consensus::{
        Address, Block, BlockHeader, BlockTime, PrivateKey, Validator, ValidatorSet,
    };
    use lode_state::store::ReadCost;

    fn block(height: u64, tx: &'static [u8]) -> Block {
        block_of(height, vec![Bytes::from_static(tx)])
    }

    fn block_of(height: u64, txs: Vec<Bytes>) -> Block {
        Block::new(
            BlockHeader {
                chain_id: "c".into(),
                height: Height(height),
                time: BlockTime::default(),
                proposer: Address([1; 20]),
                last_block_id: None,
                tx_root: lode_consensus::types::tx_root(&txs),
                app_hash: Bytes::new(),
                last_commit_hash: None,
            },
            txs,
        )
    }

    fn proposal(height: u64, round: u32, tx: &'static [u8]) -> UndecidedProposal {
        UndecidedProposal {
            height: Height(height),
            round: Round::new(round),
            valid_round: Round::Nil,
            block: block(height, tx),
            valid: true,
        }
    }

    fn validators() -> ValidatorSet {
        ValidatorSet::new(
            (1..=4u8).map(|i| Validator::new(PrivateKey::from_seed([i; 32]).public_key(), 10)),
        )
    }

    fn decided(block: Block) -> DecidedBlock {
        DecidedBlock {
            certificate: malachitebft_core_types::CommitCertificate {
                height: block.header().height,
                round: Round::new(0),
                value_id: block.id(),
                commit_signatures: Vec::new(),
            },
            block,
        }
    }

    /// What a node writes for one height: a received proposal, then the decided block (an empty one: a
    /// block's txs are read from the application's block record, which the tests of pruning do not write;
    /// see `a_decided_blocks_txs_are_read_from_the_applications_block_record`), the next height's sets and
    /// the pruning, staged and written as the application's Commit writes them.
    fn commit_height(store: &RocksBlockStore, h: u64, set: &ValidatorSet) {
        let p = proposal(h, 0, b"tx");
        store.put_received(&p).expect("put");
        let decided = decided(block_of(h, Vec::new()));
        let next = HeightValidators {
            height: Height(h + 1),
            current: set.clone(),
            next: set.clone(),
        };
        store.stage_commit(&decided, &next).expect("stage");
        store.store().write_staged(false).expect("write");
    }

    /// The reads a node makes every height, and one height's writes, counted by RocksDB's perf context.
    fn per_height_cost(store: &RocksBlockStore, h: u64, set: &ValidatorSet) -> ReadCost {
        ReadCost::measure(|| {
            commit_height(store, h, set);
            let next = Height(h + 1);
            store
                .put_received(&proposal(h + 1, 0, b"next"))
                .expect("put");
            assert_eq!(store.undecided(next, Round::new(0)).expect("get").len(), 1);
            assert!(store
                .undecided(next, Round::new(1))
                .expect("get")
                .is_empty());
            assert!(store
                .undecided_by_id(next, proposal(h + 1, 0, b"next").block.id())
                .expect("by id")
                .is_some());
            assert!(store.decided_certificate(Height(h)).expect("get").is_some());
            assert!(store.get_validators(next).expect("get").is_some());
            assert_eq!(store.max_height().expect("max"), Some(Height(h)));
            assert_eq!(store.min_height().expect("min"), Some(Height(1)));
        })
        .1
    }

    #[test]
    fn pruning_ten_thousand_heights_does_not_make_a_height_cost_more() {
        let dir = tempfile::tempdir().expect("tempdir");
        let set = validators();
        let store = RocksBlockStore::new(LodeApp::open(dir.path()).expect("open"));
        // A seek's comparisons in the memtable's skip list vary from one seek to the next (random node heights)
        // and grow with the log of its entries: compare medians over eleven heights, with room for that log.
        let median_cost = |heights: std::ops::RangeInclusive<u64>| {
            let mut costs: Vec<ReadCost> =
                heights.map(|h| per_height_cost(&store, h, &set)).collect();
            costs.sort_by_key(|c| c.key_comparisons);
            costs[costs.len() / 2]
        };
        for h in 1..990 {
            commit_height(&store, h, &set);
        }
        let early = median_cost(990..=1_000);
        for h in 1_001..9_990 {
            commit_height(&store, h, &set);
        }
        let late = median_cost(9_990..=10_000);
        println!("median per-height cost after 1,000 heights {early:?}, after 10,000 {late:?}");
        // Every pruned proposal is still a tombstone in the memtable here (nothing was flushed): the reads
        // must not step over them, and opening an iterator must not sort them. With a range delete per height
        // the count grew about fourteenfold over these heights; a skip list's depth adds a few levels.
        assert_eq!(late.deletes_skipped, 0, "{late:?}");
        assert!(
            late.key_comparisons <= 3 * early.key_comparisons,
            "median per-height key comparisons grew from {} to {}",
            early.key_comparisons,
            late.key_comparisons
        );

        // Pruning deleted every proposal up to the last decided height, and nothing else.
        for h in [1, 500, 9_999, 10_000] {
            assert!(store
                .undecided(Height(h), Round::new(0))
                .expect("get")
                .is_empty());
            assert!(store.get_decided(Height(h)).expect("get").is_some());
            assert!(store.get_validators(Height(h + 1)).expect("get").is_some());
        }
        assert_eq!(
            store
                .undecided(Height(10_001), Round::new(0))
                .expect("get")
                .len(),
            1
        );
        // A proposal left behind by a crash (written, never pruned) at an old height.
        store.put_received(&proposal(42, 3, b"stray")).expect("put");
        drop(store);

        // Restarted: everything the next height needs is there, and the first prune sweeps the stray.
        let store = RocksBlockStore::new(LodeApp::open(dir.path()).expect("reopen"));
        assert_eq!(store.max_height().expect("max"), Some(Height(10_000)));
        assert_eq!(store.min_height().expect("min"), Some(Height(1)));
        assert!(store.get_decided(Height(10_000)).expect("get").is_some());
        assert_eq!(
            store.get_validators(Height(10_001)).expect("get"),
            Some(HeightValidators {
                height: Height(10_001),
                current: set.clone(),
                next: set.clone(),
            })
        );
        assert_eq!(
            store
                .undecided(Height(10_001), Round::new(0))
                .expect("get")
                .len(),
            1
        );
        assert_eq!(
            store
                .undecided(Height(42), Round::new(3))
                .expect("get")
                .len(),
            1
        );
        commit_height(&store, 10_001, &set);
        assert!(store
            .undecided(Height(42), Round::new(3))
            .expect("get")
            .is_empty());
        assert!(store
            .undecided(Height(10_001), Round::new(0))
            .expect("get")
            .is_empty());
    }

    #[test]
    fn undecided_proposals_and_validator_sets_round_trip_and_prune_by_height() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RocksBlockStore::new(LodeApp::open(dir.path()).expect("open"));
        assert_eq!(store.min_height().expect("min"), None);
        assert_eq!(store.max_height().expect("max"), None);

        let (a, b, c) = (
            proposal(5, 0, b"a"),
            proposal(5, 1, b"b"),
            proposal(6, 0, b"c"),
        );
        for p in [&a, &b, &c] {
            store.put_undecided(p).expect("put");
        }
        assert_eq!(
            store.undecided(Height(5), Round::new(0)).expect("get"),
            vec![a.clone()]
        );
        assert_eq!(
            store.undecided(Height(5), Round::new(1)).expect("get"),
            vec![b.clone()]
        );
        assert_eq!(
            store
                .undecided_by_id(Height(5), b.block.id())
                .expect("by id"),
            Some(b)
        );
        assert_eq!(
            store
                .undecided_by_id(Height(6), a.block.id())
                .expect("by id"),
            None
        );
        store.prune_undecided(Height(6)).expect("prune");
        assert!(store
            .undecided(Height(5), Round::new(0))
            .expect("get")
            .is_empty());
        assert_eq!(
            store.undecided(Height(6), Round::new(0)).expect("get"),
            vec![c]
        );

        let set = ValidatorSet::new([Validator::new(
            PrivateKey::from_seed([3; 32]).public_key(),
            10,
        )]);
        let hv = HeightValidators {
            height: Height(7),
            current: set.clone(),
            next: set,
        };
        store.put_validators(&hv).expect("put");
        assert_eq!(store.get_validators(Height(7)).expect("get"), Some(hv));
        assert_eq!(store.get_validators(Height(8)).expect("get"), None);
    }

    /// The proposals kept in memory answer `undecided_by_id` as the store does: the last write of a key,
    /// the lowest round of an id, nothing once pruned, and the same as a store opened afresh (nothing kept).
    /// A body that failed its checks is never answered from memory: after the good body of an id left the
    /// memory, a hostile proposer's other body under the same id (a later round) does not replace it.
    #[test]
    fn proposals_kept_in_memory_answer_as_the_store_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = LodeApp::open(dir.path()).expect("open");
        let store = RocksBlockStore::new(app.clone());
        let unchecked = UndecidedProposal {
            valid: false,
            ..proposal(5, 1, b"a")
        };
        store.put_received(&unchecked).expect("put");
        let checked = proposal(5, 1, b"a");
        store.put_undecided(&checked).expect("put");
        let first_round = proposal(5, 0, b"a");
        store.put_received(&first_round).expect("put");
        let id = checked.block.id();
        let cold = RocksBlockStore::new(app);
        for s in [&store, &cold] {
            assert_eq!(
                s.undecided_by_id(Height(5), id).expect("by id"),
                Some(first_round.clone())
            );
        }
        // More proposals than are kept: the oldest comes from the store.
        for h in 6..6 + RECENT_PROPOSALS as u64 {
            store.put_received(&proposal(h, 0, b"b")).expect("put");
        }
        assert_eq!(
            store.undecided_by_id(Height(5), id).expect("by id"),
            Some(first_round)
        );
        let forged = UndecidedProposal {
            height: Height(5),
            round: Round::new(2),
            valid_round: Round::Nil,
            block: Block::with_last_commit(
                checked.block.header().clone(),
                vec![Bytes::from_static(b"swapped")],
                None,
            ),
            valid: false,
        };
        assert_eq!(forged.block.id(), id);
        store.put_received(&forged).expect("put");
        for s in [&store, &cold] {
            let found = s
                .undecided_by_id(Height(5), id)
                .expect("by id")
                .expect("kept");
            assert!(found.block.tx_root_matches());
        }
        store.prune_undecided(Height(6)).expect("prune");
        for s in [&store, &cold] {
            assert_eq!(s.undecided_by_id(Height(5), id).expect("by id"), None);
        }
        let later = proposal(6, 0, b"b");
        assert_eq!(
            store
                .undecided_by_id(Height(6), later.block.id())
                .expect("by id"),
            Some(later)
        );
    }

    /// Writes `txs` as the application's block record of `height` (with the block store's staged writes),
    /// as the application's Commit does.
    fn commit_block_record(store: &RocksBlockStore, height: u64, txs: &[Bytes]) {
        let record = lode_state::store::encode_block(txs, &Default::default())
            .expect("encode")
            .finish(&[0; 32])
            .expect("finish");
        commit_raw_block_record(store, height, record);
    }

    /// [`commit_block_record`] with the record's bytes as given.
    fn commit_raw_block_record(store: &RocksBlockStore, height: u64, record: Vec<u8>) {
        use lode_state::store::{CommitBatch, CommitRecord};
        store
            .store()
            .commit(CommitBatch {
                record: CommitRecord {
                    chain_id: "c".into(),
                    initial_height: 1,
                    height,
                    app_hash: [0; 32],
                },
                writes: Default::default(),
                tree: Default::default(),
                block: Some(record),
                tx_hashes: Vec::new(),
                tx_ok: Vec::new(),
                tx_accounts: Vec::new(),
            })
            .expect("commit");
    }

    #[test]
    fn a_decided_blocks_txs_are_read_from_the_applications_block_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RocksBlockStore::new(LodeApp::open(dir.path()).expect("open"));
        let set = validators();
        let next = |h: u64| HeightValidators {
            height: Height(h + 1),
            current: set.clone(),
            next: set.clone(),
        };
        let txs: Vec<Bytes> = (0..3u8).map(|i| Bytes::from(vec![i; 100])).collect();
        let d = decided(block_of(1, txs.clone()));
        store.stage_commit(&d, &next(1)).expect("stage");
        commit_block_record(&store, 1, &txs);

        // The record holds no txs; the block read back is whole, and equal field by field.
        let raw = store
            .store()
            .get_consensus(&height_key(DECIDED, Height(1)))
            .expect("get")
            .expect("stored");
        assert!(DecidedBlock::decode(&raw)
            .expect("decode")
            .block
            .txs()
            .is_empty());
        assert!(raw.len() < 300, "{} bytes", raw.len());
        let read = store.get_decided(Height(1)).expect("get").expect("decided");
        assert_eq!(read.block.txs(), txs.as_slice());
        assert!(!read.block.is_header_only());
        assert_eq!(read, d);
        assert_eq!(
            store.decided_certificate(Height(1)).expect("cert"),
            Some(d.certificate.clone())
        );
        // And after a restart.
        drop(store);
        let store = RocksBlockStore::new(LodeApp::open(dir.path()).expect("reopen"));
        assert_eq!(store.get_decided(Height(1)).expect("get"), Some(d));

        // The disk is not trusted: a block record whose txs do not match the header is refused, as is a
        // missing one; neither is served as the decided block.
        let other: Vec<Bytes> = vec![Bytes::from_static(b"not the block's tx")];
        store
            .stage_commit(&decided(block_of(2, txs.clone())), &next(2))
            .expect("stage");
        commit_block_record(&store, 2, &other);
        let err = store.get_decided(Height(2)).expect_err("mismatched record");
        assert!(err.to_string().contains("does not match"), "{err}");
        store
            .stage_commit(&decided(block_of(3, txs.clone())), &next(3))
            .expect("stage");
        store.store().write_staged(false).expect("write");
        let err = store.get_decided(Height(3)).expect_err("no record");
        assert!(err.to_string().contains("no block record"), "{err}");
        // A corrupt record: truncated, or claiming four billion txs in a few bytes. An error, no panic, and
        // no allocation of what the length prefix claims.
        let mut truncated = lode_state::store::encode_block(&txs, &Default::default())
            .expect("encode")
            .finish(&[0; 32])
            .expect("finish");
        truncated.truncate(150);
        for (h, record) in [
            (6, truncated),
            (
                7,
                u32::MAX
                    .to_le_bytes()
                    .iter()
                    .chain(&[1, 0, 0, 0, 7])
                    .copied()
                    .collect(),
            ),
            (8, Vec::new()),
        ] {
            store
                .stage_commit(&decided(block_of(h, txs.clone())), &next(h))
                .expect("stage");
            commit_raw_block_record(&store, h, record);
            let err = store.get_decided(Height(h)).expect_err("corrupt record");
            assert!(err.to_string().contains(&format!("blocks/{h}")), "{err}");
            // The certificate alone does not need the record.
            assert!(store
                .decided_certificate(Height(h))
                .expect("cert")
                .is_some());
        }

        // A block stored whole (`put_decided`, or a store written before bodies were shared) reads as it
        // is, and one whose txs do not match its header is refused.
        let whole = decided(block_of(4, txs.clone()));
        store.put_decided(&whole).expect("put");
        assert_eq!(store.get_decided(Height(4)).expect("get"), Some(whole));
        let forged = Block::new(block_of(5, txs.clone()).header().clone(), other);
        store.put_decided(&decided(forged)).expect("put");
        let err = store.get_decided(Height(5)).expect_err("forged body");
        assert!(err.to_string().contains("do not match"), "{err}");
    }
}
