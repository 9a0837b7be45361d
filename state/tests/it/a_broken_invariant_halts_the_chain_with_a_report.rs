//! Invariants run by the chain: with `check_invariants` on, a block after which a module's invariant does
//! not hold is not finalized; the error names the invariant, the height and both sides of the equation, and
//! nothing is committed. Each invariant is broken on purpose once, through the test-only write hook.

use lode_state::{
    app::AppOptions,
    module::InvariantReport,
    modules::{
        gov,
        staking::{self, StakingMsg},
    },
    store::Writes,
    tx::Msg,
    StateError,
};
use tendermint_proto::v0_38::abci::{request, response, Request, RequestFinalizeBlock};

use crate::common::*;

fn checked_chain() -> Chain {
    Chain::with_options(
        3,
        module_params(),
        AppOptions {
            check_invariants: true,
        },
    )
}

fn u128_bytes(v: u128) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// Injects `writes` into the next block and finalizes it; returns the invariant report it halted with,
/// after checking that nothing was committed.
fn halt_with(chain: &mut Chain, writes: Writes) -> InvariantReport {
    let before = chain.app.last_commit().expect("initialised");
    let snapshot = chain.snapshot();
    chain.app.inject_into_next_block(writes);
    let err = chain
        .app
        .try_finalize_block(RequestFinalizeBlock {
            height: chain.height as i64 + 1,
            ..Default::default()
        })
        .expect_err("a broken invariant must halt the block");
    let report = match err {
        StateError::Invariant(r) => *r,
        other => panic!("expected an invariant report, got {other}"),
    };
    assert_eq!(report.height, chain.height + 1);
    assert_ne!(report.left.value, report.right.value);
    assert!(chain.app.try_commit().is_err(), "nothing may be pending");
    assert_eq!(chain.app.last_commit(), Some(before));
    assert_eq!(chain.snapshot(), snapshot, "state changed");
    report
}

#[test]
fn a_balance_minted_out_of_thin_air_breaks_the_supply_invariant() {
    let mut chain = checked_chain();
    chain.block(vec![]);
    let who = chain.addr(1);
    let key = lode_state::modules::bank::state_key::account(&who);
    let mut acct = chain.account(&who);
    acct.balance += 7;
    let report = halt_with(&mut chain, Writes::from([(key, Some(acct.encode()))]));
    assert_eq!(report.invariant, "bank/supply");
    let g = genesis_bond(&module_params());
    assert_eq!(report.left.value, START_BALANCE * 3 + g);
    assert_eq!(report.right.value, START_BALANCE * 3 + g + 7);
    // The same block without the corruption finalizes and commits: the check itself is not the problem.
    let (_, hash) = chain.block(vec![]);
    assert_eq!(hash.len(), 32);
}

#[test]
fn a_bond_without_tokens_in_the_pool_breaks_the_bonded_pool_invariant() {
    let mut chain = checked_chain();
    let op = chain.addr(0);
    chain.ok(
        0,
        Msg::Staking(StakingMsg::CreateValidator {
            operator: op,
            consensus_key: key(500).verification_key().to_bytes(),
            moniker: "v".into(),
            self_bond: 1_000,
        }),
    );
    let ghost = chain.addr(2);
    let total = staking::total_bonded(chain.app.store()).expect("total");
    let report = halt_with(
        &mut chain,
        Writes::from([
            (
                staking::state_key::delegation(&ghost, &op),
                Some(u128_bytes(500)),
            ),
            (
                staking::state_key::TOTAL_BONDED.to_vec(),
                Some(u128_bytes(total + 500)),
            ),
        ]),
    );
    assert_eq!(report.invariant, "staking/bonded-pool");
    let g = genesis_bond(&module_params());
    assert_eq!(
        (report.left.value, report.right.value),
        (1_000 + g, 1_500 + g)
    );
}

#[test]
fn a_total_bonded_that_disagrees_with_the_delegations_breaks_its_invariant() {
    let mut chain = checked_chain();
    let op = chain.addr(0);
    chain.ok(
        0,
        Msg::Staking(StakingMsg::CreateValidator {
            operator: op,
            consensus_key: key(501).verification_key().to_bytes(),
            moniker: "v".into(),
            self_bond: 2_000,
        }),
    );
    let report = halt_with(
        &mut chain,
        Writes::from([(
            staking::state_key::TOTAL_BONDED.to_vec(),
            Some(u128_bytes(1)),
        )]),
    );
    assert_eq!(report.invariant, "staking/total-bonded");
    let g = genesis_bond(&module_params());
    assert_eq!((report.left.value, report.right.value), (1, 2_000 + g));
}

#[test]
fn a_deposit_record_without_tokens_breaks_the_deposits_invariant() {
    let mut chain = checked_chain();
    chain.block(vec![]);
    let who = chain.addr(1);
    let report = halt_with(
        &mut chain,
        Writes::from([(gov::state_key::deposit(9, &who), Some(u128_bytes(42)))]),
    );
    assert_eq!(report.invariant, "gov/deposits");
    assert_eq!((report.left.value, report.right.value), (0, 42));
}

#[test]
fn an_unbonding_index_entry_without_its_entry_breaks_the_unbonding_index_invariant() {
    let mut chain = checked_chain();
    let op = chain.addr(0);
    chain.ok(
        0,
        Msg::Staking(StakingMsg::CreateValidator {
            operator: op,
            consensus_key: key(502).verification_key().to_bytes(),
            moniker: "v".into(),
            self_bond: 2_000,
        }),
    );
    chain.ok(
        0,
        Msg::Staking(StakingMsg::Undelegate {
            delegator: op,
            validator: op,
            amount: 5,
        }),
    );
    // One real entry and its twin, plus a twin with no entry.
    let ghost = chain.addr(2);
    let report = halt_with(
        &mut chain,
        Writes::from([(
            staking::state_key::unbonding_of(&ghost, 100, &op),
            Some(u128_bytes(5)),
        )]),
    );
    assert_eq!(report.invariant, "staking/unbonding-index");
    assert_eq!((report.left.value, report.right.value), (2, 3));
}

#[test]
fn a_running_tally_that_disagrees_with_a_recount_breaks_the_running_tallies_invariant() {
    let mut chain = checked_chain();
    let who = chain.addr(1);
    chain.ok(
        1,
        Msg::Gov(gov::GovMsg::SubmitProposal {
            proposer: who,
            title: "t".into(),
            description: String::new(),
            content: gov::ProposalContent::Text,
            initial_deposit: 1_000,
        }),
    );
    let forged = gov::tally::Counts {
        yes: 1,
        ..Default::default()
    };
    let report = halt_with(
        &mut chain,
        Writes::from([(
            gov::state_key::running_tally(1),
            Some(lode_state::codec::encode(&forged)),
        )]),
    );
    assert_eq!(report.invariant, "gov/running-tallies");
    assert_eq!((report.left.value, report.right.value), (0, 1));
}

#[test]
fn the_abci_answer_to_a_halted_block_names_the_invariant_height_and_both_sides() {
    let mut chain = checked_chain();
    chain.block(vec![]);
    let who = chain.addr(0);
    let mut acct = chain.account(&who);
    acct.balance -= 1;
    chain.app.inject_into_next_block(Writes::from([(
        lode_state::modules::bank::state_key::account(&who),
        Some(acct.encode()),
    )]));
    let resp = chain.app.handle(Request {
        value: Some(request::Value::FinalizeBlock(RequestFinalizeBlock {
            height: 2,
            ..Default::default()
        })),
    });
    let Some(response::Value::Exception(e)) = resp.value else {
        panic!("expected an exception, got {resp:?}");
    };
    assert!(
        e.error.contains("invariant bank/supply broken at height 2"),
        "{}",
        e.error
    );
    assert!(
        e.error.contains(&format!(
            "bank/supply = {}",
            START_BALANCE * 3 + genesis_bond(&module_params())
        )),
        "{}",
        e.error
    );
    assert!(
        e.error
            .contains(&(START_BALANCE * 3 + genesis_bond(&module_params()) - 1).to_string()),
        "{}",
        e.error
    );
}

#[test]
fn with_the_check_off_the_same_corruption_is_committed() {
    let mut chain = Chain::with_params(3, module_params());
    chain.block(vec![]);
    let who = chain.addr(1);
    let mut acct = chain.account(&who);
    acct.balance += 7;
    chain.app.inject_into_next_block(Writes::from([(
        lode_state::modules::bank::state_key::account(&who),
        Some(acct.encode()),
    )]));
    chain.block(vec![]);
    let (sum, supply) = chain.supply_check();
    assert_eq!(sum, supply + 7);
}
