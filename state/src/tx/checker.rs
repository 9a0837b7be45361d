//! The tx checker: stateless checks and signature verification of raw txs, with the caches that make each
//! tx decoded once and each signature verified once per node, whichever door the tx comes through
//! (CheckTx, recheck, PrepareProposal, ProcessProposal, FinalizeBlock).

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use crate::fasthash::{HashMap, HashSet};
use bytes::Bytes;
use rayon::prelude::*;

use super::{signatures_verify, tx_hash, verify_signatures, Tx};
use crate::{error::TxError, modules::ante, params::Params};

/// Decodes, checks and verifies txs, remembering what it already did. Cheap to share: `&self` methods,
/// internally locked.
#[derive(Debug, Default)]
pub struct TxChecker {
    sig_cache: Mutex<SigCache>,
    decoded: Mutex<DecodedCache>,
    /// Bumped whenever the parameters change (see [`TxChecker::generation`]).
    generation: AtomicU64,
}

/// What [`TxChecker::check_pipelined`] calls with each checked chunk, on its helper thread.
pub type ChunkHook<'a> = dyn Fn(&[Result<Arc<Tx>, TxError>]) + Sync + 'a;

/// The state keys a chunk of txs will read first: each signer's account and what each message's module
/// asks to read ahead (a transfer's recipients).
pub fn accounts_read(checked: &[Result<Arc<Tx>, TxError>]) -> Vec<Vec<u8>> {
    // A capacity hint: an account and about one read-ahead key per tx.
    let mut keys = Vec::with_capacity(checked.len().saturating_mul(2));
    for tx in checked.iter().flatten() {
        keys.push(ante::account_key(&tx.auth.signer));
        for m in &tx.body.msgs {
            m.prefetch(&mut keys);
        }
    }
    keys
}

/// Txs per chunk when FinalizeBlock pipelines signature checks with execution: small enough that
/// execution starts early, large enough for efficient batch verification.
pub fn pipeline_chunk(txs: usize) -> usize {
    txs.div_ceil(8).clamp(128, 1024)
}

/// The txs' hashes: `given` when it holds one per tx (the caller hashed them already: `given[i]` must be
/// the SHA-256 of `txs[i]`), else each tx hashed here.
pub fn hashes_of(txs: &[Bytes], given: Option<&[[u8; 32]]>) -> Vec<[u8; 32]> {
    match given.filter(|h| h.len() == txs.len()) {
        Some(h) => h.to_vec(),
        None => txs.iter().map(|raw| tx_hash(raw)).collect(),
    }
}

/// How many verified tx hashes the signature cache remembers.
const SIG_CACHE_CAP: usize = 200_000;
/// Decoded txs kept per generation of [`DecodedCache`] (two generations are kept).
const DECODED_CACHE_GEN: usize = 16_384;

/// Hashes of txs whose signatures already verified on this node, so each signature is checked once.
#[derive(Debug, Default)]
struct SigCache {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl SigCache {
    fn contains(&self, h: &[u8; 32]) -> bool {
        self.set.contains(h)
    }

    fn insert(&mut self, h: [u8; 32]) {
        if self.set.insert(h) {
            self.order.push_back(h);
            while self.order.len() > SIG_CACHE_CAP {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// Whether [`TxChecker::check_many`] keeps what it decodes in the [`DecodedCache`]: yes where the same txs
/// come back (CheckTx, proposals), no in FinalizeBlock, after which they are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remember {
    Yes,
    No,
}

/// Txs this node already decoded, by hash of their bytes, so that a tx met by CheckTx, recheck,
/// PrepareProposal, ProcessProposal and FinalizeBlock is decoded (and its addresses parsed) once. Only
/// successful decodes are kept. It memoises a pure function of the bytes, the chain id and the parameters,
/// and is emptied when a Commit changes the parameters, so it cannot change a verdict. Two generations: when
/// the current one is full it becomes the previous one and the older is dropped.
#[derive(Debug, Default)]
struct DecodedCache {
    current: HashMap<[u8; 32], Arc<Tx>>,
    previous: HashMap<[u8; 32], Arc<Tx>>,
}

impl DecodedCache {
    fn get(&self, h: &[u8; 32]) -> Option<Arc<Tx>> {
        self.current
            .get(h)
            .or_else(|| self.previous.get(h))
            .cloned()
    }

    fn insert(&mut self, tx: Arc<Tx>) {
        if self.current.len() >= DECODED_CACHE_GEN {
            // The full generation becomes the previous one, and the older one's table, emptied, is the new
            // current: its capacity is kept. A fresh table grew by doubling to the generation's size, each
            // step a rehash into newly faulted pages (about 1% of a loaded devnet's CPU).
            std::mem::swap(&mut self.previous, &mut self.current);
            self.current.clear();
        }
        self.current.insert(tx.hash, tx);
    }

    fn clear(&mut self) {
        self.current.clear();
        self.previous.clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The caches only memoise pure functions, so a guard poisoned by a panic elsewhere is still valid.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TxChecker {
    /// Forgets every decoded tx (decoding depends on the parameters: call this when they change, before
    /// the new parameters are visible to readers).
    pub fn parameters_changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        lock(&self.decoded).clear();
    }

    /// Which parameters a check ran under: read before the parameters it checks with, it equals the
    /// generation read later only if no parameter change came between, so a tx checked then is checked
    /// under the parameters in force.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Decodes and checks a tx statelessly (or finds it decoded already), then verifies its signature unless
    /// already verified here.
    pub fn check_one(
        &self,
        raw: &[u8],
        chain_id: &str,
        params: &Params,
    ) -> Result<Arc<Tx>, TxError> {
        self.check_one_hashed(raw, tx_hash(raw), chain_id, params)
    }

    /// [`Self::check_one`] for a tx whose hash the caller already computed (`hash` must be
    /// `tx_hash(raw)`: the decoded-tx cache is keyed by it). A mempool hashes each tx once on arrival and
    /// passes it along instead of hashing it again at every step (admission, CheckTx, each recheck).
    pub fn check_one_hashed(
        &self,
        raw: &[u8],
        hash: [u8; 32],
        chain_id: &str,
        params: &Params,
    ) -> Result<Arc<Tx>, TxError> {
        debug_assert_eq!(hash, tx_hash(raw), "check_one_hashed: hash of other bytes");
        let known = lock(&self.decoded).get(&hash);
        let tx = match known {
            Some(tx) => tx,
            None => {
                let tx = Arc::new(Tx::check_stateless_hashed(raw, hash, chain_id, params)?);
                lock(&self.decoded).insert(tx.clone());
                tx
            }
        };
        if !lock(&self.sig_cache).contains(&tx.hash) {
            if !signatures_verify(&tx) {
                return Err(TxError::BadSignature);
            }
            lock(&self.sig_cache).insert(tx.hash);
        }
        Ok(tx)
    }

    /// Stateless checks and signature verification of many txs, in parallel.
    pub fn check_many(
        &self,
        txs: &[Bytes],
        chain_id: &str,
        params: &Params,
        remember: Remember,
    ) -> Vec<Result<Arc<Tx>, TxError>> {
        self.check_many_hashed(txs, hashes_of(txs, None), chain_id, params, remember)
    }

    /// [`Self::check_many`] for txs whose hashes the caller already computed (`hashes[i]` must be
    /// `tx_hash(&txs[i])`, as for [`Self::check_one_hashed`]).
    pub fn check_many_hashed(
        &self,
        txs: &[Bytes],
        hashes: Vec<[u8; 32]>,
        chain_id: &str,
        params: &Params,
        remember: Remember,
    ) -> Vec<Result<Arc<Tx>, TxError>> {
        debug_assert!(
            hashes.len() == txs.len() && txs.iter().zip(&hashes).all(|(t, h)| tx_hash(t) == *h),
            "check_many_hashed: hashes of other bytes"
        );
        let known: Vec<Option<Arc<Tx>>> = {
            let cache = lock(&self.decoded);
            hashes.iter().map(|h| cache.get(h)).collect()
        };
        let mut checked: Vec<Result<Arc<Tx>, TxError>> = txs
            .par_iter()
            .zip(hashes)
            .zip(known)
            .map(|((raw, hash), known)| match known {
                Some(tx) => Ok(tx),
                None => Tx::check_stateless_hashed(raw, hash, chain_id, params).map(Arc::new),
            })
            .collect();
        if remember == Remember::Yes {
            let mut cache = lock(&self.decoded);
            for tx in checked.iter().flatten() {
                if Arc::strong_count(tx) == 1 {
                    // Decoded just now (a cached one is also held by the cache).
                    cache.insert(tx.clone());
                }
            }
        }
        let to_verify: Vec<(usize, &Arc<Tx>)> = {
            let cache = lock(&self.sig_cache);
            checked
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    r.as_ref()
                        .ok()
                        .filter(|t| !cache.contains(&t.hash))
                        .map(|t| (i, t))
                })
                .collect()
        };
        let refs: Vec<&Tx> = to_verify.iter().map(|(_, t)| t.as_ref()).collect();
        let verdicts = verify_signatures(&refs);
        let mut bad = Vec::new();
        {
            let mut cache = lock(&self.sig_cache);
            for ((i, t), ok) in to_verify.iter().zip(verdicts) {
                if ok {
                    cache.insert(t.hash);
                } else {
                    bad.push(*i);
                }
            }
        }
        for i in bad {
            if let Some(verdict) = checked.get_mut(i) {
                *verdict = Err(TxError::BadSignature);
            }
        }
        checked
    }

    /// [`Self::check_many`] in chunks of `chunk` txs on a helper thread, handing each raw tx and its
    /// verdict to `each` in block order as soon as its chunk is checked, so that signature verification of
    /// later txs overlaps the execution of earlier ones. Verdicts do not depend on the chunking: a batch
    /// that fails is re-checked one signature at a time. Stops at the first error `each` returns. `ahead`
    /// sees each checked chunk on a second helper thread before it is handed over (FinalizeBlock fetches the
    /// chunk's accounts there), so that it overlaps the checks of the next chunk instead of delaying them.
    /// `hashes`, when it holds one per tx, are the txs' hashes ([`hashes_of`]).
    #[allow(clippy::too_many_arguments)]
    pub fn check_pipelined<E>(
        &self,
        txs: &[Bytes],
        hashes: Option<&[[u8; 32]]>,
        chain_id: &str,
        params: &Params,
        chunk: usize,
        ahead: &ChunkHook<'_>,
        mut each: impl FnMut(&Bytes, Result<Arc<Tx>, TxError>) -> Result<(), E>,
    ) -> Result<(), E> {
        let hashes = hashes.filter(|h| h.len() == txs.len());
        if txs.len() <= chunk {
            let checked =
                self.check_many_hashed(txs, hashes_of(txs, hashes), chain_id, params, Remember::No);
            for (raw, r) in txs.iter().zip(checked) {
                each(raw, r)?;
            }
            return Ok(());
        }
        std::thread::scope(|s| {
            // Two chunks in flight per stage: enough to keep the verifier busy while one is executed.
            let (send_checked, recv_checked) = std::sync::mpsc::sync_channel(2);
            let (send, recv) = std::sync::mpsc::sync_channel(2);
            s.spawn(move || {
                for (n, part) in txs.chunks(chunk.max(1)).enumerate() {
                    let given = hashes.and_then(|h| {
                        let start = n.saturating_mul(chunk.max(1));
                        h.get(start..start.saturating_add(part.len()))
                    });
                    let checked = self.check_many_hashed(
                        part,
                        hashes_of(part, given),
                        chain_id,
                        params,
                        Remember::No,
                    );
                    // A closed channel means the consumer stopped on an error.
                    if send_checked.send(checked).is_err() {
                        break;
                    }
                }
            });
            s.spawn(move || {
                for checked in recv_checked {
                    ahead(&checked);
                    if send.send(checked).is_err() {
                        break;
                    }
                }
            });
            // Chunks arrive in order and hold one verdict per tx of their part.
            let mut raws = txs.iter();
            for checked in recv {
                for (r, raw) in checked.into_iter().zip(&mut raws) {
                    each(raw, r)?;
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decoded_cache_keeps_two_generations_and_reuses_the_older_ones_table() {
        let key = ed25519_consensus::SigningKey::from([3; 32]);
        let raw = super::super::sign_send("c", &key, 0, 10, &crate::address::Address([9; 20]), 1);
        let tx = Tx::check_stateless_hashed(&raw, tx_hash(&raw), "c", &Params::default())
            .expect("a valid tx");
        let with_hash = |i: usize| {
            let mut h = [0u8; 32];
            h[..8].copy_from_slice(&(i as u64).to_le_bytes());
            Arc::new(Tx {
                hash: h,
                ..tx.clone()
            })
        };
        let mut cache = DecodedCache::default();
        for i in 0..DECODED_CACHE_GEN {
            cache.insert(with_hash(i));
        }
        // The first generation is full: the next insert makes it the previous one.
        cache.insert(with_hash(DECODED_CACHE_GEN));
        assert_eq!(cache.previous.len(), DECODED_CACHE_GEN);
        assert_eq!(cache.current.len(), 1);
        assert!(cache.get(&with_hash(0).hash).is_some());
        assert!(cache.get(&with_hash(DECODED_CACHE_GEN).hash).is_some());
        // A second full generation: the first is dropped, its table (emptied, its capacity kept) is the
        // new current one.
        for i in DECODED_CACHE_GEN + 1..2 * DECODED_CACHE_GEN {
            cache.insert(with_hash(i));
        }
        let first_table = cache.previous.capacity();
        cache.insert(with_hash(2 * DECODED_CACHE_GEN));
        assert_eq!(cache.current.len(), 1);
        assert!(cache.current.capacity() >= first_table);
        assert_eq!(cache.previous.len(), DECODED_CACHE_GEN);
        assert!(cache.get(&with_hash(0).hash).is_none());
        assert!(cache.get(&with_hash(DECODED_CACHE_GEN - 1).hash).is_none());
        assert!(cache.get(&with_hash(DECODED_CACHE_GEN).hash).is_some());
        assert!(cache.get(&with_hash(2 * DECODED_CACHE_GEN).hash).is_some());
    }
}
