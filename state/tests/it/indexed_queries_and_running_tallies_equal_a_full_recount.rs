//! Issue 15, hole 10: `/staking/delegations` reads a by-delegator index of unbonding entries and
//! `/gov/proposal` a running tally kept by every vote, vote change, bond and unbond. Over random workloads
//! (split votes that round, changed votes, delegators and validators voting or not, voters becoming
//! validators, stake moving during the vote, proposals ending), both answers stay exactly equal to a
//! brute-force recount from all the records, and so do the final tallies; every invariant holds after every
//! block (the chain runs with `check_invariants`, which includes `gov/running-tallies` and
//! `staking/unbonding-index`).

use lode_proto::gov::v1 as govpb;
use lode_proto::staking::v1 as stpb;
use lode_state::{
    app::AppOptions,
    modules::{
        gov::{self, GovMsg, ProposalContent, ProposalStatus, VoteOption, WEIGHT_SCALE},
        staking::{self, msg::StakingMsg},
    },
    tx::{sign_msg, Msg},
    Address,
};
use proptest::prelude::*;

use crate::common::*;

const ACCOUNTS: usize = 8;
const VALIDATORS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Delegate {
        from: usize,
        to: usize,
        amount: u128,
    },
    Undelegate {
        from: usize,
        to: usize,
        amount: u128,
    },
    CreateValidator {
        from: usize,
        bond: u128,
    },
    Submit {
        from: usize,
    },
    Vote {
        from: usize,
        id: u64,
        a: u8,
        w: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let i = 0..ACCOUNTS;
    // Validators are accounts 0..3 from the start; accounts 3 and 4 may become validators.
    let v = 0..5usize;
    prop_oneof![
        3 => (i.clone(), v.clone(), 1u128..100_000).prop_map(|(from, to, amount)| Op::Delegate { from, to, amount }),
        2 => (i.clone(), v, 1u128..60_000).prop_map(|(from, to, amount)| Op::Undelegate { from, to, amount }),
        1 => (3..5usize, 1_000u128..50_000).prop_map(|(from, bond)| Op::CreateValidator { from, bond }),
        1 => i.clone().prop_map(|from| Op::Submit { from }),
        4 => (i, 1u64..5, 1u8..5, 1u32..=WEIGHT_SCALE).prop_map(|(from, id, a, w)| Op::Vote { from, id, a, w }),
    ]
}

fn option(n: u8) -> VoteOption {
    match n {
        1 => VoteOption::Yes,
        2 => VoteOption::Abstain,
        3 => VoteOption::No,
        _ => VoteOption::NoWithVeto,
    }
}

fn to_msg(chain: &Chain, op: &Op) -> (usize, Msg) {
    let a = |i: usize| chain.addr(i);
    match *op {
        Op::Delegate { from, to, amount } => (
            from,
            Msg::Staking(StakingMsg::Delegate {
                delegator: a(from),
                validator: a(to),
                amount,
            }),
        ),
        Op::Undelegate { from, to, amount } => (
            from,
            Msg::Staking(StakingMsg::Undelegate {
                delegator: a(from),
                validator: a(to),
                amount,
            }),
        ),
        Op::CreateValidator { from, bond } => (
            from,
            Msg::Staking(StakingMsg::CreateValidator {
                operator: a(from),
                consensus_key: key(800 + from as u64).verification_key().to_bytes(),
                moniker: "late".into(),
                self_bond: bond,
            }),
        ),
        Op::Submit { from } => (
            from,
            Msg::Gov(GovMsg::SubmitProposal {
                proposer: a(from),
                title: "p".into(),
                description: String::new(),
                content: ProposalContent::Text,
                initial_deposit: 1_000,
            }),
        ),
        Op::Vote {
            from,
            id,
            a: first,
            w,
        } => {
            // Two distinct options split w : (1 - w), or one option with all the weight.
            let second = first % 4 + 1;
            let options = if w == WEIGHT_SCALE {
                vec![(option(first), w)]
            } else {
                vec![(option(first), w), (option(second), WEIGHT_SCALE - w)]
            };
            (
                from,
                Msg::Gov(GovMsg::Vote {
                    voter: chain.addr(from),
                    proposal_id: id,
                    options,
                }),
            )
        }
    }
}

fn setup(voting_period_blocks: u64) -> Chain {
    let mut p = module_params();
    p.gov.voting_period_blocks = voting_period_blocks;
    p.staking.unbonding_blocks = voting_period_blocks + 4;
    let mut chain = Chain::with_options(
        ACCOUNTS as u64,
        p,
        AppOptions {
            check_invariants: true,
        },
    );
    for i in 0..VALIDATORS {
        let operator = chain.addr(i);
        chain.ok(
            i,
            Msg::Staking(StakingMsg::CreateValidator {
                operator,
                consensus_key: key(600 + i as u64).verification_key().to_bytes(),
                moniker: "v".into(),
                self_bond: 10_000 * (i as u128 + 1) + 7,
            }),
        );
    }
    // Two proposals in voting from the start.
    for _ in 0..2 {
        let (_, m) = to_msg(&chain, &Op::Submit { from: 0 });
        chain.ok(0, m);
    }
    chain
}

fn tally_of(t: &gov::tally::Tally) -> [String; 5] {
    [
        t.yes.to_string(),
        t.abstain.to_string(),
        t.no.to_string(),
        t.no_with_veto.to_string(),
        t.total_bonded.to_string(),
    ]
}

fn tally_pb_of(t: &govpb::TallyResult) -> [String; 5] {
    [
        t.yes.clone(),
        t.abstain.clone(),
        t.no.clone(),
        t.no_with_veto.clone(),
        t.total_bonded.clone(),
    ]
}

/// `/staking/delegations` as the old code answered it: every unbonding entry scanned and filtered.
fn delegations_brute_force(chain: &Chain, who: &Address) -> stpb::DelegationsResponse {
    let s = chain.app.store();
    stpb::DelegationsResponse {
        delegations: staking::delegations_of(s, who)
            .expect("delegations")
            .into_iter()
            .map(|(v, a)| stpb::Delegation {
                delegator: who.to_string(),
                validator: v.to_string(),
                amount: a.to_string(),
            })
            .collect(),
        unbonding: staking::unbonding_entries(s)
            .expect("entries")
            .into_iter()
            .filter(|(_, d, _, _)| d == who)
            .map(|(h, d, v, a)| stpb::UnbondingEntry {
                delegator: d.to_string(),
                validator: v.to_string(),
                amount: a.to_string(),
                completion_height: h,
            })
            .collect(),
    }
}

/// Compares every answer with its recount; returns how many proposals were compared in voting and at
/// their end.
fn compare_with_recount(chain: &Chain) -> Result<(usize, usize), TestCaseError> {
    let s = chain.app.store();
    let (mut live, mut ended) = (0, 0);
    for id in 1.. {
        let Some(p) = gov::proposal(s, id).expect("proposal") else {
            break;
        };
        let resp: govpb::ProposalResponse =
            chain.query("/gov/proposal", &govpb::ProposalRequest { id });
        let recount = gov::recount_tally(s, id).expect("recount");
        if p.status == ProposalStatus::VotingPeriod {
            let t = resp.tally.expect("a running tally");
            prop_assert_eq!(
                tally_pb_of(&t),
                tally_of(&recount),
                "proposal {} in voting",
                id
            );
            live += 1;
        } else if p.voting_end_height == chain.height {
            // Tallied in this block, after its txs; staking's end of block (unbonding payouts) changes
            // no stake, so the committed records recount to the stake the tally saw.
            let t = p.final_tally.expect("final tally");
            prop_assert_eq!(
                [
                    t.yes.to_string(),
                    t.abstain.to_string(),
                    t.no.to_string(),
                    t.no_with_veto.to_string(),
                    t.total_bonded.to_string()
                ],
                tally_of(&recount),
                "proposal {} at its end",
                id
            );
            ended += 1;
        }
    }
    for i in 0..ACCOUNTS {
        let who = chain.addr(i);
        let indexed: stpb::DelegationsResponse = chain.query(
            "/staking/delegations",
            &stpb::DelegationsRequest {
                delegator: who.to_string(),
            },
        );
        prop_assert_eq!(
            indexed,
            delegations_brute_force(chain, &who),
            "account {}",
            i
        );
    }
    Ok((live, ended))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn running_tallies_and_the_unbonding_index_equal_a_full_recount_after_every_block(
        blocks in prop::collection::vec(prop::collection::vec(op(), 0..10), 1..16)
    ) {
        let mut chain = setup(6);
        let mut compared = (0, 0);
        for ops in &blocks {
            let mut nonces: Vec<u64> = (0..ACCOUNTS).map(|i| chain.nonce(i)).collect();
            let txs: Vec<Vec<u8>> = ops
                .iter()
                .map(|op| {
                    let (from, msg) = to_msg(&chain, op);
                    let tx = sign_msg(CHAIN_ID, &chain.keys[from], nonces[from], MODULE_FEE, msg);
                    nonces[from] += 1;
                    tx
                })
                .collect();
            chain.block(txs);
            chain.check_invariants();
            let (live, ended) = compare_with_recount(&chain)?;
            compared.0 += live;
            compared.1 += ended;
        }
        prop_assert!(compared.0 > 0, "no proposal was compared in voting");
    }
}

#[test]
fn a_validator_voting_after_its_delegators_and_stake_moving_mid_vote_tally_as_a_recount() {
    // A fixed walk through the cases the running tally must get right, compared after each step.
    let mut chain = setup(40);
    let step = |chain: &mut Chain, i: usize, op: Op| {
        let (from, m) = to_msg(chain, &op);
        assert_eq!(from, i);
        chain.ok(i, m);
        compare_with_recount(chain).expect("equal to a recount");
    };
    // Delegator 5 bonds to validator 0 and votes a split; then validator 0 votes; then 5 adds stake, unbonds
    // part, changes its vote; validator 0 bonds more to itself; account 3 votes, then becomes a validator
    // and gets delegations from a voter and a non-voter.
    step(
        &mut chain,
        5,
        Op::Delegate {
            from: 5,
            to: 0,
            amount: 33_333,
        },
    );
    step(
        &mut chain,
        5,
        Op::Vote {
            from: 5,
            id: 1,
            a: 1,
            w: 333_333,
        },
    );
    step(
        &mut chain,
        0,
        Op::Vote {
            from: 0,
            id: 1,
            a: 3,
            w: 700_001,
        },
    );
    step(
        &mut chain,
        5,
        Op::Delegate {
            from: 5,
            to: 0,
            amount: 1,
        },
    );
    step(
        &mut chain,
        5,
        Op::Undelegate {
            from: 5,
            to: 0,
            amount: 3_334,
        },
    );
    step(
        &mut chain,
        5,
        Op::Vote {
            from: 5,
            id: 1,
            a: 4,
            w: 999_999,
        },
    );
    step(
        &mut chain,
        0,
        Op::Delegate {
            from: 0,
            to: 0,
            amount: 12_345,
        },
    );
    step(
        &mut chain,
        3,
        Op::Vote {
            from: 3,
            id: 1,
            a: 2,
            w: WEIGHT_SCALE,
        },
    );
    step(
        &mut chain,
        3,
        Op::CreateValidator {
            from: 3,
            bond: 4_321,
        },
    );
    step(
        &mut chain,
        5,
        Op::Delegate {
            from: 5,
            to: 3,
            amount: 777,
        },
    );
    step(
        &mut chain,
        6,
        Op::Delegate {
            from: 6,
            to: 3,
            amount: 999,
        },
    );
    step(
        &mut chain,
        6,
        Op::Vote {
            from: 6,
            id: 2,
            a: 1,
            w: 1,
        },
    );
    step(
        &mut chain,
        3,
        Op::Undelegate {
            from: 3,
            to: 3,
            amount: 4_321,
        },
    );
    let voting = gov::proposal(chain.app.store(), 1)
        .expect("read")
        .expect("proposal 1")
        .voting_end_height;
    while chain.height < voting {
        chain.block(vec![]);
        compare_with_recount(&chain).expect("equal to a recount");
    }
    let p = gov::proposal(chain.app.store(), 1)
        .expect("read")
        .expect("p");
    assert!(p.final_tally.is_some(), "proposal 1 was tallied");
    // Its index entries are gone with its running tally.
    for prefix in [
        gov::state_key::running_tally(1),
        gov::state_key::voted_stakes_of(1),
    ] {
        assert!(chain
            .app
            .store()
            .scan_prefix(&prefix)
            .expect("scan")
            .is_empty());
    }
    chain.check_invariants();
}
