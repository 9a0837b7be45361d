//! Staking drives the consensus set: FinalizeBlock returns the difference between the stored set and the
//! one the proof-of-useful-compute rule gives (here with no compute weight, cap or churn limit: shares of
//! 10^9 by stake; top `max_validators`, ties to the smaller key), and liveness, read from the block's
//! `decided_last_commit`, jails a validator that missed too much of its window (slashing it and each of
//! its delegations), which may unjail after `jail_blocks`; every bad unjail has its own code.

use bytes::Bytes;
use lode_proto::staking::v1 as stpb;
use lode_state::{
    modules::staking::{self, StakingMsg},
    tx::Msg,
    Params,
};
use tendermint_proto::v0_38::{
    abci::{CommitInfo, ValidatorUpdate, VoteInfo},
    crypto::public_key::Sum,
    types::BlockIdFlag,
};

use crate::common::*;

const REDUCTION: u128 = 1_000;
const JAIL: u64 = 20;

fn params() -> Params {
    let mut p = Params::default();
    p.staking.power_reduction = REDUCTION;
    p.staking.max_validators = 2;
    p.staking.signed_blocks_window = 4;
    p.staking.max_missed_bps = 5_000;
    p.staking.jail_blocks = JAIL;
    p.staking.slash_downtime_bps = 1_000;
    // Power is the stake share of 10^9, at once: no compute weight, no cap, no churn limit.
    p.staking.compute_weight_bps = 0;
    p.staking.max_power_bps = 10_000;
    p.staking.max_churn_bps = 10_000;
    p
}

/// `v` sorted.
fn sorted(mut v: Vec<([u8; 32], i64)>) -> Vec<([u8; 32], i64)> {
    v.sort();
    v
}

fn consensus_key(i: usize) -> [u8; 32] {
    key(2_000 + i as u64).verification_key().to_bytes()
}

fn create(chain: &mut Chain, i: usize, bond: u128) -> Vec<ValidatorUpdate> {
    let tx = chain.sign(
        i,
        Msg::Staking(StakingMsg::CreateValidator {
            operator: chain.addr(i),
            consensus_key: consensus_key(i),
            moniker: format!("v{i}"),
            self_bond: bond,
        }),
    );
    let r = chain.finalize(vec![tx], None);
    assert_eq!(r.tx_results[0].code, 0, "{}", r.tx_results[0].log);
    r.validator_updates
}

fn updates(u: &[ValidatorUpdate]) -> Vec<([u8; 32], i64)> {
    u.iter()
        .map(|u| match u.pub_key.as_ref().and_then(|k| k.sum.as_ref()) {
            Some(Sum::Ed25519(k)) => (
                <[u8; 32]>::try_from(k.as_slice()).expect("32 bytes"),
                u.power,
            ),
            _ => panic!("not ed25519"),
        })
        .collect()
}

/// A last commit listing `signed` as having signed and `absent` as absent.
fn commit(signed: &[[u8; 32]], absent: &[[u8; 32]]) -> CommitInfo {
    let vote = |k: &[u8; 32], flag: BlockIdFlag| VoteInfo {
        validator: Some(tendermint_proto::v0_38::abci::Validator {
            address: Bytes::copy_from_slice(&staking::set::cons_addr(k)),
            power: 1,
        }),
        block_id_flag: flag as i32,
    };
    CommitInfo {
        round: 0,
        votes: signed
            .iter()
            .map(|k| vote(k, BlockIdFlag::Commit))
            .chain(absent.iter().map(|k| vote(k, BlockIdFlag::Absent)))
            .collect(),
    }
}

fn validator(chain: &Chain, op: &lode_state::Address) -> stpb::Validator {
    let r: stpb::ValidatorsResponse =
        chain.query("/staking/validators", &stpb::ValidatorsRequest::default());
    r.validators
        .into_iter()
        .find(|v| v.operator == op.to_string())
        .expect("validator listed")
}

#[test]
fn the_set_follows_stake_keeps_the_top_n_and_breaks_ties_by_key() {
    let mut chain = Chain::with_params(3, params());
    let genesis = key(999).verification_key().to_bytes();
    // The genesis validator's bond is 10 * REDUCTION. Account 0 bonds 5: the set has room (max 2), it
    // joins with a third of the power, and the genesis validator's power falls to two thirds (the largest
    // remainder takes the odd unit).
    assert_eq!(
        updates(&create(&mut chain, 0, 5 * REDUCTION)),
        sorted(vec![
            (genesis, 666_666_667),
            (consensus_key(0), 333_333_333)
        ])
    );
    // Account 1 bonds 5 too: 10:5:5, a tie for the second seat, which the smaller key keeps.
    let (small, large) = if consensus_key(0) < consensus_key(1) {
        (0, 1)
    } else {
        (1, 0)
    };
    let u = updates(&create(&mut chain, 1, 5 * REDUCTION));
    if small == 0 {
        assert_eq!(
            u,
            sorted(vec![
                (genesis, 500_000_000),
                (consensus_key(0), 250_000_000)
            ]),
            "the incumbent has the smaller key"
        );
    } else {
        assert_eq!(
            u,
            sorted(vec![
                (genesis, 500_000_000),
                (consensus_key(1), 250_000_000),
                (consensus_key(0), 0)
            ])
        );
    }
    // Account 2 delegates 1 * REDUCTION to the larger key (10:5:6): it takes the seat, the other leaves.
    let tx = chain.sign(
        2,
        Msg::Staking(StakingMsg::Delegate {
            delegator: chain.addr(2),
            validator: chain.addr(large),
            amount: REDUCTION,
        }),
    );
    assert_eq!(
        updates(&chain.finalize(vec![tx], None).validator_updates),
        sorted(vec![
            (genesis, 476_190_476),
            (consensus_key(large), 285_714_286),
            (consensus_key(small), 0)
        ])
    );
    assert_eq!(validator(&chain, &chain.addr(large)).status, "bonded");
    assert_eq!(validator(&chain, &chain.addr(small)).status, "unbonded");
    // Nothing changes: no update. The third validator's share is left out of the set.
    assert!(chain.finalize(vec![], None).validator_updates.is_empty());
    let set: Vec<([u8; 32], u64)> = lode_state::validators::load(chain.app.store()).expect("set");
    let mut want = vec![(genesis, 476_190_476), (consensus_key(large), 285_714_286)];
    want.sort();
    assert_eq!(set, want);
    // Undelegating it again (power 0 is a removal).
    let tx = chain.sign(
        2,
        Msg::Staking(StakingMsg::Undelegate {
            delegator: chain.addr(2),
            validator: chain.addr(large),
            amount: REDUCTION,
        }),
    );
    // Back to a tie at 5: the smaller key wins it back.
    assert_eq!(
        updates(&chain.finalize(vec![tx], None).validator_updates),
        sorted(vec![
            (genesis, 500_000_000),
            (consensus_key(large), 0),
            (consensus_key(small), 250_000_000)
        ])
    );
    chain.check_invariants();
}

#[test]
fn a_validator_that_misses_its_window_is_jailed_slashed_and_may_unjail_after_jail_blocks() {
    let mut chain = Chain::with_params(3, params());
    let genesis = key(999).verification_key().to_bytes();
    create(&mut chain, 0, 10 * REDUCTION);
    // Account 1 delegates to validator 0, account 2 is no validator.
    chain.ok(
        1,
        Msg::Staking(StakingMsg::Delegate {
            delegator: chain.addr(1),
            validator: chain.addr(0),
            amount: 5 * REDUCTION,
        }),
    );
    let v0 = chain.addr(0);
    let k0 = consensus_key(0);
    // Window 4, at most 50% missed: signed, missed, missed is 2 of 4 (not over); a third miss jails.
    chain.finalize(vec![], Some(commit(&[genesis, k0], &[])));
    chain.finalize(vec![], Some(commit(&[genesis], &[k0])));
    let r = chain.finalize(vec![], Some(commit(&[genesis], &[k0])));
    assert!(r.validator_updates.is_empty());
    let info: stpb::SigningInfoResponse = chain.query(
        "/staking/signing_info",
        &stpb::SigningInfoRequest {
            operator: v0.to_string(),
        },
    );
    let info = info.info.expect("info");
    assert_eq!((info.missed_blocks, info.index, info.jailed), (2, 3, false));
    let treasury_before = chain.balance(&lode_state::modules::gov::treasury());
    let r = chain.finalize(vec![], Some(commit(&[genesis], &[k0])));
    let jailed_at = chain.height;
    // Out of the set (the genesis validator holds all the power again), 10% of 15 * REDUCTION slashed to
    // the treasury, from the self-bond and the delegation.
    assert_eq!(
        updates(&r.validator_updates),
        sorted(vec![(k0, 0), (genesis, 1_000_000_000)])
    );
    assert!(r.events.iter().any(|e| e.r#type == "jail"));
    let v = validator(&chain, &v0);
    assert_eq!(v.status, "jailed");
    assert_eq!(v.tokens, (15 * REDUCTION - 15 * REDUCTION / 10).to_string());
    assert_eq!(v.jailed_until, jailed_at + JAIL);
    assert_eq!(
        chain.balance(&lode_state::modules::gov::treasury()) - treasury_before,
        15 * REDUCTION / 10
    );
    let d: stpb::DelegationsResponse = chain.query(
        "/staking/delegations",
        &stpb::DelegationsRequest {
            delegator: chain.addr(1).to_string(),
        },
    );
    assert_eq!(
        d.delegations[0].amount,
        (5 * REDUCTION - 5 * REDUCTION / 10).to_string()
    );
    chain.check_invariants();
    // While jailed, its absence is not counted.
    chain.finalize(vec![], Some(commit(&[genesis], &[k0])));
    // Unjail: too early (44), someone who is not a validator (41), a validator not jailed (43).
    let unjail = |op| Msg::Staking(StakingMsg::Unjail { operator: op });
    chain.assert_msg_rejected(0, unjail(v0), 44);
    chain.assert_msg_rejected(2, unjail(chain.addr(2)), 41);
    create(&mut chain, 1, 2 * REDUCTION);
    chain.assert_msg_rejected(1, unjail(chain.addr(1)), 43);
    chain.advance_to(jailed_at + JAIL - 1);
    // From jailed_until on it is accepted; the validator returns to the set at the end of that block, with
    // a fresh window.
    let tx = chain.sign(0, unjail(v0));
    let r = chain.finalize(vec![tx], None);
    assert_eq!(chain.height, jailed_at + JAIL);
    assert_eq!(r.tx_results[0].code, 0, "{}", r.tx_results[0].log);
    // 13.5 of 25.5 * REDUCTION bonded (the genesis validator 10, validator 1 2, kept out by max 2).
    assert!(
        updates(&r.validator_updates).contains(&(k0, 529_411_765)),
        "{:?}",
        updates(&r.validator_updates)
    );
    assert_eq!(validator(&chain, &v0).status, "bonded");
    let info: stpb::SigningInfoResponse = chain.query(
        "/staking/signing_info",
        &stpb::SigningInfoRequest {
            operator: v0.to_string(),
        },
    );
    assert_eq!(info.info.expect("info").missed_blocks, 0);
    chain.check_invariants();
}
