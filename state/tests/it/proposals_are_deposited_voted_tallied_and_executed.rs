//! Governance through ABCI: a proposal's whole life, tally edge cases on the application, bad input.

use lode_proto::{gov::v1 as govpb, query::v1 as qpb};
use lode_state::{
    modules::{
        gov::{self, GovMsg, ProposalContent, ProposalStatus, VoteOption},
        staking::{self, msg::StakingMsg},
    },
    tx::Msg,
    Params,
};

use crate::common::*;

fn create_validator(chain: &mut Chain, i: usize, bond: u128) {
    let operator = chain.addr(i);
    chain.ok(
        i,
        Msg::Staking(StakingMsg::CreateValidator {
            operator,
            consensus_key: key(1_000 + i as u64).verification_key().to_bytes(),
            moniker: format!("val-{i}"),
            self_bond: bond,
        }),
    );
}

fn delegate(chain: &mut Chain, i: usize, val: usize, amount: u128) {
    let (delegator, validator) = (chain.addr(i), chain.addr(val));
    chain.ok(
        i,
        Msg::Staking(StakingMsg::Delegate {
            delegator,
            validator,
            amount,
        }),
    );
}

fn submit(chain: &mut Chain, i: usize, content: ProposalContent, deposit: u128) -> u64 {
    let proposer = chain.addr(i);
    let r = chain.ok(
        i,
        Msg::Gov(GovMsg::SubmitProposal {
            proposer,
            title: "a proposal".into(),
            description: "why".into(),
            content,
            initial_deposit: deposit,
        }),
    );
    let ev = r
        .events
        .iter()
        .find(|e| e.r#type == "proposal_submitted")
        .expect("event");
    ev.attributes
        .iter()
        .find(|a| a.key == "proposal_id")
        .and_then(|a| a.value.parse().ok())
        .expect("id")
}

fn vote(chain: &mut Chain, i: usize, id: u64, o: VoteOption) {
    let voter = chain.addr(i);
    chain.ok(i, Msg::Gov(GovMsg::vote(voter, id, o)));
}

fn proposal(chain: &Chain, id: u64) -> gov::Proposal {
    gov::proposal(chain.app.store(), id)
        .expect("read")
        .expect("exists")
}

/// Validators 0 (400k) and 1 (300k); delegators 2 → 0 (200k) and 3 → 1 (100k). Total bonded 1,000,000.
fn staked_chain(accounts: u64, params: Params) -> Chain {
    let mut chain = Chain::with_params(accounts, params);
    create_validator(&mut chain, 0, 400_000);
    create_validator(&mut chain, 1, 300_000);
    delegate(&mut chain, 2, 0, 200_000);
    delegate(&mut chain, 3, 1, 100_000);
    chain.check_invariants();
    chain
}

fn param_change(path: &str, value: &str) -> ProposalContent {
    ProposalContent::ParamChange(vec![(path.into(), value.into())])
}

#[test]
fn a_proposal_lives_from_submission_to_a_changed_parameter_and_a_paid_treasury() {
    let mut params = module_params();
    params.gov.voting_period_blocks = 20;
    params.staking.unbonding_blocks = 30;
    let mut chain = staked_chain(6, params);
    let recipient = chain.addr(5);
    let treasury_before = chain.balance(&gov::treasury());
    assert!(treasury_before >= 4 * FEE / 10, "fees fund the treasury");

    // Parameter change: submitted below min deposit, completed by another account's deposit.
    let p1 = submit(&mut chain, 0, param_change("gov.quorum_bps", "4000"), 400);
    assert_eq!(proposal(&chain, p1).status, ProposalStatus::DepositPeriod);
    let depositor = chain.addr(4);
    chain.ok(
        4,
        Msg::Gov(GovMsg::Deposit {
            depositor,
            proposal_id: p1,
            amount: 600,
        }),
    );
    let p = proposal(&chain, p1);
    assert_eq!(p.status, ProposalStatus::VotingPeriod);
    assert_eq!(p.total_deposit, 1_000);
    let spend = treasury_before / 2;
    // Treasury spend: the initial deposit reaches min_deposit at once.
    let p2 = submit(
        &mut chain,
        4,
        ProposalContent::TreasurySpend {
            recipient,
            amount: spend,
        },
        1_000,
    );
    assert_eq!(proposal(&chain, p2).status, ProposalStatus::VotingPeriod);
    chain.check_invariants();

    // Several voters: validator 0 yes, validator 1 no, delegator 3 overrides validator 1 with yes;
    // delegator 2 inherits validator 0's yes.
    for id in [p1, p2] {
        vote(&mut chain, 0, id, VoteOption::Yes);
        vote(&mut chain, 1, id, VoteOption::No);
        vote(&mut chain, 3, id, VoteOption::Yes);
    }
    let running: govpb::ProposalResponse =
        chain.query("/gov/proposal", &govpb::ProposalRequest { id: p1 });
    let t = running.tally.expect("running tally");
    assert_eq!((t.yes.as_str(), t.no.as_str()), ("700000", "300000"));
    let votes: govpb::VotesResponse = chain.query(
        "/gov/votes",
        &govpb::VotesRequest {
            proposal_id: p1,
            pagination: None,
        },
    );
    assert_eq!(votes.votes.len(), 3);

    let end = proposal(&chain, p2).voting_end_height;
    let depositor_balance = chain.balance(&depositor);
    let recipient_balance = chain.balance(&recipient);
    let treasury_mid = chain.balance(&gov::treasury());
    chain.advance_to(end);
    chain.check_invariants();

    let p = proposal(&chain, p1);
    assert_eq!(p.status, ProposalStatus::Passed, "{}", p.failure_reason);
    let final_tally = p.final_tally.expect("tally");
    assert_eq!(
        (final_tally.yes, final_tally.no, final_tally.total_bonded),
        // Total bonded includes the genesis validator's self-bond.
        (700_000, 300_000, 1_000_000 + genesis_bond(&module_params()))
    );
    // The parameter changed, in state and in what the next block runs with.
    let params: qpb::ParamsResponse = chain.query(
        "/params",
        &qpb::ParamsRequest {
            module: "gov".into(),
        },
    );
    assert!(
        params.json.contains("\"quorum_bps\":4000"),
        "{}",
        params.json
    );
    // The treasury paid the recipient; deposits came back.
    assert_eq!(proposal(&chain, p2).status, ProposalStatus::Passed);
    assert_eq!(chain.balance(&recipient), recipient_balance + spend);
    assert_eq!(chain.balance(&gov::treasury()), treasury_mid - spend);
    assert_eq!(chain.balance(&depositor), depositor_balance + 600 + 1_000);
    let treasury: govpb::TreasuryResponse =
        chain.query("/gov/treasury", &govpb::TreasuryRequest {});
    assert_eq!(treasury.balance, (treasury_mid - spend).to_string());
    let passed: govpb::ProposalsResponse = chain.query(
        "/gov/proposals",
        &govpb::ProposalsRequest {
            status: govpb::ProposalStatus::Passed as i32,
            pagination: Some(qpb::PageRequest {
                key: vec![],
                limit: 1,
            }),
        },
    );
    assert_eq!(passed.proposals.len(), 1);
    assert_eq!(passed.proposals[0].id, p1);
    let next = passed.pagination.expect("page").next_key;
    let page2: govpb::ProposalsResponse = chain.query(
        "/gov/proposals",
        &govpb::ProposalsRequest {
            status: govpb::ProposalStatus::Passed as i32,
            pagination: Some(qpb::PageRequest {
                key: next,
                limit: 1,
            }),
        },
    );
    assert_eq!(page2.proposals[0].id, p2);
    assert!(page2.pagination.expect("page").next_key.is_empty());
}

#[test]
fn a_changed_vote_counts_only_its_last_choice() {
    let mut chain = staked_chain(4, module_params());
    let id = submit(&mut chain, 0, ProposalContent::Text, 1_000);
    vote(&mut chain, 0, id, VoteOption::No);
    vote(&mut chain, 1, id, VoteOption::Yes);
    vote(&mut chain, 0, id, VoteOption::Yes);
    chain.advance_to(proposal(&chain, id).voting_end_height);
    let p = proposal(&chain, id);
    assert_eq!(p.status, ProposalStatus::Passed);
    assert_eq!(p.final_tally.expect("tally").yes, 1_000_000);
}

#[test]
fn no_votes_miss_quorum_and_deposits_are_refunded_by_default() {
    let mut chain = staked_chain(4, module_params());
    let proposer = chain.addr(0);
    let id = submit(&mut chain, 0, ProposalContent::Text, 1_000);
    let before = chain.balance(&proposer);
    chain.advance_to(proposal(&chain, id).voting_end_height);
    let p = proposal(&chain, id);
    assert_eq!(p.status, ProposalStatus::Rejected);
    assert_eq!(p.final_tally.expect("tally").outcome, "no_quorum");
    assert_eq!(chain.balance(&proposer), before + 1_000);
    chain.check_invariants();
}

#[test]
fn all_abstain_is_rejected() {
    let mut chain = staked_chain(4, module_params());
    let id = submit(&mut chain, 0, ProposalContent::Text, 1_000);
    vote(&mut chain, 0, id, VoteOption::Abstain);
    vote(&mut chain, 1, id, VoteOption::Abstain);
    chain.advance_to(proposal(&chain, id).voting_end_height);
    let p = proposal(&chain, id);
    assert_eq!(p.status, ProposalStatus::Rejected);
    assert_eq!(p.final_tally.expect("tally").outcome, "rejected");
}

#[test]
fn a_veto_burns_the_deposits_and_reduces_supply() {
    let mut chain = staked_chain(4, module_params());
    let id = submit(&mut chain, 0, ProposalContent::Text, 1_000);
    let supply = lode_state::modules::bank::supply(chain.app.store()).expect("supply");
    vote(&mut chain, 0, id, VoteOption::Yes);
    vote(&mut chain, 1, id, VoteOption::NoWithVeto);
    // Veto 400k (validator 1 + delegator 3) of 1,000,000 votes: 40% >= 33.4%.
    chain.advance_to(proposal(&chain, id).voting_end_height);
    let p = proposal(&chain, id);
    assert_eq!(p.final_tally.expect("tally").outcome, "vetoed");
    assert_eq!(p.status, ProposalStatus::Rejected);
    assert_eq!(
        lode_state::modules::bank::supply(chain.app.store()).expect("supply"),
        supply - 1_000
    );
    chain.check_invariants();
}

#[test]
fn unbonding_during_voting_removes_that_stake_from_the_tally() {
    let mut chain = staked_chain(4, module_params());
    let id = submit(&mut chain, 0, ProposalContent::Text, 1_000);
    vote(&mut chain, 2, id, VoteOption::Yes);
    vote(&mut chain, 1, id, VoteOption::No);
    // Delegator 2 (200k yes) unbonds before the end: its vote no longer carries stake, and the
    // tokens cannot vote elsewhere (they are unbonding until after the tally).
    let (delegator, validator) = (chain.addr(2), chain.addr(0));
    chain.ok(
        2,
        Msg::Staking(StakingMsg::Undelegate {
            delegator,
            validator,
            amount: 200_000,
        }),
    );
    chain.check_invariants();
    let end = proposal(&chain, id).voting_end_height;
    chain.advance_to(end);
    let p = proposal(&chain, id);
    let t = p.final_tally.expect("tally");
    // Total bonded includes the genesis validator's self-bond (power 10).
    let genesis_bond = module_params().staking.power_reduction * 10;
    assert_eq!(
        (t.yes, t.no, t.total_bonded),
        (0, 400_000, 800_000 + genesis_bond)
    );
    assert_eq!(p.status, ProposalStatus::Rejected);
    // The unbonded tokens return after the unbonding period.
    let before = chain.balance(&delegator);
    chain.advance_to(end + 10);
    assert_eq!(chain.balance(&delegator), before + 200_000);
    chain.check_invariants();
}

#[test]
fn a_passed_proposal_whose_execution_fails_is_failed_and_changes_nothing() {
    let mut chain = staked_chain(4, module_params());
    let recipient = chain.addr(3);
    let id = submit(
        &mut chain,
        0,
        ProposalContent::TreasurySpend {
            recipient,
            amount: 1_000_000_000_000,
        },
        1_000,
    );
    vote(&mut chain, 0, id, VoteOption::Yes);
    let before = chain.balance(&recipient);
    chain.advance_to(proposal(&chain, id).voting_end_height);
    let p = proposal(&chain, id);
    assert_eq!(p.status, ProposalStatus::Failed);
    assert!(p.failure_reason.starts_with("ERR_INSUFFICIENT_FUNDS"));
    assert_eq!(chain.balance(&recipient), before);
    chain.check_invariants();
}

#[test]
fn bad_governance_input_gets_its_own_code_and_changes_nothing() {
    let mut chain = staked_chain(4, module_params());
    let a = chain.addr(0);
    // Unknown proposal.
    chain.assert_msg_rejected(0, Msg::Gov(GovMsg::vote(a, 99, VoteOption::Yes)), 50);
    chain.assert_msg_rejected(
        0,
        Msg::Gov(GovMsg::Deposit {
            depositor: a,
            proposal_id: 99,
            amount: 1,
        }),
        50,
    );
    // Vote outside the voting period: during the deposit period, then after the end.
    let id = submit(&mut chain, 0, ProposalContent::Text, 10);
    chain.assert_msg_rejected(0, Msg::Gov(GovMsg::vote(a, id, VoteOption::Yes)), 52);
    // Deposit overflow: the proposal's total would pass u128::MAX.
    chain.assert_msg_rejected(
        0,
        Msg::Gov(GovMsg::Deposit {
            depositor: a,
            proposal_id: id,
            amount: u128::MAX,
        }),
        55,
    );
    let id2 = submit(&mut chain, 0, ProposalContent::Text, 1_000);
    chain.advance_to(proposal(&chain, id2).voting_end_height);
    chain.assert_msg_rejected(0, Msg::Gov(GovMsg::vote(a, id2, VoteOption::Yes)), 52);
    // Deposit outside the deposit period.
    chain.assert_msg_rejected(
        0,
        Msg::Gov(GovMsg::Deposit {
            depositor: a,
            proposal_id: id2,
            amount: 1,
        }),
        51,
    );
    // Malformed parameter values and unknown parameters.
    for (path, value) in [
        ("gov.quorum_bps", "\"lots\""),
        ("gov.quorum_bps", "20000"),
        ("gov.no_such_param", "1"),
        ("min_gas_price", "{"),
    ] {
        chain.assert_msg_rejected(
            0,
            Msg::Gov(GovMsg::SubmitProposal {
                proposer: a,
                title: "t".into(),
                description: String::new(),
                content: param_change(path, value),
                initial_deposit: 0,
            }),
            53,
        );
    }
    // A split vote whose weights do not sum to one.
    let id3 = submit(&mut chain, 0, ProposalContent::Text, 1_000);
    chain.assert_msg_rejected(
        0,
        Msg::Gov(GovMsg::Vote {
            voter: a,
            proposal_id: id3,
            options: vec![(VoteOption::Yes, 500_000), (VoteOption::No, 400_000)],
        }),
        54,
    );
    // Undelegating more than bonded; delegating to a non-validator.
    let b = chain.addr(2);
    chain.assert_msg_rejected(
        2,
        Msg::Staking(StakingMsg::Undelegate {
            delegator: b,
            validator: a,
            amount: 200_001,
        }),
        42,
    );
    chain.assert_msg_rejected(
        2,
        Msg::Staking(StakingMsg::Delegate {
            delegator: b,
            validator: chain.addr(3),
            amount: 1,
        }),
        41,
    );
    chain.check_invariants();
    let _ = staking::bonded_pool();
}

#[test]
fn an_underfunded_proposal_expires_after_its_deposit_period() {
    let mut chain = staked_chain(4, module_params());
    let proposer = chain.addr(0);
    let id = submit(&mut chain, 0, ProposalContent::Text, 10);
    let before = chain.balance(&proposer);
    chain.advance_to(proposal(&chain, id).deposit_end_height);
    assert_eq!(proposal(&chain, id).status, ProposalStatus::Expired);
    assert_eq!(chain.balance(&proposer), before + 10);
    chain.check_invariants();
}

/// A tx checked (and so decoded and remembered) under one `max_tx_bytes` is refused once a proposal lowers
/// the limit below its size: the node's decoded-tx cache does not outlive the parameters it decoded under.
#[test]
fn a_lowered_tx_size_limit_applies_to_txs_checked_before_the_change() {
    let mut params = module_params();
    params.gov.voting_period_blocks = 5;
    let mut chain = staked_chain(6, params);
    let outputs = (0..6).map(|i| (chain.addr(i), 1u128)).collect();
    let from = chain.addr(5);
    let big = chain.sign(5, Msg::Bank(BankMsg::MultiSend { from, outputs }));
    assert!(big.len() > 300, "{} bytes", big.len());
    assert_eq!(chain.check(&big).0, 0, "admitted under the genesis limit");

    let id = submit(&mut chain, 0, param_change("max_tx_bytes", "300"), 1_000);
    vote(&mut chain, 0, id, VoteOption::Yes);
    vote(&mut chain, 1, id, VoteOption::Yes);
    let end = proposal(&chain, id).voting_end_height;
    chain.advance_to(end);
    assert_eq!(proposal(&chain, id).status, ProposalStatus::Passed);

    let (code, log) = chain.check(&big);
    assert_eq!(code, 3, "{log}");
    assert!(
        !chain.process(vec![big]),
        "a block holding it is rejected too"
    );
}
