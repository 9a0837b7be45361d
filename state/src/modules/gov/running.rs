//! The running tally of each proposal in its voting period, so that `/gov/proposal` and the end-of-voting
//! tally read one record instead of recounting every vote and every voter's delegations.
//!
//! The tally ([`super::tally::tally`]) is a sum of parts, each rounded down on its own ([`Counts::of`]):
//! one per delegation of each voter, with the voter's options, and one per voting validator for its
//! *remaining* stake (its tokens minus what voters delegated to it, who count with their own votes). A part
//! depends on the vote, the delegation amount or the validator's tokens, and the validator's voted stake;
//! whenever one of those changes, the part is taken out with its old value and put back with the new one,
//! so the running sum stays exactly the recount, rounding included. What it needs besides the counts:
//!
//! - `gov/voted_stake/{id}/{validator}`: per proposal, the stake delegated to each validator by voters (the
//!   recount's "deductions"), so a validator's remaining stake is one read away;
//! - `gov/active_vote/{voter}/{id}`: the proposals in voting an account voted on, so a bond or an unbond
//!   (staking's [`DelegationChange`]) finds the tallies it moves: those its delegator voted on, and those
//!   its validator voted on.
//!
//! The quorum's denominator, all bonded stake, is read at tally time as before. Costs: a vote reads the
//! voter's delegations (as the recount did per voter, now once per vote); a bond or an unbond reads the
//! active votes of its delegator and its validator; the end of a voting period deletes the proposal's index
//! entries (one per vote and per validator voted through). The invariant `gov/running-tallies` (checked on
//! devnets) and a property test hold the running tally equal to [`super::recount_tally`].

use crate::{
    address::Address,
    codec::{decode, encode, get_u128, put_u128, u64_at},
    error::{StoreError, TxError},
    module::DelegationChange,
    modules::staking,
    store::{StateRead, StateWrite},
};

use super::{state_key, tally::Counts, vote_of, WeightedVote};

/// The running counts of a proposal (zero before its first vote).
pub fn counts<S: StateRead + ?Sized>(s: &S, id: u64) -> Result<Counts, StoreError> {
    let key = state_key::running_tally(id);
    match s.get(&key)? {
        None => Ok(Counts::default()),
        Some(b) => decode(&key, &b),
    }
}

/// The stake delegated to `validator` by accounts that voted on proposal `id`.
pub fn voted_stake<S: StateRead + ?Sized>(
    s: &S,
    id: u64,
    validator: &Address,
) -> Result<u128, StoreError> {
    get_u128(s, &state_key::voted_stake(id, validator))
}

/// The proposals in their voting period that `voter` voted on, by id.
pub fn active_votes<S: StateRead + ?Sized>(s: &S, voter: &Address) -> Result<Vec<u64>, StoreError> {
    let prefix = state_key::active_votes_of(voter);
    s.scan_prefix(&prefix)?
        .into_iter()
        .map(|(k, _)| u64_at(&k, prefix.len()))
        .collect()
}

fn broken(what: &str) -> TxError {
    TxError::Internal(format!("running tally: {what}"))
}

/// Counts being updated: parts go out and come in, all checked.
struct Update(Counts);

impl Update {
    fn remove(&mut self, amount: u128, options: &WeightedVote) -> Result<(), TxError> {
        self.0 = self
            .0
            .checked_sub(Counts::of(amount, options))
            .ok_or_else(|| broken("a part removed that was never added"))?;
        Ok(())
    }

    fn add(&mut self, amount: u128, options: &WeightedVote) -> Result<(), TxError> {
        self.0 = self
            .0
            .checked_add(Counts::of(amount, options))
            .ok_or_else(|| broken("counts overflow"))?;
        Ok(())
    }
}

fn remaining(tokens: u128, voted: u128) -> Result<u128, TxError> {
    tokens
        .checked_sub(voted)
        .ok_or_else(|| broken("voted stake above the validator's tokens"))
}

/// Records `voter`'s vote `new` on proposal `id` (which is in its voting period), replacing `old`. Call
/// before the vote itself is stored.
pub fn on_vote<S: StateWrite + ?Sized>(
    s: &mut S,
    id: u64,
    voter: &Address,
    old: Option<&WeightedVote>,
    new: &WeightedVote,
) -> Result<(), TxError> {
    let delegations = staking::delegations_of(s, voter)?;
    let own_tokens = staking::validator(s, voter)?.map(|v| v.tokens);
    let mut c = Update(counts(s, id)?);
    match old {
        Some(old) => {
            // A changed vote: the voter's parts go out with the old options (its voted stake stays).
            for (_, amount) in &delegations {
                c.remove(*amount, old)?;
            }
            if let Some(tokens) = own_tokens {
                c.remove(remaining(tokens, voted_stake(s, id, voter)?)?, old)?;
            }
        }
        None => {
            // A first vote: the voter's delegations now count with its vote, not with their validators'.
            s.put(state_key::active_vote(voter, id), Vec::new());
            for (validator, amount) in &delegations {
                let before = voted_stake(s, id, validator)?;
                let after = before
                    .checked_add(*amount)
                    .ok_or_else(|| broken("voted stake overflows"))?;
                if validator != voter {
                    if let Some(their) = vote_of(s, id, validator)? {
                        let tokens = staking::validator(s, validator)?
                            .ok_or_else(|| broken("a delegation to no validator"))?
                            .tokens;
                        c.remove(remaining(tokens, before)?, &their)?;
                        c.add(remaining(tokens, after)?, &their)?;
                    }
                }
                put_u128(s, state_key::voted_stake(id, validator), after);
            }
        }
    }
    for (_, amount) in &delegations {
        c.add(*amount, new)?;
    }
    if let Some(tokens) = own_tokens {
        c.add(remaining(tokens, voted_stake(s, id, voter)?)?, new)?;
    }
    s.put(state_key::running_tally(id), encode(&c.0));
    Ok(())
}

/// Moves the running tallies a changed delegation affects: each proposal its delegator voted on (the
/// delegation's part, and the voted stake of its validator) and each its validator voted on (the
/// validator's remaining stake).
pub fn on_delegation_changed<S: StateWrite + ?Sized>(
    s: &mut S,
    ch: &DelegationChange,
) -> Result<(), TxError> {
    let by_delegator = active_votes(s, &ch.delegator)?;
    for &id in &by_delegator {
        let mine =
            vote_of(s, id, &ch.delegator)?.ok_or_else(|| broken("an active vote with no vote"))?;
        let mut c = Update(counts(s, id)?);
        c.remove(ch.before, &mine)?;
        c.add(ch.after, &mine)?;
        let voted_before = voted_stake(s, id, &ch.validator)?;
        let voted_after = voted_before
            .checked_sub(ch.before)
            .and_then(|v| v.checked_add(ch.after))
            .ok_or_else(|| broken("voted stake out of range"))?;
        if let Some(theirs) = vote_of(s, id, &ch.validator)? {
            c.remove(remaining(ch.tokens_before, voted_before)?, &theirs)?;
            c.add(remaining(ch.tokens_after, voted_after)?, &theirs)?;
        }
        put_u128(s, state_key::voted_stake(id, &ch.validator), voted_after);
        s.put(state_key::running_tally(id), encode(&c.0));
    }
    if ch.validator == ch.delegator {
        return Ok(());
    }
    for id in active_votes(s, &ch.validator)? {
        if by_delegator.binary_search(&id).is_ok() {
            continue;
        }
        let theirs =
            vote_of(s, id, &ch.validator)?.ok_or_else(|| broken("an active vote with no vote"))?;
        let voted = voted_stake(s, id, &ch.validator)?;
        let mut c = Update(counts(s, id)?);
        c.remove(remaining(ch.tokens_before, voted)?, &theirs)?;
        c.add(remaining(ch.tokens_after, voted)?, &theirs)?;
        s.put(state_key::running_tally(id), encode(&c.0));
    }
    Ok(())
}

/// Ends proposal `id`'s running tally (its voting period is over): returns the counts and deletes the
/// tally, its voted stakes and its voters' active-vote entries.
pub fn finish<S: StateWrite + ?Sized>(s: &mut S, id: u64) -> Result<Counts, TxError> {
    let c = counts(s, id)?;
    s.delete(state_key::running_tally(id));
    for (k, _) in s.scan_prefix(&state_key::voted_stakes_of(id))? {
        s.delete(k);
    }
    for (voter, _) in super::votes(s, id)? {
        s.delete(state_key::active_vote(&voter, id));
    }
    Ok(c)
}
