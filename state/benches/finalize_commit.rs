//! FinalizeBlock + Commit throughput on RocksDB: blocks of 1,000 and 10,000 signed transfers between
//! 10,000 accounts, signature checks included (no tx went through CheckTx first, so no cached verdicts).
//!
//! Run: `cargo bench -p lode-state --bench finalize_commit`. Prints transfers/s per block size.

use std::time::{Duration, Instant};

/// The allocator `lode` runs with, so the figure is the node's.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ed25519_consensus::SigningKey;
use lode_state::{
    genesis::{AppState, GenesisBalance},
    tx::sign_send,
    Address, LodeApp, Params,
};
use tendermint_proto::v0_38::{
    abci::{RequestFinalizeBlock, RequestInitChain, ValidatorUpdate},
    crypto::{public_key::Sum, PublicKey},
};

const ACCOUNTS: usize = 10_000;
const CHAIN_ID: &str = "lode-bench";
const FEE: u128 = 10_000;

fn key(i: u64) -> SigningKey {
    let mut b = [7u8; 32];
    b[..8].copy_from_slice(&i.to_le_bytes());
    SigningKey::from(b)
}

struct Bench {
    app: LodeApp,
    keys: Vec<SigningKey>,
    addrs: Vec<Address>,
    nonces: Vec<u64>,
    height: u64,
    cursor: usize,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = LodeApp::open(dir.path()).expect("open");
        let keys: Vec<SigningKey> = (0..ACCOUNTS as u64).map(key).collect();
        let addrs: Vec<Address> = keys
            .iter()
            .map(|k| Address::from_public_key(&k.verification_key().to_bytes()))
            .collect();
        let mut app_state = AppState {
            balances: addrs
                .iter()
                .map(|a| GenesisBalance {
                    address: a.to_string(),
                    amount: "1000000000000".into(),
                })
                .collect(),
            validators: Vec::new(),
            params: Params::default(),
            compute_power: None,
        };
        app_state.add_self_bonded_validator(
            "bench",
            &key(u64::MAX).verification_key().to_bytes(),
            1,
        );
        app.try_init_chain(RequestInitChain {
            chain_id: CHAIN_ID.into(),
            initial_height: 1,
            app_state_bytes: Bytes::from(serde_json::to_vec(&app_state).expect("json")),
            validators: vec![ValidatorUpdate {
                pub_key: Some(PublicKey {
                    sum: Some(Sum::Ed25519(
                        key(u64::MAX).verification_key().to_bytes().to_vec(),
                    )),
                }),
                power: i64::try_from(lode_state::modules::staking::power::TOTAL_POWER)
                    .expect("fits"),
            }],
            ..Default::default()
        })
        .expect("init");
        Bench {
            app,
            keys,
            addrs,
            nonces: vec![0; ACCOUNTS],
            height: 0,
            cursor: 0,
            _dir: dir,
        }
    }

    /// `n` transfers, each from a distinct sender (round robin over all accounts) to another account.
    fn block_txs(&mut self, n: usize) -> Vec<Bytes> {
        (0..n)
            .map(|_| {
                let from = self.cursor % ACCOUNTS;
                let to = (from * 7919 + 13) % ACCOUNTS;
                self.cursor += 1;
                let tx = sign_send(
                    CHAIN_ID,
                    &self.keys[from],
                    self.nonces[from],
                    FEE,
                    &self.addrs[to],
                    1,
                );
                self.nonces[from] += 1;
                Bytes::from(tx)
            })
            .collect()
    }

    fn run_block(&mut self, txs: Vec<Bytes>) -> Duration {
        self.height += 1;
        let start = Instant::now();
        let resp = self
            .app
            .try_finalize_block(RequestFinalizeBlock {
                txs,
                height: self.height as i64,
                ..Default::default()
            })
            .expect("finalize");
        self.app.try_commit().expect("commit");
        let took = start.elapsed();
        assert!(
            resp.tx_results.iter().all(|r| r.code == 0),
            "a benchmark tx failed"
        );
        took
    }
}

fn finalize_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("finalize_commit");
    group.sample_size(10);
    for &n in &[1_000usize, 10_000] {
        let mut bench = Bench::new();
        // Warm the tree and caches with one block before measuring.
        let warm = bench.block_txs(n);
        bench.run_block(warm);
        let mut total = Duration::ZERO;
        let mut blocks = 0u32;
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    let txs = bench.block_txs(n);
                    took += bench.run_block(txs);
                }
                total += took;
                blocks += iters as u32;
                took
            })
        });
        let per_block = total / blocks.max(1);
        println!(
            "finalize+commit: {n} transfers/block, {blocks} blocks, mean {:.1} ms/block, {:.0} transfers/s",
            per_block.as_secs_f64() * 1e3,
            n as f64 / per_block.as_secs_f64()
        );
    }
    group.finish();
}

criterion_group!(benches, finalize_commit);
criterion_main!(benches);
