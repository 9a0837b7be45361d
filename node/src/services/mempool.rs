//! The mempool: transactions admitted by CheckTx, waiting to be proposed.
//!
//! Bounded by count and total bytes ([`MempoolLimits`]), and per sender: one account holds at most
//! `max_txs_per_sender` pending txs ([`AddError::SenderLimit`]), so one funded account cannot fill the pool.
//! When the pool is full, a tx paying a higher fee per byte than the cheapest pending tx of another sender
//! takes its place: the cheapest sender's *last* pending tx (its highest nonce, so no gap opens in its nonce
//! chain) is evicted once the newcomer has passed CheckTx. A tx that cannot outbid anyone is refused with
//! [`AddError::Full`] (gRPC `RESOURCE_EXHAUSTED`, "mempool full"). The application's CheckTx view keeps an
//! evicted tx's nonce as used until the next commit, so its sender resends it after the next block.
//!
//! Txs are deduplicated by SHA-256 hash, reaped in arrival order, and after each commit the committed ones are
//! dropped and the rest rechecked (CheckTx type Recheck) against the new state; those now invalid are evicted.
//! Every admission and the recheck run under one lock, so the application's CheckTx view always matches the
//! mempool's order. An admission's stateless checks and signature verification run before it takes the lock
//! ([`LodeApp::check_tx_stateless_hashed`], whose verdict the entry keeps for the CheckTx under the lock and
//! every recheck), so a flood of badly signed txs costs CPU but never holds the lock that honest admissions,
//! the proposer's reap and the commit wait for.

use std::collections::{BTreeMap, BTreeSet};

use lode_state::fasthash::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use parking_lot::{FairMutex, FairMutexGuard};

use bytes::Bytes;
use lode_state::app::Checked;
use lode_state::LodeApp;
use sha2::{Digest, Sha256};
use tendermint_proto::v0_38::abci::{CheckTxType, RequestCheckTx, ResponseCheckTx};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolLimits {
    /// Most txs held.
    pub max_txs: usize,
    /// Most bytes held (sum of tx sizes).
    pub max_bytes: u64,
    /// Largest single tx accepted.
    pub max_tx_bytes: usize,
    /// Most pending txs of one sender (signer key or multisig key set).
    pub max_txs_per_sender: usize,
}

/// Why a tx was not added.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The same bytes are already pending.
    #[error("tx already in mempool")]
    Duplicate,
    /// The mempool is at its count or byte limit.
    #[error("mempool full ({txs} txs, {bytes} bytes)")]
    Full {
        /// Txs held.
        txs: usize,
        /// Bytes held.
        bytes: u64,
    },
    /// The tx alone is larger than the limit.
    #[error("tx of {0} bytes exceeds the mempool's per-tx limit")]
    TooLarge(usize),
    /// Its sender already has as many pending txs as one sender may.
    #[error("sender already has {0} pending txs, the most one sender may have")]
    SenderLimit(usize),
    /// The tx is invalid whatever the state: it does not decode, fails a stateless check or is badly
    /// signed (the response carries the code and log). From a peer, that is the peer's fault.
    #[error("tx is invalid (code {}): {}", .0.code, .0.log)]
    Invalid(Box<ResponseCheckTx>),
    /// CheckTx rejected it against the current state: a used nonce (often: committed meanwhile), a
    /// nonce gap, funds, a module's own check (the response carries the code and log).
    #[error("CheckTx rejected the tx (code {}): {}", .0.code, .0.log)]
    Rejected(Box<ResponseCheckTx>),
    /// The chain is not initialised yet (InitChain has not run while the node starts): the tx was not
    /// judged. Nobody's fault; retry.
    #[error("chain not initialised yet: the node is starting; retry")]
    NotReady,
}

/// Who pays for a tx: its signer's account (a key's or a multisig key set's address), and what it pays per
/// byte. Read from the tx the stateless check decoded, so admission decodes nothing twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Payer {
    sender: [u8; 20],
    /// Fee per byte, scaled by [`PRIORITY_SCALE`].
    priority: u128,
}

/// Fee per byte is kept in millionths of a base unit per byte, so small fees on large txs still order.
const PRIORITY_SCALE: u128 = 1_000_000;

impl Payer {
    fn of(tx: &lode_state::tx::Tx) -> Self {
        Self {
            sender: tx.auth.signer.0,
            priority: tx.auth.fee.saturating_mul(PRIORITY_SCALE) / (tx.len.max(1) as u128),
        }
    }
}

/// A tx past the checks that need no lock, waiting for CheckTx under it.
struct Prepared {
    hash: [u8; 32],
    tx: Bytes,
    payer: Payer,
    checked: Checked,
}

#[derive(Debug)]
struct Entry {
    hash: [u8; 32],
    tx: Bytes,
    payer: Payer,
    /// When it was admitted here.
    admitted: Instant,
    /// How peers come to hold it.
    origin: Origin,
    /// Its stateless check here: CheckTx at admission and every recheck skip the application's caches.
    checked: Checked,
}

/// How a pending tx reaches this node's peers, which decides whether a proposal may name it by hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A peer gossiped it (to every peer at once).
    Peer,
    /// A client sent it here and this node gossips it.
    Gossiped,
    /// Nobody gossips it (no gossip swarm, or added directly): peers get it only in a block, whole.
    Unshared,
}

impl Entry {
    /// Whether peers most likely hold this tx: this node gossiped it at least [`SHARED_AFTER`] ago, or it
    /// came from a peer at least [`PEER_SHARED_AFTER`] ago.
    fn shared(&self, now: Instant) -> bool {
        let after = match self.origin {
            Origin::Peer => PEER_SHARED_AFTER,
            Origin::Gossiped => SHARED_AFTER,
            Origin::Unshared => return false,
        };
        now.saturating_duration_since(self.admitted) >= after
    }
}

/// How long after admitting a client's tx a proposer takes its peers to hold it (gossip's linger, the
/// transfer and the peers' CheckTx queue), and names it by hash in a proposal instead of sending it whole. A
/// peer that lacks a named tx fetches it, which costs that peer a round trip before it can vote.
pub const SHARED_AFTER: Duration = Duration::from_millis(150);
/// The same for a tx received from a peer: the other peers got it from the same sender at the same time,
/// but their CheckTx queues may run behind this node's.
pub const PEER_SHARED_AFTER: Duration = Duration::from_millis(50);

/// Eviction order of a sender's last tx: lowest priority first, and among equals the newest first.
type TailKey = (u128, std::cmp::Reverse<u64>);

#[derive(Debug, Default)]
struct Inner {
    /// Arrival sequence → tx.
    order: BTreeMap<u64, Entry>,
    by_hash: HashMap<[u8; 32], u64>,
    /// Each sender's pending txs by arrival sequence.
    by_sender: HashMap<[u8; 20], BTreeSet<u64>>,
    /// Every sender's last pending tx, cheapest first: the eviction candidates.
    tails: BTreeSet<TailKey>,
    bytes: u64,
    next_seq: u64,
}

impl Inner {
    fn tail_key(&self, sender: &[u8; 20]) -> Option<TailKey> {
        let seq = *self.by_sender.get(sender)?.last()?;
        let e = self.order.get(&seq)?;
        Some((e.payer.priority, std::cmp::Reverse(seq)))
    }

    fn insert(&mut self, seq: u64, entry: Entry) {
        let sender = entry.payer.sender;
        if let Some(old) = self.tail_key(&sender) {
            self.tails.remove(&old);
        }
        self.bytes += entry.tx.len() as u64;
        self.by_hash.insert(entry.hash, seq);
        self.order.insert(seq, entry);
        self.by_sender.entry(sender).or_default().insert(seq);
        if let Some(new) = self.tail_key(&sender) {
            self.tails.insert(new);
        }
    }

    fn remove(&mut self, seq: u64) -> Option<Entry> {
        let sender = self.order.get(&seq)?.payer.sender;
        if let Some(old) = self.tail_key(&sender) {
            self.tails.remove(&old);
        }
        let entry = self.order.remove(&seq)?;
        self.by_hash.remove(&entry.hash);
        self.bytes -= entry.tx.len() as u64;
        if let Some(seqs) = self.by_sender.get_mut(&sender) {
            seqs.remove(&seq);
            if seqs.is_empty() {
                self.by_sender.remove(&sender);
            }
        }
        if let Some(new) = self.tail_key(&sender) {
            self.tails.insert(new);
        }
        Some(entry)
    }

    /// The pending tx with this hash.
    fn entry(&self, hash: &[u8; 32]) -> Option<&Entry> {
        self.by_hash.get(hash).and_then(|seq| self.order.get(seq))
    }

    /// Forgets the txs with these hashes (those a block committed); unknown hashes are skipped.
    fn drop_committed(&mut self, hashes: &[[u8; 32]]) {
        for h in hashes {
            if let Some(&seq) = self.by_hash.get(h) {
                self.remove(seq);
            }
        }
    }

    /// Whether one more tx fits next to `count` txs, with `bytes` the total including it.
    fn fits(limits: &MempoolLimits, count: usize, bytes: u64) -> bool {
        count < limits.max_txs && bytes <= limits.max_bytes
    }

    /// The pending txs to evict so that a tx of `len` bytes paid by `payer` fits: other senders' last txs,
    /// cheapest first, each paying less per byte than `payer`. `None` when they cannot make room.
    fn victims(&self, limits: &MempoolLimits, payer: &Payer, len: u64) -> Option<Vec<u64>> {
        let (mut count, mut bytes) = (self.order.len(), self.bytes.saturating_add(len));
        let mut out = Vec::new();
        for &(priority, std::cmp::Reverse(seq)) in &self.tails {
            if Self::fits(limits, count, bytes) {
                break;
            }
            if priority >= payer.priority {
                return None;
            }
            let Some(e) = self.order.get(&seq) else {
                continue;
            };
            if e.payer.sender == payer.sender {
                continue;
            }
            count -= 1;
            bytes -= e.tx.len() as u64;
            out.push(seq);
        }
        Self::fits(limits, count, bytes).then_some(out)
    }
}

/// The node's mempool. Shared behind an `Arc`.
#[derive(Debug)]
pub struct Mempool {
    app: LodeApp,
    limits: MempoolLimits,
    /// FIFO-fair: under a flood of admissions, consensus's reap and commit wait their turn behind the
    /// admissions already queued, never behind every admission that arrives meanwhile.
    inner: FairMutex<Inner>,
    gossip: Mutex<Option<mpsc::Sender<Bytes>>>,
    fetcher: Mutex<Option<super::tx_fetch::TxFetcher>>,
}

/// SHA-256 of a tx's bytes: its hash everywhere (tx index, mempool, gRPC).
pub fn tx_hash(tx: &[u8]) -> [u8; 32] {
    Sha256::digest(tx).into()
}

impl Mempool {
    /// An empty mempool checking txs against `app`.
    pub fn new(app: LodeApp, limits: MempoolLimits) -> Self {
        Self {
            app,
            limits,
            inner: FairMutex::new(Inner::default()),
            gossip: Mutex::new(None),
            fetcher: Mutex::new(None),
        }
    }

    /// Txs admitted locally (not those received from peers) are also sent here, to be gossiped. The channel is
    /// bounded; when it is full the tx stays in the mempool but is not gossiped.
    pub fn set_gossip(&self, tx: mpsc::Sender<Bytes>) {
        *self.gossip.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    }

    fn lock(&self) -> FairMutexGuard<'_, Inner> {
        self.inner.lock()
    }

    /// The largest tx this mempool admits (bytes).
    pub fn max_tx_bytes(&self) -> usize {
        self.limits.max_tx_bytes
    }

    /// (txs, bytes) held.
    pub fn size(&self) -> (usize, u64) {
        let g = self.lock();
        (g.order.len(), g.bytes)
    }

    /// The nonce `address`'s next tx must carry to follow its txs pending here: the committed nonce plus its
    /// txs in the pool. Those hold consecutive nonces from the committed one (each passed CheckTx in order;
    /// a recheck drops the stale ones and the gaps they leave; an eviction takes a sender's last), so the
    /// count is exact even after an eviction, which leaves the evicted tx's effects in CheckTx's view until
    /// the next commit. Read under the pool's lock, which [`Mempool::commit_and_update`] holds from Commit to
    /// the end of the recheck, so the committed nonce and the pool are of the same height.
    pub fn pending_nonce(
        &self,
        address: &lode_state::Address,
    ) -> Result<u64, lode_state::error::StoreError> {
        let g = self.lock();
        let committed = lode_state::modules::bank::account(self.app.store(), address)?.nonce;
        let pending = g.by_sender.get(&address.0).map_or(0, BTreeSet::len);
        Ok(committed.saturating_add(pending as u64))
    }

    /// Whether a tx with this hash is pending.
    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.lock().by_hash.contains_key(hash)
    }

    /// Adds a tx from a client: CheckTx, then gossip. Returns the successful CheckTx response.
    pub fn add_local(&self, tx: Bytes) -> Result<ResponseCheckTx, AddError> {
        let prepared = self.prepare(tx.clone())?;
        let resp = {
            let mut g = self.lock();
            self.admit_locked(&mut g, prepared, self.local_origin())?
        };
        self.gossip(std::iter::once(tx));
        Ok(resp)
    }

    /// Adds a client's txs in order as [`Mempool::add_batch`] does (one signature batch), then gossips
    /// those admitted.
    pub fn add_local_batch(&self, txs: Vec<Bytes>) -> Vec<Result<ResponseCheckTx, AddError>> {
        let results = self.add_batch_from(txs.clone(), self.local_origin());
        self.gossip(
            txs.into_iter()
                .zip(&results)
                .filter(|(_, r)| r.is_ok())
                .map(|(t, _)| t),
        );
        results
    }

    /// How a client's tx reaches peers here: gossiped when this node runs a gossip swarm.
    fn local_origin(&self) -> Origin {
        if self
            .gossip
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            Origin::Gossiped
        } else {
            Origin::Unshared
        }
    }

    /// Queues txs admitted here for gossip. A tx the full queue refuses stays pending but is marked
    /// [`Origin::Unshared`]: no peer gets it but in a block, so no proposal names it.
    fn gossip(&self, txs: impl Iterator<Item = Bytes>) {
        let mut refused = Vec::new();
        {
            let guard = self.gossip.lock().unwrap_or_else(|e| e.into_inner());
            let Some(g) = guard.as_ref() else { return };
            for tx in txs {
                if let Err(e) = g.try_send(tx) {
                    warn!("gossip queue full; tx kept but not gossiped");
                    refused.push(tx_hash(&e.into_inner()));
                }
            }
        }
        if !refused.is_empty() {
            let mut g = self.lock();
            for h in &refused {
                if let Some(seq) = g.by_hash.get(h).copied() {
                    if let Some(e) = g.order.get_mut(&seq) {
                        e.origin = Origin::Unshared;
                    }
                }
            }
        }
    }

    /// Adds a batch of txs in order (a peer's gossip, or a client's stream): their signatures are verified
    /// together first (one batch instead of one verification per CheckTx), each tx's stateless checks run
    /// before the lock, and then the whole batch takes the lock once and runs CheckTx tx by tx, as
    /// [`Mempool::add`] would. One acquisition per batch instead of one per tx: under load the lock is
    /// handed from waiter to waiter (FIFO), and a hand-off per tx cost a context switch per tx.
    /// Each tx is hashed once here and its hash passed along (signature batch, stateless check, CheckTx,
    /// every recheck), not hashed again at each step.
    pub fn add_batch(&self, txs: Vec<Bytes>) -> Vec<Result<ResponseCheckTx, AddError>> {
        self.add_batch_from(txs, Origin::Peer)
    }

    /// [`Mempool::add_batch`] of txs that reach peers as `origin` says.
    fn add_batch_from(
        &self,
        txs: Vec<Bytes>,
        origin: Origin,
    ) -> Vec<Result<ResponseCheckTx, AddError>> {
        // A tx over the size limit is not hashed: `prepare_hashed` refuses it before its hash is used.
        let hashes: Vec<[u8; 32]> = txs
            .iter()
            .map(|t| {
                if t.len() <= self.limits.max_tx_bytes {
                    tx_hash(t)
                } else {
                    [0; 32]
                }
            })
            .collect();
        let (fresh, fresh_hashes): (Vec<Bytes>, Vec<[u8; 32]>) = {
            let g = self.lock();
            txs.iter()
                .zip(&hashes)
                .filter(|(t, h)| t.len() <= self.limits.max_tx_bytes && !g.by_hash.contains_key(*h))
                .map(|(t, h)| (t.clone(), *h))
                .unzip()
        };
        if fresh.len() > 1 {
            self.app.preverify_hashed(&fresh, fresh_hashes);
        }
        let prepared: Vec<Result<Prepared, AddError>> = txs
            .into_iter()
            .zip(hashes)
            .map(|(tx, hash)| self.prepare_hashed(tx, hash))
            .collect();
        let mut g = self.lock();
        prepared
            .into_iter()
            .map(|p| p.and_then(|p| self.admit_locked(&mut g, p, origin)))
            .collect()
    }

    /// Adds a tx if it is new, fits and passes CheckTx. Nobody gossips it: a proposal carries it whole.
    pub fn add(&self, tx: Bytes) -> Result<ResponseCheckTx, AddError> {
        let prepared = self.prepare(tx)?;
        let mut g = self.lock();
        self.admit_locked(&mut g, prepared, Origin::Unshared)
    }

    /// The part of an admission that needs no lock: the size limit, then decoding and the signature check,
    /// the costly part of CheckTx. Run before the lock, concurrent admissions verify in parallel, a tx
    /// that fails them never waits for or holds the lock, and the CheckTx under the lock finds the verdict
    /// cached.
    fn prepare(&self, tx: Bytes) -> Result<Prepared, AddError> {
        let hash = tx_hash(&tx);
        self.prepare_hashed(tx, hash)
    }

    /// [`Mempool::prepare`] with the tx's hash (`tx_hash(&tx)`) already computed; a tx over the size limit is
    /// refused before `hash` is looked at.
    fn prepare_hashed(&self, tx: Bytes, hash: [u8; 32]) -> Result<Prepared, AddError> {
        if tx.len() > self.limits.max_tx_bytes {
            return Err(AddError::TooLarge(tx.len()));
        }
        if !self.app.is_initialised() {
            return Err(AddError::NotReady);
        }
        let checked = self
            .app
            .check_tx_stateless_hashed(&tx, hash)
            .map_err(AddError::Invalid)?;
        let payer = Payer::of(checked.tx());
        Ok(Prepared {
            hash,
            tx,
            payer,
            checked,
        })
    }

    /// The part of an admission under the lock: duplicates, the sender's share, room (evicting cheaper
    /// txs), then CheckTx against the mempool's view.
    fn admit_locked(
        &self,
        g: &mut FairMutexGuard<'_, Inner>,
        Prepared {
            hash,
            tx,
            payer,
            checked,
        }: Prepared,
        origin: Origin,
    ) -> Result<ResponseCheckTx, AddError> {
        if g.by_hash.contains_key(&hash) {
            return Err(AddError::Duplicate);
        }
        if g.by_sender
            .get(&payer.sender)
            .is_some_and(|s| s.len() >= self.limits.max_txs_per_sender)
        {
            return Err(AddError::SenderLimit(self.limits.max_txs_per_sender));
        }
        let victims = g
            .victims(&self.limits, &payer, tx.len() as u64)
            .ok_or(AddError::Full {
                txs: g.order.len(),
                bytes: g.bytes,
            })?;
        let started = std::time::Instant::now();
        let resp = self.app.check_tx_known(
            RequestCheckTx {
                tx: tx.clone(),
                r#type: CheckTxType::New as i32,
            },
            hash,
            Some(&checked),
        );
        super::metrics::metrics()
            .check_tx_seconds
            .observe(started.elapsed().as_secs_f64());
        if resp.code != 0 {
            return Err(AddError::Rejected(Box::new(resp)));
        }
        for seq in victims {
            if let Some(e) = g.remove(seq) {
                debug!(hash = %hex::encode(e.hash), "evicted by a tx paying more per byte");
            }
        }
        let seq = g.next_seq;
        g.next_seq += 1;
        g.insert(
            seq,
            Entry {
                hash,
                tx,
                payer,
                admitted: Instant::now(),
                origin,
                checked,
            },
        );
        Ok(resp)
    }

    /// [`lode_consensus::Mempool::shared`] as of `now`.
    pub fn shared_at(&self, hashes: &[[u8; 32]], now: Instant) -> Vec<bool> {
        let g = self.lock();
        hashes
            .iter()
            .map(|h| g.entry(h).is_some_and(|e| e.shared(now)))
            .collect()
    }

    /// The pending txs with these hashes (`None` where none is pending), under one lock.
    pub fn lookup_txs(&self, hashes: &[[u8; 32]]) -> Vec<Option<Bytes>> {
        let g = self.lock();
        hashes
            .iter()
            .map(|h| g.entry(h).map(|e| e.tx.clone()))
            .collect()
    }

    /// Where [`lode_consensus::Mempool::fetch`] asks peers for txs (the gossip swarm's `/lode/txs/1`).
    pub fn set_fetcher(&self, fetcher: super::tx_fetch::TxFetcher) {
        *self.fetcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(fetcher);
    }

    /// Up to `max_bytes` of txs in arrival order (they stay pending until committed).
    pub fn reap_txs(&self, max_bytes: u64) -> Vec<Bytes> {
        let g = self.lock();
        let mut out = Vec::new();
        let mut total = 0u64;
        for Entry { tx, .. } in g.order.values() {
            let next = total + tx.len() as u64;
            if next > max_bytes {
                break;
            }
            total = next;
            out.push(tx.clone());
        }
        out
    }

    /// Drops committed txs and rechecks the rest in order, evicting those now invalid.
    pub fn update_after_commit(&self, committed: &[[u8; 32]]) {
        let mut g = self.lock();
        self.update_locked(&mut g, committed);
    }

    /// Runs `commit` (the application's Commit, which resets its CheckTx view to the new state) and then the
    /// update (drop `committed`, recheck the rest) under the mempool's lock, as CometBFT does. A CheckTx in
    /// between would see the new state without the pending txs re-applied, and refuse a valid next nonce.
    pub fn commit_and_update<R>(&self, committed: &[[u8; 32]], commit: impl FnOnce() -> R) -> R {
        let mut g = self.lock();
        let r = commit();
        self.update_locked(&mut g, committed);
        r
    }

    fn update_locked(&self, g: &mut Inner, committed: &[[u8; 32]]) {
        g.drop_committed(committed);
        let pending: Vec<(u64, [u8; 32], Bytes, Checked)> = g
            .order
            .iter()
            .map(|(s, e)| (*s, e.hash, e.tx.clone(), e.checked.clone()))
            .collect();
        let mut evicted = 0usize;
        for (seq, hash, tx, checked) in pending {
            let resp = self.app.check_tx_known(
                RequestCheckTx {
                    tx,
                    r#type: CheckTxType::Recheck as i32,
                },
                hash,
                Some(&checked),
            );
            if resp.code != 0 {
                debug!(hash = %hex::encode(hash), code = resp.code, log = %resp.log, "evicted on recheck");
                g.remove(seq);
                evicted += 1;
            }
        }
        if evicted > 0 {
            debug!(evicted, remaining = g.order.len(), "mempool rechecked");
        }
    }
}

impl lode_consensus::Mempool for Mempool {
    fn reap(&self, max_bytes: u64) -> Vec<Bytes> {
        self.reap_txs(max_bytes)
    }

    /// The node commits through [`Mempool::commit_and_update`] (see `AppAbci`), which already dropped these
    /// txs and rechecked the rest; only what is still here (nothing, normally) is dropped.
    fn on_committed(&self, tx_hashes: &[[u8; 32]]) {
        self.lock().drop_committed(tx_hashes);
    }

    fn shared(&self, hashes: &[[u8; 32]]) -> Vec<bool> {
        self.shared_at(hashes, Instant::now())
    }

    fn lookup(&self, hashes: &[[u8; 32]]) -> Vec<Option<Bytes>> {
        self.lookup_txs(hashes)
    }

    fn fetch(&self, hashes: Vec<[u8; 32]>, timeout: Duration) -> lode_consensus::TxFetch {
        let fetcher = self
            .fetcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match fetcher {
            Some(f) => Box::pin(async move { f.fetch(hashes, timeout).await }),
            None => Box::pin(std::future::ready(Vec::new())),
        }
    }

    fn level(&self) -> lode_consensus::MempoolLevel {
        let g = self.lock();
        lode_consensus::MempoolLevel {
            txs: g.order.len(),
            bytes: g.bytes,
            // No tx of the largest size would fit: the pool is refusing, waiting gains nothing.
            at_capacity: !Inner::fits(
                &self.limits,
                g.order.len(),
                g.bytes.saturating_add(self.limits.max_tx_bytes as u64),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_consensus::SigningKey;
    use lode_state::genesis::{AppState, GenesisBalance};
    use lode_state::tx::{address_of, sign_send};
    use tendermint_proto::crypto::{public_key::Sum, PublicKey};
    use tendermint_proto::v0_38::abci::{RequestFinalizeBlock, RequestInitChain, ValidatorUpdate};

    const CHAIN: &str = "lode-mempool-test";

    fn setup(limits: MempoolLimits) -> (tempfile::TempDir, LodeApp, SigningKey, Mempool) {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = LodeApp::open(dir.path()).expect("open");
        let key = SigningKey::from([7u8; 32]);
        let mut app_state = AppState {
            balances: [7u8, 10, 11, 12]
                .iter()
                .map(|s| GenesisBalance {
                    address: address_of(&SigningKey::from([*s; 32])).to_string(),
                    amount: "1000000000".into(),
                })
                .collect(),
            ..AppState::default()
        };
        app_state.add_self_bonded_validator(
            "mempool-test",
            &SigningKey::from([9u8; 32]).verification_key().to_bytes(),
            10,
        );
        app.try_init_chain(RequestInitChain {
            chain_id: CHAIN.into(),
            initial_height: 1,
            app_state_bytes: Bytes::from(serde_json::to_vec(&app_state).expect("json")),
            validators: vec![ValidatorUpdate {
                pub_key: Some(PublicKey {
                    sum: Some(Sum::Ed25519(
                        SigningKey::from([9u8; 32])
                            .verification_key()
                            .to_bytes()
                            .to_vec(),
                    )),
                }),
                // The only genesis validator holds all the power.
                power: i64::try_from(lode_state::modules::staking::power::TOTAL_POWER)
                    .expect("fits"),
            }],
            ..Default::default()
        })
        .expect("init chain");
        let pool = Mempool::new(app.clone(), limits);
        (dir, app, key, pool)
    }

    fn limits() -> MempoolLimits {
        MempoolLimits {
            max_txs: 3,
            max_bytes: 1 << 20,
            max_tx_bytes: 1 << 16,
            max_txs_per_sender: 100,
        }
    }

    fn send(key: &SigningKey, nonce: u64, amount: u128) -> Bytes {
        paying(key, nonce, 10_000, amount)
    }

    fn paying(key: &SigningKey, nonce: u64, fee: u128, amount: u128) -> Bytes {
        let to = address_of(&SigningKey::from([8u8; 32]));
        Bytes::from(sign_send(CHAIN, key, nonce, fee, &to, amount))
    }

    #[test]
    fn one_funded_sender_cannot_fill_the_pool() {
        let (_d, _app, key, pool) = setup(MempoolLimits {
            max_txs: 10,
            max_txs_per_sender: 2,
            ..limits()
        });
        pool.add(send(&key, 0, 1)).expect("first");
        pool.add(send(&key, 1, 1)).expect("second");
        // Even paying more, the sender's third pending tx is refused, and nothing else changed.
        let third = pool
            .add(paying(&key, 2, 1_000_000, 1))
            .expect_err("over the sender's share");
        assert!(matches!(third, AddError::SenderLimit(2)), "{third}");
        assert_eq!(pool.size().0, 2);
        // Another sender still gets in.
        pool.add(send(&SigningKey::from([10u8; 32]), 0, 1))
            .expect("another sender");
        assert_eq!(pool.size().0, 3);
    }

    #[test]
    fn a_full_pool_evicts_the_cheapest_senders_last_tx_for_one_paying_more() {
        let (_d, _app, key, pool) = setup(limits());
        let (b, c, d) = (
            SigningKey::from([10u8; 32]),
            SigningKey::from([11u8; 32]),
            SigningKey::from([12u8; 32]),
        );
        let a0 = paying(&key, 0, 20_000, 1);
        let a1 = paying(&key, 1, 20_000, 1);
        let b0 = paying(&b, 0, 10_000, 1);
        for t in [&a0, &a1, &b0] {
            pool.add(t.clone()).expect("fits");
        }
        // Paying no more than the cheapest pending tx: refused, nothing evicted.
        let err = pool
            .add(paying(&c, 0, 10_000, 1))
            .expect_err("cannot outbid");
        assert!(matches!(err, AddError::Full { txs: 3, .. }), "{err}");
        // Outbidding but failing CheckTx (a nonce gap): refused, nothing evicted.
        let err = pool.add(paying(&c, 5, 90_000, 1)).expect_err("invalid");
        assert!(matches!(err, AddError::Rejected(_)), "{err}");
        assert_eq!(
            pool.reap_txs(u64::MAX),
            vec![a0.clone(), a1.clone(), b0.clone()]
        );
        // Outbidding b0 (the cheapest): b0 goes, the newcomer comes in.
        let c0 = paying(&c, 0, 15_000, 1);
        pool.add(c0.clone()).expect("outbids b0");
        assert_eq!(
            pool.reap_txs(u64::MAX),
            vec![a0.clone(), a1.clone(), c0.clone()]
        );
        // Next cheapest is c0; then a's *last* tx (a1), never a0, which would leave a nonce gap.
        let d0 = paying(&d, 0, 30_000, 1);
        pool.add(d0.clone()).expect("outbids c0");
        let d1 = paying(&d, 1, 30_000, 1);
        let err = pool.add(d1.clone());
        // d's own txs are never its victims; a1 pays less than d1 and is a's last tx.
        err.expect("outbids a1");
        assert_eq!(pool.reap_txs(u64::MAX), vec![a0, d0, d1]);
    }

    #[test]
    fn duplicates_are_rejected_and_reap_keeps_arrival_order() {
        let (_d, _app, key, pool) = setup(limits());
        let a = send(&key, 0, 1);
        let b = send(&key, 1, 1);
        pool.add(a.clone()).expect("a");
        assert!(matches!(pool.add(a.clone()), Err(AddError::Duplicate)));
        pool.add(b.clone()).expect("b");
        assert_eq!(pool.reap_txs(u64::MAX), vec![a.clone(), b]);
        assert_eq!(pool.reap_txs(a.len() as u64), vec![a]);
    }

    #[test]
    fn a_full_mempool_rejects_with_a_clear_error() {
        let (_d, _app, key, pool) = setup(limits());
        for n in 0..3 {
            pool.add(send(&key, n, 1)).expect("fits");
        }
        let err = pool.add(send(&key, 3, 1)).expect_err("full");
        assert!(matches!(err, AddError::Full { txs: 3, .. }));
        assert!(err.to_string().contains("mempool full"));
    }

    #[test]
    fn a_proposer_names_a_peers_tx_soon_its_own_once_gossip_had_time_and_an_ungossiped_one_never() {
        use lode_consensus::Mempool as _;
        let (_dir, _app, key, pool) = setup(limits());
        let (gossip, _outbox) = mpsc::channel(8);
        pool.set_gossip(gossip);
        let from_peer = send(&key, 0, 1);
        let own = send(&key, 1, 1);
        let direct = send(&key, 2, 1);
        pool.add_batch(vec![from_peer.clone()])
            .into_iter()
            .for_each(|r| drop(r.expect("admitted")));
        pool.add_local(own.clone()).expect("admitted");
        pool.add(direct.clone()).expect("admitted");
        let hashes = [
            tx_hash(&from_peer),
            tx_hash(&own),
            tx_hash(&direct),
            [0xEE; 32],
        ];
        let admitted = Instant::now();
        assert_eq!(pool.shared(&hashes), vec![false; 4]);
        assert_eq!(
            pool.lookup(&hashes),
            vec![
                Some(from_peer.clone()),
                Some(own.clone()),
                Some(direct),
                None
            ]
        );
        let later = |d: Duration| admitted + d + Duration::from_millis(1);
        assert_eq!(
            pool.shared_at(&hashes, later(PEER_SHARED_AFTER)),
            vec![true, false, false, false]
        );
        assert_eq!(
            pool.shared_at(&hashes, later(SHARED_AFTER)),
            vec![true, true, false, false]
        );
    }

    #[test]
    fn the_level_consensus_reads_says_when_the_pool_can_take_no_more() {
        use lode_consensus::Mempool as _;
        let (_d, _app, key, pool) = setup(limits());
        assert_eq!(pool.level(), lode_consensus::MempoolLevel::default());
        let mut bytes = 0u64;
        for n in 0..2 {
            let tx = send(&key, n, 1);
            bytes += tx.len() as u64;
            pool.add(tx).expect("fits");
        }
        let level = pool.level();
        assert_eq!(
            (level.txs, level.bytes, level.at_capacity),
            (2, bytes, false)
        );
        pool.add(send(&key, 2, 1)).expect("fits");
        assert!(pool.level().at_capacity, "max_txs reached");
        // By bytes: room for less than one more tx of the largest size.
        let (_d2, _app2, key2, tight) = setup(MempoolLimits {
            max_bytes: (1 << 16) + 100,
            ..limits()
        });
        assert!(!tight.level().at_capacity);
        tight.add(send(&key2, 0, 1)).expect("fits");
        assert!(tight.level().at_capacity);
    }

    /// Before InitChain (a node answers gRPC and gossip while its engine starts), a well-formed tx is not
    /// judged: it is neither the sender's fault nor a peer's (gossip rejects, and scores down, peers whose
    /// batches carry invalid txs), and nothing is admitted.
    #[test]
    fn before_init_chain_txs_are_refused_as_not_ready_not_as_invalid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = LodeApp::open(dir.path()).expect("open");
        let pool = Mempool::new(app, limits());
        let key = SigningKey::from([7u8; 32]);
        let verdict = pool.add(send(&key, 0, 1));
        assert!(matches!(verdict, Err(AddError::NotReady)), "{verdict:?}");
        for r in pool.add_batch(vec![send(&key, 0, 1), send(&key, 1, 1)]) {
            assert!(matches!(r, Err(AddError::NotReady)), "{r:?}");
        }
        assert_eq!(pool.size().0, 0);
    }

    #[test]
    fn invalid_txs_are_rejected_by_check_tx() {
        let (_d, _app, key, pool) = setup(limits());
        assert!(matches!(
            pool.add(Bytes::from_static(b"garbage")),
            Err(AddError::Invalid(_))
        ));
        assert!(matches!(
            pool.add(send(&key, 5, 1)),
            Err(AddError::Rejected(_))
        ));
        assert_eq!(pool.size().0, 0);
    }

    #[test]
    fn a_badly_signed_tx_is_refused_without_waiting_for_the_mempool_lock() {
        let (_d, _app, key, pool) = setup(limits());
        let mut forged = send(&key, 0, 1).to_vec();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let forged = Bytes::from(forged);
        // While the lock is held (here by a commit), a client's badly signed tx is still answered: its
        // signature is checked before the lock. Before, the admission queued behind the lock (a deadlock
        // here, caught by the bounded wait).
        let pool = std::sync::Arc::new(pool);
        let mut client_thread = None;
        let verdict = pool.commit_and_update(&[], || {
            let (done, answered) = std::sync::mpsc::channel();
            let (client, tx) = (pool.clone(), forged.clone());
            client_thread = Some(std::thread::spawn(move || {
                let _ = done.send(client.add(tx));
            }));
            answered
                .recv_timeout(std::time::Duration::from_secs(30))
                .ok()
        });
        // Not joined when stuck: that admission finishes once the lock is released, after the test failed.
        let Some(verdict) = verdict else {
            panic!("the admission waited for the mempool lock");
        };
        // Joined when answered: the thread may still hold the last clone of the pool (and so the RocksDB
        // handle) after sending; closing the database while the test process exits aborts it ("pthread lock:
        // Invalid argument").
        if let Some(t) = client_thread {
            t.join().expect("client thread");
        }
        assert!(
            matches!(&verdict, Err(AddError::Invalid(r)) if r.code == 5),
            "{verdict:?}"
        );
        assert_eq!(pool.size().0, 0);
    }

    #[test]
    fn a_peer_batch_is_added_in_order_with_each_txs_own_verdict() {
        let (_d, _app, key, pool) = setup(limits());
        let (a, b) = (send(&key, 0, 1), send(&key, 1, 1));
        let mut forged = send(&key, 2, 1).to_vec();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let results = pool.add_batch(vec![a.clone(), b.clone(), Bytes::from(forged), a.clone()]);
        assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
        assert!(
            matches!(&results[2], Err(AddError::Invalid(r)) if r.code == 5),
            "{:?}",
            results[2]
        );
        assert!(matches!(results[3], Err(AddError::Duplicate)));
        assert_eq!(pool.reap_txs(u64::MAX), vec![a, b]);
    }

    #[test]
    fn a_check_tx_during_commit_waits_for_the_recheck_and_sees_the_pending_nonces() {
        let (_d, app, key, pool) = setup(limits());
        let (a, b, c) = (send(&key, 0, 1), send(&key, 1, 1), send(&key, 2, 1));
        pool.add(a.clone()).expect("a");
        pool.add(b.clone()).expect("b");
        app.try_finalize_block(RequestFinalizeBlock {
            txs: vec![a.clone()],
            height: 1,
            ..Default::default()
        })
        .expect("finalize");
        std::thread::scope(|scope| {
            let late = pool.commit_and_update(&[tx_hash(&a)], || {
                app.try_commit().expect("commit");
                // The application's view is now the new state without `b`: a CheckTx of nonce 2 here
                // would be refused. It must wait for the mempool's recheck instead.
                scope.spawn(|| pool.add(c.clone()))
            });
            late.join()
                .expect("thread")
                .expect("nonce 2 admitted after the recheck");
        });
        assert_eq!(pool.reap_txs(u64::MAX), vec![b, c]);
    }

    #[test]
    fn after_an_eviction_the_pending_nonce_is_the_evicted_txs() {
        let (_d, app, key, pool) = setup(limits());
        let me = address_of(&key);
        let (rich, richer) = (SigningKey::from([10u8; 32]), SigningKey::from([11u8; 32]));
        pool.add(paying(&key, 0, 10_000, 1)).expect("mine 0");
        pool.add(paying(&key, 1, 10_000, 1)).expect("mine 1");
        pool.add(paying(&rich, 0, 1_000_000, 1)).expect("full now");
        assert_eq!(pool.pending_nonce(&me).expect("read"), 2);
        // Paying more per byte, a third sender evicts my last tx (nonce 1).
        pool.add(paying(&richer, 0, 1_000_000, 1)).expect("evicts");
        assert_eq!(pool.size().0, 3);
        assert_eq!(pool.pending_nonce(&me).expect("read"), 1);
        // CheckTx's view still holds the evicted tx's effects until the next commit.
        assert_eq!(app.pending_nonce(&me).expect("view"), 2);
    }

    #[test]
    fn the_pending_nonce_follows_admitted_txs_and_is_never_read_mid_commit() {
        let (_d, app, key, pool) = setup(limits());
        let me = address_of(&key);
        let stranger = address_of(&SigningKey::from([10u8; 32]));
        assert_eq!(pool.pending_nonce(&me).expect("read"), 0);
        let (a, b) = (send(&key, 0, 1), send(&key, 1, 1));
        pool.add(a.clone()).expect("a");
        pool.add(b).expect("b");
        assert_eq!(pool.pending_nonce(&me).expect("read"), 2);
        assert_eq!(pool.pending_nonce(&stranger).expect("read"), 0);
        // A refused tx moves nothing.
        assert!(pool.add(send(&key, 5, 1)).is_err());
        assert_eq!(pool.pending_nonce(&me).expect("read"), 2);
        app.try_finalize_block(RequestFinalizeBlock {
            txs: vec![a.clone()],
            height: 1,
            ..Default::default()
        })
        .expect("finalize");
        std::thread::scope(|scope| {
            let read = pool.commit_and_update(&[tx_hash(&a)], || {
                app.try_commit().expect("commit");
                // The application's view is the new state without `b` (nonce 1 there): the read must wait
                // for the mempool's recheck, which re-applies `b`. The reader starts here and is given time
                // to reach its read before the recheck runs.
                let (started, wait) = std::sync::mpsc::channel();
                let pool = &pool;
                let reader = scope.spawn(move || {
                    started.send(()).expect("send");
                    pool.pending_nonce(&me)
                });
                wait.recv().expect("started");
                std::thread::sleep(std::time::Duration::from_millis(50));
                reader
            });
            assert_eq!(read.join().expect("thread").expect("read"), 2);
        });
        assert_eq!(app.pending_nonce(&me).expect("read"), 2);
    }

    #[test]
    fn commit_removes_included_txs_and_recheck_evicts_stale_ones() {
        let (_d, app, key, pool) = setup(limits());
        let a = send(&key, 0, 1);
        let b = send(&key, 1, 1);
        pool.add(a).expect("a");
        pool.add(b.clone()).expect("b");
        // Another tx with nonce 0 wins the block: `a` becomes stale, `b` stays valid.
        let other = send(&key, 0, 2);
        app.try_finalize_block(RequestFinalizeBlock {
            txs: vec![other.clone()],
            height: 1,
            ..Default::default()
        })
        .expect("finalize");
        app.try_commit().expect("commit");
        pool.update_after_commit(&[tx_hash(&other)]);
        assert_eq!(pool.reap_txs(u64::MAX), vec![b.clone()]);
        // Committing `b` empties the pool.
        app.try_finalize_block(RequestFinalizeBlock {
            txs: vec![b.clone()],
            height: 2,
            ..Default::default()
        })
        .expect("finalize");
        app.try_commit().expect("commit");
        pool.update_after_commit(&[tx_hash(&b)]);
        assert_eq!(pool.size(), (0, 0));
    }
}
