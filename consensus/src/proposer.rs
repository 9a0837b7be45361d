//! Proposer selection: Tendermint's weighted round robin with proposer priorities.
//!
//! Each validator carries a priority. One "increment" adds every validator's power to its priority, picks the
//! highest priority (ties: the smaller address) as proposer and subtracts the total power from it. Over `T`
//! increments each validator proposes about `T * power / total` times. A height's set is stored before
//! that height's increment: the proposer of round `r` is the validator chosen by the `(r + 1)`-th increment
//! of a copy (CometBFT's height set incremented once, then `r` more times). From round [`WALKED_ROUNDS`]
//! on, a power-weighted draw keyed by the round replaces the walk, so any round costs O(validators).
//! Between heights the bridge increments once and applies validator updates ([`next_height_set`]).
//! Everything is integer arithmetic over a set sorted by address, so every node computes the same proposer.

use malachitebft_core_types::Round;
use sha2::{Digest, Sha256};

use crate::types::{Validator, ValidatorSet};

/// CometBFT's bound on the spread of priorities, as a multiple of the total power.
const PRIORITY_WINDOW_SIZE_FACTOR: i64 = 2;

/// Rounds below this are chosen by walking the increments (Tendermint's rule, unchanged); later rounds by
/// [`weighted_pick`], in O(validators) whatever the round.
///
/// Why a limit: rounds come from peers (a sync certificate, a signed stream) up to `u32::MAX`, and Malachite
/// asks for their proposer before it checks a signature, so a walk of `round + 1` increments would let one
/// message stall the consensus actor for minutes. A live network reaches round 128 only after hours without
/// a decision (each round's timeouts grow by the delta), so every round a healthy chain uses keeps its
/// proposer; all nodes switch rule at the same round, so they still agree.
pub const WALKED_ROUNDS: u32 = 128;

/// The proposer of `round` for a height whose set is `set`.
///
/// # Panics
/// On an empty set, which the bridge never hands to Malachite (it refuses to start without validators).
pub fn select(set: &ValidatorSet, round: Round) -> &Validator {
    let round = round.as_u32().unwrap_or(0);
    let idx = if round < WALKED_ROUNDS {
        let mut copy = set.clone();
        copy.increment_proposer_priority(round.saturating_add(1))
    } else {
        weighted_pick(set, round)
    };
    #[allow(
        clippy::indexing_slicing,
        reason = "idx comes from the set itself, and Malachite's API needs a validator: an empty set is \
                  refused where sets are built (see # Panics)"
    )]
    &set.validators[idx]
}

/// A validator drawn in proportion to voting power by a hash of the round: the point
/// `SHA-256("lode/proposer" ‖ round) mod total` on the validators' cumulative power, in address order.
/// O(validators); 0 for an empty set.
fn weighted_pick(set: &ValidatorSet, round: u32) -> usize {
    let total = u128::from(set.total_power());
    if total == 0 {
        return 0;
    }
    let digest = Sha256::new()
        .chain_update(b"lode/proposer")
        .chain_update(round.to_be_bytes())
        .finalize();
    let Some(wide) = digest.as_slice().first_chunk::<16>() else {
        return 0;
    };
    let mut point = u128::from_be_bytes(*wide).checked_rem(total).unwrap_or(0);
    for (i, v) in set.validators.iter().enumerate() {
        let power = u128::from(v.voting_power);
        if point < power {
            return i;
        }
        point = point.saturating_sub(power);
    }
    0
}

fn max_priority_index(set: &ValidatorSet) -> usize {
    let mut best: Option<(usize, i64)> = None;
    for (i, p) in set.priorities.iter().enumerate() {
        // Strictly greater: on a tie the earlier (smaller) address wins.
        if best.is_none_or(|(_, b)| *p > b) {
            best = Some((i, *p));
        }
    }
    best.map_or(0, |(i, _)| i)
}

impl ValidatorSet {
    /// Runs `times` proposer increments (see the module docs) and returns the index of the validator the
    /// last one chose (0 for an empty set or `times == 0`). Costs `times × validators` steps: callers pass
    /// small counts (see [`WALKED_ROUNDS`]).
    pub fn increment_proposer_priority(&mut self, times: u32) -> usize {
        let mut chosen = 0;
        if self.validators.is_empty() {
            return chosen;
        }
        let total = i64::try_from(self.total_power()).unwrap_or(i64::MAX);
        self.rescale_priorities(PRIORITY_WINDOW_SIZE_FACTOR.saturating_mul(total));
        self.shift_by_avg_priority();
        for _ in 0..times {
            for (p, v) in self.priorities.iter_mut().zip(&self.validators) {
                *p = p.saturating_add(i64::try_from(v.voting_power).unwrap_or(i64::MAX));
            }
            let i = max_priority_index(self);
            if let Some(p) = self.priorities.get_mut(i) {
                *p = p.saturating_sub(total);
            }
            chosen = i;
        }
        chosen
    }

    #[allow(
        clippy::arithmetic_side_effects,
        reason = "i64 priorities widened to i128: their difference and the rounded-up ratio cannot \
                  overflow, and the divisor is positive"
    )]
    fn rescale_priorities(&mut self, diff_max: i64) {
        if diff_max <= 0 {
            return;
        }
        let max = self.priorities.iter().copied().max().unwrap_or(0);
        let min = self.priorities.iter().copied().min().unwrap_or(0);
        let diff = i128::from(max) - i128::from(min);
        let diff_max = i128::from(diff_max);
        if diff > diff_max {
            let ratio = (diff + diff_max - 1) / diff_max;
            for p in &mut self.priorities {
                *p = i64::try_from(i128::from(*p) / ratio).unwrap_or(0);
            }
        }
    }

    #[allow(
        clippy::arithmetic_side_effects,
        reason = "a sum of i64 priorities fits in i128 for any set that fits in memory, the divisor is \
                  at least 1 and an i64 minus their average fits in i128"
    )]
    fn shift_by_avg_priority(&mut self) {
        let n = i128::try_from(self.priorities.len()).unwrap_or(1).max(1);
        let sum: i128 = self.priorities.iter().map(|p| i128::from(*p)).sum();
        let avg = sum / n;
        for p in &mut self.priorities {
            *p = i64::try_from(i128::from(*p) - avg).unwrap_or(0);
        }
    }

    /// The set with `updates` applied (power 0 removes), priorities kept for staying validators, and new
    /// validators starting at `-1.125 * total` so they do not propose at once (as in CometBFT).
    pub fn with_updates(&self, updates: &[Validator]) -> ValidatorSet {
        let mut vals = self.validators.clone();
        let mut prios = self.priorities.clone();
        let mut fresh: Vec<Validator> = Vec::new();
        for u in updates {
            match vals.iter().position(|v| v.address == u.address) {
                Some(i) if u.voting_power == 0 => {
                    vals.remove(i);
                    prios.remove(i);
                }
                Some(i) => {
                    if let Some(v) = vals.get_mut(i) {
                        *v = u.clone();
                    }
                }
                None if u.voting_power > 0 => {
                    fresh.retain(|f| f.address != u.address);
                    fresh.push(u.clone());
                }
                None => fresh.retain(|f| f.address != u.address),
            }
        }
        let total: u64 = vals
            .iter()
            .chain(&fresh)
            .fold(0u64, |a, v| a.saturating_add(v.voting_power));
        let total = i64::try_from(total).unwrap_or(i64::MAX);
        let start = total.saturating_add(total / 8).saturating_neg();
        for f in fresh {
            vals.push(f);
            prios.push(start);
        }
        let mut pairs: Vec<(Validator, i64)> = vals.into_iter().zip(prios).collect();
        pairs.sort_by_key(|a| a.0.address);
        let (validators, priorities) = pairs.into_iter().unzip();
        let mut set = ValidatorSet {
            validators,
            priorities,
        };
        set.rescale_priorities(PRIORITY_WINDOW_SIZE_FACTOR.saturating_mul(total));
        set.shift_by_avg_priority();
        set
    }
}

/// The set for height `h + 1`, given the set of height `h` and the membership that FinalizeBlock's updates
/// (of height `h - 1`) produced for `h + 1`.
pub fn next_height_set(current: &ValidatorSet, next_members: &[Validator]) -> ValidatorSet {
    // Express the new membership as updates against the current set: removals (power 0) and upserts.
    let mut updates: Vec<Validator> = current
        .validators
        .iter()
        .filter(|v| !next_members.iter().any(|m| m.address == v.address))
        .map(|v| Validator {
            voting_power: 0,
            ..v.clone()
        })
        .collect();
    updates.extend(next_members.iter().cloned());
    // Height h's round-0 proposer spent its priority in the increment that chose it; carry that forward.
    let mut advanced = current.clone();
    advanced.increment_proposer_priority(1);
    advanced.with_updates(&updates)
}
