//! gov's storage keys. Keys are public API: proofs and tools depend on them. Ids and heights are u64 BE so
//! key order is numeric order.

use crate::address::Address;

pub const NEXT_PROPOSAL_ID: &[u8] = b"gov/next_proposal_id";
pub const PROPOSAL_PREFIX: &[u8] = b"gov/proposal/";
pub const STATUS_PREFIX: &[u8] = b"gov/status/";
pub const DEPOSIT_PREFIX: &[u8] = b"gov/deposit/";
pub const VOTE_PREFIX: &[u8] = b"gov/vote/";
pub const DEPOSIT_QUEUE_PREFIX: &[u8] = b"gov/deposit_queue/";
pub const VOTING_QUEUE_PREFIX: &[u8] = b"gov/voting_queue/";
pub const RUNNING_TALLY_PREFIX: &[u8] = b"gov/running_tally/";
pub const VOTED_STAKE_PREFIX: &[u8] = b"gov/voted_stake/";
pub const ACTIVE_VOTE_PREFIX: &[u8] = b"gov/active_vote/";

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `gov/proposal/` ‖ id → borsh `Proposal`.
pub fn proposal(id: u64) -> Vec<u8> {
    cat(&[PROPOSAL_PREFIX, &id.to_be_bytes()])
}

/// `gov/status/` ‖ status ‖ id → empty (proposals by status).
pub fn by_status(status: u8, id: u64) -> Vec<u8> {
    cat(&[STATUS_PREFIX, &[status], &id.to_be_bytes()])
}

pub fn status_prefix(status: u8) -> Vec<u8> {
    cat(&[STATUS_PREFIX, &[status]])
}

/// `gov/deposit/` ‖ id ‖ depositor → u128 LE (open deposits only: settled ones are deleted).
pub fn deposit(id: u64, depositor: &Address) -> Vec<u8> {
    cat(&[DEPOSIT_PREFIX, &id.to_be_bytes(), depositor.as_bytes()])
}

pub fn deposits_of(id: u64) -> Vec<u8> {
    cat(&[DEPOSIT_PREFIX, &id.to_be_bytes()])
}

/// `gov/vote/` ‖ id ‖ voter → borsh `Vec<(option u8, weight ppm u32)>`.
pub fn vote(id: u64, voter: &Address) -> Vec<u8> {
    cat(&[VOTE_PREFIX, &id.to_be_bytes(), voter.as_bytes()])
}

pub fn votes_of(id: u64) -> Vec<u8> {
    cat(&[VOTE_PREFIX, &id.to_be_bytes()])
}

/// `gov/deposit_queue/` ‖ deposit end height ‖ id → empty.
pub fn deposit_queue(end: u64, id: u64) -> Vec<u8> {
    cat(&[DEPOSIT_QUEUE_PREFIX, &end.to_be_bytes(), &id.to_be_bytes()])
}

pub fn deposit_queue_at(end: u64) -> Vec<u8> {
    cat(&[DEPOSIT_QUEUE_PREFIX, &end.to_be_bytes()])
}

/// `gov/voting_queue/` ‖ voting end height ‖ id → empty.
pub fn voting_queue(end: u64, id: u64) -> Vec<u8> {
    cat(&[VOTING_QUEUE_PREFIX, &end.to_be_bytes(), &id.to_be_bytes()])
}

pub fn voting_queue_at(end: u64) -> Vec<u8> {
    cat(&[VOTING_QUEUE_PREFIX, &end.to_be_bytes()])
}

/// `gov/running_tally/` ‖ id → borsh `tally::Counts`: the votes so far of a proposal in its voting period
/// (absent: none yet). Deleted when the proposal is tallied.
pub fn running_tally(id: u64) -> Vec<u8> {
    cat(&[RUNNING_TALLY_PREFIX, &id.to_be_bytes()])
}

/// `gov/voted_stake/` ‖ id ‖ validator → u128 LE: the stake delegated to `validator` by accounts that voted
/// on the proposal themselves (counted with their votes, so not with the validator's). Voting period only.
pub fn voted_stake(id: u64, validator: &Address) -> Vec<u8> {
    cat(&[VOTED_STAKE_PREFIX, &id.to_be_bytes(), validator.as_bytes()])
}

pub fn voted_stakes_of(id: u64) -> Vec<u8> {
    cat(&[VOTED_STAKE_PREFIX, &id.to_be_bytes()])
}

/// `gov/active_vote/` ‖ voter ‖ id → empty: the proposals in their voting period an account voted on, so
/// a change of its stake finds the running tallies to update. Deleted when the proposal is tallied.
pub fn active_vote(voter: &Address, id: u64) -> Vec<u8> {
    cat(&[ACTIVE_VOTE_PREFIX, voter.as_bytes(), &id.to_be_bytes()])
}

pub fn active_votes_of(voter: &Address) -> Vec<u8> {
    cat(&[ACTIVE_VOTE_PREFIX, voter.as_bytes()])
}
