//! Proof of useful compute on a real chain: validators link providers (both consent), the providers run real
//! jobs through the market (verified by gpu-verify in block execution), and at the epoch boundary the
//! validator whose provider delivered verified CU gains power; a job proven fraudulent adds nothing; the cap
//! and the churn limit hold at every block. Every bad `LinkProvider`/`UnlinkProvider` has its code and
//! changes nothing.

use ed25519_consensus::SigningKey;
use lode_proto::staking::v1 as stpb;
use lode_state::{
    modules::{
        compute::ComputeMsg,
        market::{self, JobStatus, MarketMsg},
        staking::{
            self,
            power::{self, link_sign_bytes, TOTAL_POWER},
            StakingMsg,
        },
    },
    tx::Msg,
    Address, Params,
};

use crate::common::{key, Chain, CHAIN_ID};
use crate::market_jobs_are_matched_verified_and_settled::{
    job_id_of, prover, spec_for, work, BIG_FEE,
};

const CONSUMER: usize = 0;
const P1: usize = 1;
const P2: usize = 2;
const WATCHER: usize = 3;
const VA: usize = 4;
const VB: usize = 5;
const NOBODY: usize = 6;
const EPOCH: u64 = 50;

fn params() -> Params {
    let mut p = crate::market_jobs_are_matched_verified_and_settled::params();
    p.compute.epoch_blocks = EPOCH;
    p.staking.compute_weight_bps = 5_000;
    p.staking.max_power_bps = 6_000;
    p.staking.max_churn_bps = 500;
    p.staking.link_cooldown_epochs = 2;
    // No floor (a one-CU job earns the whole compute pool); with no stake cost assumed, the self-dealing
    // check holds for any fee.
    p.staking.bonded_per_floor_cu = u64::MAX;
    p.staking.stake_cost_ppt_per_block = 0;
    p
}

/// Powers are compared to the split between the two test validators within a few units: the chain's genesis
/// validator holds a tiny stake (its share is about 5 units of 10^9) that takes its part of the stake pool.
const GENESIS_SHARE: u64 = 5_000;

#[track_caller]
fn assert_near(actual: u64, expected: u64, msg: impl std::fmt::Display) {
    assert!(
        actual.abs_diff(expected) <= GENESIS_SHARE,
        "power {actual}, expected {expected} (within {GENESIS_SHARE}) {msg}"
    );
}

fn consensus_key(i: usize) -> [u8; 32] {
    key(1_000 + i as u64).verification_key().to_bytes()
}

impl Chain {
    fn create_validator(&mut self, i: usize, bond: u128) {
        self.send_ok(
            i,
            Msg::Staking(StakingMsg::CreateValidator {
                operator: self.addr(i),
                consensus_key: consensus_key(i),
                moniker: format!("v{i}"),
                self_bond: bond,
            }),
        );
    }

    /// A `LinkProvider` of validator `v` to provider `p`, consent signed by `signer` over `chain_id` and
    /// `nonce`.
    fn link_msg(&self, v: usize, p: usize, signer: &SigningKey, chain_id: &str, nonce: u64) -> Msg {
        let (op, pr) = (self.addr(v), self.addr(p));
        let sig = signer.sign(&link_sign_bytes(chain_id, &op, &pr, nonce));
        Msg::Staking(StakingMsg::LinkProvider {
            operator: op,
            provider: pr,
            provider_public_key: signer.verification_key().to_bytes(),
            nonce,
            provider_signature: sig.to_bytes(),
        })
    }

    fn link(&mut self, v: usize, p: usize) {
        let nonce = power::link_nonce(self.app.store(), &self.addr(p)).expect("nonce");
        let m = self.link_msg(v, p, &self.keys[p].clone(), CHAIN_ID, nonce);
        self.send_ok(v, m);
    }

    fn powers(&self) -> Vec<(Address, u64)> {
        let p = self.params();
        power::target_powers(self.app.store(), &p).expect("powers")
    }

    fn power_of(&self, i: usize) -> u64 {
        let a = self.addr(i);
        self.powers()
            .into_iter()
            .find(|(k, _)| *k == a)
            .map_or(0, |(_, v)| v)
    }

    fn epoch(&self) -> u64 {
        power::current_epoch(self.app.store())
            .expect("epoch")
            .number
    }

    /// The total is exact, nobody is over the cap, and no more than the churn limit separates the power
    /// now from the epoch's baseline.
    fn check_power(&self) {
        let p = self.params();
        let now = self.powers();
        let total: u64 = now.iter().map(|(_, v)| v).sum();
        assert_eq!(total, TOTAL_POWER, "height {}", self.height);
        let cap = TOTAL_POWER * p.staking.max_power_bps / 10_000;
        let base = power::stored_powers(self.app.store()).expect("baseline");
        let mut moved = 0u64;
        for (k, v) in &now {
            assert!(
                *v <= cap,
                "height {}: {k} holds {v} > cap {cap}",
                self.height
            );
            let b = base.iter().find(|(bk, _)| bk == k).map_or(0, |(_, v)| *v);
            moved += v.saturating_sub(b);
        }
        if !base.is_empty() {
            let limit = TOTAL_POWER * p.staking.max_churn_bps / 10_000;
            assert!(moved <= limit, "height {}: moved {moved}", self.height);
        }
        // The consensus set the application hands to the engine holds exactly these powers.
        let mut want: Vec<([u8; 32], u64)> = now
            .iter()
            .filter(|(_, v)| *v > 0)
            .map(|(op, v)| {
                let val = staking::validator(self.app.store(), op)
                    .expect("read")
                    .expect("validator");
                (val.consensus_key, *v)
            })
            .collect();
        want.sort();
        let set = lode_state::validators::load(self.app.store()).expect("set");
        assert_eq!(set, want, "height {}", self.height);
    }

    /// Empty blocks up to `height`, checking the power rules after each.
    fn advance_checked(&mut self, height: u64) {
        while self.height < height {
            self.block(vec![]);
            self.check_power();
        }
    }

    /// Posts two jobs in one block (the first matches the cheapest provider, the second the next one).
    fn post_two(
        &mut self,
        a: &crate::market_jobs_are_matched_verified_and_settled::Work,
        b: &crate::market_jobs_are_matched_verified_and_settled::Work,
    ) -> ([u8; 32], [u8; 32]) {
        let n = self.nonce(CONSUMER);
        let consumer = self.addr(CONSUMER);
        let tx = |nonce, spec| {
            lode_state::tx::sign_msg(
                CHAIN_ID,
                &self.keys[CONSUMER],
                nonce,
                BIG_FEE,
                Msg::Market(MarketMsg::PostJob { consumer, spec }),
            )
        };
        let txs = vec![tx(n, spec_for(a, 1_000)), tx(n + 1, spec_for(b, 900))];
        let (r, _) = self.block(txs);
        assert_eq!(
            (r[0].code, r[1].code),
            (0, 0),
            "{} / {}",
            r[0].log,
            r[1].log
        );
        (job_id_of(&r[0]), job_id_of(&r[1]))
    }
}

/// Runs an honest job on P1 and a job with one wrong element on P2 (caught by a fraud proof in its
/// window); returns the honest job's fraud-window end.
fn one_honest_and_one_fraudulent_job(chain: &mut Chain, seed: u64) -> u64 {
    let honest = work(256, 256, 256, seed);
    let cheated = work(256, 256, 256, seed + 1);
    let (id1, id2) = chain.post_two(&honest, &cheated);
    assert_eq!(chain.job(&id1).provider, Some(chain.addr(P1)));
    assert_eq!(chain.job(&id2).provider, Some(chain.addr(P2)));
    // Both accept and commit before either reveals: each must accept within `accept_blocks`.
    let p1 = prover(&honest, honest.c.clone());
    let tiles1 = chain.run_to_reveal(P1, id1, &p1);
    let mut bad = cheated.c.clone();
    let (row, col) = (201, 77);
    bad.data_mut()[row * 256 + col] += 1;
    let cheat = prover(&cheated, bad);
    let tiles2 = chain.run_to_reveal(P2, id2, &cheat);
    assert!(
        !tiles2.contains(&cheat.grid().tile_of(row, col).expect("tile")),
        "the corrupted tile was sampled: pick another element"
    );
    for r in chain.reveal(P1, id1, &p1, &tiles1) {
        assert_eq!(r.code, 0, "{}", r.log);
    }
    assert_eq!(chain.job(&id1).status, JobStatus::Settled);
    for r in chain.reveal(P2, id2, &cheat, &tiles2) {
        assert_eq!(r.code, 0, "{}", r.log);
    }
    assert_eq!(chain.job(&id2).status, JobStatus::Settled);
    let proof = cheat.fraud_proof(id2, row, col).expect("proof");
    chain.send_ok(
        WATCHER,
        Msg::Compute(ComputeMsg::FraudProof {
            submitter: chain.addr(WATCHER),
            job: id2,
            proof: Box::new(proof),
        }),
    );
    assert_eq!(chain.job(&id2).status, JobStatus::FraudProven);
    chain.job(&id1).deadline
}

#[test]
fn a_validator_whose_provider_settles_jobs_gains_power_and_fraud_adds_nothing() {
    let mut chain = Chain::with_params(7, params());
    chain.register(P1, 500, 1);
    chain.register(P2, 600, 1);
    chain.create_validator(VA, 1_000_000);
    chain.create_validator(VB, 1_000_000);
    chain.link(VA, P1);
    chain.link(VB, P2);
    chain.check_power();
    // Before the first boundary: no baseline, equal stake, no CU.
    assert_near(chain.power_of(VA), TOTAL_POWER / 2, "");

    // Epoch 1 (heights 50..=99): the links (made in epoch 0) count from now on.
    chain.advance_checked(EPOCH);
    assert_eq!(chain.epoch(), 1);
    let end = one_honest_and_one_fraudulent_job(&mut chain, 11);
    assert!(
        end < 2 * EPOCH - 1,
        "the window must close inside epoch 1 ({end})"
    );
    chain.advance_checked(end + 1);
    let store = chain.app.store();
    assert_eq!(
        market::verified_cu(store, &chain.addr(P1), 1).expect("cu"),
        1
    );
    assert_eq!(
        market::verified_cu(store, &chain.addr(P2), 1).expect("cu"),
        0,
        "the fraudulent job counts nothing"
    );
    // Within epoch 1 the power still follows epoch 0's (empty) compute.
    assert_near(chain.power_of(VA), TOTAL_POWER / 2, "");

    // The boundary after height 99: epoch 2 uses epoch 1's CU. Target: VA = 25% by stake + 50% by
    // compute = 75%, capped at 60%; the churn limit (5%) moves it to 55%.
    chain.advance_checked(2 * EPOCH - 1);
    assert_eq!(chain.epoch(), 2);
    assert_near(chain.power_of(VA), 550_000_000, "");
    assert_near(chain.power_of(VB), 450_000_000, "");
    let q: stpb::PowerResponse = chain.query("/staking/power", &stpb::PowerRequest {});
    assert_eq!(
        (q.epoch, q.epoch_start_height, q.epoch_blocks),
        (2, 100, EPOCH)
    );
    let va = q
        .validators
        .iter()
        .find(|v| v.operator == chain.addr(VA).to_string())
        .expect("VA listed");
    assert_near(va.power, 550_000_000, "power");
    assert_near(va.epoch_power, 500_000_000, "epoch power");
    assert_eq!(va.verified_cu, "1");
    assert_near(va.stake_part, 250_000_000, "stake part");
    assert_near(va.compute_part, 500_000_000, "compute part");
    assert_eq!(va.provider, chain.addr(P1).to_string());

    // Epoch 2: P1 delivers again, P2 cheats again; at the next boundary VA reaches the cap exactly.
    chain.advance_checked(2 * EPOCH);
    let end = one_honest_and_one_fraudulent_job(&mut chain, 21);
    assert!(end < 3 * EPOCH - 1);
    chain.advance_checked(3 * EPOCH - 1);
    assert_eq!(chain.epoch(), 3);
    let baseline = power::stored_powers(chain.app.store()).expect("baseline");
    let stored = |i: usize| {
        baseline
            .iter()
            .find(|(a, _)| *a == chain.addr(i))
            .map_or(0, |(_, p)| *p)
    };
    // The baseline is the power at the end of epoch 2 (the genesis validator holds the few units left).
    assert_near(stored(VA), 550_000_000, "baseline");
    assert_near(stored(VB), 450_000_000, "baseline");
    assert_eq!(
        baseline.iter().map(|(_, p)| p).sum::<u64>(),
        TOTAL_POWER,
        "the baseline is the power at the end of epoch 2"
    );
    assert_near(chain.power_of(VA), 600_000_000, "held at the 60% cap");
    assert_eq!(
        market::verified_cu(chain.app.store(), &chain.addr(P2), 2).expect("cu"),
        0
    );

    // Epoch 3 has no compute: at the next boundary VA drifts back toward 50%, 5% an epoch.
    chain.advance_checked(4 * EPOCH - 1);
    assert_near(chain.power_of(VA), 550_000_000, "");
    chain.check_invariants();

    // An exported genesis carries the epoch, its baseline, the links and the link nonces: a chain started
    // from it holds exactly the same records.
    let exported = lode_state::genesis::export(chain.app.store()).expect("export");
    let cp = exported.compute_power.clone().expect("compute power");
    assert_eq!(cp.epoch, chain.epoch());
    assert_eq!(cp.links.len(), 2, "{cp:?}");
    assert!(exported.validate().is_empty(), "{:?}", exported.validate());
    let set = lode_state::genesis::validator_set(&exported).expect("set");
    let writes =
        lode_state::genesis::build(&exported, &set).expect("a chain starts from the export");
    let (va, vb, p1, p2) = (
        chain.addr(VA),
        chain.addr(VB),
        chain.addr(P1),
        chain.addr(P2),
    );
    use lode_state::{modules::staking::state_key as sk, store::StateRead};
    for k in [
        sk::EPOCH.to_vec(),
        sk::power(&va),
        sk::power(&vb),
        sk::link(&va),
        sk::link(&vb),
        sk::provider_link(&p1),
        sk::provider_link(&p2),
        sk::link_nonce(&p1),
        sk::link_nonce(&p2),
    ] {
        let now = chain.app.store().get(&k).expect("read");
        assert!(now.is_some(), "{}", String::from_utf8_lossy(&k));
        assert_eq!(
            writes.get(&k).cloned().flatten(),
            now,
            "{}",
            String::from_utf8_lossy(&k)
        );
    }
}

#[test]
fn every_bad_link_has_its_code_and_changes_nothing() {
    let mut chain = Chain::with_params(7, params());
    chain.register(P1, 500, 1);
    chain.register(P2, 600, 1);
    chain.create_validator(VA, 1_000_000);
    chain.create_validator(VB, 1_000_000);
    let staking_state = |c: &Chain| c.app.store().scan_prefix(b"staking/").expect("scan");

    let k1 = chain.keys[P1].clone();
    let k2 = chain.keys[P2].clone();
    let cases: Vec<(&str, usize, Msg, u32)> = vec![
        (
            "not a validator",
            NOBODY,
            chain.link_msg(NOBODY, P1, &k1, CHAIN_ID, 0),
            41,
        ),
        (
            "provider not registered",
            VA,
            chain.link_msg(VA, WATCHER, &chain.keys[WATCHER].clone(), CHAIN_ID, 0),
            101,
        ),
        (
            "consent by another key",
            VA,
            chain.link_msg(VA, P1, &k2, CHAIN_ID, 0),
            48,
        ),
        (
            "consent for another chain",
            VA,
            chain.link_msg(VA, P1, &k1, "other-chain", 0),
            48,
        ),
        (
            "consent with the wrong nonce",
            VA,
            chain.link_msg(VA, P1, &k1, CHAIN_ID, 1),
            48,
        ),
        (
            "unlink of a provider never linked",
            VA,
            Msg::Staking(StakingMsg::UnlinkProvider {
                operator: chain.addr(VA),
                provider: chain.addr(P1),
            }),
            49,
        ),
    ];
    for (what, signer, msg, code) in cases {
        let before = staking_state(&chain);
        let r = chain.send(signer, msg);
        assert_eq!(r.code, code, "{what}: {}", r.log);
        assert_eq!(
            staking_state(&chain),
            before,
            "{what} changed staking state"
        );
    }

    chain.link(VA, P1);
    assert_eq!(
        power::link_nonce(chain.app.store(), &chain.addr(P1)).expect("nonce"),
        1
    );
    // The used consent cannot be replayed (its nonce is spent), even by the same validator.
    let replay = chain.link_msg(VA, P1, &k1, CHAIN_ID, 0);
    let before = staking_state(&chain);
    let r = chain.send(VA, replay);
    assert_eq!(r.code, 46, "{}", r.log);
    // P1 is VA's: VB cannot link it (46) nor unlink it (49).
    let m = chain.link_msg(VB, P1, &k1, CHAIN_ID, 1);
    assert_eq!(chain.send(VB, m).code, 46);
    let r = chain.send(
        VB,
        Msg::Staking(StakingMsg::UnlinkProvider {
            operator: chain.addr(VB),
            provider: chain.addr(P1),
        }),
    );
    assert_eq!(r.code, 49, "{}", r.log);
    assert_eq!(staking_state(&chain), before);

    // A change within the cooldown (2 epochs): VA may unlink, but not link again before epoch 2.
    let r = chain.send(
        VA,
        Msg::Staking(StakingMsg::UnlinkProvider {
            operator: chain.addr(VA),
            provider: chain.addr(P1),
        }),
    );
    assert_eq!(r.code, 0, "{}", r.log);
    let m = chain.link_msg(VA, P2, &k2, CHAIN_ID, 0);
    let before = staking_state(&chain);
    let r = chain.send(VA, m.clone());
    assert_eq!(r.code, 47, "{}", r.log);
    assert_eq!(staking_state(&chain), before);
    chain.advance_to(2 * EPOCH);
    assert_eq!(chain.epoch(), 2);
    let r = chain.send(VA, m);
    assert_eq!(r.code, 0, "{}", r.log);
    let l: stpb::LinkResponse = chain.query(
        "/staking/link",
        &stpb::LinkRequest {
            address: chain.addr(P2).to_string(),
        },
    );
    assert_eq!(
        (
            l.validator,
            l.provider,
            l.changed_epoch,
            l.next_change_epoch,
            l.provider_nonce
        ),
        (
            chain.addr(VA).to_string(),
            chain.addr(P2).to_string(),
            2,
            4,
            1
        )
    );

    // A consent whose key is not the provider's is refused before execution (CheckTx).
    let bad = chain.link_msg(VB, P1, &k2, CHAIN_ID, 1);
    let tx = chain.sign(VB, bad);
    assert_eq!(chain.check(&tx).0, 48);
}
