//! Random workloads over every market and compute message (providers registering, repricing and leaving,
//! jobs posted, cancelled, accepted, declined, committed honestly or not, revealed, challenged and proven
//! fraudulent), with validators linking and unlinking providers across short epochs (proof of useful
//! compute): two applications agree on every app hash, result code and voting power, every invariant of
//! every module (supply, escrow, bonds, holdbacks) holds after every block, and the power adds up to the
//! total with nobody over the cap.

use lode_gpu_verify::{verify::Prover, Backend, Engine, MatrixI32, MatrixI8};
use lode_state::{
    modules::{
        check_invariants,
        compute::{msg::reveal_msg, ComputeMsg},
        market::{self, msg::JobSpec, Device, MarketMsg},
        staking::{power, StakingMsg},
    },
    tx::{sign_msg, Msg},
};
use proptest::prelude::*;

use crate::common::*;

const ACCOUNTS: usize = 6;
const FEE: u128 = 1_000_000;

#[derive(Debug, Clone)]
enum Op {
    Register {
        who: usize,
        ask: u128,
        devices: u32,
    },
    Reprice {
        who: usize,
        ask: u128,
    },
    AddBond {
        who: usize,
        amount: u128,
    },
    Unregister {
        who: usize,
    },
    Post {
        who: usize,
        price: u128,
        refund: bool,
    },
    Cancel {
        who: usize,
        seq: u64,
    },
    Accept {
        who: usize,
        consumer: usize,
        seq: u64,
    },
    Decline {
        who: usize,
        consumer: usize,
        seq: u64,
    },
    Commit {
        who: usize,
        consumer: usize,
        seq: u64,
        honest: bool,
    },
    Reveal {
        who: usize,
        consumer: usize,
        seq: u64,
        honest: bool,
    },
    Challenge {
        who: usize,
        seq: u64,
        tile: u64,
    },
    Fraud {
        who: usize,
        consumer: usize,
        seq: u64,
    },
    CreateValidator {
        who: usize,
        bond: u128,
    },
    Link {
        who: usize,
        provider: usize,
        consent_ok: bool,
    },
    Unlink {
        who: usize,
        provider: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let i = 0..ACCOUNTS;
    let s = 0u64..3;
    prop_oneof![
        (i.clone(), 1u128..300, 1u32..3).prop_map(|(who, ask, devices)| Op::Register {
            who,
            ask,
            devices
        }),
        (i.clone(), 1u128..300).prop_map(|(who, ask)| Op::Reprice { who, ask }),
        (i.clone(), 1u128..1_000_000).prop_map(|(who, amount)| Op::AddBond { who, amount }),
        i.clone().prop_map(|who| Op::Unregister { who }),
        (i.clone(), 1u128..400, any::<bool>()).prop_map(|(who, price, refund)| Op::Post {
            who,
            price,
            refund
        }),
        (i.clone(), s.clone()).prop_map(|(who, seq)| Op::Cancel { who, seq }),
        (i.clone(), i.clone(), s.clone()).prop_map(|(who, consumer, seq)| Op::Accept {
            who,
            consumer,
            seq
        }),
        (i.clone(), i.clone(), s.clone()).prop_map(|(who, consumer, seq)| Op::Decline {
            who,
            consumer,
            seq
        }),
        (i.clone(), i.clone(), s.clone(), any::<bool>()).prop_map(
            |(who, consumer, seq, honest)| Op::Commit {
                who,
                consumer,
                seq,
                honest
            }
        ),
        (i.clone(), i.clone(), s.clone(), any::<bool>()).prop_map(
            |(who, consumer, seq, honest)| Op::Reveal {
                who,
                consumer,
                seq,
                honest
            }
        ),
        (i.clone(), s.clone(), 0u64..16).prop_map(|(who, seq, tile)| Op::Challenge {
            who,
            seq,
            tile
        }),
        (i.clone(), i.clone(), s).prop_map(|(who, consumer, seq)| Op::Fraud { who, consumer, seq }),
        (i.clone(), 1u128..5_000_000).prop_map(|(who, bond)| Op::CreateValidator { who, bond }),
        (3usize..6, 0usize..4, prop::bool::weighted(0.8)).prop_map(
            |(who, provider, consent_ok)| {
                Op::Link {
                    who,
                    provider,
                    consent_ok,
                }
            }
        ),
        (3usize..6, 0usize..4).prop_map(|(who, provider)| Op::Unlink { who, provider }),
    ]
}

struct Provers {
    honest: Prover,
    cheat: Prover,
    spec: JobSpec,
}

fn provers() -> Provers {
    let a = MatrixI8::from_fn(16, 16, |i, j| ((i * 7 + j * 3) % 11) as i8 - 5).expect("a");
    let b = MatrixI8::from_fn(16, 16, |i, j| ((i * 5 + j) % 13) as i8 - 6).expect("b");
    let c: MatrixI32 = Engine::new(Backend::Cpu)
        .expect("cpu")
        .gemm(&a, &b)
        .expect("c");
    let mut bad = c.clone();
    bad.data_mut()[37] += 1;
    let honest = Prover::new(a.clone(), &b, c, 4).expect("prover");
    let cheat = Prover::new(a, &b, bad, 4).expect("prover");
    let spec = JobSpec {
        m: 16,
        k: 16,
        n: 16,
        a_root: honest.a_tree().root(),
        b_root: honest.b_tree().root(),
        tile: 4,
        samples: 16,
        max_price_per_cu: 0,
        deadline_blocks: 4,
        min_reputation: 0,
        refund_on_failure: false,
    };
    Provers {
        honest,
        cheat,
        spec,
    }
}

fn to_msg(chain: &Chain, p: &Provers, op: &Op) -> (usize, Msg) {
    let a = |i: usize| chain.addr(i);
    let id = |c: usize, s: u64| market::job_id(&chain.addr(c), s);
    let owed = |c: usize, s: u64| {
        market::job(chain.app.store(), &id(c, s))
            .ok()
            .flatten()
            .map(|j| {
                if j.challenge.is_empty() {
                    j.sampled
                } else {
                    j.challenge
                }
            })
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| vec![0])
    };
    match op.clone() {
        Op::Register { who, ask, devices } => (
            who,
            Msg::Market(MarketMsg::RegisterProvider {
                provider: a(who),
                moniker: String::new(),
                devices: vec![Device {
                    model: "g".into(),
                    memory_mib: 1,
                    count: devices,
                }],
                ask_per_cu: ask,
                max_job_cu: 10,
                bond: 2_000_000,
            }),
        ),
        Op::Reprice { who, ask } => (
            who,
            Msg::Market(MarketMsg::UpdateProvider {
                provider: a(who),
                ask_per_cu: Some(ask),
                devices: None,
                max_job_cu: None,
                add_bond: 0,
                moniker: None,
            }),
        ),
        Op::AddBond { who, amount } => (
            who,
            Msg::Market(MarketMsg::UpdateProvider {
                provider: a(who),
                ask_per_cu: None,
                devices: None,
                max_job_cu: None,
                add_bond: amount,
                moniker: None,
            }),
        ),
        Op::Unregister { who } => (
            who,
            Msg::Market(MarketMsg::UnregisterProvider { provider: a(who) }),
        ),
        Op::Post { who, price, refund } => (
            who,
            Msg::Market(MarketMsg::PostJob {
                consumer: a(who),
                spec: JobSpec {
                    max_price_per_cu: price,
                    refund_on_failure: refund,
                    ..p.spec.clone()
                },
            }),
        ),
        Op::Cancel { who, seq } => (
            who,
            Msg::Market(MarketMsg::CancelJob {
                consumer: a(who),
                job: id(who, seq),
            }),
        ),
        Op::Accept { who, consumer, seq } => (
            who,
            Msg::Market(MarketMsg::AcceptJob {
                provider: a(who),
                job: id(consumer, seq),
            }),
        ),
        Op::Decline { who, consumer, seq } => (
            who,
            Msg::Market(MarketMsg::DeclineJob {
                provider: a(who),
                job: id(consumer, seq),
                reason: "busy".into(),
            }),
        ),
        Op::Commit {
            who,
            consumer,
            seq,
            honest,
        } => (
            who,
            Msg::Compute(ComputeMsg::CommitResult {
                provider: a(who),
                job: id(consumer, seq),
                output_root: if honest { &p.honest } else { &p.cheat }.c_tree().root(),
            }),
        ),
        Op::Reveal {
            who,
            consumer,
            seq,
            honest,
        } => {
            let prover = if honest { &p.honest } else { &p.cheat };
            (
                who,
                Msg::Compute(
                    reveal_msg(a(who), id(consumer, seq), prover, &owed(consumer, seq))
                        .expect("reveal"),
                ),
            )
        }
        Op::Challenge { who, seq, tile } => (
            who,
            Msg::Compute(ComputeMsg::ChallengeOutput {
                consumer: a(who),
                job: id(who, seq),
                tiles: vec![tile],
            }),
        ),
        Op::Fraud { who, consumer, seq } => (
            who,
            Msg::Compute(ComputeMsg::FraudProof {
                submitter: a(who),
                job: id(consumer, seq),
                proof: Box::new(p.cheat.fraud_proof(id(consumer, seq), 2, 5).expect("proof")),
            }),
        ),
        Op::CreateValidator { who, bond } => (
            who,
            Msg::Staking(StakingMsg::CreateValidator {
                operator: a(who),
                consensus_key: key(500 + who as u64).verification_key().to_bytes(),
                moniker: format!("v{who}"),
                self_bond: bond,
            }),
        ),
        Op::Link {
            who,
            provider,
            consent_ok,
        } => {
            let signer = &chain.keys[if consent_ok {
                provider
            } else {
                (provider + 1) % ACCOUNTS
            }];
            let nonce = power::link_nonce(chain.app.store(), &a(provider)).expect("nonce");
            let bytes = power::link_sign_bytes(CHAIN_ID, &a(who), &a(provider), nonce);
            (
                who,
                Msg::Staking(StakingMsg::LinkProvider {
                    operator: a(who),
                    provider: a(provider),
                    provider_public_key: chain.keys[provider].verification_key().to_bytes(),
                    nonce,
                    provider_signature: signer.sign(&bytes).to_bytes(),
                }),
            )
        }
        Op::Unlink { who, provider } => (
            who,
            Msg::Staking(StakingMsg::UnlinkProvider {
                operator: a(who),
                provider: a(provider),
            }),
        ),
    }
}

fn params() -> lode_state::Params {
    let mut p = module_params();
    p.market.accept_blocks = 2;
    p.compute.reveal_blocks = 2;
    p.compute.fraud_window_blocks = 4;
    p.market.unbonding_blocks = 8;
    // Short epochs so workloads cross several boundaries; compute counts for half the power.
    p.compute.epoch_blocks = 3;
    p.staking.link_cooldown_epochs = 1;
    p.staking.compute_weight_bps = 5_000;
    p.staking.max_power_bps = 4_000;
    p.staking.max_churn_bps = 1_000;
    p.staking.bonded_per_floor_cu = u64::MAX;
    p.staking.stake_cost_ppt_per_block = 0;
    p
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn market_workloads_are_deterministic_and_keep_every_invariant(
        blocks in prop::collection::vec(prop::collection::vec(op(), 0..8), 1..14)
    ) {
        let p = provers();
        let mut a = Chain::with_params(ACCOUNTS as u64, params());
        let mut b = Chain::with_params(ACCOUNTS as u64, params());
        // Two validators (4, 5) and two providers (0, 1) to start with, so links can succeed.
        let setup = [
            Op::CreateValidator { who: 4, bond: 1_000_000 },
            Op::CreateValidator { who: 5, bond: 3_000_000 },
            Op::Register { who: 0, ask: 10, devices: 1 },
            Op::Register { who: 1, ask: 20, devices: 1 },
        ];
        let txs: Vec<Vec<u8>> = setup
            .iter()
            .map(|op| {
                let (from, msg) = to_msg(&a, &p, op);
                sign_msg(CHAIN_ID, &a.keys[from], a.nonce(from), FEE, msg)
            })
            .collect();
        let (ra, _) = a.block(txs.clone());
        b.block(txs);
        prop_assert!(ra.iter().all(|r| r.code == 0));
        for ops in &blocks {
            let mut nonces: Vec<u64> = (0..ACCOUNTS).map(|i| a.nonce(i)).collect();
            let txs: Vec<Vec<u8>> = ops
                .iter()
                .map(|op| {
                    let (from, msg) = to_msg(&a, &p, op);
                    let tx = sign_msg(CHAIN_ID, &a.keys[from], nonces[from], FEE, msg);
                    nonces[from] += 1;
                    tx
                })
                .collect();
            let (ra, ha) = a.block(txs.clone());
            let (rb, hb) = b.block(txs);
            prop_assert_eq!(&ha, &hb);
            let ca: Vec<u32> = ra.iter().map(|r| r.code).collect();
            let cb: Vec<u32> = rb.iter().map(|r| r.code).collect();
            prop_assert_eq!(ca, cb);
            check_invariants(a.app.store(), a.height).expect("invariants");
            let pa = power::target_powers(a.app.store(), &params()).expect("powers");
            let pb = power::target_powers(b.app.store(), &params()).expect("powers");
            prop_assert_eq!(&pa, &pb);
            let total: u64 = pa.iter().map(|(_, v)| v).sum();
            let n = pa.len() as u64;
            if n > 0 {
                prop_assert_eq!(total, power::TOTAL_POWER);
                let cap = (power::TOTAL_POWER * 4 / 10).max(power::TOTAL_POWER.div_ceil(n));
                let base = power::stored_powers(a.app.store()).expect("baseline");
                for (k, v) in &pa {
                    let b = base.iter().find(|(bk, _)| bk == k).map_or(0, |(_, v)| *v);
                    prop_assert!(*v <= cap.max(b), "{} holds {} over the cap {}", k, v, cap);
                }
            }
        }
    }
}
