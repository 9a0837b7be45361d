//! The marketplace's per-block costs.
//!
//! - `matching/10000x1000/*`: one end-of-block of the market module with 10,000 open jobs and 1,000
//!   providers (10 devices each), committed to RocksDB; the block's overlay reads through to it, as
//!   FinalizeBlock's does: `all_match` (every job could find a provider; `market.max_matches_per_block`,
//!   1,000 by default, are made), `all_match_uncapped` (the cap raised to 10,000: every match written, the
//!   cost per match) and `none_match` (every job's max price is below every ask: the scan alone).
//! - `reveals/k{2048,4096}/{honest,failing}/{0,50,200,full}`: FinalizeBlock of a block of one-tile
//!   `RevealSamples` txs (16 sampled tiles per job, T = 4; a failing job reveals its first, wrong, tile;
//!   `full` = as many as fit in `max_block_bytes`), first with an empty verdict cache (`cold`: the first
//!   pass a node makes, CheckTx's), then with the verdicts cached (`warm`: the later passes,
//!   PrepareProposal's and FinalizeBlock's).
//!
//! Figures are CPU time of the whole process (all threads), not wall time: what a node spends, and stable
//! while other work shares the machine.
//!
//! Run: `cargo bench --workspace --bench market` (not `-p lode-state`: that unifies features differently
//! and rebuilds RocksDB in release).

use std::time::Duration;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use bytes::Bytes;
use criterion::{
    criterion_group, criterion_main,
    measurement::{Measurement, ValueFormatter, WallTime},
    BatchSize, Criterion,
};
use ed25519_consensus::SigningKey;
use lode_gpu_verify::{verify::Prover, Backend, Engine, MatrixI32, MatrixI8};
use lode_state::{
    genesis::{AppState, GenesisBalance},
    module::{BlockCtx, Module},
    modules::{
        compute::{msg::reveal_msg, verdict, ComputeMsg},
        market::{self, msg::JobSpec, Device, Job, JobStatus, Market, MarketMsg, Provider},
    },
    store::{CommitBatch, CommitRecord, Overlay, Store},
    tx::{sign_msg, Msg},
    Address, LodeApp, Params,
};
use tendermint_proto::v0_38::{
    abci::{RequestFinalizeBlock, RequestInitChain, ValidatorUpdate},
    crypto::{public_key::Sum, PublicKey},
};

const CHAIN_ID: &str = "lode-bench";

/// CPU time of this process (every thread), from `CLOCK_PROCESS_CPUTIME_ID` (std has no CPU clock).
#[allow(unsafe_code)]
fn cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Criterion measured in CPU time of the process instead of wall time: the figures are what a node spends
/// (verification runs on every core through rayon, so CPU time is the sum over cores), and they do not
/// depend on what else this 2-core machine is running while it benches.
struct CpuTime;

static WALL: WallTime = WallTime;

impl Measurement for CpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        cpu_now()
    }
    fn end(&self, started: Duration) -> Duration {
        cpu_now().saturating_sub(started)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds either way: the wall-time formatter prints them.
        WALL.formatter()
    }
}

fn addr(i: u64) -> Address {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&i.to_le_bytes());
    Address::from_public_key(&b)
}

fn provider(ask: u128) -> Provider {
    Provider {
        moniker: String::new(),
        devices: vec![Device {
            model: "bench".into(),
            memory_mib: 1,
            count: 10,
        }],
        ask_per_cu: ask,
        max_job_cu: 1_000,
        bond: 100_000_000,
        reputation: 5_000,
        jobs_in_flight: 0,
        release_height: None,
        registered_height: 1,
        jobs_settled: 0,
        jobs_failed: 0,
    }
}

fn open_job(consumer: Address, price: u128) -> Job {
    Job {
        consumer,
        m: 64,
        k: 64,
        n: 64,
        tile: 4,
        samples: 16,
        a_root: [1; 32],
        b_root: [2; 32],
        max_price_per_cu: price,
        cu: 1,
        fee: 1,
        deadline_blocks: 10,
        min_reputation: 0,
        refund_on_failure: false,
        posted_height: 1,
        status: JobStatus::Open,
        provider: None,
        price_per_cu: 0,
        matched_height: 0,
        deadline: 0,
        excluded: Vec::new(),
        output_root: None,
        commit_height: 0,
        seed: None,
        sampled: Vec::new(),
        revealed: Vec::new(),
        challenge: Vec::new(),
        challenge_answered: Vec::new(),
        challenge_deadline: 0,
        history: Vec::new(),
    }
}

fn matching(c: &mut Criterion<CpuTime>) {
    let mut g = c.benchmark_group("matching/10000x1000");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let mut uncapped = Params::default();
    uncapped.market.max_matches_per_block = 10_000;
    for (name, job_price, params) in [
        ("all_match", 1_000_000u128, Params::default()),
        ("all_match_uncapped", 1_000_000u128, uncapped),
        ("none_match", 1u128, Params::default()),
    ] {
        // The providers and jobs are committed state, as on a node: the block's overlay reads them from
        // RocksDB and holds only the block's own writes.
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let mut base = Overlay::new(&store);
        for p in 0..1_000u64 {
            market::put_provider(&mut base, &addr(p), &provider(100 + u128::from(p % 97)))
                .expect("provider");
        }
        for j in 0..10_000u64 {
            let price = job_price + u128::from(j % 13);
            let id = market::job_id(&addr(1_000_000 + j), 0);
            market::put_job(&mut base, &id, &open_job(addr(1_000_000 + j), price)).expect("job");
        }
        let writes = base.into_writes();
        let (root, tree) = store.compute_root(&writes, 0).expect("root");
        store
            .commit(CommitBatch {
                record: CommitRecord {
                    chain_id: CHAIN_ID.into(),
                    initial_height: 1,
                    height: 0,
                    app_hash: root.0,
                },
                writes,
                tree,
                block: None,
                tx_hashes: Vec::new(),
                tx_ok: Vec::new(),
                tx_accounts: Vec::new(),
            })
            .expect("commit");
        g.bench_function(name, |b| {
            b.iter_batched(
                || Overlay::new(&store),
                |mut s| {
                    let mut events = Vec::new();
                    let ctx = BlockCtx::pending(2, CHAIN_ID, &params);
                    Market::end_block(&mut s, ctx, &mut events).expect("end block");
                    // Returned, so the block's writes and events are dropped outside the timing.
                    (s, events)
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn key(i: u64) -> SigningKey {
    let mut b = [9u8; 32];
    b[..8].copy_from_slice(&i.to_le_bytes());
    SigningKey::from(b)
}

fn kaddr(k: &SigningKey) -> Address {
    Address::from_public_key(&k.verification_key().to_bytes())
}

/// A chain with `jobs` jobs of shape 16×k×16 in the revealing step, and their one-tile reveal txs.
struct RevealChain {
    app: LodeApp,
    height: u64,
    txs: Vec<Vec<u8>>,
    _dir: tempfile::TempDir,
}

const FEE: u128 = 10_000_000;

impl RevealChain {
    fn new(k: usize, jobs: usize, corrupt: bool) -> RevealChain {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = LodeApp::open(dir.path()).expect("open");
        let consumer = key(1);
        let prov = key(2);
        let params = Params {
            max_block_bytes: 16 * 1024 * 1024,
            ..Params::default()
        };
        let mut app_state = AppState {
            balances: [&consumer, &prov]
                .iter()
                .map(|k| GenesisBalance {
                    address: kaddr(k).to_string(),
                    amount: "1000000000000000".into(),
                })
                .collect(),
            validators: Vec::new(),
            params,
            compute_power: None,
        };
        app_state.add_self_bonded_validator("bench", &key(99).verification_key().to_bytes(), 1);
        app.try_init_chain(RequestInitChain {
            chain_id: CHAIN_ID.into(),
            initial_height: 1,
            app_state_bytes: Bytes::from(serde_json::to_vec(&app_state).expect("json")),
            validators: vec![ValidatorUpdate {
                pub_key: Some(PublicKey {
                    sum: Some(Sum::Ed25519(key(99).verification_key().to_bytes().to_vec())),
                }),
                power: i64::try_from(lode_state::modules::staking::power::TOTAL_POWER)
                    .expect("fits"),
            }],
            ..Default::default()
        })
        .expect("init");
        let mut ch = RevealChain {
            app,
            height: 0,
            txs: Vec::new(),
            _dir: dir,
        };
        let (ca, pa) = (kaddr(&consumer), kaddr(&prov));
        let mut x = 7u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 255) as i32 as i8
        };
        let a = MatrixI8::from_fn(16, k, |_, _| rnd()).expect("a");
        let b = MatrixI8::from_fn(k, 16, |_, _| rnd()).expect("b");
        let c: MatrixI32 = Engine::new(Backend::Cpu)
            .expect("cpu")
            .gemm(&a, &b)
            .expect("c");
        let mut committed = c.clone();
        if corrupt {
            for v in committed.data_mut() {
                *v = v.wrapping_add(1);
            }
        }
        let prover = Prover::new(a, &b, committed, 4).expect("prover");
        ch.block(vec![sign_msg(
            CHAIN_ID,
            &prov,
            0,
            FEE,
            Msg::Market(MarketMsg::RegisterProvider {
                provider: pa,
                moniker: String::new(),
                devices: vec![Device {
                    model: "bench".into(),
                    memory_mib: 1,
                    count: jobs as u32,
                }],
                ask_per_cu: 1,
                max_job_cu: 1_000,
                bond: 1_000_000 * jobs as u128,
            }),
        )]);
        let spec = JobSpec {
            m: 16,
            k: k as u64,
            n: 16,
            a_root: prover.a_tree().root(),
            b_root: prover.b_tree().root(),
            tile: 4,
            samples: 16,
            max_price_per_cu: 10,
            deadline_blocks: 100,
            min_reputation: 0,
            refund_on_failure: true,
        };
        let ids: Vec<[u8; 32]> = (0..jobs as u64).map(|s| market::job_id(&ca, s)).collect();
        ch.block(
            (0..jobs as u64)
                .map(|n| {
                    sign_msg(
                        CHAIN_ID,
                        &consumer,
                        n,
                        FEE,
                        Msg::Market(MarketMsg::PostJob {
                            consumer: ca,
                            spec: spec.clone(),
                        }),
                    )
                })
                .collect(),
        );
        let mut nonce = 1u64;
        let mut provider_txs = |msgs: Vec<Msg>| {
            msgs.into_iter()
                .map(|m| {
                    nonce += 1;
                    sign_msg(CHAIN_ID, &prov, nonce - 1, FEE, m)
                })
                .collect::<Vec<_>>()
        };
        let accepts = provider_txs(
            ids.iter()
                .map(|id| {
                    Msg::Market(MarketMsg::AcceptJob {
                        provider: pa,
                        job: *id,
                    })
                })
                .collect(),
        );
        ch.block(accepts);
        let commits = provider_txs(
            ids.iter()
                .map(|id| {
                    Msg::Compute(ComputeMsg::CommitResult {
                        provider: pa,
                        job: *id,
                        output_root: prover.c_tree().root(),
                    })
                })
                .collect(),
        );
        ch.block(commits);
        ch.block(Vec::new());
        let mut reveals = Vec::new();
        for id in &ids {
            let j = market::job(ch.app.store(), id).expect("read").expect("job");
            assert_eq!(j.status, JobStatus::Revealing);
            // A failing job fails at its first wrong tile: one reveal per job.
            let owed = if corrupt {
                &j.sampled[..1]
            } else {
                &j.sampled[..]
            };
            for t in owed {
                reveals.push(Msg::Compute(
                    reveal_msg(pa, *id, &prover, &[*t]).expect("reveal"),
                ));
            }
        }
        ch.txs = provider_txs(reveals);
        ch
    }

    fn block(&mut self, txs: Vec<Vec<u8>>) {
        self.height += 1;
        let r = self
            .app
            .try_finalize_block(self.request(txs))
            .expect("finalize");
        for t in &r.tx_results {
            assert_eq!(t.code, 0, "{}", t.log);
        }
        self.app.try_commit().expect("commit");
    }

    fn request(&self, txs: Vec<Vec<u8>>) -> RequestFinalizeBlock {
        RequestFinalizeBlock {
            txs: txs.into_iter().map(Bytes::from).collect(),
            height: self.height as i64,
            hash: Bytes::copy_from_slice(&[self.height as u8; 32]),
            ..Default::default()
        }
    }

    /// FinalizeBlock of the first `n` reveals (not committed, so it can run again).
    fn finalize(&self, n: usize) -> Duration {
        let txs: Vec<Vec<u8>> = self.txs.iter().take(n).cloned().collect();
        let req = RequestFinalizeBlock {
            height: self.height as i64 + 1,
            ..self.request(txs)
        };
        let t = cpu_now();
        let r = self.app.try_finalize_block(req).expect("finalize");
        let d = cpu_now().saturating_sub(t);
        assert!(
            r.tx_results.iter().all(|t| t.code == 0),
            "a reveal was refused"
        );
        d
    }
}

fn reveals(c: &mut Criterion<CpuTime>) {
    let mut g = c.benchmark_group("reveals");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    let max_block = Params::default().max_block_bytes as usize;
    for k in [2048usize, 4096] {
        // Reveals per block at the block byte limit (one tile per tx, a little room for the rest).
        let full = max_block / (one_reveal_bytes(k) + 64);
        for (name, corrupt) in [("honest", false), ("failing", true)] {
            // 16 sampled tiles per honest job; a failing job fails at its first reveal.
            let jobs = if corrupt { full } else { full.div_ceil(16) };
            let ch = RevealChain::new(k, jobs, corrupt);
            let bytes: usize = ch.txs.iter().take(full).map(Vec::len).sum();
            println!(
                "reveals/k{k}/{name}: one reveal tx = {} bytes; a full block = {full} reveals, {bytes} bytes",
                ch.txs.first().map_or(0, Vec::len)
            );
            for (label, n) in [("0", 0usize), ("50", 50), ("200", 200), ("full", full)] {
                g.bench_function(format!("k{k}/{name}/{label}/cold"), |b| {
                    b.iter_custom(|iters| {
                        (0..iters)
                            .map(|_| {
                                verdict::clear_cache();
                                ch.finalize(n)
                            })
                            .sum()
                    })
                });
                g.bench_function(format!("k{k}/{name}/{label}/warm"), |b| {
                    ch.finalize(n);
                    b.iter_custom(|iters| (0..iters).map(|_| ch.finalize(n)).sum())
                });
            }
        }
    }
    g.finish();
}

/// The size of one one-tile reveal tx at depth `k` (T = 4: four rows of A and four columns of B, their
/// proofs and the tile), measured once from a real tx.
fn one_reveal_bytes(k: usize) -> usize {
    RevealChain::new(k, 1, false)
        .txs
        .first()
        .map_or(1, Vec::len)
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = matching, reveals
}
criterion_main!(benches);
