//! The consensus validator set that staking drives. At the end of every block the application asks
//! [`end_block_updates`] for the difference between the set it stored (see [`crate::validators`]) and the
//! target set that stake gives now ([`target_powers`]); that difference is FinalizeBlock's
//! `validator_updates` (power 0 removes), which the consensus engine applies two heights later.
//!
//! Rules, all integer and deterministic:
//! - a validator's power is its proof-of-useful-compute power ([`power::target_powers`]: bonded stake and
//!   its linked provider's verified CU of the last closed epoch, capped, churn-limited, out of
//!   [`power::TOTAL_POWER`]); only [`power::eligible`] validators (not jailed, not tombstoned, at least
//!   `power_reduction` bonded) take part, and validators with power 0 are left out;
//! - the top `max_validators` by power are kept; ties go to the smaller consensus key;
//! - if the kept powers sum to more than [`MAX_TOTAL_POWER`], every power is divided by the smallest integer
//!   that brings the sum within it (validators whose power falls to 0 leave the set; with a total of
//!   [`power::TOTAL_POWER`] this never happens).

use std::cmp::Reverse;
use std::collections::BTreeMap;

use super::{power, state_key};
use crate::{
    address::Address,
    codec::address_at,
    error::StoreError,
    params::Params,
    store::{StateRead, StateWrite},
    validators::{self, MAX_TOTAL_POWER},
};

/// One member of a consensus set: ed25519 consensus key and voting power.
pub type Member = ([u8; 32], u64);

/// The consensus set now: `(consensus key, power)`, sorted by key, within `max_validators` and
/// [`MAX_TOTAL_POWER`]. The one place the consensus set is computed (end of block, genesis, and the
/// genesis file's `validators` through [`crate::genesis::validator_set`]).
///
/// Reads every validator record (one prefix scan over validators, which does not grow with height).
pub fn target_powers<S: StateRead + ?Sized>(
    s: &S,
    params: &Params,
) -> Result<Vec<Member>, StoreError> {
    let eligible = power::eligible(s, params)?;
    let keys: BTreeMap<Address, [u8; 32]> = eligible.iter().map(|(i, k)| (i.key, *k)).collect();
    let inputs: Vec<power::ValidatorInput<Address>> =
        eligible.into_iter().map(|(i, _)| i).collect();
    let candidates = power::target_powers_of(s, params, &inputs)?
        .into_iter()
        .filter_map(|(op, p)| keys.get(&op).map(|k| (*k, p)))
        .collect();
    Ok(select(candidates, params.staking.max_validators))
}

/// The members kept from `candidates` (any order; keys unique): nonzero power, the top `max` by power
/// (ties: smaller key), scaled down to fit [`MAX_TOTAL_POWER`], sorted by key.
pub fn select(mut candidates: Vec<Member>, max: u32) -> Vec<Member> {
    candidates.retain(|(_, p)| *p > 0);
    candidates.sort_by_key(|(k, p)| (Reverse(*p), *k));
    candidates.truncate(usize::try_from(max).unwrap_or(usize::MAX));
    let total: u128 = candidates
        .iter()
        .fold(0u128, |a, (_, p)| a.saturating_add(u128::from(*p)));
    let cap = u128::from(MAX_TOTAL_POWER);
    if total > cap {
        // The smallest divisor d with sum(p_i / d) <= cap is at most ceil(total / cap); dividing by that
        // bound is simple and keeps the order of powers.
        let d = total.div_ceil(cap);
        for (_, p) in &mut candidates {
            *p = u64::try_from(u128::from(*p).checked_div(d).unwrap_or(0)).unwrap_or(u64::MAX);
        }
        candidates.retain(|(_, p)| *p > 0);
    }
    candidates.sort_by_key(|(k, _)| *k);
    candidates
}

/// The updates that turn `current` into `target` (both sorted by key, keys unique): every member whose
/// power changes or who joins, with its new power, and every member who leaves, with power 0; by key.
pub fn diff(current: &[Member], target: &[Member]) -> Vec<Member> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    loop {
        match (current.get(i), target.get(j)) {
            (None, None) => break,
            (Some(c), None) => {
                out.push((c.0, 0));
                i = i.saturating_add(1);
            }
            (None, Some(t)) => {
                out.push(*t);
                j = j.saturating_add(1);
            }
            (Some(c), Some(t)) => match c.0.cmp(&t.0) {
                std::cmp::Ordering::Less => {
                    out.push((c.0, 0));
                    i = i.saturating_add(1);
                }
                std::cmp::Ordering::Greater => {
                    out.push(*t);
                    j = j.saturating_add(1);
                }
                std::cmp::Ordering::Equal => {
                    if c.1 != t.1 {
                        out.push(*t);
                    }
                    i = i.saturating_add(1);
                    j = j.saturating_add(1);
                }
            },
        }
    }
    out
}

/// End of block: the target set against the stored one. Stores the target and returns the updates. A
/// target with no member keeps the stored set and returns no update: a chain cannot run without
/// validators, so the last one's stake leaving does not stop it (it keeps signing until stake returns).
pub fn end_block_updates<S: StateWrite + ?Sized>(
    s: &mut S,
    p: &Params,
) -> Result<Vec<Member>, StoreError> {
    let current = validators::load(s)?;
    let target = target_powers(s, p)?;
    if target.is_empty() {
        return Ok(Vec::new());
    }
    let updates = diff(&current, &target);
    if !updates.is_empty() {
        validators::store(s, &target);
    }
    Ok(updates)
}

/// The power of a consensus key in the stored consensus set (`None`: not in it).
pub fn power_in_set<S: StateRead + ?Sized>(
    s: &S,
    consensus_key: &[u8; 32],
) -> Result<Option<u64>, StoreError> {
    let set = validators::load(s)?;
    Ok(set
        .binary_search_by_key(consensus_key, |(k, _)| *k)
        .ok()
        .and_then(|i| set.get(i))
        .map(|m| m.1))
}

/// The operator of a consensus address (first 20 bytes of SHA-256 of the key).
pub fn operator_of_cons_addr<S: StateRead + ?Sized>(
    s: &S,
    addr: &[u8; 20],
) -> Result<Option<Address>, StoreError> {
    let key = state_key::cons_addr(addr);
    match s.get(&key)? {
        None => Ok(None),
        Some(b) => address_at(&b, 0).map(Some),
    }
}

/// The consensus address of a key: the first 20 bytes of its SHA-256 (as CometBFT and the engine name it).
pub fn cons_addr(key: &[u8; 32]) -> [u8; 20] {
    use sha2::Digest;
    let d: [u8; 32] = sha2::Sha256::digest(key).into();
    let mut out = [0u8; 20];
    for (o, b) in out.iter_mut().zip(d) {
        *o = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(b: u8) -> [u8; 32] {
        [b; 32]
    }

    #[test]
    fn diff_adds_changes_and_removes_by_key() {
        let current = vec![(k(1), 10), (k(2), 10), (k(4), 5)];
        let target = vec![(k(1), 10), (k(2), 7), (k(3), 1)];
        assert_eq!(
            diff(&current, &target),
            vec![(k(2), 7), (k(3), 1), (k(4), 0)]
        );
        assert!(diff(&target, &target).is_empty());
        assert_eq!(diff(&[], &target), target);
        assert_eq!(diff(&target, &[]), vec![(k(1), 0), (k(2), 0), (k(3), 0)]);
    }

    #[test]
    fn select_keeps_the_top_by_power_and_breaks_ties_by_the_smaller_key() {
        let c = vec![(k(5), 3), (k(1), 0), (k(4), 7), (k(2), 3), (k(3), 3)];
        // Zero power never enters; of the three with power 3, keys 2 and 3 win the two seats left.
        assert_eq!(select(c.clone(), 3), vec![(k(2), 3), (k(3), 3), (k(4), 7)]);
        assert_eq!(select(c.clone(), 1), vec![(k(4), 7)]);
        assert_eq!(select(c.clone(), 100).len(), 4);
        // Input order does not matter.
        let mut rev = c;
        rev.reverse();
        assert_eq!(select(rev, 3), vec![(k(2), 3), (k(3), 3), (k(4), 7)]);
    }

    #[test]
    fn select_scales_powers_down_to_the_total_power_limit() {
        let c = vec![(k(1), u64::MAX), (k(2), u64::MAX / 2), (k(3), 1)];
        let s = select(c, 10);
        let total: u128 = s.iter().map(|(_, p)| u128::from(*p)).sum();
        assert!(total <= u128::from(MAX_TOTAL_POWER), "{total}");
        // The tiny validator's power rounds to 0: it leaves; the order of the others is kept.
        assert_eq!(s.len(), 2);
        assert!(s[0].1 > s[1].1);
    }
}
