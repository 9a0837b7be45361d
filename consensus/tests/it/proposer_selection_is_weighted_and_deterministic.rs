use std::collections::BTreeMap;

use lode_consensus::context::LodeContext;
use lode_consensus::proposer::next_height_set;
use lode_consensus::{Address, Height, PrivateKey, Validator, ValidatorSet};
use malachitebft_core_types::{Context, Round};

fn set(powers: &[u64]) -> ValidatorSet {
    ValidatorSet::new(powers.iter().enumerate().map(|(i, p)| {
        let mut seed = [0u8; 32];
        seed[0] = i as u8 + 1;
        Validator::new(PrivateKey::from_seed(seed).public_key(), *p)
    }))
}

fn counts_over_heights(mut vs: ValidatorSet, heights: usize) -> BTreeMap<Address, u64> {
    let mut counts = BTreeMap::new();
    for h in 0..heights {
        let p = LodeContext.select_proposer(&vs, Height(h as u64 + 1), Round::new(0));
        *counts.entry(p.address).or_insert(0) += 1;
        let members = vs.validators().to_vec();
        vs = next_height_set(&vs, &members);
    }
    counts
}

#[test]
fn proposers_are_chosen_in_proportion_to_voting_power_over_many_heights() {
    let vs = set(&[1, 2, 3, 4]);
    let counts = counts_over_heights(vs.clone(), 1000);
    for v in vs.validators() {
        let expected = 1000 * v.voting_power / 10;
        let got = counts.get(&v.address).copied().unwrap_or(0);
        assert!(
            got.abs_diff(expected) <= 1,
            "power {} proposed {got}, expected {expected}",
            v.voting_power
        );
    }
}

#[test]
fn proposers_are_chosen_in_proportion_to_voting_power_over_rounds() {
    let vs = set(&[10, 30, 60]);
    let mut counts: BTreeMap<Address, u64> = BTreeMap::new();
    for r in 0..100u32 {
        let p = LodeContext.select_proposer(&vs, Height(1), Round::new(r));
        *counts.entry(p.address).or_insert(0) += 1;
    }
    for v in vs.validators() {
        let got = counts.get(&v.address).copied().unwrap_or(0);
        assert!(
            got.abs_diff(v.voting_power) <= 1,
            "power {} got {got}",
            v.voting_power
        );
    }
}

#[test]
fn equal_powers_rotate_through_every_validator() {
    let vs = set(&[5, 5, 5, 5]);
    let counts = counts_over_heights(vs, 8);
    assert_eq!(counts.len(), 4);
    assert!(counts.values().all(|c| *c == 2));
}

#[test]
fn proposer_selection_is_deterministic_and_independent_of_input_order() {
    let a = set(&[3, 1, 4, 1, 5]);
    let mut rev: Vec<Validator> = a.validators().to_vec();
    rev.reverse();
    let b = ValidatorSet::new(rev);
    assert_eq!(a, b);
    for r in 0..50u32 {
        let pa = LodeContext
            .select_proposer(&a, Height(7), Round::new(r))
            .address;
        let pb = LodeContext
            .select_proposer(&b, Height(7), Round::new(r))
            .address;
        assert_eq!(pa, pb);
    }
}

#[test]
fn a_new_validator_does_not_propose_immediately() {
    let vs = set(&[10, 10, 10]);
    let newcomer = Validator::new(PrivateKey::from_seed([99; 32]).public_key(), 100);
    let mut members = vs.validators().to_vec();
    members.push(newcomer.clone());
    let next = next_height_set(&vs, &members);
    assert_eq!(next.validators().len(), 4);
    let p = LodeContext.select_proposer(&next, Height(2), Round::new(0));
    assert_ne!(p.address, newcomer.address);
}

/// The proposer the original algorithm picks: walk `round + 1` increments of a copy of the set.
fn walked(vs: &ValidatorSet, round: u32) -> Address {
    let mut copy = vs.clone();
    let i = copy.increment_proposer_priority(round + 1);
    vs.validators()[i].address
}

#[test]
fn a_round_of_u32_max_picks_a_proposer_without_walking_every_round() {
    // A sync certificate or a signed stream may carry any round up to u32::MAX, and Malachite asks for its
    // proposer before it verifies anything. Walking u32::MAX increments would stall the consensus actor.
    let vs = set(&[3, 1, 4, 1, 5, 9, 2, 6]);
    let a = LodeContext
        .select_proposer(&vs, Height(1), Round::new(u32::MAX))
        .address;
    let b = LodeContext
        .select_proposer(&vs, Height(1), Round::new(u32::MAX))
        .address;
    assert_eq!(a, b, "selection is deterministic");
    assert!(vs.validators().iter().any(|v| v.address == a));
}

#[test]
fn selection_agrees_with_walking_the_rounds_for_every_round_below_the_walk_limit() {
    for powers in [
        &[1u64, 2, 3, 4][..],
        &[10, 30, 60],
        &[5, 5, 5, 5],
        &[7],
        &[1, 1_000_000, 3],
    ] {
        let mut vs = set(powers);
        for height in 1..=5u64 {
            for r in 0..lode_consensus::proposer::WALKED_ROUNDS {
                let got = LodeContext
                    .select_proposer(&vs, Height(height), Round::new(r))
                    .address;
                assert_eq!(
                    got,
                    walked(&vs, r),
                    "powers {powers:?} height {height} round {r}"
                );
            }
            let members = vs.validators().to_vec();
            vs = next_height_set(&vs, &members);
        }
    }
}

#[test]
fn proposers_of_huge_rounds_are_still_chosen_in_proportion_to_voting_power() {
    let vs = set(&[10, 30, 60]);
    let mut counts: BTreeMap<Address, u64> = BTreeMap::new();
    for r in (u32::MAX - 9_999)..=u32::MAX {
        let p = LodeContext.select_proposer(&vs, Height(1), Round::new(r));
        *counts.entry(p.address).or_insert(0) += 1;
    }
    for v in vs.validators() {
        let expected = v.voting_power * 100;
        let got = counts.get(&v.address).copied().unwrap_or(0);
        assert!(
            got.abs_diff(expected) <= expected / 10,
            "power {} got {got} of 10000, expected about {expected}",
            v.voting_power
        );
    }
}
