//! The marketplace and compute modules on a real chain (RocksDB, the app's ABCI methods) with real
//! products computed by the test and verified by gpu-verify inside block execution.

use lode_gpu_verify::{
    freivalds::find_wrong_element, verify::Prover, Backend, Engine, MatrixI32, MatrixI8,
};
use lode_proto::market::v1 as mpb;
use lode_state::{
    modules::{
        bank,
        compute::{msg::reveal_msg, ComputeMsg},
        gov,
        market::{self, msg::JobSpec, Device, JobStatus, MarketMsg},
        nft,
    },
    tx::Msg,
    Address, Params,
};
use tendermint_proto::v0_38::abci::ExecTxResult;

use crate::common::{Chain, CHAIN_ID};

/// Short windows so tests run in few blocks.
pub(crate) fn params() -> Params {
    let mut p = crate::common::module_params();
    p.compute.reveal_blocks = 10;
    p.compute.fraud_window_blocks = 20;
    p.market.unbonding_blocks = 40;
    p.market.accept_blocks = 6;
    p
}

const CONSUMER: usize = 0;
const P1: usize = 1;
const P2: usize = 2;
const WATCHER: usize = 3;
/// A fee that covers a reveal of a few tiles of a 256-deep job.
pub(crate) const BIG_FEE: u128 = 2_000_000;

pub(crate) struct Work {
    pub(crate) a: MatrixI8,
    pub(crate) b: MatrixI8,
    pub(crate) c: MatrixI32,
}

pub(crate) fn work(m: usize, k: usize, n: usize, seed: u64) -> Work {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 255) as i32 as i8
    };
    let a = MatrixI8::from_fn(m, k, |_, _| next()).expect("a");
    let b = MatrixI8::from_fn(k, n, |_, _| next()).expect("b");
    let c = Engine::new(Backend::Cpu)
        .expect("cpu")
        .gemm(&a, &b)
        .expect("gemm");
    Work { a, b, c }
}

pub(crate) fn prover(w: &Work, c: MatrixI32) -> Prover {
    Prover::new(w.a.clone(), &w.b, c, 4).expect("prover")
}

impl Chain {
    pub(crate) fn send(&mut self, i: usize, msg: Msg) -> ExecTxResult {
        let tx = lode_state::tx::sign_msg(CHAIN_ID, &self.keys[i], self.nonce(i), BIG_FEE, msg);
        let (mut r, _) = self.block(vec![tx]);
        r.remove(0)
    }

    pub(crate) fn send_ok(&mut self, i: usize, msg: Msg) -> ExecTxResult {
        let r = self.send(i, msg);
        assert_eq!(r.code, 0, "{}", r.log);
        self.check_market_invariants();
        r
    }

    pub(crate) fn job(&self, id: &[u8; 32]) -> market::Job {
        market::job(self.app.store(), id)
            .expect("read")
            .expect("job exists")
    }

    pub(crate) fn provider_rec(&self, i: usize) -> market::Provider {
        market::provider(self.app.store(), &self.addr(i))
            .expect("read")
            .expect("provider exists")
    }

    pub(crate) fn params(&self) -> Params {
        lode_state::params::load(self.app.store()).expect("params")
    }

    pub(crate) fn check_market_invariants(&self) {
        lode_state::modules::check_invariants(self.app.store(), self.height).expect("invariants");
    }

    pub(crate) fn register(&mut self, i: usize, ask: u128, devices: u32) {
        self.send_ok(
            i,
            Msg::Market(MarketMsg::RegisterProvider {
                provider: self.addr(i),
                moniker: format!("p{i}"),
                devices: vec![Device {
                    model: "test-gpu".into(),
                    memory_mib: 1024,
                    count: devices,
                }],
                ask_per_cu: ask,
                max_job_cu: 1_000,
                bond: 10_000_000,
            }),
        );
    }

    /// Posts a job for `w` and returns its id.
    pub(crate) fn post(&mut self, i: usize, w: &Work, max_price: u128) -> [u8; 32] {
        let spec = spec_for(w, max_price);
        let r = self.send_ok(
            i,
            Msg::Market(MarketMsg::PostJob {
                consumer: self.addr(i),
                spec,
            }),
        );
        job_id_of(&r)
    }

    /// Reveals `tiles` of job `id` from `p`, four tiles per tx.
    pub(crate) fn reveal(
        &mut self,
        i: usize,
        id: [u8; 32],
        p: &Prover,
        tiles: &[u64],
    ) -> Vec<ExecTxResult> {
        tiles
            .chunks(4)
            .map(|chunk| {
                let m = reveal_msg(self.addr(i), id, p, chunk).expect("reveal");
                self.send(i, Msg::Compute(m))
            })
            .collect()
    }

    /// Match → accept → commit → seed: returns the sampled tiles.
    pub(crate) fn run_to_reveal(&mut self, provider: usize, id: [u8; 32], p: &Prover) -> Vec<u64> {
        assert_eq!(self.job(&id).provider, Some(self.addr(provider)));
        self.send_ok(
            provider,
            Msg::Market(MarketMsg::AcceptJob {
                provider: self.addr(provider),
                job: id,
            }),
        );
        self.send_ok(
            provider,
            Msg::Compute(ComputeMsg::CommitResult {
                provider: self.addr(provider),
                job: id,
                output_root: p.c_tree().root(),
            }),
        );
        // The block after the commit seeds the sample.
        self.block(vec![]);
        let j = self.job(&id);
        assert_eq!(j.status, JobStatus::Revealing);
        assert_eq!(j.sampled.len(), 16);
        j.sampled
    }
}

pub(crate) fn spec_for(w: &Work, max_price: u128) -> JobSpec {
    let p = Prover::new(w.a.clone(), &w.b, w.c.clone(), 4).expect("prover");
    JobSpec {
        m: w.a.rows() as u64,
        k: w.a.cols() as u64,
        n: w.b.cols() as u64,
        a_root: p.a_tree().root(),
        b_root: p.b_tree().root(),
        tile: 4,
        samples: 16,
        max_price_per_cu: max_price,
        deadline_blocks: 10,
        min_reputation: 0,
        refund_on_failure: false,
    }
}

pub(crate) fn job_id_of(r: &ExecTxResult) -> [u8; 32] {
    let ev = r
        .events
        .iter()
        .find(|e| e.r#type == "market_job_posted")
        .expect("posted event");
    let id = ev
        .attributes
        .iter()
        .find(|a| a.key == "job")
        .expect("job attr");
    hex::decode(&id.value)
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

#[test]
fn a_real_job_lives_its_whole_life_and_every_unit_is_accounted_for() {
    let mut chain = Chain::with_params(4, params());
    chain.register(P1, 500, 1);
    chain.register(P2, 700, 1);
    let w = work(256, 256, 256, 1);
    let consumer = chain.addr(CONSUMER);
    let before_consumer = chain.balance(&consumer);
    let supply_before = bank::supply(chain.app.store()).expect("supply");
    let id = chain.post(CONSUMER, &w, 1_000);
    // CU = ceil(256³ / 10⁹) = 1; escrow = 1000 × 1 + fee 1 × 1.
    let j = chain.job(&id);
    assert_eq!(
        (j.cu, j.status),
        (1, JobStatus::Matched),
        "matched in its own block"
    );
    assert_eq!(
        j.price_per_cu, 500,
        "the lowest ask wins and sets the price"
    );
    assert_eq!(
        market::escrow(chain.app.store(), &id).expect("escrow"),
        1_001
    );

    let p = prover(&w, w.c.clone());
    let tiles = chain.run_to_reveal(P1, id, &p);
    let provider = chain.addr(P1);
    let before_provider = chain.balance(&provider);
    for r in chain.reveal(P1, id, &p, &tiles) {
        assert_eq!(r.code, 0, "{}", r.log);
    }
    chain.check_market_invariants();
    let j = chain.job(&id);
    assert_eq!(j.status, JobStatus::Settled);
    // Paid 500 minus 20% held back; the reveal txs' fees are the provider's own.
    let fees = BIG_FEE * 4;
    assert_eq!(chain.balance(&provider), before_provider + 400 - fees);
    assert_eq!(
        market::holdback(chain.app.store(), &id).expect("holdback"),
        100
    );
    // The consumer got 1001 − 500 − 1 back and paid its post fee.
    assert_eq!(chain.balance(&consumer), before_consumer - BIG_FEE - 501);
    // The protocol fee was burned (the gas fees stay in the fee collector: supply unchanged by them).
    assert_eq!(
        bank::supply(chain.app.store()).expect("supply"),
        supply_before - 1
    );
    // The receipt NFT is the consumer's.
    let tok = nft::token(
        chain.app.store(),
        market::RECEIPT_COLLECTION,
        &hex::encode(id),
    )
    .expect("read")
    .expect("receipt minted");
    assert_eq!(tok.owner, consumer);

    let window_end = j.deadline;
    chain.advance_to(window_end);
    let j = chain.job(&id);
    assert_eq!(j.status, JobStatus::Final);
    assert_eq!(chain.balance(&provider), before_provider + 500 - fees);
    assert_eq!(
        market::holdback(chain.app.store(), &id).expect("holdback"),
        0
    );
    let epoch = window_end / chain.params().compute.epoch_blocks;
    assert_eq!(
        market::verified_cu(chain.app.store(), &provider, epoch).expect("cu"),
        1
    );
    let rec = chain.provider_rec(P1);
    assert_eq!((rec.jobs_in_flight, rec.jobs_settled), (0, 1));
    assert!(rec.reputation > chain.params().market.initial_reputation);
    let steps: Vec<&str> = j.history.iter().map(|h| h.step.as_str()).collect();
    assert_eq!(
        steps,
        [
            "posted",
            "matched",
            "accepted",
            "committed",
            "challenged",
            "revealed",
            "revealed",
            "revealed",
            "revealed",
            "settled",
            "holdback_released"
        ]
    );
    chain.check_market_invariants();
    // Queries answer with the same story.
    let resp: mpb::JobResponse = chain.query(
        "/market/job",
        &mpb::JobRequest {
            job_id: id.to_vec(),
        },
    );
    assert_eq!(resp.job.expect("job").status, "final");
}

#[test]
fn a_blocks_reveal_verification_time_is_measured_and_a_block_without_reveals_costs_none() {
    let mut chain = Chain::with_params(4, params());
    chain.register(P1, 500, 1);
    let w = work(256, 256, 256, 2);
    let id = chain.post(CONSUMER, &w, 1_000);
    let p = prover(&w, w.c.clone());
    let tiles = chain.run_to_reveal(P1, id, &p);
    assert_eq!(
        chain.app.last_block_verification(),
        std::time::Duration::ZERO,
        "the seed block verified nothing"
    );
    // One reveal tx (4 tiles) in a block: its verdict's cost is the block's.
    let r = chain.reveal(P1, id, &p, &tiles[..4]);
    assert_eq!(r[0].code, 0, "{}", r[0].log);
    assert!(
        chain.app.last_block_verification() > std::time::Duration::ZERO,
        "a reveal block measured no verification"
    );
    // A reveal whose verdict CheckTx already computed: the block is charged the verdict's recorded cost,
    // not the cache lookup's.
    let m = reveal_msg(chain.addr(P1), id, &p, &tiles[4..8]).expect("reveal");
    let tx = lode_state::tx::sign_msg(
        CHAIN_ID,
        &chain.keys[P1],
        chain.nonce(P1),
        BIG_FEE,
        Msg::Compute(m),
    );
    let checked = chain
        .app
        .check_tx(tendermint_proto::v0_38::abci::RequestCheckTx {
            tx: tx.clone().into(),
            r#type: 0,
        });
    assert_eq!(checked.code, 0, "{}", checked.log);
    let (r, _) = chain.block(vec![tx]);
    assert_eq!(r[0].code, 0, "{}", r[0].log);
    assert!(
        chain.app.last_block_verification() > std::time::Duration::ZERO,
        "a block whose verdict came from the cache was charged nothing"
    );
    chain.block(vec![]);
    assert_eq!(
        chain.app.last_block_verification(),
        std::time::Duration::ZERO,
        "an empty block after a reveal block"
    );
}

#[test]
fn a_provider_that_corrupts_every_tile_is_slashed_and_another_settles_the_job() {
    let mut chain = Chain::with_params(4, params());
    chain.register(P1, 500, 1);
    chain.register(P2, 700, 1);
    let w = work(256, 256, 256, 2);
    let id = chain.post(CONSUMER, &w, 1_000);
    let mut bad = w.c.clone();
    for v in bad.data_mut() {
        *v = v.wrapping_add(1);
    }
    let cheat = prover(&w, bad);
    let tiles = chain.run_to_reveal(P1, id, &cheat);
    let consumer_before = chain.balance(&chain.addr(CONSUMER));
    let treasury_before = chain.balance(&gov::treasury());
    let r = chain.reveal(P1, id, &cheat, &tiles[..4]);
    assert_eq!(
        r[0].code, 0,
        "a wrong result is a verdict, not a refused tx: {}",
        r[0].log
    );
    chain.check_market_invariants();
    let rec = chain.provider_rec(P1);
    // 10% of the 10,000,000 bond: half to the consumer, half to the treasury.
    assert_eq!(rec.bond, 9_000_000);
    assert_eq!(rec.jobs_failed, 1);
    assert_eq!(
        chain.balance(&chain.addr(CONSUMER)),
        consumer_before + 500_000
    );
    let fee_share = BIG_FEE * u128::from(chain.params().gov.treasury_fee_bps) / 10_000;
    assert_eq!(
        chain.balance(&gov::treasury()),
        treasury_before + 500_000 + fee_share
    );
    // Re-queued without P1 and matched to P2 at the end of the same block.
    let j = chain.job(&id);
    assert_eq!(j.status, JobStatus::Matched);
    assert_eq!(j.provider, Some(chain.addr(P2)));
    assert_eq!(j.excluded, vec![chain.addr(P1)]);
    let honest = prover(&w, w.c.clone());
    let tiles = chain.run_to_reveal(P2, id, &honest);
    for r in chain.reveal(P2, id, &honest, &tiles) {
        assert_eq!(r.code, 0, "{}", r.log);
    }
    let j = chain.job(&id);
    assert_eq!((j.status, j.price_per_cu), (JobStatus::Settled, 700));
    chain.check_market_invariants();
}

#[test]
fn one_wrong_element_escapes_the_sample_and_is_caught_by_a_fraud_proof() {
    let mut chain = Chain::with_params(4, params());
    chain.register(P1, 500, 1);
    let w = work(256, 256, 256, 3);
    let id = chain.post(CONSUMER, &w, 1_000);
    let mut bad = w.c.clone();
    let (row, col) = (201, 77);
    bad.data_mut()[row * 256 + col] += 1;
    let cheat = prover(&w, bad.clone());
    let tiles = chain.run_to_reveal(P1, id, &cheat);
    let bad_tile = cheat.grid().tile_of(row, col).expect("tile");
    assert!(
        !tiles.contains(&bad_tile),
        "the corrupted tile was sampled: pick another element"
    );
    for r in chain.reveal(P1, id, &cheat, &tiles) {
        assert_eq!(r.code, 0, "{}", r.log);
    }
    assert_eq!(chain.job(&id).status, JobStatus::Settled);

    // The consumer checks all of C with Freivalds and finds the element.
    let found = find_wrong_element(&w.a, &w.b, &bad, &[7; 32], 2).expect("freivalds");
    assert_eq!(
        found,
        Some((
            row,
            col,
            bad.data()[row * 256 + col],
            w.c.data()[row * 256 + col]
        ))
    );
    // A proof about a correct element is refused and changes nothing.
    let good = cheat.fraud_proof(id, 3, 3).expect("proof");
    let watcher = chain.addr(WATCHER);
    let r = chain.send(
        WATCHER,
        Msg::Compute(ComputeMsg::FraudProof {
            submitter: watcher,
            job: id,
            proof: Box::new(good),
        }),
    );
    assert_eq!(r.code, 142, "{}", r.log);
    assert_eq!(chain.job(&id).status, JobStatus::Settled);
    // A proof about an element far outside C (row and column at their largest) gets the same code, in CheckTx
    // and in a block, and changes nothing; the account's pending txs in CheckTx's view stay (the next nonce is
    // admitted after it).
    let mut far = cheat.fraud_proof(id, 3, 3).expect("proof");
    (far.row, far.col) = (usize::MAX, usize::MAX);
    let far = Msg::Compute(ComputeMsg::FraudProof {
        submitter: watcher,
        job: id,
        proof: Box::new(far),
    });
    let n = chain.nonce(WATCHER);
    let pending = lode_state::tx::sign_msg(
        CHAIN_ID,
        &chain.keys[WATCHER],
        n,
        BIG_FEE,
        Msg::Bank(lode_state::modules::bank::BankMsg::Send {
            from: watcher,
            to: watcher,
            amount: 1,
        }),
    );
    assert_eq!(chain.check(&pending).0, 0);
    let refused =
        lode_state::tx::sign_msg(CHAIN_ID, &chain.keys[WATCHER], n + 1, BIG_FEE, far.clone());
    let (code, log) = chain.check(&refused);
    assert_eq!(code, 142, "{log}");
    assert_eq!(chain.app.pending_nonce(&watcher).expect("nonce"), n + 1);
    chain.block(vec![pending]);
    let job_before = chain.job(&id);
    let r = chain.send(WATCHER, far);
    assert_eq!(r.code, 142, "{}", r.log);
    assert_eq!(chain.job(&id), job_before);

    let proof = cheat.fraud_proof(id, row, col).expect("proof");
    let consumer_before = chain.balance(&chain.addr(CONSUMER));
    let watcher_before = chain.balance(&watcher);
    let fraud = Msg::Compute(ComputeMsg::FraudProof {
        submitter: watcher,
        job: id,
        proof: Box::new(proof),
    });
    chain.send_ok(WATCHER, fraud.clone());
    let j = chain.job(&id);
    assert_eq!(j.status, JobStatus::FraudProven);
    // 50% of the bond slashed, 20% of that to the submitter; the holdback (100) back to the consumer.
    assert_eq!(chain.provider_rec(P1).bond, 5_000_000);
    assert_eq!(
        chain.balance(&watcher),
        watcher_before + 1_000_000 - BIG_FEE
    );
    assert_eq!(chain.balance(&chain.addr(CONSUMER)), consumer_before + 100);
    let r = chain.send(WATCHER, fraud);
    assert_eq!(r.code, 143, "{}", r.log);
    // The job's CU never count.
    chain.advance_to(j.deadline + 2);
    let epoch = j.deadline / chain.params().compute.epoch_blocks;
    assert_eq!(
        market::verified_cu(chain.app.store(), &chain.addr(P1), epoch).expect("cu"),
        0
    );
    chain.check_market_invariants();
}

#[test]
fn a_withheld_output_is_caught_by_an_availability_challenge() {
    let mut chain = Chain::with_params(4, params());
    chain.register(P1, 500, 2);
    let w = work(64, 64, 64, 4);
    let honest = prover(&w, w.c.clone());
    let consumer = chain.addr(CONSUMER);
    for round in 0..2 {
        let id = chain.post(CONSUMER, &w, 1_000);
        let tiles = chain.run_to_reveal(P1, id, &honest);
        for r in chain.reveal(P1, id, &honest, &tiles) {
            assert_eq!(r.code, 0, "{}", r.log);
        }
        chain.send_ok(
            CONSUMER,
            Msg::Compute(ComputeMsg::ChallengeOutput {
                consumer,
                job: id,
                tiles: vec![0, 255],
            }),
        );
        let j = chain.job(&id);
        assert_eq!(j.challenge, vec![0, 255]);
        if round == 0 {
            // Answered: the challenge closes and the job finalizes at the end of its window.
            for r in chain.reveal(P1, id, &honest, &[0, 255]) {
                assert_eq!(r.code, 0, "{}", r.log);
            }
            assert!(chain.job(&id).challenge.is_empty());
            chain.advance_to(j.deadline);
            assert_eq!(chain.job(&id).status, JobStatus::Final);
        } else {
            // Withheld: slashed like a failed sample when the answer deadline passes.
            let bond = chain.provider_rec(P1).bond;
            chain.advance_to(j.challenge_deadline);
            let j = chain.job(&id);
            assert_eq!(j.status, JobStatus::Withheld);
            assert_eq!(chain.provider_rec(P1).bond, bond - bond / 10);
        }
        chain.check_market_invariants();
    }
}

/// Posts jobs and registers providers in one block, in the given tx order; returns each job's provider.
fn match_in_one_block(order: &[usize]) -> Vec<Option<Address>> {
    let mut chain = Chain::with_params(8, params());
    let mut txs = Vec::new();
    let mut msgs: Vec<(usize, Msg)> = Vec::new();
    // Three providers, two with the same ask (the tie goes to the lower address at equal reputation).
    for (i, ask) in [(1usize, 300u128), (2, 300), (3, 200)] {
        msgs.push((
            i,
            Msg::Market(MarketMsg::RegisterProvider {
                provider: chain.addr(i),
                moniker: String::new(),
                devices: vec![Device {
                    model: "g".into(),
                    memory_mib: 1,
                    count: 1,
                }],
                ask_per_cu: ask,
                max_job_cu: 10,
                bond: 1_000_000,
            }),
        ));
    }
    // Four jobs at different max prices: one more than the devices, one below every ask.
    let w = work(8, 8, 8, 5);
    for (i, price) in [(4usize, 1_000u128), (5, 400), (6, 350), (7, 100)] {
        msgs.push((
            i,
            Msg::Market(MarketMsg::PostJob {
                consumer: chain.addr(i),
                spec: spec_for(&w, price),
            }),
        ));
    }
    for &k in order {
        let (i, m) = msgs[k].clone();
        txs.push(lode_state::tx::sign_msg(
            CHAIN_ID,
            &chain.keys[i],
            chain.nonce(i),
            BIG_FEE,
            m,
        ));
    }
    let (results, _) = chain.block(txs);
    for r in &results {
        assert_eq!(r.code, 0, "{}", r.log);
    }
    (4..8)
        .map(|i| {
            let id = market::job_id(&chain.addr(i), 0);
            chain.job(&id).provider
        })
        .collect()
}

#[test]
fn matching_does_not_depend_on_tx_order_and_follows_price_then_ask() {
    let base: Vec<usize> = (0..7).collect();
    let expect = match_in_one_block(&base);
    // The 1000 job takes the lowest ask (200), the 400 job the tied 300 with the lower address, the 350
    // job the other 300, and the 100 job (below every ask) stays open.
    let chain = Chain::with_params(8, params());
    let (a1, a2, a3) = (chain.addr(1), chain.addr(2), chain.addr(3));
    let (lo, hi) = if a1 < a2 { (a1, a2) } else { (a2, a1) };
    assert_eq!(expect, vec![Some(a3), Some(lo), Some(hi), None]);
    let mut order = base.clone();
    for step in 0..6 {
        order.rotate_left(1 + step % 3);
        order.swap(step % 7, (step * 3 + 2) % 7);
        assert_eq!(match_in_one_block(&order), expect, "order {order:?}");
    }
}

#[test]
fn matching_stops_at_max_matches_per_block_and_goes_on_next_block_best_price_first() {
    let mut p = params();
    p.market.max_matches_per_block = 2;
    let mut chain = Chain::with_params(8, p);
    chain.register(1, 100, 8);
    let w = work(8, 8, 8, 9);
    // Five jobs, all above the ask; posted in one block so they meet the provider in one matching.
    let prices = [(3usize, 500u128), (4, 900), (5, 700), (6, 300), (7, 800)];
    let txs = prices
        .iter()
        .map(|&(i, price)| {
            lode_state::tx::sign_msg(
                CHAIN_ID,
                &chain.keys[i],
                chain.nonce(i),
                BIG_FEE,
                Msg::Market(MarketMsg::PostJob {
                    consumer: chain.addr(i),
                    spec: spec_for(&w, price),
                }),
            )
        })
        .collect();
    let (results, _) = chain.block(txs);
    assert!(results.iter().all(|r| r.code == 0), "{results:?}");
    let matched = |chain: &Chain| -> Vec<usize> {
        prices
            .iter()
            .filter(|&&(i, _)| {
                chain.job(&market::job_id(&chain.addr(i), 0)).status != JobStatus::Open
            })
            .map(|&(i, _)| i)
            .collect()
    };
    // The two best-paying jobs (900, 800) in the first block, the next two (700, 500) in the next, then
    // the last one, with no new tx in between.
    assert_eq!(matched(&chain), vec![4, 7]);
    chain.block(Vec::new());
    assert_eq!(matched(&chain), vec![3, 4, 5, 7]);
    chain.block(Vec::new());
    assert_eq!(matched(&chain), vec![3, 4, 5, 6, 7]);
    chain.check_market_invariants();
}

#[test]
fn capacity_cancel_and_same_block_ask_changes_follow_the_rules() {
    let mut chain = Chain::with_params(6, params());
    chain.register(P1, 300, 1);
    let w = work(8, 8, 8, 6);
    let first = chain.post(CONSUMER, &w, 1_000);
    assert_eq!(chain.job(&first).provider, Some(chain.addr(P1)));
    let p1 = chain.addr(P1);
    chain.send_ok(
        P1,
        Msg::Market(MarketMsg::AcceptJob {
            provider: p1,
            job: first,
        }),
    );
    // P1's only device is busy: the next job waits.
    let second = chain.post(4, &w, 1_000);
    assert_eq!(chain.job(&second).status, JobStatus::Open);
    // P2 registers at 250 and, in the same block, reprices to 100: the block matches at 250.
    let p2 = chain.addr(P2);
    let reg = lode_state::tx::sign_msg(
        CHAIN_ID,
        &chain.keys[P2],
        chain.nonce(P2),
        BIG_FEE,
        Msg::Market(MarketMsg::RegisterProvider {
            provider: p2,
            moniker: String::new(),
            devices: vec![Device {
                model: "g".into(),
                memory_mib: 1,
                count: 2,
            }],
            ask_per_cu: 250,
            max_job_cu: 10,
            bond: 2_000_000,
        }),
    );
    let reprice = lode_state::tx::sign_msg(
        CHAIN_ID,
        &chain.keys[P2],
        chain.nonce(P2) + 1,
        BIG_FEE,
        Msg::Market(MarketMsg::UpdateProvider {
            provider: p2,
            ask_per_cu: Some(100),
            devices: None,
            max_job_cu: None,
            add_bond: 0,
            moniker: None,
        }),
    );
    // A third job is posted and cancelled in the same block: it never matches.
    let third_id = market::job_id(&chain.addr(5), 0);
    let post3 = lode_state::tx::sign_msg(
        CHAIN_ID,
        &chain.keys[5],
        chain.nonce(5),
        BIG_FEE,
        Msg::Market(MarketMsg::PostJob {
            consumer: chain.addr(5),
            spec: spec_for(&w, 1_000),
        }),
    );
    let cancel3 = lode_state::tx::sign_msg(
        CHAIN_ID,
        &chain.keys[5],
        chain.nonce(5) + 1,
        BIG_FEE,
        Msg::Market(MarketMsg::CancelJob {
            consumer: chain.addr(5),
            job: third_id,
        }),
    );
    let before = chain.balance(&chain.addr(5));
    let (rs, _) = chain.block(vec![reg, reprice, post3, cancel3]);
    for r in &rs {
        assert_eq!(r.code, 0, "{}", r.log);
    }
    let j = chain.job(&second);
    assert_eq!((j.provider, j.price_per_cu), (Some(p2), 250));
    assert_eq!(chain.job(&third_id).status, JobStatus::Cancelled);
    assert_eq!(
        chain.balance(&chain.addr(5)),
        before - 2 * BIG_FEE,
        "full refund"
    );
    // From the next block on, P2 asks 100.
    assert_eq!(chain.provider_rec(P2).ask_per_cu, 100);
    let fourth = chain.post(CONSUMER, &w, 1_000);
    assert_eq!(chain.job(&fourth).price_per_cu, 100);
    // A declined job goes back without the decliner; no answer costs reputation.
    let rep = chain.provider_rec(P2).reputation;
    chain.send_ok(
        P2,
        Msg::Market(MarketMsg::DeclineJob {
            provider: p2,
            job: fourth,
            reason: "inputs unavailable".into(),
        }),
    );
    assert_eq!(
        chain.provider_rec(P2).reputation,
        rep,
        "a decline is not punished"
    );
    assert_eq!(chain.job(&fourth).excluded, vec![p2]);
    let deadline = chain.job(&second).deadline;
    chain.advance_to(deadline);
    assert!(
        chain.provider_rec(P2).reputation < rep,
        "no answer costs reputation"
    );
    assert_eq!(chain.job(&second).excluded, vec![p2]);
    chain.check_market_invariants();
}

#[test]
fn every_bad_market_and_compute_input_has_its_own_code_and_changes_nothing() {
    let mut chain = Chain::with_params(5, params());
    chain.register(P1, 500, 1);
    let w = work(256, 256, 256, 7);
    let p = prover(&w, w.c.clone());
    let mut spec = spec_for(&w, 1_000);
    let post = |chain: &Chain, spec: JobSpec| {
        Msg::Market(MarketMsg::PostJob {
            consumer: chain.addr(CONSUMER),
            spec,
        })
    };
    let caps = chain.params().compute;
    spec.k = caps.max_k + 1;
    assert_eq!(chain.send(CONSUMER, post(&chain, spec.clone())).code, 111);
    spec.k = 256;
    spec.m = 258;
    assert_eq!(chain.send(CONSUMER, post(&chain, spec.clone())).code, 112);
    spec.m = 256;
    spec.samples = 2;
    assert_eq!(chain.send(CONSUMER, post(&chain, spec.clone())).code, 111);
    let id = chain.post(CONSUMER, &w, 1_000);
    let unknown = [9u8; 32];
    let commit = |who: Address, job: [u8; 32]| {
        Msg::Compute(ComputeMsg::CommitResult {
            provider: who,
            job,
            output_root: p.c_tree().root(),
        })
    };
    let p1 = chain.addr(P1);
    let other = chain.addr(4);
    // Commit before accepting, by the wrong account, for an unknown job.
    assert_eq!(chain.send(P1, commit(p1, id)).code, 107);
    assert_eq!(chain.send(4, commit(other, id)).code, 109);
    assert_eq!(chain.send(P1, commit(p1, unknown)).code, 106);
    let snapshot = chain.job(&id);
    let tiles = chain.run_to_reveal(P1, id, &p);
    assert_ne!(snapshot.status, chain.job(&id).status);
    // Commit twice.
    assert_eq!(chain.send(P1, commit(p1, id)).code, 107);
    // A reveal of a tile that was not sampled, twice the same tile, by the wrong account.
    let not_sampled = (0..4096u64).find(|t| !tiles.contains(t)).expect("tile");
    let m = reveal_msg(p1, id, &p, &[not_sampled]).expect("reveal");
    assert_eq!(chain.send(P1, Msg::Compute(m)).code, 131);
    let m = reveal_msg(other, id, &p, &tiles[..1]).expect("reveal");
    assert_eq!(chain.send(4, Msg::Compute(m)).code, 109);
    // Proofs against the wrong input roots: a prover over another A.
    let other_work = work(256, 256, 256, 8);
    let wrong_a = Prover::new(other_work.a.clone(), &w.b, w.c.clone(), 4).expect("prover");
    let m = reveal_msg(p1, id, &wrong_a, &tiles[..1]).expect("reveal");
    let r = chain.send(P1, Msg::Compute(m));
    assert!(r.code == 135 || r.code == 136, "{} {}", r.code, r.log);
    let before = chain.job(&id);
    // Oversized: a tile with too many values.
    let Msg::Compute(ComputeMsg::RevealSamples {
        mut reveal, digest, ..
    }) = Msg::Compute(reveal_msg(p1, id, &p, &tiles[..1]).expect("reveal"))
    else {
        unreachable!()
    };
    reveal.tiles[0].tile.extend(std::iter::repeat_n(0, 64));
    let r = chain.send(
        P1,
        Msg::Compute(ComputeMsg::RevealSamples {
            provider: p1,
            job: id,
            reveal,
            digest,
        }),
    );
    assert_eq!(r.code, 139, "{}", r.log);
    assert_eq!(chain.job(&id), before, "refused reveals change nothing");
    // A correct reveal, then the same tile again.
    let m = reveal_msg(p1, id, &p, &tiles[..1]).expect("reveal");
    assert_eq!(chain.send(P1, Msg::Compute(m.clone())).code, 0);
    assert_eq!(chain.send(P1, Msg::Compute(m)).code, 132);
    // Late: past the reveal deadline the provider has failed and the job is back in the queue.
    let deadline = chain.job(&id).deadline;
    chain.advance_to(deadline);
    let m = reveal_msg(p1, id, &p, &tiles[1..2]).expect("reveal");
    let r = chain.send(P1, Msg::Compute(m));
    assert_eq!(
        r.code, 109,
        "the job was taken from the late provider: {}",
        r.log
    );
    assert_eq!(chain.provider_rec(P1).jobs_failed, 1);
    // Fraud proof after the window closed.
    let mut chain2 = Chain::with_params(5, params());
    chain2.register(P1, 500, 1);
    let id2 = chain2.post(CONSUMER, &w, 1_000);
    let tiles2 = chain2.run_to_reveal(P1, id2, &p);
    for r in chain2.reveal(P1, id2, &p, &tiles2) {
        assert_eq!(r.code, 0, "{}", r.log);
    }
    let end = chain2.job(&id2).deadline;
    chain2.advance_to(end);
    let proof = p.fraud_proof(id2, 0, 0).expect("proof");
    let watcher = chain2.addr(WATCHER);
    let r = chain2.send(
        WATCHER,
        Msg::Compute(ComputeMsg::FraudProof {
            submitter: watcher,
            job: id2,
            proof: Box::new(proof),
        }),
    );
    assert_eq!(r.code, 140, "{}", r.log);
    chain.check_market_invariants();
    chain2.check_market_invariants();
}
