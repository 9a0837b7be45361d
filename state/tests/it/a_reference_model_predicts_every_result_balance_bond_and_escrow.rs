//! Model-based test of the state machine: random blocks of bank (a multisig account's sends included),
//! staking, governance, NFT and market messages, valid and not (overspends, replayed and skipped nonces, unknown validators, proposals, tokens
//! and jobs, wrong senders and statuses), run through the real application (FinalizeBlock + Commit on a
//! temp-dir RocksDB) and, side by side, through a small reference model written from the design: balances,
//! nonces, fees, bonds, unbonding entries, gov deposits, provider bonds, job escrow, NFT owners and listings.
//! After every block the model's predicted result code of every tx and its whole state must equal the
//! app's, and the supply invariant must hold. A failure prints the shrunk block sequence.
//!
//! `LODE_MODEL_CASES` sets the number of cases (16 by default, so CI on 2 cores stays quick); a long run:
//! `LODE_MODEL_CASES=2000 cargo nextest run --workspace -E 'test(reference_model)'`.
//!
//! The model keeps end-of-block effects it can predict exactly: unbonding completions, deposit-period expiry
//! and voting-period ends (refund or burn, each drawn; the quorum is all bonded stake and the genesis
//! validator never votes, so every tally ends without a quorum), matching of open jobs to the one provider,
//! and decline (re-queue or refund, drawn). Accept and commit deadlines are longer than a run, so provider
//! slashing, passed proposals and compute verdicts stay out of it: the module tests and the differential
//! random workloads cover those.

use std::collections::{BTreeMap, BTreeSet};

use lode_state::{
    error::TxError,
    modules::{
        bank::{self, BankMsg},
        gov::{self, GovError, GovMsg, ProposalContent, ProposalStatus, VoteOption},
        market::{self, error::MarketError, msg::JobSpec, Device, JobStatus, MarketMsg},
        nft::{self, NftError, NftMsg},
        staking::{self, error::StakingError, StakingMsg},
    },
    tx::{
        multisig::{self, MultisigKey},
        sign_msg, Msg,
    },
    Address, Params,
};
use proptest::prelude::*;

use crate::common::*;

/// User accounts 0..USERS; `MS` is a 2-of-3 multisig account of users 1, 2 and 3; `GENESIS` stands for the
/// genesis validator (key 999) as a delegation target.
const USERS: usize = 5;
const MS: usize = USERS;
const GENESIS: usize = USERS + 1;
/// What the multisig account is funded with (by user 4) at setup.
const MS_FUNDS: u128 = 100_000_000;
/// The one account that may register as a provider (others get `UnknownProvider` when they act as one).
const PROV: usize = 3;
/// The NFT collection's creator (royalty receiver).
const CREATOR: usize = 2;
const ROYALTY_BPS: u128 = 500;
const MAX_SUPPLY: u64 = 3;
const DEVICES: u64 = 2;
const PROVIDER_BOND: u128 = 2_000_000;
const UNBONDING_BLOCKS: u64 = 3;
const DEPOSIT_PERIOD: u64 = 4;
/// Shorter than the unbonding period, as genesis requires.
const VOTING_PERIOD: u64 = 2;
const MIN_DEPOSIT: u128 = 1_000;

/// How many cases: `LODE_MODEL_CASES`, else 16.
fn cases() -> u32 {
    std::env::var("LODE_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

/// One message, with every amount concrete (ops that depend on the model are resolved before signing).
#[derive(Debug, Clone)]
enum Op {
    Send {
        from: usize,
        to: usize,
        amount: u128,
    },
    /// A send from the multisig account, signed by the two of its three keys other than `left_out`'s.
    MsSend {
        to: usize,
        amount: u128,
        left_out: usize,
    },
    /// Sends all but `keep` of the sender's balance after the fee (resolved to a `Send`).
    Drain {
        from: usize,
        to: usize,
        keep: u128,
    },
    MultiSend {
        from: usize,
        outputs: Vec<(usize, u128)>,
    },
    CreateValidator {
        from: usize,
        self_bond: u128,
    },
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
    Submit {
        from: usize,
        deposit: u128,
        spend: bool,
    },
    Deposit {
        from: usize,
        id: u64,
        amount: u128,
    },
    Vote {
        from: usize,
        id: u64,
    },
    Mint {
        from: usize,
        token: u8,
        unknown_collection: bool,
    },
    NftTransfer {
        from: usize,
        token: u8,
        to: usize,
    },
    Burn {
        from: usize,
        token: u8,
    },
    List {
        from: usize,
        token: u8,
        price: u128,
    },
    CancelListing {
        from: usize,
        token: u8,
    },
    /// `price: None`: the listed price (resolved at signing time; 1 when unlisted).
    Buy {
        from: usize,
        token: u8,
        price: Option<u128>,
    },
    /// Resolved before signing to a `List` by the owner of the `pick`-th existing token (if any).
    ListOwned {
        pick: usize,
        price: u128,
    },
    /// Resolved before signing to a `Buy` of the `pick`-th listed token (if any) at its price.
    BuyListed {
        from: usize,
        pick: usize,
    },
    /// Resolved before signing to the provider's accept or decline of the `pick`-th matched job (if any).
    Answer {
        pick: usize,
        accept: bool,
    },
    Register {
        from: usize,
        ask: u128,
    },
    AddBond {
        from: usize,
        amount: u128,
    },
    Unregister {
        from: usize,
    },
    Post {
        from: usize,
        price: u128,
    },
    Cancel {
        from: usize,
        consumer: usize,
        seq: u64,
    },
    Accept {
        from: usize,
        consumer: usize,
        seq: u64,
    },
    Decline {
        from: usize,
        consumer: usize,
        seq: u64,
    },
}

impl Op {
    fn signer(&self) -> usize {
        match *self {
            Op::Send { from, .. }
            | Op::Drain { from, .. }
            | Op::MultiSend { from, .. }
            | Op::CreateValidator { from, .. }
            | Op::Delegate { from, .. }
            | Op::Undelegate { from, .. }
            | Op::Submit { from, .. }
            | Op::Deposit { from, .. }
            | Op::Vote { from, .. }
            | Op::Mint { from, .. }
            | Op::NftTransfer { from, .. }
            | Op::Burn { from, .. }
            | Op::List { from, .. }
            | Op::CancelListing { from, .. }
            | Op::Buy { from, .. }
            | Op::Register { from, .. }
            | Op::AddBond { from, .. }
            | Op::Unregister { from }
            | Op::Post { from, .. }
            | Op::Cancel { from, .. }
            | Op::Accept { from, .. }
            | Op::Decline { from, .. }
            | Op::BuyListed { from, .. } => from,
            Op::MsSend { .. } => MS,
            // Resolved to a message with a sender before anyone asks.
            Op::ListOwned { .. } => 0,
            Op::Answer { .. } => PROV,
        }
    }
}

/// The nonce a tx carries: the right one, one already used, or one ahead.
#[derive(Debug, Clone, Copy)]
enum NonceMode {
    Right,
    Replayed,
    Ahead,
}

fn op() -> impl Strategy<Value = Op> {
    let u = 0..USERS;
    // Any account (the multisig one included) as a recipient; any account or the genesis validator as a
    // delegation target.
    let dest = 0..=MS;
    let target = 0..=GENESIS;
    let tok = 0u8..4;
    let seq = 0u64..2;
    // Consumers of the job messages: three accounts, so named jobs often exist.
    let c = 0..3usize;
    prop_oneof![
        4 => (u.clone(), dest.clone(), 1u128..700_000_000).prop_map(|(from, to, amount)| Op::Send { from, to, amount }),
        2 => (dest.clone(), 1u128..120_000_000, 0..3usize).prop_map(|(to, amount, left_out)| Op::MsSend { to, amount, left_out }),
        1 => (u.clone(), dest.clone(), 0u128..3).prop_map(|(from, to, keep)| Op::Drain { from, to, keep }),
        1 => (u.clone(), prop::collection::vec((dest, 1u128..400_000_000), 1..3))
            .prop_map(|(from, outputs)| Op::MultiSend { from, outputs }),
        1 => (u.clone(), 1u128..300_000).prop_map(|(from, self_bond)| Op::CreateValidator { from, self_bond }),
        2 => (u.clone(), target.clone(), 1u128..200_000).prop_map(|(from, to, amount)| Op::Delegate { from, to, amount }),
        2 => (u.clone(), target, 1u128..150_000).prop_map(|(from, to, amount)| Op::Undelegate { from, to, amount }),
        1 => (u.clone(), 0u128..2 * MIN_DEPOSIT, any::<bool>()).prop_map(|(from, deposit, spend)| Op::Submit { from, deposit, spend }),
        1 => (u.clone(), 1u64..4, 1u128..800).prop_map(|(from, id, amount)| Op::Deposit { from, id, amount }),
        1 => (u.clone(), 1u64..4).prop_map(|(from, id)| Op::Vote { from, id }),
        3 => (u.clone(), tok.clone(), prop::bool::weighted(0.1)).prop_map(|(from, token, unknown_collection)| Op::Mint { from, token, unknown_collection }),
        1 => (u.clone(), tok.clone(), u.clone()).prop_map(|(from, token, to)| Op::NftTransfer { from, token, to }),
        1 => (u.clone(), tok.clone()).prop_map(|(from, token)| Op::Burn { from, token }),
        2 => (u.clone(), tok.clone(), 1u128..1_200_000_000).prop_map(|(from, token, price)| Op::List { from, token, price }),
        1 => (u.clone(), tok.clone()).prop_map(|(from, token)| Op::CancelListing { from, token }),
        1 => (u.clone(), tok, prop::option::weighted(0.2, 1u128..1_200_000_000)).prop_map(|(from, token, price)| Op::Buy { from, token, price }),
        2 => (prop::sample::select(vec![PROV, PROV, PROV, 4]), 1u128..300).prop_map(|(from, ask)| Op::Register { from, ask }),
        1 => (prop::sample::select(vec![PROV, PROV, 1]), 1u128..1_000_000).prop_map(|(from, amount)| Op::AddBond { from, amount }),
        1 => prop::sample::select(vec![PROV, PROV, 1]).prop_map(|from| Op::Unregister { from }),
        3 => (c.clone(), 1u128..400).prop_map(|(from, price)| Op::Post { from, price }),
        1 => (u.clone(), c.clone(), seq.clone()).prop_map(|(from, consumer, seq)| Op::Cancel { from, consumer, seq }),
        2 => (0..4usize, 1u128..1_200_000_000).prop_map(|(pick, price)| Op::ListOwned { pick, price }),
        2 => (u, 0..4usize).prop_map(|(from, pick)| Op::BuyListed { from, pick }),
        2 => (0..4usize, any::<bool>()).prop_map(|(pick, accept)| Op::Answer { pick, accept }),
        2 => (prop::sample::select(vec![PROV, PROV, PROV, 0]), c.clone(), seq.clone()).prop_map(|(from, consumer, seq)| Op::Accept { from, consumer, seq }),
        1 => (prop::sample::select(vec![PROV, PROV, 1]), c, seq).prop_map(|(from, consumer, seq)| Op::Decline { from, consumer, seq }),
    ]
}

fn tx() -> impl Strategy<Value = (Op, NonceMode)> {
    (
        op(),
        prop_oneof![
            10 => Just(NonceMode::Right),
            1 => Just(NonceMode::Replayed),
            1 => Just(NonceMode::Ahead),
        ],
    )
}

// ---------------------------------------------------------------------------------------------------------
// The reference model.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PropStatus {
    Deposit,
    Voting,
    Expired,
    Rejected,
}

#[derive(Debug, Clone)]
struct ModelProposal {
    deposits: BTreeMap<usize, u128>,
    total: u128,
    status: PropStatus,
    deposit_end: u64,
    voting_end: u64,
}

#[derive(Debug, Clone)]
struct ModelProvider {
    ask: u128,
    bond: u128,
    in_flight: u64,
    unbonding: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelJobStatus {
    Open,
    Matched,
    Accepted,
    Refunded,
    Cancelled,
}

#[derive(Debug, Clone)]
struct ModelJob {
    price: u128,
    escrow: u128,
    status: ModelJobStatus,
    posted: u64,
    /// Matched to the provider now.
    matched: bool,
    /// The provider declined it: never matched to it again.
    excluded: bool,
}

#[derive(Debug, Clone)]
struct Model {
    height: u64,
    bal: Vec<u128>,
    nonce: Vec<u64>,
    supply: u128,
    /// Fees paid so far (fee collector + treasury).
    fees: u128,
    validators: BTreeSet<usize>,
    delegations: BTreeMap<(usize, usize), u128>,
    /// (completion height, delegator, validator) -> amount.
    unbonding: BTreeMap<(u64, usize, usize), u128>,
    proposals: Vec<ModelProposal>,
    burn_on_expiry: bool,
    burn_on_no_quorum: bool,
    tokens: BTreeMap<u8, usize>,
    listings: BTreeMap<u8, (usize, u128)>,
    minted: u64,
    provider: Option<ModelProvider>,
    jobs: BTreeMap<(usize, u64), ModelJob>,
    job_seq: Vec<u64>,
    max_attempts: u32,
    /// Job ids by (consumer, seq), for matching's tie-break.
    addrs: Vec<Address>,
}

type Res = Result<(), u32>;

fn code(e: impl Into<TxError>) -> u32 {
    e.into().code()
}

fn insufficient() -> u32 {
    code(TxError::InsufficientFunds {
        balance: 0,
        needed: 0,
    })
}

impl Model {
    /// Moves `amount` from user `from` to user `to` (None: a module pool), as `bank::transfer` does.
    fn transfer(&mut self, from: usize, to: Option<usize>, amount: u128) -> Res {
        if self.bal[from] < amount {
            return Err(insufficient());
        }
        self.bal[from] -= amount;
        if let Some(to) = to {
            self.bal[to] += amount;
        }
        Ok(())
    }

    /// The result code of one tx, applying it if it passes the ante steps (fee and nonce), and its messages
    /// only if they all succeed.
    fn apply(&mut self, signer: usize, nonce: u64, op: &Op) -> u32 {
        if nonce < self.nonce[signer] {
            return code(TxError::NonceReplayed { got: 0, want: 0 });
        }
        if nonce > self.nonce[signer] {
            return code(TxError::NonceGap { got: 0, want: 0 });
        }
        if self.bal[signer] < MODULE_FEE {
            return insufficient();
        }
        self.bal[signer] -= MODULE_FEE;
        self.nonce[signer] += 1;
        self.fees += MODULE_FEE;
        let mut scratch = self.clone();
        match scratch.execute(op) {
            Ok(()) => {
                *self = scratch;
                0
            }
            Err(c) => c,
        }
    }

    fn execute(&mut self, op: &Op) -> Res {
        let h = self.height;
        match *op {
            Op::Send { from, to, amount } => self.transfer(from, Some(to), amount),
            Op::MsSend { to, amount, .. } => self.transfer(MS, Some(to), amount),
            Op::Drain { .. } | Op::ListOwned { .. } | Op::BuyListed { .. } | Op::Answer { .. } => {
                unreachable!("resolved before signing")
            }
            Op::MultiSend { from, ref outputs } => {
                for &(to, amount) in outputs {
                    self.transfer(from, Some(to), amount)?;
                }
                Ok(())
            }
            Op::CreateValidator { from, self_bond } => {
                if self.validators.contains(&from) {
                    return Err(code(StakingError::ValidatorExists(String::new())));
                }
                self.transfer(from, None, self_bond)?;
                self.validators.insert(from);
                *self.delegations.entry((from, from)).or_default() += self_bond;
                Ok(())
            }
            Op::Delegate { from, to, amount } => {
                if !self.validators.contains(&to) {
                    return Err(code(StakingError::UnknownValidator(String::new())));
                }
                self.transfer(from, None, amount)?;
                *self.delegations.entry((from, to)).or_default() += amount;
                Ok(())
            }
            Op::Undelegate { from, to, amount } => {
                if !self.validators.contains(&to) {
                    return Err(code(StakingError::UnknownValidator(String::new())));
                }
                let d = self.delegations.entry((from, to)).or_default();
                if *d < amount {
                    return Err(code(StakingError::InsufficientBond {
                        bonded: 0,
                        needed: 0,
                    }));
                }
                *d -= amount;
                *self
                    .unbonding
                    .entry((h + UNBONDING_BLOCKS, from, to))
                    .or_default() += amount;
                Ok(())
            }
            Op::Submit { from, deposit, .. } => {
                let mut p = ModelProposal {
                    deposits: BTreeMap::new(),
                    total: 0,
                    status: PropStatus::Deposit,
                    deposit_end: h + DEPOSIT_PERIOD,
                    voting_end: 0,
                };
                if deposit > 0 {
                    self.transfer(from, None, deposit)?;
                    *p.deposits.entry(from).or_default() += deposit;
                    p.total += deposit;
                }
                if p.total >= MIN_DEPOSIT {
                    p.status = PropStatus::Voting;
                    p.voting_end = h + VOTING_PERIOD;
                }
                self.proposals.push(p);
                Ok(())
            }
            Op::Deposit { from, id, amount } => {
                let Some(mut p) = self.proposal(id).cloned() else {
                    return Err(code(GovError::UnknownProposal(id)));
                };
                if p.status != PropStatus::Deposit {
                    return Err(code(GovError::NotInDepositPeriod(id)));
                }
                self.transfer(from, None, amount)?;
                *p.deposits.entry(from).or_default() += amount;
                p.total += amount;
                if p.total >= MIN_DEPOSIT {
                    p.status = PropStatus::Voting;
                    p.voting_end = h + VOTING_PERIOD;
                }
                self.proposals[id as usize - 1] = p;
                Ok(())
            }
            Op::Vote { id, .. } => match self.proposal(id) {
                None => Err(code(GovError::UnknownProposal(id))),
                Some(p) if p.status != PropStatus::Voting => {
                    Err(code(GovError::NotInVotingPeriod(id)))
                }
                Some(_) => Ok(()),
            },
            Op::Mint {
                from,
                token,
                unknown_collection,
            } => {
                if unknown_collection {
                    return Err(code(NftError::UnknownCollection(String::new())));
                }
                if self.tokens.contains_key(&token) {
                    return Err(code(NftError::TokenExists {
                        collection: String::new(),
                        token: String::new(),
                    }));
                }
                if self.minted >= MAX_SUPPLY {
                    return Err(code(NftError::MaxSupplyReached(String::new())));
                }
                self.minted += 1;
                self.tokens.insert(token, from);
                Ok(())
            }
            Op::NftTransfer { from, token, to } => {
                let owner = self.token(token)?;
                if owner != from {
                    return Err(code(NftError::NotAuthorized(String::new())));
                }
                self.tokens.insert(token, to);
                self.listings.remove(&token);
                Ok(())
            }
            Op::Burn { from, token } => {
                self.owned(token, from)?;
                self.tokens.remove(&token);
                self.listings.remove(&token);
                Ok(())
            }
            Op::List { from, token, price } => {
                self.owned(token, from)?;
                self.listings.insert(token, (from, price));
                Ok(())
            }
            Op::CancelListing { from, token } => {
                self.owned(token, from)?;
                if self.listings.remove(&token).is_none() {
                    return Err(code(NftError::NotListed));
                }
                Ok(())
            }
            Op::Buy { from, token, price } => {
                self.token(token)?;
                let Some(&(seller, listed)) = self.listings.get(&token) else {
                    return Err(code(NftError::NotListed));
                };
                let price = price.unwrap_or(listed);
                if price != listed {
                    return Err(code(NftError::PriceMismatch {
                        listed: 0,
                        expected: 0,
                    }));
                }
                if from == seller {
                    return Err(code(NftError::SelfPurchase));
                }
                let royalty = listed * ROYALTY_BPS / 10_000;
                if royalty > 0 {
                    self.transfer(from, Some(CREATOR), royalty)?;
                }
                self.transfer(from, Some(seller), listed - royalty)?;
                self.tokens.insert(token, from);
                self.listings.remove(&token);
                Ok(())
            }
            Op::Register { from, ask } => {
                if from == PROV && self.provider.is_some() {
                    return Err(code(MarketError::ProviderExists(String::new())));
                }
                if from != PROV {
                    // The other would-be provider offers a bond below the minimum (see `to_msg`).
                    return Err(code(MarketError::BondTooLow {
                        bond: 0,
                        min: 0,
                        devices: 0,
                    }));
                }
                self.transfer(from, None, PROVIDER_BOND)?;
                self.provider = Some(ModelProvider {
                    ask,
                    bond: PROVIDER_BOND,
                    in_flight: 0,
                    unbonding: false,
                });
                Ok(())
            }
            Op::AddBond { from, amount } => {
                self.active_provider(from)?;
                self.transfer(from, None, amount)?;
                if let Some(p) = self.provider.as_mut() {
                    p.bond += amount;
                }
                Ok(())
            }
            Op::Unregister { from } => {
                let in_flight = self.active_provider(from)?.in_flight;
                if in_flight > 0 {
                    return Err(code(MarketError::JobsInFlight(0)));
                }
                if let Some(p) = self.provider.as_mut() {
                    p.unbonding = true;
                }
                Ok(())
            }
            Op::Post { from, price } => {
                // 16×16×16 is one compute unit; the protocol fee is 1 per CU.
                let escrow = price + 1;
                self.transfer(from, None, escrow)?;
                let seq = self.job_seq[from];
                self.job_seq[from] += 1;
                self.jobs.insert(
                    (from, seq),
                    ModelJob {
                        price,
                        escrow,
                        status: ModelJobStatus::Open,
                        posted: h,
                        matched: false,
                        excluded: false,
                    },
                );
                Ok(())
            }
            Op::Cancel {
                from,
                consumer,
                seq,
            } => {
                let j = self.job(consumer, seq)?;
                if consumer != from {
                    return Err(code(MarketError::NotConsumer(String::new())));
                }
                if j.status != ModelJobStatus::Open {
                    return Err(wrong_status());
                }
                self.refund(consumer, seq, ModelJobStatus::Cancelled);
                Ok(())
            }
            Op::Accept {
                from,
                consumer,
                seq,
            } => {
                self.providers_job(from, consumer, seq)?;
                if let Some(j) = self.jobs.get_mut(&(consumer, seq)) {
                    j.status = ModelJobStatus::Accepted;
                }
                Ok(())
            }
            Op::Decline {
                from,
                consumer,
                seq,
            } => {
                self.providers_job(from, consumer, seq)?;
                if let Some(p) = self.provider.as_mut() {
                    p.in_flight -= 1;
                }
                let attempts_left = self.max_attempts > 1;
                if let Some(j) = self.jobs.get_mut(&(consumer, seq)) {
                    j.matched = false;
                    j.excluded = true;
                    j.status = ModelJobStatus::Open;
                }
                if !attempts_left {
                    self.refund(consumer, seq, ModelJobStatus::Refunded);
                }
                Ok(())
            }
        }
    }

    fn proposal(&self, id: u64) -> Option<&ModelProposal> {
        id.checked_sub(1)
            .and_then(|i| self.proposals.get(usize::try_from(i).ok()?))
    }

    fn token(&self, token: u8) -> Result<usize, u32> {
        self.tokens.get(&token).copied().ok_or_else(|| {
            code(NftError::UnknownToken {
                collection: String::new(),
                token: String::new(),
            })
        })
    }

    fn owned(&self, token: u8, who: usize) -> Res {
        if self.token(token)? != who {
            return Err(code(NftError::NotOwner(String::new())));
        }
        Ok(())
    }

    fn active_provider(&self, from: usize) -> Result<&ModelProvider, u32> {
        match self.provider.as_ref().filter(|_| from == PROV) {
            None => Err(code(MarketError::UnknownProvider(String::new()))),
            Some(p) if p.unbonding => Err(code(MarketError::ProviderUnbonding)),
            Some(p) => Ok(p),
        }
    }

    fn job(&self, consumer: usize, seq: u64) -> Result<&ModelJob, u32> {
        self.jobs
            .get(&(consumer, seq))
            .ok_or_else(|| code(MarketError::UnknownJob(String::new())))
    }

    fn providers_job(&self, from: usize, consumer: usize, seq: u64) -> Res {
        let j = self.job(consumer, seq)?;
        if !(j.matched && from == PROV) {
            return Err(code(MarketError::NotProvider(String::new())));
        }
        if j.status != ModelJobStatus::Matched {
            return Err(wrong_status());
        }
        Ok(())
    }

    fn refund(&mut self, consumer: usize, seq: u64, status: ModelJobStatus) {
        if let Some(j) = self.jobs.get_mut(&(consumer, seq)) {
            self.bal[consumer] += j.escrow;
            j.escrow = 0;
            j.status = status;
            j.matched = false;
        }
    }

    /// What the end of block `self.height` does: unbonding completions, deposit expiry, matching.
    fn end_block(&mut self) {
        let h = self.height;
        let done: Vec<_> = self
            .unbonding
            .range((h, 0, 0)..(h + 1, 0, 0))
            .map(|(k, v)| (*k, *v))
            .collect();
        for ((_, del, _), amount) in done.iter().copied() {
            self.bal[del] += amount;
        }
        for (k, _) in done {
            self.unbonding.remove(&k);
        }
        // Deposit periods that end without the minimum deposit, then voting periods: the quorum is all
        // bonded stake and the genesis validator never votes, so every tally ends without a quorum.
        for p in &mut self.proposals {
            let (burn, status) = if p.status == PropStatus::Deposit && p.deposit_end == h {
                (self.burn_on_expiry, PropStatus::Expired)
            } else if p.status == PropStatus::Voting && p.voting_end == h {
                (self.burn_on_no_quorum, PropStatus::Rejected)
            } else {
                continue;
            };
            for (&who, &amount) in &p.deposits {
                if burn {
                    self.supply -= amount;
                } else {
                    self.bal[who] += amount;
                }
            }
            p.deposits.clear();
            p.status = status;
        }
        // Matching: open jobs by (max price desc, posted height, id), to the provider while it has a free
        // device and its ask is within the price.
        let Some(p) = self.provider.as_mut().filter(|p| !p.unbonding) else {
            return;
        };
        let mut open: Vec<_> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.status == ModelJobStatus::Open && !j.excluded && j.price >= p.ask)
            .map(|(&(c, s), j)| {
                (
                    std::cmp::Reverse(j.price),
                    j.posted,
                    market::job_id(&self.addrs[c], s),
                    (c, s),
                )
            })
            .collect();
        open.sort();
        for (.., key) in open {
            if p.in_flight >= DEVICES {
                break;
            }
            p.in_flight += 1;
            if let Some(j) = self.jobs.get_mut(&key) {
                j.status = ModelJobStatus::Matched;
                j.matched = true;
            }
        }
    }
}

fn wrong_status() -> u32 {
    code(MarketError::WrongJobStatus {
        actual: "",
        expected: "",
    })
}

// ---------------------------------------------------------------------------------------------------------
// Driving the app.

fn params(burn_on_expiry: bool, burn_on_no_quorum: bool, max_attempts: u32) -> Params {
    let mut p = module_params();
    p.staking.unbonding_blocks = UNBONDING_BLOCKS;
    p.gov.deposit_period_blocks = DEPOSIT_PERIOD;
    p.gov.voting_period_blocks = VOTING_PERIOD;
    p.gov.quorum_bps = 10_000;
    p.gov.burn_deposit_on_no_quorum = burn_on_no_quorum;
    p.gov.min_deposit = MIN_DEPOSIT;
    p.gov.burn_deposit_on_expiry = burn_on_expiry;
    p.market.accept_blocks = 10_000;
    p.market.max_attempts = max_attempts;
    p
}

/// Validators 0 and 1 (self-bond 100 000 each) and an open-mint collection of account 2 with a 5% royalty
/// and at most three tokens; the model of that state, read back where it is the genesis's doing (balances).
fn setup(burn_on_expiry: bool, burn_on_no_quorum: bool, max_attempts: u32) -> (Chain, Model) {
    let mut chain = Chain::with_params(
        USERS as u64,
        params(burn_on_expiry, burn_on_no_quorum, max_attempts),
    );
    for i in 0..2 {
        let operator = chain.addr(i);
        chain.ok(
            i,
            Msg::Staking(StakingMsg::CreateValidator {
                operator,
                consensus_key: key(500 + i as u64).verification_key().to_bytes(),
                moniker: "v".into(),
                self_bond: 100_000,
            }),
        );
    }
    let ms = multisig_key(&chain).address();
    let funder = chain.addr(4);
    chain.ok(
        4,
        Msg::Bank(BankMsg::Send {
            from: funder,
            to: ms,
            amount: MS_FUNDS,
        }),
    );
    let creator = chain.addr(CREATOR);
    chain.ok(
        CREATOR,
        Msg::Nft(NftMsg::CreateCollection {
            creator,
            id: "art".into(),
            name: "Art".into(),
            symbol: "ART".into(),
            uri: String::new(),
            royalty_bps: ROYALTY_BPS as u32,
            max_supply: Some(MAX_SUPPLY),
            open_mint: true,
        }),
    );
    let s = chain.app.store();
    let model = Model {
        height: chain.height,
        bal: (0..=MS)
            .map(|i| chain.balance(&target(&chain, i)))
            .collect(),
        nonce: (0..=MS)
            .map(|i| chain.account(&target(&chain, i)).nonce)
            .collect(),
        supply: bank::supply(s).expect("supply"),
        fees: pools(&chain),
        validators: [0, 1, GENESIS].into_iter().collect(),
        delegations: [((0, 0), 100_000), ((1, 1), 100_000)].into_iter().collect(),
        unbonding: BTreeMap::new(),
        proposals: Vec::new(),
        burn_on_expiry,
        burn_on_no_quorum,
        tokens: BTreeMap::new(),
        listings: BTreeMap::new(),
        minted: 0,
        provider: None,
        jobs: BTreeMap::new(),
        job_seq: vec![0; USERS],
        max_attempts,
        addrs: (0..USERS).map(|i| chain.addr(i)).collect(),
    };
    (chain, model)
}

/// The fee pools' balance (fee collector and treasury).
fn pools(chain: &Chain) -> u128 {
    chain.balance(&bank::fee_collector()) + chain.balance(&gov::treasury())
}

/// The 2-of-3 multisig key of users 1, 2 and 3.
fn multisig_key(chain: &Chain) -> MultisigKey {
    let keys = (1..4)
        .map(|i| chain.keys[i].verification_key().to_bytes())
        .collect();
    MultisigKey::new(2, keys).expect("multisig key")
}

/// The address of account `i`: a user, the multisig account or the genesis validator.
fn target(chain: &Chain, i: usize) -> Address {
    match i {
        GENESIS => addr(&key(999)),
        MS => multisig_key(chain).address(),
        _ => chain.addr(i),
    }
}

/// A multisig tx from `MS`, signed by two of users 1, 2, 3 (all but `left_out`).
fn sign_multisig(chain: &Chain, nonce: u64, left_out: usize, msg: Msg) -> Vec<u8> {
    let mk = multisig_key(chain);
    let mut doc = multisig::unsigned_doc(CHAIN_ID, &mk, nonce, MODULE_FEE, &[msg], "", 0);
    for i in (1..4).filter(|i| *i != 1 + left_out) {
        let sig = multisig::sign(&doc, &chain.keys[i]);
        multisig::add_signature(&mut doc, &chain.keys[i].verification_key().to_bytes(), &sig)
            .expect("add signature");
    }
    multisig::assemble(&doc).expect("assemble")
}

/// Resolves the ops that depend on the model's state (a drain's amount, a buy at the listed price, the
/// owner of a token, a matched job), so that valid messages are common enough to matter.
fn resolve(model: &Model, op: &Op) -> Op {
    match *op {
        Op::Drain { from, to, keep } => Op::Send {
            from,
            to,
            amount: model.bal[from]
                .saturating_sub(MODULE_FEE)
                .saturating_sub(keep)
                .max(1),
        },
        Op::Buy {
            from,
            token,
            price: None,
        } => Op::Buy {
            from,
            token,
            price: Some(model.listings.get(&token).map_or(1, |l| l.1)),
        },
        Op::ListOwned { pick, price } => match model.tokens.iter().nth(pick % 4) {
            Some((&token, &from)) => Op::List { from, token, price },
            None => Op::List {
                from: 0,
                token: pick as u8,
                price,
            },
        },
        Op::BuyListed { from, pick } => {
            let listed: Vec<_> = model.listings.iter().collect();
            match listed.get(pick % listed.len().max(1)) {
                Some((&token, &(_, price))) => Op::Buy {
                    from,
                    token,
                    price: Some(price),
                },
                None => Op::Buy {
                    from,
                    token: pick as u8,
                    price: Some(1),
                },
            }
        }
        Op::Answer { pick, accept } => {
            let matched: Vec<_> = model
                .jobs
                .iter()
                .filter(|(_, j)| j.status == ModelJobStatus::Matched)
                .map(|(k, _)| *k)
                .collect();
            let (consumer, seq) = matched
                .get(pick % matched.len().max(1))
                .copied()
                .unwrap_or((0, 0));
            if accept {
                Op::Accept {
                    from: PROV,
                    consumer,
                    seq,
                }
            } else {
                Op::Decline {
                    from: PROV,
                    consumer,
                    seq,
                }
            }
        }
        _ => op.clone(),
    }
}

fn to_msg(chain: &Chain, op: &Op) -> Msg {
    let a = |i: usize| chain.addr(i);
    let tok = |t: u8| format!("t{t}");
    let id = |c: usize, s: u64| market::job_id(&chain.addr(c), s);
    match *op {
        Op::Send { from, to, amount } => Msg::Bank(BankMsg::Send {
            from: a(from),
            to: target(chain, to),
            amount,
        }),
        Op::MsSend { to, amount, .. } => Msg::Bank(BankMsg::Send {
            from: target(chain, MS),
            to: target(chain, to),
            amount,
        }),
        Op::Drain { .. } | Op::ListOwned { .. } | Op::BuyListed { .. } | Op::Answer { .. } => {
            unreachable!("resolved before signing")
        }
        Op::MultiSend { from, ref outputs } => Msg::Bank(BankMsg::MultiSend {
            from: a(from),
            outputs: outputs
                .iter()
                .map(|&(to, x)| (target(chain, to), x))
                .collect(),
        }),
        Op::CreateValidator { from, self_bond } => Msg::Staking(StakingMsg::CreateValidator {
            operator: a(from),
            consensus_key: key(500 + from as u64).verification_key().to_bytes(),
            moniker: "v".into(),
            self_bond,
        }),
        Op::Delegate { from, to, amount } => Msg::Staking(StakingMsg::Delegate {
            delegator: a(from),
            validator: target(chain, to),
            amount,
        }),
        Op::Undelegate { from, to, amount } => Msg::Staking(StakingMsg::Undelegate {
            delegator: a(from),
            validator: target(chain, to),
            amount,
        }),
        Op::Submit {
            from,
            deposit,
            spend,
        } => Msg::Gov(GovMsg::SubmitProposal {
            proposer: a(from),
            title: "p".into(),
            description: String::new(),
            content: if spend {
                ProposalContent::TreasurySpend {
                    recipient: a(from),
                    amount: 1_000,
                }
            } else {
                ProposalContent::ParamChange(vec![("gov.quorum_bps".into(), "3000".into())])
            },
            initial_deposit: deposit,
        }),
        Op::Deposit { from, id, amount } => Msg::Gov(GovMsg::Deposit {
            depositor: a(from),
            proposal_id: id,
            amount,
        }),
        Op::Vote { from, id } => Msg::Gov(GovMsg::vote(a(from), id, VoteOption::Yes)),
        Op::Mint {
            from,
            token,
            unknown_collection,
        } => Msg::Nft(NftMsg::Mint {
            minter: a(from),
            collection: if unknown_collection { "nope" } else { "art" }.into(),
            token_id: tok(token),
            owner: a(from),
            uri: String::new(),
        }),
        Op::NftTransfer { from, token, to } => Msg::Nft(NftMsg::Transfer {
            sender: a(from),
            collection: "art".into(),
            token_id: tok(token),
            to: a(to),
        }),
        Op::Burn { from, token } => Msg::Nft(NftMsg::Burn {
            owner: a(from),
            collection: "art".into(),
            token_id: tok(token),
        }),
        Op::List { from, token, price } => Msg::Nft(NftMsg::List {
            seller: a(from),
            collection: "art".into(),
            token_id: tok(token),
            price,
        }),
        Op::CancelListing { from, token } => Msg::Nft(NftMsg::CancelListing {
            seller: a(from),
            collection: "art".into(),
            token_id: tok(token),
        }),
        Op::Buy { from, token, price } => Msg::Nft(NftMsg::Buy {
            buyer: a(from),
            collection: "art".into(),
            token_id: tok(token),
            price: price.unwrap_or(1),
        }),
        Op::Register { from, ask } => Msg::Market(MarketMsg::RegisterProvider {
            provider: a(from),
            moniker: String::new(),
            devices: vec![Device {
                model: "g".into(),
                memory_mib: 1,
                count: DEVICES as u32,
            }],
            ask_per_cu: ask,
            max_job_cu: 10,
            // The second would-be provider offers a bond below the minimum for its devices.
            bond: if from == PROV {
                PROVIDER_BOND
            } else {
                PROVIDER_BOND - 1
            },
        }),
        Op::AddBond { from, amount } => Msg::Market(MarketMsg::UpdateProvider {
            provider: a(from),
            ask_per_cu: None,
            devices: None,
            max_job_cu: None,
            add_bond: amount,
            moniker: None,
        }),
        Op::Unregister { from } => Msg::Market(MarketMsg::UnregisterProvider { provider: a(from) }),
        Op::Post { from, price } => Msg::Market(MarketMsg::PostJob {
            consumer: a(from),
            spec: JobSpec {
                m: 16,
                k: 16,
                n: 16,
                a_root: [1; 32],
                b_root: [2; 32],
                tile: 4,
                samples: 16,
                max_price_per_cu: price,
                deadline_blocks: 10_000,
                min_reputation: 0,
                refund_on_failure: false,
            },
        }),
        Op::Cancel {
            from,
            consumer,
            seq,
        } => Msg::Market(MarketMsg::CancelJob {
            consumer: a(from),
            job: id(consumer, seq),
        }),
        Op::Accept {
            from,
            consumer,
            seq,
        } => Msg::Market(MarketMsg::AcceptJob {
            provider: a(from),
            job: id(consumer, seq),
        }),
        Op::Decline {
            from,
            consumer,
            seq,
        } => Msg::Market(MarketMsg::DeclineJob {
            provider: a(from),
            job: id(consumer, seq),
            reason: "busy".into(),
        }),
    }
}

/// Every part of the app's state the model predicts, read from the app in the model's shape.
fn compare(chain: &Chain, m: &Model) -> Result<(), TestCaseError> {
    let s = chain.app.store();
    let ms = target(chain, MS);
    prop_assert_eq!(
        chain.balance(&ms),
        m.bal[MS],
        "balance of the multisig account"
    );
    prop_assert_eq!(
        chain.account(&ms).nonce,
        m.nonce[MS],
        "nonce of the multisig account"
    );
    for i in 0..USERS {
        prop_assert_eq!(chain.balance(&chain.addr(i)), m.bal[i], "balance of {}", i);
        prop_assert_eq!(chain.nonce(i), m.nonce[i], "nonce of {}", i);
        for v in 0..=GENESIS {
            let d = staking::delegation(s, &chain.addr(i), &target(chain, v)).expect("delegation");
            let want = m.delegations.get(&(i, v)).copied().unwrap_or(0);
            prop_assert_eq!(d, want, "delegation {} -> {}", i, v);
        }
    }
    for v in 0..USERS {
        let is = staking::validator(s, &chain.addr(v))
            .expect("validator")
            .is_some();
        prop_assert_eq!(is, m.validators.contains(&v), "validator {}", v);
    }
    let index: BTreeMap<Address, usize> = (0..=GENESIS).map(|i| (target(chain, i), i)).collect();
    let unbonding: BTreeMap<(u64, usize, usize), u128> = staking::unbonding_entries(s)
        .expect("unbonding")
        .into_iter()
        .map(|(h, d, v, a)| ((h, index[&d], index[&v]), a))
        .collect();
    prop_assert_eq!(&unbonding, &m.unbonding, "unbonding entries");
    prop_assert_eq!(bank::supply(s).expect("supply"), m.supply, "supply");
    prop_assert_eq!(pools(chain), m.fees, "fee pools");
    // Proposals (one past the last, too: it must not exist).
    for id in 1..=m.proposals.len() as u64 + 1 {
        let got = gov::proposal(s, id).expect("proposal");
        let Some(want) = m.proposal(id) else {
            prop_assert!(got.is_none(), "proposal {} exists", id);
            continue;
        };
        let Some(got) = got else {
            return Err(TestCaseError::fail(format!("proposal {id} is missing")));
        };
        let status = match want.status {
            PropStatus::Deposit => ProposalStatus::DepositPeriod,
            PropStatus::Voting => ProposalStatus::VotingPeriod,
            PropStatus::Expired => ProposalStatus::Expired,
            PropStatus::Rejected => ProposalStatus::Rejected,
        };
        prop_assert_eq!(got.status, status, "proposal {} status", id);
        let deposits: BTreeMap<usize, u128> = gov::deposits(s, id)
            .expect("deposits")
            .into_iter()
            .map(|(a, x)| (index[&a], x))
            .collect();
        prop_assert_eq!(&deposits, &want.deposits, "proposal {} deposits", id);
    }
    let open_deposits: u128 = m.proposals.iter().flat_map(|p| p.deposits.values()).sum();
    prop_assert_eq!(chain.balance(&gov::deposits_account()), open_deposits);
    // NFTs.
    for t in 0u8..4 {
        let c = "art";
        let tid = format!("t{t}");
        let owner = nft::token(s, c, &tid)
            .expect("token")
            .map(|k| index[&k.owner]);
        prop_assert_eq!(owner, m.tokens.get(&t).copied(), "owner of {}", tid);
        let listing = nft::listing(s, c, &tid)
            .expect("listing")
            .map(|l| (index[&l.seller], l.price));
        prop_assert_eq!(listing, m.listings.get(&t).copied(), "listing of {}", tid);
    }
    // Market: the provider's bond and jobs, every job's status and escrow.
    let prov = market::provider(s, &chain.addr(PROV)).expect("provider");
    prop_assert_eq!(
        prov.as_ref().map(|p| (
            p.bond,
            u64::from(p.jobs_in_flight),
            p.release_height.is_some()
        )),
        m.provider
            .as_ref()
            .map(|p| (p.bond, p.in_flight, p.unbonding)),
        "provider"
    );
    prop_assert!(market::provider(s, &chain.addr(4))
        .expect("provider")
        .is_none());
    let mut escrowed = 0;
    for c in 0..USERS {
        for seq in 0..=m.job_seq[c] {
            let id = market::job_id(&chain.addr(c), seq);
            let got = market::job(s, &id).expect("job");
            let Some(want) = m.jobs.get(&(c, seq)) else {
                prop_assert!(got.is_none(), "job {}/{} exists", c, seq);
                continue;
            };
            let Some(got) = got else {
                return Err(TestCaseError::fail(format!("job {c}/{seq} is missing")));
            };
            let status = match want.status {
                ModelJobStatus::Open => JobStatus::Open,
                ModelJobStatus::Matched => JobStatus::Matched,
                ModelJobStatus::Accepted => JobStatus::Accepted,
                ModelJobStatus::Refunded => JobStatus::Refunded,
                ModelJobStatus::Cancelled => JobStatus::Cancelled,
            };
            prop_assert_eq!(got.status, status, "job {}/{} status", c, seq);
            prop_assert_eq!(
                market::escrow(s, &id).expect("escrow"),
                want.escrow,
                "job {}/{} escrow",
                c,
                seq
            );
            escrowed += want.escrow;
        }
    }
    prop_assert_eq!(
        chain.balance(&market::escrow_pool()),
        escrowed,
        "escrow pool"
    );
    let bonds = m.provider.as_ref().map_or(0, |p| p.bond);
    prop_assert_eq!(chain.balance(&market::bond_pool()), bonds, "bond pool");
    // The supply invariant, and every module's own invariants.
    let (sum, supply) = chain.supply_check();
    prop_assert_eq!(sum, supply, "supply != sum of balances");
    chain.check_invariants();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 4096, ..ProptestConfig::default() })]

    #[test]
    fn a_reference_model_predicts_every_result_and_balance(
        burn_on_expiry in any::<bool>(),
        burn_on_no_quorum in any::<bool>(),
        max_attempts in 1u32..3,
        blocks in prop::collection::vec(prop::collection::vec(tx(), 0..10), 1..16),
    ) {
        let (mut chain, mut model) = setup(burn_on_expiry, burn_on_no_quorum, max_attempts);
        compare(&chain, &model)?;
        for block in &blocks {
            model.height = chain.height + 1;
            let mut txs = Vec::with_capacity(block.len());
            let mut want = Vec::with_capacity(block.len());
            for (op, mode) in block {
                let op = resolve(&model, op);
                let signer = op.signer();
                let right = model.nonce[signer];
                let nonce = match mode {
                    NonceMode::Right => right,
                    NonceMode::Replayed => right.saturating_sub(1),
                    NonceMode::Ahead => right + 1,
                };
                let msg = to_msg(&chain, &op);
                txs.push(match op {
                    Op::MsSend { left_out, .. } => sign_multisig(&chain, nonce, left_out, msg),
                    _ => sign_msg(CHAIN_ID, &chain.keys[signer], nonce, MODULE_FEE, msg),
                });
                want.push(model.apply(signer, nonce, &op));
            }
            let (results, _) = chain.block(txs);
            let got: Vec<u32> = results.iter().map(|r| r.code).collect();
            let logs: Vec<&str> = results.iter().map(|r| r.log.as_str()).collect();
            prop_assert_eq!(got, want, "result codes at height {}: {:?}", chain.height, logs);
            model.end_block();
            compare(&chain, &model)?;
        }
    }
}
