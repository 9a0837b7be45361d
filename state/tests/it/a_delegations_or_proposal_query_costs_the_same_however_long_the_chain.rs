//! Issue 15, hole 10: queries whose cost grew with the whole chain. `/staking/delegations` scanned every
//! unbonding entry of every delegator, and `/gov/proposal` recounted the votes (and each voter's
//! delegations) on every call. Each answer now reads a fixed number of records for what it returns: the
//! tests count state reads (a `get` is one, a prefix scan one plus one per entry it returns), not time.

use std::cell::Cell;

use lode_state::error::StoreError;
use lode_state::{
    modules::{
        gov::{self, GovMsg, ProposalContent, VoteOption},
        staking::{self, msg::StakingMsg},
    },
    store::{KeyValue, StateRead},
    tx::{sign_msg, Msg},
    Address, Params,
};

use crate::common::*;

/// Counts what a query reads.
struct Counting<'a, S: StateRead + ?Sized> {
    inner: &'a S,
    reads: Cell<usize>,
}

impl<'a, S: StateRead + ?Sized> Counting<'a, S> {
    fn new(inner: &'a S) -> Self {
        Counting {
            inner,
            reads: Cell::new(0),
        }
    }
}

impl<S: StateRead + ?Sized> StateRead for Counting<'_, S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.reads.set(self.reads.get() + 1);
        self.inner.get(key)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let r = self.inner.scan_prefix(prefix)?;
        self.reads.set(self.reads.get() + 1 + r.len());
        Ok(r)
    }
}

const ACCOUNTS: usize = 40;

fn params() -> Params {
    let mut p = module_params();
    p.staking.unbonding_blocks = 10_000;
    p.gov.voting_period_blocks = 1_000;
    p
}

/// One block in which each of `who` sends `msg(i)` at its committed nonce; every tx must succeed.
fn block_of(
    chain: &mut Chain,
    who: impl Iterator<Item = usize>,
    msg: impl Fn(&Chain, usize) -> Msg,
) {
    let txs: Vec<Vec<u8>> = who
        .map(|i| {
            sign_msg(
                CHAIN_ID,
                &chain.keys[i],
                chain.nonce(i),
                MODULE_FEE,
                msg(chain, i),
            )
        })
        .collect();
    let (results, _) = chain.block(txs);
    for r in results {
        assert_eq!(r.code, 0, "{}", r.log);
    }
}

fn setup() -> Chain {
    let mut chain = Chain::with_params(ACCOUNTS as u64, params());
    for v in 0..2 {
        let operator = chain.addr(v);
        chain.ok(
            v,
            Msg::Staking(StakingMsg::CreateValidator {
                operator,
                consensus_key: key(700 + v as u64).verification_key().to_bytes(),
                moniker: "v".into(),
                self_bond: 100_000,
            }),
        );
    }
    chain
}

fn delegate(chain: &Chain, i: usize, to: usize, amount: u128) -> Msg {
    Msg::Staking(StakingMsg::Delegate {
        delegator: chain.addr(i),
        validator: chain.addr(to),
        amount,
    })
}

fn undelegate(chain: &Chain, i: usize, to: usize, amount: u128) -> Msg {
    Msg::Staking(StakingMsg::Undelegate {
        delegator: chain.addr(i),
        validator: chain.addr(to),
        amount,
    })
}

fn reads_of_delegations(chain: &Chain, who: &Address) -> (usize, Vec<u8>) {
    let c = Counting::new(chain.app.store());
    let resp = staking::query::delegations_response(&c, who).expect("query");
    (c.reads.get(), prost::Message::encode_to_vec(&resp))
}

fn reads_of_proposal(chain: &Chain, id: u64) -> (usize, Vec<u8>) {
    let c = Counting::new(chain.app.store());
    let resp = gov::query::proposal_response(&c, id)
        .expect("query")
        .expect("proposal exists");
    (c.reads.get(), prost::Message::encode_to_vec(&resp))
}

#[test]
fn a_delegations_query_reads_the_same_whatever_other_delegators_are_unbonding() {
    let mut chain = setup();
    let me = chain.addr(2);
    chain.ok(2, delegate(&chain, 2, 0, 1_000));
    chain.ok(2, undelegate(&chain, 2, 0, 10));
    let (before, answer) = reads_of_delegations(&chain, &me);

    // Everyone else bonds, then unbonds a little in each of five blocks: 185 unbonding entries that are
    // not this delegator's.
    block_of(&mut chain, 3..ACCOUNTS, |c, i| {
        delegate(c, i, i % 2, 10_000)
    });
    for _ in 0..5 {
        block_of(&mut chain, 3..ACCOUNTS, |c, i| undelegate(c, i, i % 2, 1));
    }
    let entries = staking::unbonding_entries(chain.app.store()).expect("entries");
    assert_eq!(entries.len(), 1 + 5 * (ACCOUNTS - 3));

    let (after, same) = reads_of_delegations(&chain, &me);
    assert_eq!(same, answer, "the delegator's own answer did not change");
    assert_eq!(
        after,
        before,
        "reads grew from {before} to {after} with {} unrelated unbonding entries",
        entries.len() - 1
    );
}

#[test]
fn a_proposal_query_reads_the_same_however_many_votes_it_has() {
    let mut chain = setup();
    let submit = |chain: &Chain| {
        Msg::Gov(GovMsg::SubmitProposal {
            proposer: chain.addr(0),
            title: "t".into(),
            description: String::new(),
            content: ProposalContent::Text,
            initial_deposit: 1_000,
        })
    };
    chain.ok(0, submit(&chain));
    chain.ok(0, submit(&chain));
    chain.ok(0, Msg::Gov(GovMsg::vote(chain.addr(0), 1, VoteOption::Yes)));
    let (before, _) = reads_of_proposal(&chain, 1);

    // Thirty-seven delegators bond and vote on both proposals, some of them twice.
    block_of(&mut chain, 2..ACCOUNTS, |c, i| {
        delegate(c, i, i % 2, 5_000 + i as u128)
    });
    let option = |i: usize| match i % 4 {
        0 => VoteOption::Yes,
        1 => VoteOption::No,
        2 => VoteOption::Abstain,
        _ => VoteOption::NoWithVeto,
    };
    for id in [1, 2] {
        block_of(&mut chain, 2..ACCOUNTS, |c, i| {
            Msg::Gov(GovMsg::vote(c.addr(i), id, option(i)))
        });
    }
    block_of(&mut chain, 2..ACCOUNTS / 2, |c, i| {
        Msg::Gov(GovMsg::vote(c.addr(i), 1, option(i + 1)))
    });
    let votes = gov::votes(chain.app.store(), 1).expect("votes");
    assert_eq!(votes.len(), ACCOUNTS - 1);

    let (after, _) = reads_of_proposal(&chain, 1);
    assert_eq!(
        after,
        before,
        "reads grew from {before} to {after} with {} more votes",
        votes.len() - 1
    );
}
