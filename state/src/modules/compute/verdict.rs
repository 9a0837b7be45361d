//! Reveal verdicts: computed once per node and cached, so CheckTx, PrepareProposal and FinalizeBlock do not
//! repeat the work, on the backend the node chose (`[compute] backend`; the CPU by default).
//!
//! A verdict is a pure function of the job (its roots and shape), the set of tiles owed and the revealed
//! bytes, so the cache key is a hash of exactly those, and a cached verdict is the one any node computes.
//! The backend changes speed only: gpu-verify's integer products are bit-identical on every device, and
//! a GPU failure falls back to the CPU inside `BatchVerifier`.

use std::{
    cell::Cell,
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, OnceLock,
    },
    time::{Duration, Instant},
};

use lode_gpu_verify::{
    verify::{BatchVerifier, Job, PartItem, Reveal, Verdict},
    Backend, CpuGemm, Engine,
};
use sha2::{Digest, Sha256};

/// Verdicts kept, oldest evicted first.
const CACHE_ENTRIES: usize = 4_096;

static VERIFIER: OnceLock<BatchVerifier> = OnceLock::new();

struct Cache {
    /// Each verdict with the nanoseconds it took to compute.
    map: HashMap<[u8; 32], (Verdict, u64)>,
    order: VecDeque<[u8; 32]>,
}

static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();

fn cache() -> &'static Mutex<Cache> {
    CACHE.get_or_init(|| {
        Mutex::new(Cache {
            map: HashMap::new(),
            order: VecDeque::new(),
        })
    })
}

/// Chooses the verification backend for this process (the node calls it once at startup, before any
/// block). Returns the engine's description, or why the choice failed (then the CPU is used). A second
/// call has no effect.
pub fn set_backend(backend: Backend) -> Result<String, String> {
    match Engine::new(backend) {
        Ok(engine) => {
            let d = engine.describe();
            let _ = VERIFIER.set(BatchVerifier::new(engine));
            Ok(d)
        }
        Err(e) => {
            let _ = VERIFIER.set(BatchVerifier::new(Engine::cpu(CpuGemm::new())));
            Err(e.to_string())
        }
    }
}

fn verifier() -> &'static BatchVerifier {
    VERIFIER.get_or_init(|| BatchVerifier::new(Engine::cpu(CpuGemm::new())))
}

/// The cache key: the job's identity and roots, the owed tiles and the reveal's digest.
fn key(job: &Job, owed: &[u64], reveal_digest: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"lode/compute/verdict/v1");
    h.update(job.id);
    for v in [job.m, job.k, job.n, job.tile, job.samples] {
        h.update((v as u64).to_le_bytes());
    }
    h.update(job.a_root);
    h.update(job.b_root);
    h.update(job.c_root);
    h.update((owed.len() as u64).to_le_bytes());
    for t in owed {
        h.update(t.to_le_bytes());
    }
    h.update(reveal_digest);
    h.finalize().into()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The verdict on a reveal of some of the `owed` tiles of `job`; `Err` only if the backend itself failed.
pub fn verdict(
    job: &Job,
    owed: &[u64],
    reveal: &Reveal,
    reveal_digest: &[u8; 32],
) -> Result<Verdict, String> {
    let k = key(job, owed, reveal_digest);
    if let Some((v, nanos)) = lock(cache()).map.get(&k) {
        charge(*nanos);
        return Ok(v.clone());
    }
    let started = Instant::now();
    let v = verifier()
        .verify_parts(&[PartItem {
            job,
            tiles: owed,
            reveal,
        }])
        .map_err(|e| e.to_string())?
        .pop()
        .ok_or_else(|| "verifier returned no verdict".to_string())?;
    let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    COMPUTED.fetch_add(1, Ordering::Relaxed);
    COMPUTED_NANOS.fetch_add(nanos, Ordering::Relaxed);
    charge(nanos);
    let mut c = lock(cache());
    if c.map.insert(k, (v.clone(), nanos)).is_none() {
        c.order.push_back(k);
        while c.order.len() > CACHE_ENTRIES {
            if let Some(old) = c.order.pop_front() {
                c.map.remove(&old);
            }
        }
    }
    Ok(v)
}

/// Verdicts this process has computed (cache misses) and the time they took, for metrics.
static COMPUTED: AtomicU64 = AtomicU64::new(0);
static COMPUTED_NANOS: AtomicU64 = AtomicU64::new(0);

/// How many verdicts this process has computed, and the time spent computing them.
pub fn computed() -> (u64, Duration) {
    (
        COMPUTED.load(Ordering::Relaxed),
        Duration::from_nanos(COMPUTED_NANOS.load(Ordering::Relaxed)),
    )
}

thread_local! {
    /// The verification cost charged to the block being finalized on this thread, while a
    /// [`BlockMeter`] is open on it.
    static BLOCK_NANOS: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Adds a verdict's cost to the block being finalized on this thread, if any.
fn charge(nanos: u64) {
    BLOCK_NANOS.with(|b| {
        if let Some(n) = b.get() {
            b.set(Some(n.saturating_add(nanos)));
        }
    });
}

/// Measures what verifying the reveals of one block costs: every verdict the block's transactions use,
/// at the time it took to compute, whether it was computed now or earlier (at CheckTx, or for the
/// proposal) and served from the cache. So the figure is the block's verification work on this node,
/// counted once, whichever step happened to do it. Execution runs on the thread that opened the meter;
/// verdicts computed on other threads (CheckTx) meanwhile are not charged to it.
#[derive(Debug)]
pub struct BlockMeter(());

impl BlockMeter {
    /// Starts charging this thread's verdicts to a block.
    pub fn start() -> Self {
        BLOCK_NANOS.with(|b| b.set(Some(0)));
        BlockMeter(())
    }

    /// The block's verification time so far.
    pub fn finish(self) -> Duration {
        Duration::from_nanos(BLOCK_NANOS.with(|b| b.get()).unwrap_or(0))
    }
}

impl Drop for BlockMeter {
    fn drop(&mut self) {
        BLOCK_NANOS.with(|b| b.set(None));
    }
}

/// Verdicts computed so far by this process that were served from the cache, for tests and metrics.
pub fn cached_entries() -> usize {
    lock(cache()).map.len()
}

/// Forgets every cached verdict (benchmarks measure the first pass with it).
pub fn clear_cache() {
    let mut c = lock(cache());
    c.map.clear();
    c.order.clear();
}
