//! The mempool: transactions admitted by CheckTx, waiting to be proposed.
//!
//! Bounded by count and total bytes ([`MempoolLimits`]); a full mempool rejects new txs with
//! [`AddError::Full`] (gRPC `RESOURCE_EXHAUSTED`, "mempool full"). Txs are deduplicated by SHA-256 hash, reaped
//! in arrival order, and after each commit the committed ones are dropped and the rest rechecked (CheckTx type
//! Recheck) against the new state; those now invalid are evicted. Every admission and the recheck run under one
//! lock, so the application's CheckTx view always matches the mempool's order.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
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
    /// CheckTx rejected it (the response carries the code and log).
    #[error("CheckTx rejected the tx (code {}): {}", .0.code, .0.log)]
    Rejected(Box<ResponseCheckTx>),
}

#[derive(Debug, Default)]
struct Inner {
    /// Arrival sequence → (hash, tx).
    order: BTreeMap<u64, ([u8; 32], Bytes)>,
    by_hash: HashMap<[u8; 32], u64>,
    bytes: u64,
    next_seq: u64,
}

impl Inner {
    /// Forgets the txs with these hashes (those a block committed); unknown hashes are skipped.
    fn drop_committed(&mut self, hashes: &[[u8; 32]]) {
        for h in hashes {
            if let Some(seq) = self.by_hash.remove(h) {
                if let Some((_, tx)) = self.order.remove(&seq) {
                    self.bytes -= tx.len() as u64;
                }
            }
        }
    }
}

/// The node's mempool. Shared behind an `Arc`.
#[derive(Debug)]
pub struct Mempool {
    app: LodeApp,
    limits: MempoolLimits,
    inner: Mutex<Inner>,
    gossip: Mutex<Option<mpsc::Sender<Bytes>>>,
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
            inner: Mutex::new(Inner::default()),
            gossip: Mutex::new(None),
        }
    }

    /// Txs admitted locally (not those received from peers) are also sent here, to be gossiped. The channel is
    /// bounded; when it is full the tx stays in the mempool but is not gossiped.
    pub fn set_gossip(&self, tx: mpsc::Sender<Bytes>) {
        *self.gossip.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The inner maps are updated only after every fallible step, so a poisoned guard is consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (txs, bytes) held.
    pub fn size(&self) -> (usize, u64) {
        let g = self.lock();
        (g.order.len(), g.bytes)
    }

    /// Whether a tx with this hash is pending.
    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.lock().by_hash.contains_key(hash)
    }

    /// Adds a tx from a client: CheckTx, then gossip. Returns the successful CheckTx response.
    pub fn add_local(&self, tx: Bytes) -> Result<ResponseCheckTx, AddError> {
        let resp = self.add(tx.clone())?;
        self.gossip(std::iter::once(tx));
        Ok(resp)
    }

    /// Adds a client's txs in order as [`Mempool::add_batch`] does (one signature batch), then gossips
    /// those admitted.
    pub fn add_local_batch(&self, txs: Vec<Bytes>) -> Vec<Result<ResponseCheckTx, AddError>> {
        let results = self.add_batch(txs.clone());
        self.gossip(
            txs.into_iter()
                .zip(&results)
                .filter(|(_, r)| r.is_ok())
                .map(|(t, _)| t),
        );
        results
    }

    fn gossip(&self, txs: impl Iterator<Item = Bytes>) {
        let guard = self.gossip.lock().unwrap_or_else(|e| e.into_inner());
        let Some(g) = guard.as_ref() else { return };
        for tx in txs {
            if g.try_send(tx).is_err() {
                warn!("gossip queue full; tx kept but not gossiped");
            }
        }
    }

    /// Adds a peer's batch of txs in order: their signatures are verified together first (one batch instead
    /// of one verification per CheckTx), then each tx is added as by [`Mempool::add`].
    pub fn add_batch(&self, txs: Vec<Bytes>) -> Vec<Result<ResponseCheckTx, AddError>> {
        let fresh: Vec<Bytes> = {
            let g = self.lock();
            txs.iter()
                .filter(|t| {
                    t.len() <= self.limits.max_tx_bytes && !g.by_hash.contains_key(&tx_hash(t))
                })
                .cloned()
                .collect()
        };
        if fresh.len() > 1 {
            self.app.preverify(&fresh);
        }
        txs.into_iter().map(|tx| self.add(tx)).collect()
    }

    /// Adds a tx (from a client or a peer) if it is new, fits and passes CheckTx.
    pub fn add(&self, tx: Bytes) -> Result<ResponseCheckTx, AddError> {
        if tx.len() > self.limits.max_tx_bytes {
            return Err(AddError::TooLarge(tx.len()));
        }
        let hash = tx_hash(&tx);
        let mut g = self.lock();
        if g.by_hash.contains_key(&hash) {
            return Err(AddError::Duplicate);
        }
        if g.order.len() >= self.limits.max_txs
            || g.bytes.saturating_add(tx.len() as u64) > self.limits.max_bytes
        {
            return Err(AddError::Full {
                txs: g.order.len(),
                bytes: g.bytes,
            });
        }
        let resp = self.app.check_tx(RequestCheckTx {
            tx: tx.clone(),
            r#type: CheckTxType::New as i32,
        });
        if resp.code != 0 {
            return Err(AddError::Rejected(Box::new(resp)));
        }
        let seq = g.next_seq;
        g.next_seq += 1;
        g.bytes += tx.len() as u64;
        g.by_hash.insert(hash, seq);
        g.order.insert(seq, (hash, tx));
        Ok(resp)
    }

    /// Up to `max_bytes` of txs in arrival order (they stay pending until committed).
    pub fn reap_txs(&self, max_bytes: u64) -> Vec<Bytes> {
        let g = self.lock();
        let mut out = Vec::new();
        let mut total = 0u64;
        for (_, tx) in g.order.values() {
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
        let pending: Vec<(u64, [u8; 32], Bytes)> = g
            .order
            .iter()
            .map(|(s, (h, t))| (*s, *h, t.clone()))
            .collect();
        let mut evicted = 0usize;
        for (seq, hash, tx) in pending {
            let len = tx.len() as u64;
            let resp = self.app.check_tx(RequestCheckTx {
                tx,
                r#type: CheckTxType::Recheck as i32,
            });
            if resp.code != 0 {
                debug!(hash = %hex::encode(hash), code = resp.code, log = %resp.log, "evicted on recheck");
                g.order.remove(&seq);
                g.by_hash.remove(&hash);
                g.bytes -= len;
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

    fn pending(&self) -> usize {
        self.size().0
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
        let app_state = AppState {
            balances: vec![GenesisBalance {
                address: address_of(&key).to_string(),
                amount: "1000000000".into(),
            }],
            ..AppState::default()
        };
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
                power: 10,
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
        }
    }

    fn send(key: &SigningKey, nonce: u64, amount: u128) -> Bytes {
        let to = address_of(&SigningKey::from([8u8; 32]));
        Bytes::from(sign_send(CHAIN, key, nonce, 10_000, &to, amount))
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
    fn invalid_txs_are_rejected_by_check_tx() {
        let (_d, _app, key, pool) = setup(limits());
        assert!(matches!(
            pool.add(Bytes::from_static(b"garbage")),
            Err(AddError::Rejected(_))
        ));
        assert!(matches!(
            pool.add(send(&key, 5, 1)),
            Err(AddError::Rejected(_))
        ));
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
            matches!(&results[2], Err(AddError::Rejected(r)) if r.code == 5),
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
