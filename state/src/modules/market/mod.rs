//! market: GPU providers with bonded offers, jobs with escrow, deterministic matching at the end of every
//! block, accept/decline, and the money side of a job's end (settlement, holdback, slashing, refunds),
//! which the `compute` module triggers from its verdicts.
//!
//! # Money
//!
//! Three module accounts hold the market's tokens: the escrow pool (every job's `escrow` entry), the
//! provider bond pool (every provider's `bond`) and the holdback pool (every settled job's `holdback`
//! entry while its fraud window is open). Their invariants are checked after every block. A job escrows
//! `max_price_per_cu × CU + protocol_fee_per_cu × CU` when posted; at settlement the provider is paid its
//! ask × CU (minus the holdback), the fee is burned and the consumer gets the rest back.
//!
//! # Matching
//!
//! At the end of every block in which something that can create a match changed (a job posted or
//! re-queued, a provider registered, freed or repriced), the open jobs are taken in key order of
//! `market/open/` (max price descending, then posting height, then job id) and each goes to the first
//! eligible provider in key order of `market/avail/` (ask ascending, then reputation descending, then
//! address): ask ≤ the job's max price, a free device, `max_job_cu` ≥ the job's CU, reputation ≥ the
//! job's minimum, bond ≥ `min_bond_per_device` × devices, and not excluded by an earlier failure or
//! decline. Both orders are key orders of state, so the result depends only on the set of open orders,
//! never on the order of txs in the block. An ask change waits in `market/pending_ask/` and is applied
//! after matching, so it counts from the next block. Cost: one scan of the open jobs and one of the
//! available providers, O(J log J + J·P') where P' is the providers a job skips.

pub mod error;
pub mod event;
mod matching;
pub mod msg;
pub mod params;
pub mod query;
pub mod state_key;

use std::num::NonZeroU64;

use borsh::{BorshDeserialize, BorshSerialize};
use lode_proto::tx::v1::msg::Sum;
use sha2::{Digest, Sha256};

use crate::{
    address::Address,
    amount::mul_div_floor,
    codec::{decode, encode, get_u128, put_u128},
    error::{CodeRange, ModuleError, StoreError, TxError},
    event::Event,
    module::{BlockCtx, Decoded, Invariant, Module, Side},
    modules::{bank, gov, nft},
    params::Params,
    query::{QueryError, QueryRead},
    store::{StateRead, StateWrite},
};

pub use error::MarketError;
pub use msg::MarketMsg;
pub use params::{MarketParams, MAX_REPUTATION};

/// The market module.
#[derive(Debug)]
pub struct Market;

impl Module for Market {
    const NAME: &'static str = "market";
    const CODES: CodeRange = error::CODES;
    type Msg = MarketMsg;

    fn decode(sum: Sum) -> Decoded<MarketMsg> {
        match sum {
            sum @ (Sum::MarketRegisterProvider(_)
            | Sum::MarketUpdateProvider(_)
            | Sum::MarketUnregisterProvider(_)
            | Sum::MarketPostJob(_)
            | Sum::MarketCancelJob(_)
            | Sum::MarketAcceptJob(_)
            | Sum::MarketDeclineJob(_)) => Decoded::Mine(sum.try_into()),
            other => Decoded::NotMine(other),
        }
    }

    fn encode(m: &MarketMsg) -> Sum {
        m.into()
    }

    fn sender(m: &MarketMsg) -> &Address {
        m.sender()
    }

    fn gas(m: &MarketMsg, p: &Params) -> Option<u64> {
        Some(m.gas(p))
    }

    fn check_stateless(m: &MarketMsg, p: &Params) -> Result<(), TxError> {
        msg::check_stateless(m, p)
    }

    fn execute<S: StateWrite + ?Sized>(
        s: &mut S,
        m: &MarketMsg,
        ctx: BlockCtx<'_>,
        events: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        msg::execute(s, m, ctx, events)
    }

    fn end_block<S: StateWrite + ?Sized>(
        s: &mut S,
        ctx: BlockCtx<'_>,
        events: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        end_block(s, ctx, events)
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
                name: "market/escrow-pool",
                sides: escrow_sides,
            },
            Invariant {
                name: "market/bond-pool",
                sides: bond_sides,
            },
            Invariant {
                name: "market/holdback-pool",
                sides: holdback_sides,
            },
        ]
    }

    fn error_examples() -> Vec<TxError> {
        MarketError::examples()
            .into_iter()
            .map(TxError::from)
            .collect()
    }
}

/// The module account holding every job's escrow.
pub fn escrow_pool() -> Address {
    Address::module("market_escrow")
}

/// The module account holding every provider's bond.
pub fn bond_pool() -> Address {
    Address::module("market_bonds")
}

/// The module account holding settled jobs' held-back payments until their fraud windows close.
pub fn holdback_pool() -> Address {
    Address::module("market_holdback")
}

/// A kind of device and how many a provider offers.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Device {
    pub model: String,
    pub memory_mib: u32,
    pub count: u32,
}

/// A provider's offer and record.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Provider {
    pub moniker: String,
    pub devices: Vec<Device>,
    pub ask_per_cu: u128,
    pub max_job_cu: u64,
    pub bond: u128,
    pub reputation: u32,
    pub jobs_in_flight: u32,
    /// Set once unregistered: the height the bond is released.
    pub release_height: Option<u64>,
    pub registered_height: u64,
    pub jobs_settled: u64,
    pub jobs_failed: u64,
}

impl Provider {
    /// Devices offered, over every entry.
    pub fn device_count(&self) -> u64 {
        self.devices.iter().map(|d| u64::from(d.count)).sum()
    }

    /// Whether the provider is in the matching index: active with a free device.
    fn indexed(&self) -> bool {
        self.release_height.is_none() && u64::from(self.jobs_in_flight) < self.device_count()
    }

    /// The bond its devices require.
    pub fn min_bond(&self, p: &MarketParams) -> u128 {
        p.min_bond_per_device
            .saturating_mul(u128::from(self.device_count()))
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = true)]
#[repr(u8)]
pub enum JobStatus {
    Open = 0,
    Matched = 1,
    Accepted = 2,
    Committed = 3,
    Revealing = 4,
    Settled = 5,
    Final = 6,
    Refunded = 7,
    Cancelled = 8,
    FraudProven = 9,
    /// Settled, then slashed for an unanswered availability challenge.
    Withheld = 10,
}

impl JobStatus {
    pub const ALL: [JobStatus; 11] = [
        JobStatus::Open,
        JobStatus::Matched,
        JobStatus::Accepted,
        JobStatus::Committed,
        JobStatus::Revealing,
        JobStatus::Settled,
        JobStatus::Final,
        JobStatus::Refunded,
        JobStatus::Cancelled,
        JobStatus::FraudProven,
        JobStatus::Withheld,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            JobStatus::Open => "open",
            JobStatus::Matched => "matched",
            JobStatus::Accepted => "accepted",
            JobStatus::Committed => "committed",
            JobStatus::Revealing => "revealing",
            JobStatus::Settled => "settled",
            JobStatus::Final => "final",
            JobStatus::Refunded => "refunded",
            JobStatus::Cancelled => "cancelled",
            JobStatus::FraudProven => "fraud_proven",
            JobStatus::Withheld => "withheld",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether a provider is working on the job (it counts against the provider's devices).
    pub fn in_flight(&self) -> bool {
        matches!(
            self,
            JobStatus::Matched | JobStatus::Accepted | JobStatus::Committed | JobStatus::Revealing
        )
    }
}

/// One step of a job's life, as queries show it.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct HistoryEntry {
    pub height: u64,
    pub step: String,
    pub detail: String,
}

/// A job: what the consumer asked for, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Job {
    pub consumer: Address,
    pub m: u64,
    pub k: u64,
    pub n: u64,
    pub tile: u32,
    pub samples: u32,
    pub a_root: [u8; 32],
    pub b_root: [u8; 32],
    pub max_price_per_cu: u128,
    pub cu: u64,
    /// The protocol fee escrowed at posting (burned at settlement).
    pub fee: u128,
    pub deadline_blocks: u64,
    pub min_reputation: u32,
    pub refund_on_failure: bool,
    pub posted_height: u64,
    pub status: JobStatus,
    pub provider: Option<Address>,
    pub price_per_cu: u128,
    pub matched_height: u64,
    /// The current step's deadline (accept, commit, reveal, challenge answer) or the fraud window's end.
    pub deadline: u64,
    /// Providers that failed or declined this job (never matched to it again).
    pub excluded: Vec<Address>,
    pub output_root: Option<[u8; 32]>,
    pub commit_height: u64,
    pub seed: Option<[u8; 32]>,
    /// Sampled tile indices (ascending) and those revealed so far.
    pub sampled: Vec<u64>,
    pub revealed: Vec<u64>,
    /// An open availability challenge's tiles, those answered so far, and its answer deadline.
    pub challenge: Vec<u64>,
    pub challenge_answered: Vec<u64>,
    pub challenge_deadline: u64,
    pub history: Vec<HistoryEntry>,
}

impl Job {
    pub fn record(&mut self, height: u64, step: &str, detail: String) {
        self.history.push(HistoryEntry {
            height,
            step: step.to_string(),
            detail,
        });
    }

    /// The job as gpu-verify sees it (the output root must be committed).
    pub fn verify_job(&self, id: &[u8; 32]) -> Option<lode_gpu_verify::verify::Job> {
        Some(lode_gpu_verify::verify::Job {
            id: *id,
            m: usize::try_from(self.m).ok()?,
            k: usize::try_from(self.k).ok()?,
            n: usize::try_from(self.n).ok()?,
            tile: usize::try_from(self.tile).ok()?,
            samples: usize::try_from(self.samples).ok()?,
            a_root: self.a_root,
            b_root: self.b_root,
            c_root: self.output_root?,
        })
    }

    /// Tiles of the output: (m / T) · (n / T).
    pub fn tile_count(&self) -> u64 {
        let t = NonZeroU64::new(u64::from(self.tile)).unwrap_or(NonZeroU64::MIN);
        (self.m / t).saturating_mul(self.n / t)
    }
}

/// What matching needs of an open job, stored in its `market/open/` entry so unmatched jobs cost no read.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct OpenEntry {
    pub cu: u64,
    pub min_reputation: u32,
    pub excluded: Vec<Address>,
}

/// The prices of the last block that matched any job.
#[derive(Debug, Clone, PartialEq, Eq, Default, BorshSerialize, BorshDeserialize)]
pub struct Clearing {
    pub height: u64,
    pub matches: u64,
    pub min: u128,
    pub median: u128,
    pub max: u128,
}

/// Compute units of a MatMulI8 job: ceil(m·k·n / 10^9), at least 1; None on overflow.
pub fn compute_units(m: u64, k: u64, n: u64) -> Option<u64> {
    let ops = u128::from(m)
        .checked_mul(u128::from(k))?
        .checked_mul(u128::from(n))?;
    let cu = ops.div_ceil(1_000_000_000).max(1);
    u64::try_from(cu).ok()
}

/// A job's id: SHA-256 of a tag, the consumer and its job sequence number. It does not depend on the
/// order of txs in the block (a consumer's txs are ordered by nonce).
pub fn job_id(consumer: &Address, seq: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"lode/market/job/v1");
    h.update(consumer.as_bytes());
    h.update(seq.to_le_bytes());
    h.finalize().into()
}

/// Parses a job id from its 32 bytes.
pub fn parse_job_id(bytes: &[u8]) -> Result<[u8; 32], TxError> {
    bytes.try_into().map_err(|_| TxError::InvalidField {
        field: "job_id",
        reason: format!("must be 32 bytes, got {}", bytes.len()),
    })
}

fn corrupt(key: &str, reason: &str) -> StoreError {
    StoreError::Corrupt {
        key: key.into(),
        reason: reason.into(),
    }
}

pub fn provider<S: StateRead + ?Sized>(s: &S, a: &Address) -> Result<Option<Provider>, StoreError> {
    let key = state_key::provider(a);
    s.get(&key)?.map(|b| decode(&key, &b)).transpose()
}

/// Writes a provider and keeps the matching index (`market/avail/`) in step with it.
pub fn put_provider<S: StateWrite + ?Sized>(
    s: &mut S,
    a: &Address,
    p: &Provider,
) -> Result<(), StoreError> {
    if let Some(old) = provider(s, a)? {
        if old.indexed() {
            s.delete(state_key::avail(old.ask_per_cu, old.reputation, a));
        }
    }
    if p.indexed() {
        s.put(state_key::avail(p.ask_per_cu, p.reputation, a), Vec::new());
        s.put(state_key::MATCH_DIRTY.to_vec(), Vec::new());
    }
    s.put(state_key::provider(a), encode(p));
    Ok(())
}

fn delete_provider<S: StateWrite + ?Sized>(s: &mut S, a: &Address) -> Result<(), StoreError> {
    if let Some(old) = provider(s, a)? {
        if old.indexed() {
            s.delete(state_key::avail(old.ask_per_cu, old.reputation, a));
        }
    }
    s.delete(state_key::provider(a));
    s.delete(state_key::pending_ask(a));
    Ok(())
}

pub fn job<S: StateRead + ?Sized>(s: &S, id: &[u8; 32]) -> Result<Option<Job>, StoreError> {
    let key = state_key::job(id);
    s.get(&key)?.map(|b| decode(&key, &b)).transpose()
}

/// A job that must exist (the message names it).
pub fn existing_job<S: StateRead + ?Sized>(s: &S, id: &[u8; 32]) -> Result<Job, TxError> {
    job(s, id)?.ok_or_else(|| TxError::from(MarketError::UnknownJob(hex::encode(id))))
}

/// Writes a job and keeps its status index and the open-job index in step with it.
pub fn put_job<S: StateWrite + ?Sized>(
    s: &mut S,
    id: &[u8; 32],
    j: &Job,
) -> Result<(), StoreError> {
    let old = job(s, id)?;
    let before = open_totals(s)?;
    let mut totals = before;
    write_job(s, id, old.as_ref(), j, &mut totals);
    if totals != before {
        put_open_totals(s, totals);
    }
    Ok(())
}

/// Writes a job whose stored record the caller already holds (`old`), keeping the status and open-job
/// indexes in step; the open-job totals are adjusted in `totals`, which the caller writes (matching writes
/// them once per block instead of once per match).
fn write_job<S: StateWrite + ?Sized>(
    s: &mut S,
    id: &[u8; 32],
    old: Option<&Job>,
    j: &Job,
    totals: &mut (u64, u64),
) {
    let old_status = old.map(|o| o.status);
    if old_status != Some(j.status) {
        if let Some(o) = old_status {
            s.delete(state_key::by_status(o as u8, id));
        }
        s.put(state_key::by_status(j.status as u8, id), Vec::new());
    }
    if let Some(o) = old.filter(|o| o.status == JobStatus::Open) {
        s.delete(state_key::open(o.max_price_per_cu, o.posted_height, id));
        totals.0 = totals.0.saturating_sub(1);
        totals.1 = totals.1.saturating_sub(o.cu);
    }
    if j.status == JobStatus::Open {
        s.put(
            state_key::open(j.max_price_per_cu, j.posted_height, id),
            encode(&OpenEntry {
                cu: j.cu,
                min_reputation: j.min_reputation,
                excluded: j.excluded.clone(),
            }),
        );
        s.put(state_key::MATCH_DIRTY.to_vec(), Vec::new());
        totals.0 = totals.0.saturating_add(1);
        totals.1 = totals.1.saturating_add(j.cu);
    }
    s.put(state_key::job(id), encode(j));
}

fn put_open_totals<S: StateWrite + ?Sized>(s: &mut S, totals: (u64, u64)) {
    s.put(state_key::OPEN_TOTALS.to_vec(), encode(&totals));
}

pub fn open_totals<S: StateRead + ?Sized>(s: &S) -> Result<(u64, u64), StoreError> {
    match s.get(state_key::OPEN_TOTALS)? {
        None => Ok((0, 0)),
        Some(b) => decode(state_key::OPEN_TOTALS, &b),
    }
}

pub fn escrow<S: StateRead + ?Sized>(s: &S, id: &[u8; 32]) -> Result<u128, StoreError> {
    get_u128(s, &state_key::escrow(id))
}

pub fn holdback<S: StateRead + ?Sized>(s: &S, id: &[u8; 32]) -> Result<u128, StoreError> {
    get_u128(s, &state_key::holdback(id))
}

/// Schedules end-of-block work at `height`.
fn schedule<S: StateWrite + ?Sized>(s: &mut S, height: u64, kind: Due, subject: &[u8]) {
    s.put(state_key::due(height, kind as u8, subject), Vec::new());
}

/// End-of-block work the market schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Due {
    /// A matched job's accept deadline.
    Accept = 1,
    /// An unregistered provider's bond release.
    Release = 2,
    /// An accepted job's commit deadline.
    Commit = 3,
}

/// Adds `delta` (may be negative) to a provider's reputation, clamped to 0..=10000.
fn bump_reputation(p: &mut Provider, up: u32, down: u32) {
    p.reputation = p
        .reputation
        .saturating_add(up)
        .saturating_sub(down)
        .min(MAX_REPUTATION);
}

/// Frees the provider's device and records the outcome.
fn finish_for_provider<S: StateWrite + ?Sized>(
    s: &mut S,
    a: &Address,
    settled: bool,
    up: u32,
    down: u32,
) -> Result<(), TxError> {
    if let Some(mut p) = provider(s, a)? {
        p.jobs_in_flight = p.jobs_in_flight.saturating_sub(1);
        if settled {
            p.jobs_settled = p.jobs_settled.saturating_add(1);
        } else {
            p.jobs_failed = p.jobs_failed.saturating_add(1);
        }
        bump_reputation(&mut p, up, down);
        put_provider(s, a, &p)?;
    }
    Ok(())
}

/// Refunds whatever the job still has in escrow to its consumer.
fn refund_escrow<S: StateWrite + ?Sized>(
    s: &mut S,
    id: &[u8; 32],
    j: &Job,
) -> Result<u128, TxError> {
    let amount = escrow(s, id)?;
    if amount > 0 {
        bank::transfer(s, &escrow_pool(), &j.consumer, amount)?;
    }
    s.delete(state_key::escrow(id));
    Ok(amount)
}

/// Takes a job away from its provider (decline, no answer, failure): back to the queue without that
/// provider, or refunded when the consumer asked for that or the job has used up its attempts.
fn requeue_or_refund<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    id: &[u8; 32],
    j: &mut Job,
    failed: bool,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    if let Some(p) = j.provider.take() {
        if !j.excluded.contains(&p) {
            j.excluded.push(p);
        }
    }
    j.price_per_cu = 0;
    j.output_root = None;
    j.seed = None;
    j.sampled.clear();
    j.revealed.clear();
    let exhausted = j.excluded.len() as u64 >= u64::from(ctx.params.market.max_attempts);
    if (failed && j.refund_on_failure) || exhausted {
        let amount = refund_escrow(s, id, j)?;
        j.status = JobStatus::Refunded;
        j.record(
            ctx.height,
            "refunded",
            format!("{amount} back to the consumer"),
        );
        events.push(event::job("market_job_refunded", id).attr("amount", amount.to_string()));
    } else {
        j.status = JobStatus::Open;
        j.record(ctx.height, "requeued", String::new());
        events.push(event::job("market_job_requeued", id));
    }
    put_job(s, id, j)?;
    Ok(())
}

/// Matches a job to a provider (called by matching).
fn assign<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    id: &[u8; 32],
    provider: &Assignee<'_>,
    totals: &mut (u64, u64),
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let old = existing_job(s, id)?;
    let mut j = old.clone();
    j.status = JobStatus::Matched;
    j.provider = Some(*provider.addr);
    j.price_per_cu = provider.price;
    j.matched_height = ctx.height;
    j.deadline = ctx.height.saturating_add(ctx.params.market.accept_blocks);
    j.record(
        ctx.height,
        "matched",
        format!(
            "provider {} at {} per CU",
            provider.addr_str, provider.price
        ),
    );
    write_job(s, id, Some(&old), &j, totals);
    s.put(
        state_key::by_provider(provider.addr, ctx.height, id),
        Vec::new(),
    );
    schedule(s, j.deadline, Due::Accept, id);
    events.push(
        event::job("market_job_matched", id)
            .attr("provider", provider.addr_str)
            .attr("consumer", j.consumer.to_string())
            .attr("price_per_cu", provider.price.to_string())
            .attr("cu", j.cu.to_string())
            .attr("accept_deadline", j.deadline.to_string()),
    );
    Ok(())
}

/// The provider a job is matched to, with its address already rendered (matching renders each
/// candidate's once, not once per match).
struct Assignee<'a> {
    addr: &'a Address,
    addr_str: &'a str,
    price: u128,
}

/// Accepts a matched job (the provider checked its inputs). The commit deadline counts from the match.
pub(crate) fn accept<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    id: &[u8; 32],
    mut j: Job,
    events: &mut Vec<Event>,
) -> Result<Job, TxError> {
    j.status = JobStatus::Accepted;
    // The commit deadline counts from the match, but never falls before the next block.
    j.deadline = j
        .matched_height
        .saturating_add(j.deadline_blocks)
        .max(ctx.height.saturating_add(1));
    j.record(ctx.height, "accepted", String::new());
    put_job(s, id, &j)?;
    schedule(s, j.deadline, Due::Commit, id);
    events.push(
        event::job("market_job_accepted", id)
            .attr("commit_deadline", j.deadline.to_string())
            .attr(
                "provider",
                j.provider.map(|p| p.to_string()).unwrap_or_default(),
            ),
    );
    Ok(j)
}

/// A decline, or no answer by the accept deadline (`no_answer`, which costs reputation).
fn decline<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    id: &[u8; 32],
    mut j: Job,
    reason: &str,
    no_answer: bool,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let Some(p) = j.provider else {
        return Ok(());
    };
    let loss = if no_answer {
        ctx.params.market.reputation_no_answer_loss
    } else {
        0
    };
    if let Some(mut prov) = provider(s, &p)? {
        prov.jobs_in_flight = prov.jobs_in_flight.saturating_sub(1);
        bump_reputation(&mut prov, 0, loss);
        put_provider(s, &p, &prov)?;
    }
    j.record(
        ctx.height,
        "declined",
        if no_answer {
            format!("provider {p} did not answer")
        } else {
            format!("provider {p}: {reason}")
        },
    );
    events.push(
        event::job("market_job_declined", id)
            .attr("provider", p.to_string())
            .attr("no_answer", no_answer.to_string())
            .attr("reason", reason.to_string()),
    );
    requeue_or_refund(s, ctx, id, &mut j, false, events)
}

/// The provider passed verification: pay it (minus the holdback), burn the fee, refund the rest, open the
/// fraud window and mint the compute receipt.
pub fn settle<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    id: &[u8; 32],
    mut j: Job,
    events: &mut Vec<Event>,
) -> Result<Job, TxError> {
    let Some(p) = j.provider else {
        return Err(TxError::Internal("settling a job with no provider".into()));
    };
    let cp = &ctx.params.compute;
    let pay = j
        .price_per_cu
        .checked_mul(u128::from(j.cu))
        .ok_or(TxError::Overflow("job payment"))?;
    let held = mul_div_floor(pay, u128::from(cp.holdback_bps), 10_000)
        .ok_or(TxError::Overflow("holdback"))?;
    let escrowed = escrow(s, id)?;
    let rest = escrowed
        .checked_sub(pay)
        .and_then(|r| r.checked_sub(j.fee))
        .ok_or_else(|| TxError::Internal("escrow below payment and fee".into()))?;
    // Never short: the holdback is at most the payment (bps <= 10 000, or mul_div_floor refuses).
    let paid = pay.checked_sub(held).ok_or(TxError::Overflow("holdback"))?;
    bank::transfer(s, &escrow_pool(), &p, paid)?;
    if held > 0 {
        bank::transfer(s, &escrow_pool(), &holdback_pool(), held)?;
        put_u128(s, state_key::holdback(id), held);
    }
    bank::burn(s, &escrow_pool(), j.fee)?;
    if rest > 0 {
        bank::transfer(s, &escrow_pool(), &j.consumer, rest)?;
    }
    s.delete(state_key::escrow(id));
    finish_for_provider(s, &p, true, ctx.params.market.reputation_gain, 0)?;
    j.status = JobStatus::Settled;
    j.deadline = ctx.height.saturating_add(cp.fraud_window_blocks);
    j.record(
        ctx.height,
        "settled",
        format!(
            "paid {paid} now, {held} held back, {} fee burned, {rest} refunded",
            j.fee
        ),
    );
    put_job(s, id, &j)?;
    events.push(
        event::job("market_job_settled", id)
            .attr("provider", p.to_string())
            .attr("paid", paid.to_string())
            .attr("holdback", held.to_string())
            .attr("fee_burned", j.fee.to_string())
            .attr("refunded", rest.to_string())
            .attr("fraud_window_end", j.deadline.to_string()),
    );
    mint_receipt(s, ctx, id, &j, &p, events)?;
    Ok(j)
}

/// The system collection compute receipts are minted into, owned by the compute module.
pub const RECEIPT_COLLECTION: &str = "lode-compute-receipts";

fn mint_receipt<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    id: &[u8; 32],
    j: &Job,
    p: &Address,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    if nft::collection(s, RECEIPT_COLLECTION)?.is_none() {
        nft::create_module_collection(
            s,
            ctx,
            "compute",
            RECEIPT_COLLECTION,
            "Lode compute receipts",
            "LCR",
            "",
            None,
            events,
        )?;
    }
    let uri = format!(
        "lode:job/{}?cu={}&provider={}&output={}",
        hex::encode(id),
        j.cu,
        p,
        hex::encode(j.output_root.unwrap_or_default())
    );
    nft::mint_as_module(
        s,
        ctx,
        "compute",
        RECEIPT_COLLECTION,
        &hex::encode(id),
        &j.consumer,
        &uri,
        events,
    )
}

/// Slashes `bps` of a provider's bond: `to_other_bps` of it to `other` (the consumer or a fraud proof's
/// submitter), the rest to the treasury. Returns the amount slashed.
fn slash<S: StateWrite + ?Sized>(
    s: &mut S,
    p: &Address,
    bps: u32,
    other: &Address,
    to_other_bps: u32,
    events: &mut Vec<Event>,
    id: &[u8; 32],
) -> Result<u128, TxError> {
    let Some(mut prov) = provider(s, p)? else {
        return Ok(0);
    };
    let amount =
        mul_div_floor(prov.bond, u128::from(bps), 10_000).ok_or(TxError::Overflow("slash"))?;
    let to_other = mul_div_floor(amount, u128::from(to_other_bps), 10_000)
        .ok_or(TxError::Overflow("slash share"))?;
    // Both never short: a share in bps is at most its whole (bps <= 10 000, or mul_div_floor refuses).
    prov.bond = prov
        .bond
        .checked_sub(amount)
        .ok_or(TxError::Overflow("slash"))?;
    let to_treasury = amount
        .checked_sub(to_other)
        .ok_or(TxError::Overflow("slash share"))?;
    put_provider(s, p, &prov)?;
    if to_other > 0 {
        bank::transfer(s, &bond_pool(), other, to_other)?;
    }
    if to_treasury > 0 {
        bank::transfer(s, &bond_pool(), &gov::treasury(), to_treasury)?;
    }
    events.push(
        event::job("market_provider_slashed", id)
            .attr("provider", p.to_string())
            .attr("amount", amount.to_string())
            .attr("to", other.to_string())
            .attr("to_amount", to_other.to_string()),
    );
    Ok(amount)
}

/// The provider failed a job in flight (wrong sample, missed commit or reveal deadline): slash, lower its
/// reputation, and re-queue or refund the job.
pub fn fail<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    id: &[u8; 32],
    mut j: Job,
    reason: &str,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let Some(p) = j.provider else {
        return Ok(());
    };
    let cp = &ctx.params.compute;
    let slashed = slash(
        s,
        &p,
        cp.slash_bps,
        &j.consumer,
        cp.slash_consumer_bps,
        events,
        id,
    )?;
    finish_for_provider(s, &p, false, 0, ctx.params.market.reputation_fail_loss)?;
    j.record(
        ctx.height,
        "failed",
        format!("provider {p}: {reason}; {slashed} slashed"),
    );
    events.push(
        event::job("market_job_failed", id)
            .attr("provider", p.to_string())
            .attr("reason", reason.to_string()),
    );
    requeue_or_refund(s, ctx, id, &mut j, true, events)
}

/// A settled job turned out bad inside its fraud window (a proven fraud, or an availability challenge left
/// unanswered): slash, give the held-back payment to the consumer, and never count its CU.
pub fn fail_settled<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    id: &[u8; 32],
    mut j: Job,
    fraud_by: Option<&Address>,
    reason: &str,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let Some(p) = j.provider else {
        return Ok(());
    };
    let cp = &ctx.params.compute;
    let slashed = match fraud_by {
        Some(submitter) => slash(
            s,
            &p,
            cp.fraud_slash_bps,
            submitter,
            cp.fraud_reward_bps,
            events,
            id,
        )?,
        None => slash(
            s,
            &p,
            cp.slash_bps,
            &j.consumer,
            cp.slash_consumer_bps,
            events,
            id,
        )?,
    };
    let held = holdback(s, id)?;
    if held > 0 {
        bank::transfer(s, &holdback_pool(), &j.consumer, held)?;
    }
    s.delete(state_key::holdback(id));
    if let Some(mut prov) = provider(s, &p)? {
        prov.jobs_failed = prov.jobs_failed.saturating_add(1);
        bump_reputation(&mut prov, 0, ctx.params.market.reputation_fail_loss);
        put_provider(s, &p, &prov)?;
    }
    j.status = if fraud_by.is_some() {
        JobStatus::FraudProven
    } else {
        JobStatus::Withheld
    };
    j.challenge.clear();
    j.challenge_answered.clear();
    j.record(
        ctx.height,
        if fraud_by.is_some() {
            "fraud_proven"
        } else {
            "failed"
        },
        format!("{reason}; {slashed} slashed, holdback {held} to the consumer"),
    );
    put_job(s, id, &j)?;
    events.push(
        event::job(
            if fraud_by.is_some() {
                "compute_fraud_proven"
            } else {
                "market_job_failed"
            },
            id,
        )
        .attr("provider", p.to_string())
        .attr("reason", reason.to_string())
        .attr("holdback_to_consumer", held.to_string()),
    );
    Ok(())
}

/// The fraud window closed without a fraud: release the holdback and count the job's CU.
pub fn finalize<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    id: &[u8; 32],
    mut j: Job,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let Some(p) = j.provider else {
        return Ok(());
    };
    let held = holdback(s, id)?;
    if held > 0 {
        bank::transfer(s, &holdback_pool(), &p, held)?;
    }
    s.delete(state_key::holdback(id));
    // The running epoch as staking counts it (proof of useful compute reads the closed ones).
    let epoch = crate::modules::staking::power::current_epoch(s)?.number;
    let key = state_key::verified_cu(&p, epoch);
    let before = match s.get(&key)? {
        None => 0u64,
        Some(b) => decode(&key, &b)?,
    };
    s.put(key, encode(&before.saturating_add(j.cu)));
    j.status = JobStatus::Final;
    j.record(ctx.height, "holdback_released", format!("{held} to {p}"));
    put_job(s, id, &j)?;
    events.push(
        event::job("market_holdback_released", id)
            .attr("provider", p.to_string())
            .attr("amount", held.to_string())
            .attr("cu", j.cu.to_string()),
    );
    Ok(())
}

/// CU a provider delivered in jobs finalized during `epoch` (proof of useful compute reads this).
pub fn verified_cu<S: StateRead + ?Sized>(
    s: &S,
    p: &Address,
    epoch: u64,
) -> Result<u64, StoreError> {
    let key = state_key::verified_cu(p, epoch);
    match s.get(&key)? {
        None => Ok(0),
        Some(b) => decode(&key, &b),
    }
}

/// Market end of block: accept deadlines, bond releases, matching, then asks changed in this block.
fn end_block<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let prefix = state_key::due_at(ctx.height);
    for (key, _) in s.scan_prefix(&prefix)? {
        s.delete(key.clone());
        let rest = key.get(prefix.len()..).unwrap_or_default();
        let (kind, subject) = rest
            .split_first()
            .ok_or_else(|| corrupt("market/due", "empty"))?;
        if *kind == Due::Accept as u8 {
            let id = parse_job_id(subject).map_err(|_| corrupt("market/due", "job id"))?;
            if let Some(j) = job(s, &id)? {
                if j.status == JobStatus::Matched && j.deadline == ctx.height {
                    decline(s, ctx, &id, j, "no answer", true, events)?;
                }
            }
        } else if *kind == Due::Commit as u8 {
            let id = parse_job_id(subject).map_err(|_| corrupt("market/due", "job id"))?;
            if let Some(j) = job(s, &id)? {
                if j.status == JobStatus::Accepted && j.deadline == ctx.height {
                    fail(s, ctx, &id, j, "missed the commit deadline", events)?;
                }
            }
        } else if *kind == Due::Release as u8 {
            let a = crate::codec::address_at(subject, 0)?;
            if let Some(p) = provider(s, &a)? {
                if p.release_height == Some(ctx.height) {
                    if p.bond > 0 {
                        bank::transfer(s, &bond_pool(), &a, p.bond)?;
                    }
                    delete_provider(s, &a)?;
                    events.push(
                        event::provider("market_provider_released", &a)
                            .attr("bond", p.bond.to_string()),
                    );
                }
            }
        }
    }
    matching::run(s, ctx, events)?;
    for (key, value) in s.scan_prefix(state_key::PENDING_ASK_PREFIX)? {
        s.delete(key.clone());
        let a = crate::codec::address_at(&key, state_key::PENDING_ASK_PREFIX.len())?;
        let ask = crate::codec::u128_value(&key, &value)?;
        if let Some(mut p) = provider(s, &a)? {
            p.ask_per_cu = ask;
            put_provider(s, &a, &p)?;
            events.push(
                event::provider("market_ask_applied", &a).attr("ask_per_cu", ask.to_string()),
            );
        }
    }
    Ok(())
}

/// `market/escrow-pool`: the escrow account against every job's escrow entry.
fn escrow_sides(s: &dyn StateRead) -> Result<(Side, Side), StoreError> {
    Ok((
        Side {
            what: "balance of the market_escrow account",
            value: bank::account(s, &escrow_pool())?.balance,
        },
        Side {
            what: "sum of job escrows",
            value: crate::codec::sum_u128_under(s, state_key::ESCROW_PREFIX)?,
        },
    ))
}

/// `market/holdback-pool`: the holdback account against every settled job's holdback entry.
fn holdback_sides(s: &dyn StateRead) -> Result<(Side, Side), StoreError> {
    Ok((
        Side {
            what: "balance of the market_holdback account",
            value: bank::account(s, &holdback_pool())?.balance,
        },
        Side {
            what: "sum of held-back payments",
            value: crate::codec::sum_u128_under(s, state_key::HOLDBACK_PREFIX)?,
        },
    ))
}

/// `market/bond-pool`: the bond account against every provider's bond.
fn bond_sides(s: &dyn StateRead) -> Result<(Side, Side), StoreError> {
    let mut sum: u128 = 0;
    for (k, v) in s.scan_prefix(state_key::PROVIDER_PREFIX)? {
        let p: Provider = decode(&k, &v)?;
        sum = sum
            .checked_add(p.bond)
            .ok_or_else(|| corrupt("market/provider", "bonds overflow u128"))?;
    }
    Ok((
        Side {
            what: "balance of the market_bonds account",
            value: bank::account(s, &bond_pool())?.balance,
        },
        Side {
            what: "sum of provider bonds",
            value: sum,
        },
    ))
}
