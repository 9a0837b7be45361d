//! market's storage keys. Keys are public API: proofs and tools depend on them. Numbers in keys are
//! big-endian so key order is numeric order.

use crate::address::Address;

pub const PROVIDER_PREFIX: &[u8] = b"market/provider/";
pub const JOB_PREFIX: &[u8] = b"market/job/";
pub const OPEN_PREFIX: &[u8] = b"market/open/";
pub const AVAIL_PREFIX: &[u8] = b"market/avail/";
pub const BY_CONSUMER_PREFIX: &[u8] = b"market/by_consumer/";
pub const BY_PROVIDER_PREFIX: &[u8] = b"market/by_provider/";
pub const BY_STATUS_PREFIX: &[u8] = b"market/by_status/";
pub const ESCROW_PREFIX: &[u8] = b"market/escrow/";
pub const HOLDBACK_PREFIX: &[u8] = b"market/holdback/";
pub const DUE_PREFIX: &[u8] = b"market/due/";
pub const PENDING_ASK_PREFIX: &[u8] = b"market/pending_ask/";
pub const SEQ_PREFIX: &[u8] = b"market/seq/";
pub const VERIFIED_CU_PREFIX: &[u8] = b"market/verified_cu/";
/// Present when something that can create a match changed since the last matching.
pub const MATCH_DIRTY: &[u8] = b"market/match_dirty";
/// borsh `Clearing`: the prices of the last block that matched any job.
pub const CLEARING: &[u8] = b"market/clearing";
/// borsh `(u64, u64)`: open jobs and their CU.
pub const OPEN_TOTALS: &[u8] = b"market/open_totals";

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `market/provider/` ‖ address → borsh `Provider`.
pub fn provider(a: &Address) -> Vec<u8> {
    cat(&[PROVIDER_PREFIX, a.as_bytes()])
}

/// `market/job/` ‖ job id (32 bytes) → borsh `Job`.
pub fn job(id: &[u8; 32]) -> Vec<u8> {
    cat(&[JOB_PREFIX, id])
}

/// `market/open/` ‖ (u128::MAX − max price) ‖ posted height ‖ job id → borsh `OpenEntry`. Key order is the
/// matching order: highest max price first, then oldest, then job id.
pub fn open(max_price: u128, posted: u64, id: &[u8; 32]) -> Vec<u8> {
    cat(&[
        OPEN_PREFIX,
        // u128::MAX − max_price, which is the bitwise complement.
        &(!max_price).to_be_bytes(),
        &posted.to_be_bytes(),
        id,
    ])
}

/// `market/avail/` ‖ ask ‖ (10000 − reputation) ‖ address → empty: providers with a free device, in the
/// order matching tries them (lowest ask, then highest reputation, then address).
pub fn avail(ask: u128, reputation: u32, a: &Address) -> Vec<u8> {
    let inv = super::params::MAX_REPUTATION.saturating_sub(reputation);
    cat(&[
        AVAIL_PREFIX,
        &ask.to_be_bytes(),
        &inv.to_be_bytes(),
        a.as_bytes(),
    ])
}

/// `market/by_consumer/` ‖ consumer ‖ posted height ‖ id → empty.
pub fn by_consumer(c: &Address, height: u64, id: &[u8; 32]) -> Vec<u8> {
    cat(&[BY_CONSUMER_PREFIX, c.as_bytes(), &height.to_be_bytes(), id])
}

pub fn by_consumer_of(c: &Address) -> Vec<u8> {
    cat(&[BY_CONSUMER_PREFIX, c.as_bytes()])
}

/// `market/by_provider/` ‖ provider ‖ match height ‖ id → empty (every job ever matched to it).
pub fn by_provider(p: &Address, height: u64, id: &[u8; 32]) -> Vec<u8> {
    cat(&[BY_PROVIDER_PREFIX, p.as_bytes(), &height.to_be_bytes(), id])
}

pub fn by_provider_of(p: &Address) -> Vec<u8> {
    cat(&[BY_PROVIDER_PREFIX, p.as_bytes()])
}

/// `market/by_status/` ‖ status byte ‖ id → empty.
pub fn by_status(status: u8, id: &[u8; 32]) -> Vec<u8> {
    cat(&[BY_STATUS_PREFIX, &[status], id])
}

pub fn by_status_of(status: u8) -> Vec<u8> {
    cat(&[BY_STATUS_PREFIX, &[status]])
}

/// `market/escrow/` ‖ id → u128 LE: what the escrow pool holds for a job.
pub fn escrow(id: &[u8; 32]) -> Vec<u8> {
    cat(&[ESCROW_PREFIX, id])
}

/// `market/holdback/` ‖ id → u128 LE: the payment held back until the fraud window closes.
pub fn holdback(id: &[u8; 32]) -> Vec<u8> {
    cat(&[HOLDBACK_PREFIX, id])
}

/// `market/due/` ‖ height ‖ kind ‖ subject (job id or address) → empty: work for the end of that block.
pub fn due(height: u64, kind: u8, subject: &[u8]) -> Vec<u8> {
    cat(&[DUE_PREFIX, &height.to_be_bytes(), &[kind], subject])
}

pub fn due_at(height: u64) -> Vec<u8> {
    cat(&[DUE_PREFIX, &height.to_be_bytes()])
}

/// `market/pending_ask/` ‖ address → u128 LE: an ask that takes effect at the end of the block.
pub fn pending_ask(a: &Address) -> Vec<u8> {
    cat(&[PENDING_ASK_PREFIX, a.as_bytes()])
}

/// `market/seq/` ‖ consumer → u64 LE: jobs the consumer has posted (their ids derive from it).
pub fn seq(c: &Address) -> Vec<u8> {
    cat(&[SEQ_PREFIX, c.as_bytes()])
}

/// `market/verified_cu/` ‖ provider ‖ epoch → u64 LE: CU the provider delivered in jobs whose fraud window
/// closed in that epoch without a proven fraud (what proof of useful compute counts).
pub fn verified_cu(p: &Address, epoch: u64) -> Vec<u8> {
    cat(&[VERIFIED_CU_PREFIX, p.as_bytes(), &epoch.to_be_bytes()])
}
