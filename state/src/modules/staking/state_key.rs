//! staking's storage keys. Keys are public API: proofs and tools depend on them.

use crate::address::Address;

pub const VALIDATOR_PREFIX: &[u8] = b"staking/validator/";
pub const CONSENSUS_KEY_PREFIX: &[u8] = b"staking/consensus_key/";
pub const DELEGATION_PREFIX: &[u8] = b"staking/delegation/";
pub const UNBONDING_PREFIX: &[u8] = b"staking/unbonding/";
/// The unbonding entries again, by delegator (not under [`UNBONDING_PREFIX`]: `_` is not `/`).
pub const UNBONDING_BY_DELEGATOR_PREFIX: &[u8] = b"staking/unbonding_of/";
/// Sum of every delegation (u128 LE).
pub const TOTAL_BONDED: &[u8] = b"staking/total_bonded";

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `staking/validator/` ‖ operator → borsh `Validator`.
pub fn validator(op: &Address) -> Vec<u8> {
    cat(&[VALIDATOR_PREFIX, op.as_bytes()])
}

/// `staking/consensus_key/` ‖ ed25519 key → operator (keeps consensus keys unique).
pub fn consensus_key(key: &[u8; 32]) -> Vec<u8> {
    cat(&[CONSENSUS_KEY_PREFIX, key])
}

/// `staking/delegation/` ‖ delegator ‖ validator → u128 LE.
pub fn delegation(delegator: &Address, validator: &Address) -> Vec<u8> {
    cat(&[
        DELEGATION_PREFIX,
        delegator.as_bytes(),
        validator.as_bytes(),
    ])
}

/// Prefix of every delegation of one delegator.
pub fn delegations_of(delegator: &Address) -> Vec<u8> {
    cat(&[DELEGATION_PREFIX, delegator.as_bytes()])
}

/// `staking/unbonding/` ‖ completion height (u64 BE) ‖ delegator ‖ validator → u128 LE.
pub fn unbonding(height: u64, delegator: &Address, validator: &Address) -> Vec<u8> {
    cat(&[
        UNBONDING_PREFIX,
        &height.to_be_bytes(),
        delegator.as_bytes(),
        validator.as_bytes(),
    ])
}

/// Prefix of the unbonding entries that complete at `height`.
pub fn unbonding_at(height: u64) -> Vec<u8> {
    cat(&[UNBONDING_PREFIX, &height.to_be_bytes()])
}

/// `staking/unbonding_of/` ‖ delegator ‖ completion height (u64 BE) ‖ validator → u128 LE: the same entry as
/// [`unbonding`], indexed by delegator so `/staking/delegations` reads only the delegator's own entries.
pub fn unbonding_of(delegator: &Address, height: u64, validator: &Address) -> Vec<u8> {
    cat(&[
        UNBONDING_BY_DELEGATOR_PREFIX,
        delegator.as_bytes(),
        &height.to_be_bytes(),
        validator.as_bytes(),
    ])
}

/// Prefix of one delegator's unbonding entries (by completion height, then validator).
pub fn unbondings_of(delegator: &Address) -> Vec<u8> {
    cat(&[UNBONDING_BY_DELEGATOR_PREFIX, delegator.as_bytes()])
}

/// borsh `power::Epoch`: the running epoch (number, first height).
pub const EPOCH: &[u8] = b"staking/epoch";
/// `staking/power/` ‖ operator → borsh u64: the validator's power at the last epoch boundary.
pub const POWER_PREFIX: &[u8] = b"staking/power/";
/// `staking/link/` ‖ operator → borsh `power::Link`.
pub const LINK_PREFIX: &[u8] = b"staking/link/";
/// `staking/provider_link/` ‖ provider → operator (20 bytes): keeps a provider on one validator.
pub const PROVIDER_LINK_PREFIX: &[u8] = b"staking/provider_link/";
/// `staking/link_nonce/` ‖ provider → borsh u64: the nonce its next link consent must sign.
pub const LINK_NONCE_PREFIX: &[u8] = b"staking/link_nonce/";

pub fn power(op: &Address) -> Vec<u8> {
    cat(&[POWER_PREFIX, op.as_bytes()])
}

pub fn link(op: &Address) -> Vec<u8> {
    cat(&[LINK_PREFIX, op.as_bytes()])
}

pub fn provider_link(provider: &Address) -> Vec<u8> {
    cat(&[PROVIDER_LINK_PREFIX, provider.as_bytes()])
}

pub fn link_nonce(provider: &Address) -> Vec<u8> {
    cat(&[LINK_NONCE_PREFIX, provider.as_bytes()])
}

/// `staking/cons_addr/` ‖ consensus address (first 20 bytes of SHA-256 of the key) → operator: how the
/// signers of a commit, which ABCI names by consensus address, are found.
pub const CONS_ADDR_PREFIX: &[u8] = b"staking/cons_addr/";
/// `staking/delegator_of/` ‖ validator ‖ delegator → empty: every delegation to one validator, so a slash
/// reads only that validator's delegations.
pub const DELEGATOR_OF_PREFIX: &[u8] = b"staking/delegator_of/";
/// `staking/signing_info/` ‖ operator → borsh `SigningInfo`.
pub const SIGNING_INFO_PREFIX: &[u8] = b"staking/signing_info/";
/// `staking/missed/` ‖ operator ‖ word (u64 BE) → u64 LE: bit `i % 64` of word `i / 64` is set when the
/// validator missed the block at index `i` of its window. Absent words are zero.
pub const MISSED_PREFIX: &[u8] = b"staking/missed/";

/// `staking/tombstone/` ‖ operator → borsh u64: the height it was tombstoned at (double signing). A
/// tombstoned validator never holds power again.
pub const TOMBSTONE_PREFIX: &[u8] = b"staking/tombstone/";

pub fn tombstone(op: &Address) -> Vec<u8> {
    cat(&[TOMBSTONE_PREFIX, op.as_bytes()])
}

pub fn cons_addr(addr: &[u8; 20]) -> Vec<u8> {
    cat(&[CONS_ADDR_PREFIX, addr])
}

pub fn delegator_of(validator: &Address, delegator: &Address) -> Vec<u8> {
    cat(&[
        DELEGATOR_OF_PREFIX,
        validator.as_bytes(),
        delegator.as_bytes(),
    ])
}

/// Prefix of every delegation to one validator (in [`DELEGATOR_OF_PREFIX`]).
pub fn delegators_of(validator: &Address) -> Vec<u8> {
    cat(&[DELEGATOR_OF_PREFIX, validator.as_bytes()])
}

pub fn signing_info(op: &Address) -> Vec<u8> {
    cat(&[SIGNING_INFO_PREFIX, op.as_bytes()])
}

pub fn missed_word(op: &Address, word: u64) -> Vec<u8> {
    cat(&[MISSED_PREFIX, op.as_bytes(), &word.to_be_bytes()])
}
