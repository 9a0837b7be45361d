//! The tally: pure functions from votes and stake to a result, so every edge case is unit-tested without
//! state.
//!
//! Voting power is bonded stake. A delegator who votes counts its own delegations with its own vote; a
//! validator that votes counts everything bonded to it (its self-bond included) minus the delegations of
//! delegators who voted themselves. Stake whose delegator did not vote and whose validator did not vote does
//! not count. Votes may be split: each option carries a weight in parts per million.

use std::{cmp::Ordering, collections::BTreeMap};

use borsh::{BorshDeserialize, BorshSerialize};

use super::{VoteOption, WEIGHT_SCALE};
use crate::{address::Address, amount::mul_div_floor};

/// Stake per option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    pub yes: u128,
    pub abstain: u128,
    pub no: u128,
    pub no_with_veto: u128,
    /// All bonded stake when tallied (the quorum's denominator).
    pub total_bonded: u128,
}

/// How a tally ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    NoQuorum,
    Vetoed,
    Rejected,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::NoQuorum => "no_quorum",
            Outcome::Vetoed => "vetoed",
            Outcome::Rejected => "rejected",
        }
    }
}

/// The thresholds of a tally, in basis points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub quorum_bps: u32,
    pub threshold_bps: u32,
    pub veto_bps: u32,
}

/// What a tally needs from state.
#[derive(Debug, Clone, Default)]
pub struct TallyInput {
    /// Every vote: voter → weighted options (weights sum to [`WEIGHT_SCALE`]).
    pub votes: BTreeMap<Address, Vec<(VoteOption, u32)>>,
    /// Every voter's delegations: voter → (validator, amount).
    pub delegations: BTreeMap<Address, Vec<(Address, u128)>>,
    /// Total tokens of every validator whose operator voted.
    pub validator_tokens: BTreeMap<Address, u128>,
    pub total_bonded: u128,
}

/// Stake per option, without the quorum's denominator: what one vote adds to a tally ([`Counts::of`]) and,
/// summed, a proposal's running tally (`gov::running`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, BorshSerialize, BorshDeserialize)]
pub struct Counts {
    pub yes: u128,
    pub abstain: u128,
    pub no: u128,
    pub no_with_veto: u128,
}

impl Counts {
    /// What `amount` of stake voting `options` adds to each option: per option, `amount × weight / scale`
    /// rounded down. The tally is the sum of these, one per delegation of a voter and one per voting
    /// validator's remaining stake; because each is rounded on its own, a running tally adds and removes
    /// exactly these parts to stay equal to a recount.
    pub fn of(amount: u128, options: &[(VoteOption, u32)]) -> Counts {
        let mut c = Counts::default();
        for (opt, w) in options {
            let part = mul_div_floor(amount, *w as u128, WEIGHT_SCALE as u128).unwrap_or(0);
            let bucket = match opt {
                VoteOption::Yes => &mut c.yes,
                VoteOption::Abstain => &mut c.abstain,
                VoteOption::No => &mut c.no,
                VoteOption::NoWithVeto => &mut c.no_with_veto,
            };
            // Parts of `amount`: their sum is at most `amount`.
            *bucket = bucket.saturating_add(part);
        }
        c
    }

    /// The option-wise sum (None on overflow).
    pub fn checked_add(self, o: Counts) -> Option<Counts> {
        Some(Counts {
            yes: self.yes.checked_add(o.yes)?,
            abstain: self.abstain.checked_add(o.abstain)?,
            no: self.no.checked_add(o.no)?,
            no_with_veto: self.no_with_veto.checked_add(o.no_with_veto)?,
        })
    }

    /// The option-wise difference (None if any option would go below zero).
    pub fn checked_sub(self, o: Counts) -> Option<Counts> {
        Some(Counts {
            yes: self.yes.checked_sub(o.yes)?,
            abstain: self.abstain.checked_sub(o.abstain)?,
            no: self.no.checked_sub(o.no)?,
            no_with_veto: self.no_with_veto.checked_sub(o.no_with_veto)?,
        })
    }

    /// These counts as a tally against `total_bonded`.
    pub fn with_total(self, total_bonded: u128) -> Tally {
        Tally {
            yes: self.yes,
            abstain: self.abstain,
            no: self.no,
            no_with_veto: self.no_with_veto,
            total_bonded,
        }
    }
}

impl Tally {
    fn add(&mut self, amount: u128, options: &[(VoteOption, u32)]) {
        let c = Counts::of(amount, options);
        // Parts of bonded stake: their sum is at most the total bonded, which fits in u128.
        self.yes = self.yes.saturating_add(c.yes);
        self.abstain = self.abstain.saturating_add(c.abstain);
        self.no = self.no.saturating_add(c.no);
        self.no_with_veto = self.no_with_veto.saturating_add(c.no_with_veto);
    }

    /// The counts without the total.
    pub fn counts(&self) -> Counts {
        Counts {
            yes: self.yes,
            abstain: self.abstain,
            no: self.no,
            no_with_veto: self.no_with_veto,
        }
    }

    /// Everything that voted, abstain included.
    pub fn turnout(&self) -> u128 {
        self.yes
            .saturating_add(self.abstain)
            .saturating_add(self.no)
            .saturating_add(self.no_with_veto)
    }
}

/// Counts the votes.
pub fn tally(input: &TallyInput) -> Tally {
    tally_with_deductions(input).0
}

/// Counts the votes, and returns with the tally how much of each validator's stake was delegated by voters
/// (and so counted with their own votes, not the validator's).
pub fn tally_with_deductions(input: &TallyInput) -> (Tally, BTreeMap<Address, u128>) {
    let mut t = Tally {
        total_bonded: input.total_bonded,
        ..Tally::default()
    };
    let mut deductions: BTreeMap<Address, u128> = BTreeMap::new();
    for (voter, options) in &input.votes {
        for (val, amount) in input.delegations.get(voter).into_iter().flatten() {
            let d = deductions.entry(*val).or_default();
            *d = d.saturating_add(*amount);
            t.add(*amount, options);
        }
    }
    for (voter, options) in &input.votes {
        if let Some(tokens) = input.validator_tokens.get(voter) {
            let rest = tokens.saturating_sub(deductions.get(voter).copied().unwrap_or(0));
            t.add(rest, options);
        }
    }
    (t, deductions)
}

/// a × b compared with c × d, exactly (256-bit products).
pub fn cmp_products(a: u128, b: u128, c: u128, d: u128) -> Ordering {
    mul_wide(a, b).cmp(&mul_wide(c, d))
}

/// The full 256-bit product as (high, low).
// Schoolbook multiplication in 64-bit limbs, which cannot overflow: each limb product is at most
// (2^64 − 1)^2 < 2^128, `mid` is at most 3·(2^64 − 1), and `hi` is the top half of a product < 2^256.
#[allow(clippy::arithmetic_side_effects)]
fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    const MASK: u128 = u64::MAX as u128;
    let (a1, a0) = (a >> 64, a & MASK);
    let (b1, b0) = (b >> 64, b & MASK);
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 64) + (p01 & MASK) + (p10 & MASK);
    let lo = (p00 & MASK) | ((mid & MASK) << 64);
    let hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    (hi, lo)
}

/// Decides a tally: quorum (turnout ≥ quorum of all bonded), then veto (veto < veto share of all votes),
/// then threshold (yes / (yes + no + veto) strictly above). All abstain: rejected.
pub fn outcome(t: &Tally, th: Thresholds) -> Outcome {
    let bps = super::params::BPS as u128;
    let turnout = t.turnout();
    if t.total_bonded == 0
        || turnout == 0
        || cmp_products(turnout, bps, th.quorum_bps as u128, t.total_bonded) == Ordering::Less
    {
        return Outcome::NoQuorum;
    }
    if cmp_products(t.no_with_veto, bps, th.veto_bps as u128, turnout) != Ordering::Less {
        return Outcome::Vetoed;
    }
    let decisive = t.yes.saturating_add(t.no).saturating_add(t.no_with_veto);
    if decisive == 0 {
        return Outcome::Rejected;
    }
    if cmp_products(t.yes, bps, th.threshold_bps as u128, decisive) == Ordering::Greater {
        Outcome::Passed
    } else {
        Outcome::Rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use VoteOption::*;

    const TH: Thresholds = Thresholds {
        quorum_bps: 3_340,
        threshold_bps: 5_000,
        veto_bps: 3_340,
    };

    fn a(n: u8) -> Address {
        Address([n; 20])
    }

    fn one(o: VoteOption) -> Vec<(VoteOption, u32)> {
        vec![(o, WEIGHT_SCALE)]
    }

    fn t(yes: u128, abstain: u128, no: u128, veto: u128, total: u128) -> Tally {
        Tally {
            yes,
            abstain,
            no,
            no_with_veto: veto,
            total_bonded: total,
        }
    }

    #[test]
    fn exactly_at_quorum_passes_the_quorum_and_just_below_does_not() {
        // 3,340 of 10,000 bonded voted: exactly 33.4%.
        assert_eq!(outcome(&t(3_340, 0, 0, 0, 10_000), TH), Outcome::Passed);
        assert_eq!(outcome(&t(3_339, 0, 0, 0, 10_000), TH), Outcome::NoQuorum);
        // Abstain counts toward quorum.
        assert_eq!(outcome(&t(1, 3_339, 0, 0, 10_000), TH), Outcome::Passed);
    }

    #[test]
    fn exactly_at_threshold_is_rejected_and_just_above_passes() {
        assert_eq!(outcome(&t(50, 0, 50, 0, 100), TH), Outcome::Rejected);
        assert_eq!(outcome(&t(51, 0, 49, 0, 100), TH), Outcome::Passed);
        // Abstain is not in the threshold's denominator.
        assert_eq!(outcome(&t(2, 90, 1, 0, 100), TH), Outcome::Passed);
    }

    #[test]
    fn exactly_at_veto_vetoes_and_just_below_does_not() {
        // veto / all votes: 334/1000 = 33.4% → vetoed even with a yes majority of the rest.
        assert_eq!(outcome(&t(666, 0, 0, 334, 1_000), TH), Outcome::Vetoed);
        assert_eq!(outcome(&t(667, 0, 0, 333, 1_000), TH), Outcome::Passed);
        // Abstain dilutes the veto share (it is a share of all votes).
        assert_eq!(outcome(&t(400, 267, 0, 333, 1_000), TH), Outcome::Passed);
    }

    #[test]
    fn all_abstain_is_rejected_and_no_votes_misses_quorum() {
        assert_eq!(outcome(&t(0, 1_000, 0, 0, 1_000), TH), Outcome::Rejected);
        assert_eq!(outcome(&t(0, 0, 0, 0, 1_000), TH), Outcome::NoQuorum);
        assert_eq!(outcome(&t(0, 0, 0, 0, 0), TH), Outcome::NoQuorum);
        // A zero quorum still needs some vote.
        let th0 = Thresholds {
            quorum_bps: 0,
            ..TH
        };
        assert_eq!(outcome(&t(0, 0, 0, 0, 1_000), th0), Outcome::NoQuorum);
    }

    #[test]
    fn huge_stakes_do_not_overflow_the_comparisons() {
        let big = u128::MAX / 3;
        assert_eq!(
            outcome(&t(big, 0, big - 1, 0, u128::MAX), TH),
            Outcome::Passed
        );
        assert_eq!(
            cmp_products(u128::MAX, u128::MAX, u128::MAX, u128::MAX - 1),
            Ordering::Greater
        );
        assert_eq!(
            cmp_products(1 << 100, 1 << 100, 1 << 120, 1 << 80),
            Ordering::Equal
        );
    }

    fn input(votes: &[(u8, Vec<(VoteOption, u32)>)], delegations: &[(u8, u8, u128)]) -> TallyInput {
        let mut inp = TallyInput::default();
        let mut tokens: BTreeMap<Address, u128> = BTreeMap::new();
        for (d, v, amt) in delegations {
            inp.delegations
                .entry(a(*d))
                .or_default()
                .push((a(*v), *amt));
            *tokens.entry(a(*v)).or_default() += amt;
            inp.total_bonded += amt;
        }
        for (voter, opts) in votes {
            inp.votes.insert(a(*voter), opts.clone());
            if let Some(tk) = tokens.get(&a(*voter)) {
                inp.validator_tokens.insert(a(*voter), *tk);
            }
        }
        // Keep only voters' delegations, as state gathering does.
        let voters: Vec<Address> = inp.votes.keys().copied().collect();
        inp.delegations.retain(|k, _| voters.contains(k));
        inp
    }

    #[test]
    fn delegators_inherit_their_validators_vote() {
        // Validator 1 self-bonds 100; delegators 2 and 3 bond 50 each to it; only the validator votes.
        let inp = input(&[(1, one(Yes))], &[(1, 1, 100), (2, 1, 50), (3, 1, 50)]);
        assert_eq!(tally(&inp), t(200, 0, 0, 0, 200));
    }

    #[test]
    fn a_delegator_voting_overrides_its_validator() {
        let inp = input(
            &[(1, one(Yes)), (2, one(No))],
            &[(1, 1, 100), (2, 1, 50), (3, 1, 50)],
        );
        assert_eq!(tally(&inp), t(150, 0, 50, 0, 200));
        // The delegator votes but its validator does not: only the delegator's own stake counts.
        let inp = input(&[(2, one(No))], &[(1, 1, 100), (2, 1, 50), (3, 1, 50)]);
        assert_eq!(tally(&inp), t(0, 0, 50, 0, 200));
    }

    #[test]
    fn a_delegator_with_several_validators_counts_each_delegation_once() {
        let inp = input(
            &[(1, one(Yes)), (4, one(No)), (5, one(NoWithVeto))],
            &[(1, 1, 10), (4, 4, 10), (5, 1, 7), (5, 4, 3)],
        );
        assert_eq!(tally(&inp), t(10, 0, 10, 10, 30));
    }

    #[test]
    fn split_votes_divide_stake_and_round_down() {
        let split = vec![(Yes, 333_333), (No, 333_333), (Abstain, 333_334)];
        let inp = input(&[(1, split)], &[(1, 1, 10)]);
        // 10 × 0.333333 = 3.33 → 3; 10 × 0.333334 = 3.33 → 3.
        assert_eq!(tally(&inp), t(3, 3, 3, 0, 10));
        let inp = input(
            &[(1, vec![(Yes, 700_000), (NoWithVeto, 300_000)])],
            &[(1, 1, 1_000)],
        );
        assert_eq!(tally(&inp), t(700, 0, 0, 300, 1_000));
    }

    #[test]
    fn stake_of_non_voters_with_silent_validators_does_not_count() {
        let inp = input(&[(9, one(Yes))], &[(1, 1, 100)]);
        assert_eq!(tally(&inp), t(0, 0, 0, 0, 100));
        assert_eq!(outcome(&tally(&inp), TH), Outcome::NoQuorum);
    }

    proptest! {
        #[test]
        fn turnout_never_exceeds_bonded_stake(
            dels in prop::collection::vec((0u8..6, 0u8..3, 0u128..1_000_000), 0..20),
            voters in prop::collection::vec((0u8..6, 0u32..=1_000_000), 0..6),
        ) {
            let votes: Vec<(u8, Vec<(VoteOption, u32)>)> = voters
                .iter()
                .map(|(v, w)| (*v, vec![(Yes, *w), (No, WEIGHT_SCALE - *w)]))
                .collect();
            let inp = input(&votes, &dels);
            let tl = tally(&inp);
            prop_assert!(tl.turnout() <= tl.total_bonded);
        }
    }
}
