//! gov: proposals (parameter change, treasury spend, text), deposits, token-weighted votes, and the tally
//! at the end of the voting period (in FinalizeBlock, after the txs).
//!
//! Accounting: open deposits sit in the `gov_deposits` module account (its balance equals the sum of
//! `gov/deposit/*`); the `treasury` module account receives `gov.treasury_fee_bps` of every fee and pays
//! out only through a passed treasury-spend proposal. Burned deposits reduce `bank/supply`.

pub mod error;
pub mod event;
pub mod msg;
pub mod params;
pub mod query;
pub mod running;
pub mod state_key;
pub mod tally;

use borsh::{BorshDeserialize, BorshSerialize};
use lode_proto::tx::v1::msg::Sum;

use crate::{
    address::Address,
    codec::{address_at, decode, encode, get_u128, put_u128},
    error::{CodeRange, ModuleError, StoreError, TxError},
    event::Event,
    module::{BlockCtx, Decoded, DelegationChange, Invariant, Module, Side},
    modules::{bank, staking},
    params::{self as app_params, Params},
    query::{QueryError, QueryRead},
    store::{Overlay, StateRead, StateWrite},
};
use tally::{Outcome, Tally, TallyInput, Thresholds};

pub use error::GovError;
pub use msg::GovMsg;

/// The governance module.
#[derive(Debug)]
pub struct Gov;

impl Module for Gov {
    const NAME: &'static str = "gov";
    const CODES: CodeRange = error::CODES;
    type Msg = GovMsg;

    fn decode(sum: Sum) -> Decoded<GovMsg> {
        match sum {
            Sum::SubmitProposal(m) => Decoded::Mine(m.try_into()),
            Sum::GovDeposit(m) => Decoded::Mine(m.try_into()),
            Sum::Vote(m) => Decoded::Mine(m.try_into()),
            other => Decoded::NotMine(other),
        }
    }

    fn encode(m: &GovMsg) -> Sum {
        m.into()
    }

    fn sender(m: &GovMsg) -> &Address {
        m.sender()
    }

    fn gas(m: &GovMsg, p: &Params) -> Option<u64> {
        Some(m.gas(p))
    }

    fn execute<S: StateWrite + ?Sized>(
        s: &mut S,
        m: &GovMsg,
        ctx: BlockCtx<'_>,
        events: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        msg::execute(s, m, ctx, events)
    }

    /// Expires deposit periods and tallies (and executes) the proposals whose voting ends here.
    fn end_block<S: StateWrite + ?Sized>(
        s: &mut S,
        ctx: BlockCtx<'_>,
        events: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        end_block(s, ctx, events)
    }

    /// Keeps the running tallies of proposals in voting equal to a recount (see [`running`]).
    fn on_delegation_changed<S: StateWrite + ?Sized>(
        s: &mut S,
        change: &DelegationChange,
    ) -> Result<(), TxError> {
        running::on_delegation_changed(s, change)
    }

    fn query(
        store: &dyn QueryRead,
        path: &str,
        data: &[u8],
    ) -> Option<Result<Vec<u8>, QueryError>> {
        query::handle(store, path, data)
    }

    fn invariants() -> Vec<Invariant> {
        vec![
            Invariant {
                name: "gov/deposits",
                sides: deposit_sides,
            },
            Invariant {
                name: "gov/running-tallies",
                sides: running_tally_sides,
            },
        ]
    }

    fn error_examples() -> Vec<TxError> {
        GovError::examples()
            .into_iter()
            .map(TxError::from)
            .collect()
    }
}

/// `gov/deposits`: the deposits account's balance against every open deposit.
fn deposit_sides(s: &dyn StateRead) -> Result<(Side, Side), StoreError> {
    let mut open: u128 = 0;
    for (k, v) in s.scan_prefix(state_key::DEPOSIT_PREFIX)? {
        open = open
            .checked_add(crate::codec::u128_value(&k, &v)?)
            .ok_or_else(|| StoreError::Corrupt {
                key: "gov/deposit".into(),
                reason: "deposits overflow u128".into(),
            })?;
    }
    Ok((
        Side {
            what: "balance of the gov_deposits account",
            value: bank::account(s, &deposits_account())?.balance,
        },
        Side {
            what: "sum of open deposits",
            value: open,
        },
    ))
}

/// `gov/running-tallies`: every proposal in its voting period has a running tally and voted stakes equal to
/// a full recount, and the active-vote index holds exactly the votes on proposals in voting.
fn running_tally_sides(s: &dyn StateRead) -> Result<(Side, Side), StoreError> {
    let prefix = state_key::status_prefix(ProposalStatus::VotingPeriod as u8);
    let mut voting: u128 = 0;
    let mut exact: u128 = 0;
    let mut votes_in_voting: usize = 0;
    for (k, _) in s.scan_prefix(&prefix)? {
        let id = id_at(&k, prefix.len())?;
        voting = voting.saturating_add(1);
        let (recount, deductions) = recount_tally_with_deductions(s, id)?;
        let stored_prefix = state_key::voted_stakes_of(id);
        let mut stored = std::collections::BTreeMap::new();
        for (k, v) in s.scan_prefix(&stored_prefix)? {
            stored.insert(
                address_at(&k, stored_prefix.len())?,
                crate::codec::u128_value(&k, &v)?,
            );
        }
        let deductions: std::collections::BTreeMap<Address, u128> =
            deductions.into_iter().filter(|(_, d)| *d > 0).collect();
        let voters = votes(s, id)?;
        let mut indexed = true;
        for (voter, _) in &voters {
            indexed &= s.get(&state_key::active_vote(voter, id))?.is_some();
        }
        votes_in_voting = votes_in_voting.saturating_add(voters.len());
        if running::counts(s, id)? == recount.counts() && stored == deductions && indexed {
            exact = exact.saturating_add(1);
        }
    }
    let index_len = s.scan_prefix(state_key::ACTIVE_VOTE_PREFIX)?.len();
    // A stale index entry (one for a proposal no longer in voting) makes the sides differ too.
    let stale = index_len.saturating_sub(votes_in_voting) as u128;
    Ok((
        Side {
            what: "proposals in voting whose running tally equals a recount",
            value: exact,
        },
        Side {
            what: "proposals in voting (+ stale active-vote entries)",
            value: voting.saturating_add(stale),
        },
    ))
}

/// A (split) vote: options with weights in parts per million.
pub type WeightedVote = Vec<(VoteOption, u32)>;

/// Vote weights are parts per million; a vote's weights sum to this.
pub const WEIGHT_SCALE: u32 = 1_000_000;

/// The module account holding open deposits.
pub fn deposits_account() -> Address {
    Address::module("gov_deposits")
}

/// The treasury: funded by a share of fees, spent only by proposal.
pub fn treasury() -> Address {
    // Every tx's fee pays its share: hash the name once.
    static ADDR: std::sync::LazyLock<Address> =
        std::sync::LazyLock::new(|| Address::module("treasury"));
    *ADDR
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = true)]
#[repr(u8)]
pub enum VoteOption {
    Yes = 1,
    Abstain = 2,
    No = 3,
    NoWithVeto = 4,
}

impl VoteOption {
    pub fn from_i32(v: i32) -> Option<VoteOption> {
        match v {
            1 => Some(VoteOption::Yes),
            2 => Some(VoteOption::Abstain),
            3 => Some(VoteOption::No),
            4 => Some(VoteOption::NoWithVeto),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            VoteOption::Yes => "yes",
            VoteOption::Abstain => "abstain",
            VoteOption::No => "no",
            VoteOption::NoWithVeto => "no_with_veto",
        }
    }
}

/// A proposal's status. The numbers are the proto enum's and part of the `gov/status/` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = true)]
#[repr(u8)]
pub enum ProposalStatus {
    DepositPeriod = 1,
    VotingPeriod = 2,
    Passed = 3,
    Rejected = 4,
    Failed = 5,
    Expired = 6,
}

/// What a proposal does when it passes.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ProposalContent {
    /// (JSON path, JSON value) pairs, applied together.
    ParamChange(Vec<(String, String)>),
    TreasurySpend {
        recipient: Address,
        amount: u128,
    },
    Text,
}

impl ProposalContent {
    pub fn kind(&self) -> &'static str {
        match self {
            ProposalContent::ParamChange(_) => "param_change",
            ProposalContent::TreasurySpend { .. } => "treasury_spend",
            ProposalContent::Text => "text",
        }
    }
}

/// The stored form of a tally.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StoredTally {
    pub yes: u128,
    pub abstain: u128,
    pub no: u128,
    pub no_with_veto: u128,
    pub total_bonded: u128,
    pub outcome: String,
}

impl StoredTally {
    pub fn new(t: &Tally, outcome: &str) -> StoredTally {
        StoredTally {
            yes: t.yes,
            abstain: t.abstain,
            no: t.no,
            no_with_veto: t.no_with_veto,
            total_bonded: t.total_bonded,
            outcome: outcome.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    pub id: u64,
    pub proposer: Address,
    pub title: String,
    pub description: String,
    pub content: ProposalContent,
    pub status: ProposalStatus,
    pub submit_height: u64,
    pub deposit_end_height: u64,
    pub voting_start_height: u64,
    pub voting_end_height: u64,
    pub total_deposit: u128,
    pub final_tally: Option<StoredTally>,
    pub failure_reason: String,
}

pub fn proposal<S: StateRead + ?Sized>(s: &S, id: u64) -> Result<Option<Proposal>, StoreError> {
    let key = state_key::proposal(id);
    s.get(&key)?.map(|b| decode(&key, &b)).transpose()
}

/// Stores a proposal and moves its status index entry.
pub fn put_proposal<S: StateWrite + ?Sized>(s: &mut S, p: &Proposal, old: Option<ProposalStatus>) {
    if let Some(old) = old {
        s.delete(state_key::by_status(old as u8, p.id));
    }
    s.put(state_key::by_status(p.status as u8, p.id), Vec::new());
    s.put(state_key::proposal(p.id), encode(p));
}

pub fn vote_of<S: StateRead + ?Sized>(
    s: &S,
    id: u64,
    voter: &Address,
) -> Result<Option<Vec<(VoteOption, u32)>>, StoreError> {
    let key = state_key::vote(id, voter);
    s.get(&key)?.map(|b| decode(&key, &b)).transpose()
}

/// Every vote on a proposal, by voter.
pub fn votes<S: StateRead + ?Sized>(
    s: &S,
    id: u64,
) -> Result<Vec<(Address, WeightedVote)>, StoreError> {
    let prefix = state_key::votes_of(id);
    s.scan_prefix(&prefix)?
        .into_iter()
        .map(|(k, v)| Ok((address_at(&k, prefix.len())?, decode(&k, &v)?)))
        .collect()
}

/// Every open deposit on a proposal, by depositor.
pub fn deposits<S: StateRead + ?Sized>(s: &S, id: u64) -> Result<Vec<(Address, u128)>, StoreError> {
    let prefix = state_key::deposits_of(id);
    s.scan_prefix(&prefix)?
        .into_iter()
        .map(|(k, _)| Ok((address_at(&k, prefix.len())?, get_u128(s, &k)?)))
        .collect()
}

/// A proposal's tally so far: its running counts against all bonded stake. Reads two records, however many
/// votes it has.
pub fn current_tally<S: StateRead + ?Sized>(s: &S, id: u64) -> Result<Tally, StoreError> {
    Ok(running::counts(s, id)?.with_total(staking::total_bonded(s)?))
}

/// Recounts a proposal's votes from scratch: every vote, every voter's delegations, every voting
/// validator's tokens. The reference the running tally is held equal to (invariant and tests); costs
/// O(votes + their delegations).
pub fn recount_tally<S: StateRead + ?Sized>(s: &S, id: u64) -> Result<Tally, StoreError> {
    Ok(recount_tally_with_deductions(s, id)?.0)
}

fn recount_tally_with_deductions<S: StateRead + ?Sized>(
    s: &S,
    id: u64,
) -> Result<(Tally, std::collections::BTreeMap<Address, u128>), StoreError> {
    let mut input = TallyInput {
        total_bonded: staking::total_bonded(s)?,
        ..TallyInput::default()
    };
    for (voter, options) in votes(s, id)? {
        input
            .delegations
            .insert(voter, staking::delegations_of(s, &voter)?);
        if let Some(v) = staking::validator(s, &voter)? {
            input.validator_tokens.insert(voter, v.tokens);
        }
        input.votes.insert(voter, options);
    }
    Ok(tally::tally_with_deductions(&input))
}

/// Moves `amount` into a proposal's deposit.
pub(crate) fn add_deposit<S: StateWrite + ?Sized>(
    s: &mut S,
    p: &mut Proposal,
    depositor: &Address,
    amount: u128,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let key = state_key::deposit(p.id, depositor);
    let total = p
        .total_deposit
        .checked_add(amount)
        .ok_or(TxError::from(GovError::DepositOverflow))?;
    let mine = get_u128(s, &key)?
        .checked_add(amount)
        .ok_or(TxError::from(GovError::DepositOverflow))?;
    bank::transfer(s, depositor, &deposits_account(), amount)?;
    put_u128(s, key, mine);
    p.total_deposit = total;
    events.push(event::deposit(p.id, depositor, amount, total));
    Ok(())
}

/// Opens the voting period if the deposit reached min_deposit. The caller stores the proposal.
pub(crate) fn maybe_start_voting<S: StateWrite + ?Sized>(
    s: &mut S,
    p: &mut Proposal,
    ctx: BlockCtx<'_>,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    if p.status != ProposalStatus::DepositPeriod || p.total_deposit < ctx.params.gov.min_deposit {
        return Ok(());
    }
    s.delete(state_key::deposit_queue(p.deposit_end_height, p.id));
    p.status = ProposalStatus::VotingPeriod;
    p.voting_start_height = ctx.height;
    p.voting_end_height = ctx
        .height
        .checked_add(ctx.params.gov.voting_period_blocks)
        .ok_or(TxError::Overflow("voting end height"))?;
    s.put(
        state_key::voting_queue(p.voting_end_height, p.id),
        Vec::new(),
    );
    events.push(event::voting_started(
        p.id,
        p.voting_start_height,
        p.voting_end_height,
    ));
    Ok(())
}

/// Refunds or burns a proposal's open deposits and deletes their records.
fn settle_deposits<S: StateWrite + ?Sized>(
    s: &mut S,
    p: &Proposal,
    burn: bool,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let pool = deposits_account();
    let mut total: u128 = 0;
    for (depositor, amount) in deposits(s, p.id)? {
        if burn {
            let mut acct = bank::account(s, &pool)?;
            acct.balance = acct
                .balance
                .checked_sub(amount)
                .ok_or_else(|| TxError::Internal("deposit pool below its deposits".into()))?;
            bank::put_account(s, &pool, &acct);
            let supply = bank::supply(s)?
                .checked_sub(amount)
                .ok_or_else(|| TxError::Internal("supply below a deposit".into()))?;
            bank::put_supply(s, supply);
        } else {
            bank::transfer(s, &pool, &depositor, amount)?;
        }
        s.delete(state_key::deposit(p.id, &depositor));
        total = total.saturating_add(amount);
    }
    if total > 0 {
        events.push(event::deposits_settled(p.id, total, burn));
    }
    Ok(())
}

/// Applies a passed proposal's content.
fn execute_content<S: StateWrite + ?Sized>(
    s: &mut S,
    p: &Proposal,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    match &p.content {
        ProposalContent::ParamChange(changes) => {
            let current = app_params::load(s)?;
            let next = app_params::apply_changes(&current, changes)?;
            app_params::store(s, &next);
            for (path, value) in changes {
                events.push(event::param_change(path, value));
            }
        }
        ProposalContent::TreasurySpend { recipient, amount } => {
            bank::transfer(s, &treasury(), recipient, *amount)?;
            events.push(event::treasury_spend(p.id, recipient, *amount));
        }
        ProposalContent::Text => {}
    }
    Ok(())
}

/// End of block: expires proposals whose deposit period ends here, and tallies (and executes) those whose
/// voting period ends here. Runs after the block's txs, so votes in the last block count.
pub fn end_block<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let gp = &ctx.params.gov;
    let h = ctx.height;
    let prefix = state_key::deposit_queue_at(h);
    for (k, _) in s.scan_prefix(&prefix)? {
        s.delete(k.clone());
        let id = id_at(&k, prefix.len())?;
        let Some(mut p) = proposal(s, id)? else {
            continue;
        };
        if p.status != ProposalStatus::DepositPeriod {
            continue;
        }
        settle_deposits(s, &p, gp.burn_deposit_on_expiry, events)?;
        p.status = ProposalStatus::Expired;
        put_proposal(s, &p, Some(ProposalStatus::DepositPeriod));
        events.push(event::expired(id));
    }
    let prefix = state_key::voting_queue_at(h);
    for (k, _) in s.scan_prefix(&prefix)? {
        s.delete(k.clone());
        let id = id_at(&k, prefix.len())?;
        let Some(mut p) = proposal(s, id)? else {
            continue;
        };
        if p.status != ProposalStatus::VotingPeriod {
            continue;
        }
        let t = running::finish(s, id)?.with_total(staking::total_bonded(s)?);
        let o = tally::outcome(
            &t,
            Thresholds {
                quorum_bps: gp.quorum_bps,
                threshold_bps: gp.threshold_bps,
                veto_bps: gp.veto_bps,
            },
        );
        events.push(event::tallied(id, &t, o));
        let burn = match o {
            Outcome::Vetoed => gp.burn_deposit_on_veto,
            Outcome::NoQuorum => gp.burn_deposit_on_no_quorum,
            Outcome::Passed | Outcome::Rejected => false,
        };
        settle_deposits(s, &p, burn, events)?;
        p.final_tally = Some(StoredTally::new(&t, o.as_str()));
        p.status = if o == Outcome::Passed {
            // Atomic: the content runs in its own overlay, merged only if all of it succeeds.
            let mut scratch_events = Vec::new();
            let result = {
                let mut scratch = Overlay::new(&*s);
                execute_content(&mut scratch, &p, &mut scratch_events)
                    .map(|()| scratch.into_writes())
            };
            match result {
                Ok(writes) => {
                    for (k, v) in writes {
                        match v {
                            Some(v) => s.put(k, v),
                            None => s.delete(k),
                        }
                    }
                    events.extend(scratch_events);
                    events.push(event::executed(id));
                    ProposalStatus::Passed
                }
                Err(e) => {
                    if let TxError::Internal(_) = e {
                        return Err(e);
                    }
                    p.failure_reason = e.log();
                    events.push(event::execution_failed(id, &p.failure_reason));
                    ProposalStatus::Failed
                }
            }
        } else {
            ProposalStatus::Rejected
        };
        put_proposal(s, &p, Some(ProposalStatus::VotingPeriod));
    }
    Ok(())
}

fn id_at(key: &[u8], at: usize) -> Result<u64, StoreError> {
    key.get(at..)
        .and_then(<[u8]>::first_chunk::<8>)
        .map(|b| u64::from_be_bytes(*b))
        .ok_or_else(|| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "short key".into(),
        })
}
