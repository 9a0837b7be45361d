//! Double-sign evidence: two conflicting votes signed with a validator's consensus key, submitted by anyone
//! in `MsgSubmitDoubleSign`, slash the validator `slash_double_sign_bps` (to the treasury), tombstone it and
//! take it out of the consensus set at the end of that block; it never returns (`unjail`: 45), and the chain
//! goes on. Every bad evidence has its own code and changes nothing: votes that do not conflict (164), an
//! unknown validator (160), evidence too old (161) or from the future (165), a bad signature (163), and the
//! same offence twice (162).

use ed25519_consensus::SigningKey;
use lode_proto::staking::v1 as stpb;
use lode_state::{
    modules::{
        evidence::{EvidenceMsg, SignedVote},
        gov,
        staking::{self, set::cons_addr, StakingMsg},
    },
    tx::Msg,
    Params,
};

use crate::common::*;

const REDUCTION: u128 = 1_000;
const MAX_AGE: u64 = 20;

fn params() -> Params {
    let mut p = Params::default();
    p.staking.power_reduction = REDUCTION;
    p.staking.compute_weight_bps = 0;
    p.staking.max_power_bps = 10_000;
    p.staking.max_churn_bps = 10_000;
    p.staking.slash_double_sign_bps = 500;
    p.staking.evidence_max_age_blocks = MAX_AGE;
    p.staking.jail_blocks = 5;
    p
}

/// The consensus key of validator `i` (the test holds its private half, as a double signer would).
fn consensus(i: u64) -> SigningKey {
    key(5_000 + i)
}

/// A vote of `signer` for `value` (None: nil), signed over the engine's sign bytes on `chain_id`.
fn vote(
    signer: &SigningKey,
    chain_id: &str,
    height: u64,
    round: i64,
    vote_type: u32,
    value: Option<u8>,
) -> SignedVote {
    let mut v = SignedVote {
        vote_type,
        height,
        round,
        value_id: value.map(|b| vec![b; 32]).unwrap_or_default(),
        validator_address: cons_addr(&signer.verification_key().to_bytes()),
        signature: [0; 64],
    };
    v.signature = signer.sign(&v.sign_bytes(chain_id)).to_bytes();
    v
}

fn evidence(submitter: &Chain, i: usize, a: SignedVote, b: SignedVote) -> Msg {
    Msg::Evidence(EvidenceMsg::SubmitDoubleSign {
        submitter: submitter.addr(i),
        vote_a: a,
        vote_b: b,
    })
}

fn status(chain: &Chain, op: &lode_state::Address) -> stpb::Validator {
    let r: stpb::ValidatorsResponse =
        chain.query("/staking/validators", &stpb::ValidatorsRequest::default());
    r.validators
        .into_iter()
        .find(|v| v.operator == op.to_string())
        .expect("listed")
}

#[test]
fn a_double_signer_is_slashed_tombstoned_and_removed_and_bad_evidence_changes_nothing() {
    let mut chain = Chain::with_params(4, params());
    let k0 = consensus(0);
    let key0 = k0.verification_key().to_bytes();
    // Account 0 runs validator 0 (10 units); account 1 delegates 10 more to it; account 2 submits evidence.
    chain.ok(
        0,
        Msg::Staking(StakingMsg::CreateValidator {
            operator: chain.addr(0),
            consensus_key: key0,
            moniker: "v0".into(),
            self_bond: 10 * REDUCTION,
        }),
    );
    chain.ok(
        1,
        Msg::Staking(StakingMsg::Delegate {
            delegator: chain.addr(1),
            validator: chain.addr(0),
            amount: 10 * REDUCTION,
        }),
    );
    let set = lode_state::validators::load(chain.app.store()).expect("set");
    assert!(set.iter().any(|(k, p)| *k == key0 && *p > 0), "{set:?}");
    chain.advance_to(10);
    let h = 8;
    let (a, b) = (
        vote(&k0, CHAIN_ID, h, 0, 1, Some(1)),
        vote(&k0, CHAIN_ID, h, 0, 1, Some(2)),
    );

    // Not conflicting: the same value, or another round, or another validator.
    chain.assert_msg_rejected(2, evidence(&chain, 2, a.clone(), a.clone()), 164);
    let other_round = vote(&k0, CHAIN_ID, h, 1, 1, Some(2));
    chain.assert_msg_rejected(2, evidence(&chain, 2, a.clone(), other_round), 164);
    let stranger = key(9_999);
    let theirs = vote(&stranger, CHAIN_ID, h, 0, 1, Some(2));
    chain.assert_msg_rejected(2, evidence(&chain, 2, a.clone(), theirs), 164);
    // A prevote and a nil precommit conflict with nothing of the other type.
    let nil = vote(&k0, CHAIN_ID, h, 0, 0, None);
    chain.assert_msg_rejected(2, evidence(&chain, 2, a.clone(), nil), 164);
    // An unknown validator: a key that is nobody's consensus key.
    chain.assert_msg_rejected(
        2,
        evidence(
            &chain,
            2,
            vote(&stranger, CHAIN_ID, h, 0, 1, Some(1)),
            vote(&stranger, CHAIN_ID, h, 0, 1, Some(2)),
        ),
        160,
    );
    // Bad signatures: one vote signed by another key, one signed on another chain.
    let mut forged = b.clone();
    forged.signature = stranger.sign(&b.sign_bytes(CHAIN_ID)).to_bytes();
    chain.assert_msg_rejected(2, evidence(&chain, 2, a.clone(), forged), 163);
    chain.assert_msg_rejected(
        2,
        evidence(
            &chain,
            2,
            vote(&k0, "another-chain", h, 0, 1, Some(1)),
            b.clone(),
        ),
        163,
    );
    // From the future: votes for a height past the block that carries them.
    let future = chain.height + 5;
    chain.assert_msg_rejected(
        2,
        evidence(
            &chain,
            2,
            vote(&k0, CHAIN_ID, future, 0, 1, Some(1)),
            vote(&k0, CHAIN_ID, future, 0, 1, Some(2)),
        ),
        165,
    );
    assert_eq!(status(&chain, &chain.addr(0)).status, "bonded");

    // The real evidence: 5% of each delegation slashed from the bonded pool to the treasury (which also
    // takes its share of the tx fee), tombstoned, out of the set at the end of this very block.
    let treasury = chain.balance(&gov::treasury());
    let pool = chain.balance(&staking::bonded_pool());
    let tx = chain.sign(2, evidence(&chain, 2, a.clone(), b.clone()));
    let r = chain.finalize(vec![tx], None);
    assert_eq!(r.tx_results[0].code, 0, "{}", r.tx_results[0].log);
    assert!(r.tx_results[0]
        .events
        .iter()
        .any(|e| e.r#type == "double_sign"));
    let removed: Vec<_> = r
        .validator_updates
        .iter()
        .filter(|u| u.power == 0)
        .collect();
    assert_eq!(removed.len(), 1, "{:?}", r.validator_updates);
    let set = lode_state::validators::load(chain.app.store()).expect("set");
    assert!(set.iter().all(|(k, _)| *k != key0), "{set:?}");
    let slashed = 2 * (10 * REDUCTION * 500 / 10_000);
    assert_eq!(pool - chain.balance(&staking::bonded_pool()), slashed);
    assert!(chain.balance(&gov::treasury()) - treasury >= slashed);
    let v = status(&chain, &chain.addr(0));
    assert_eq!(v.status, "tombstoned");
    assert_eq!(v.tokens, (20 * REDUCTION - slashed).to_string());
    assert_eq!((v.power, v.set_power), (0, 0));
    assert!(staking::is_tombstoned(chain.app.store(), &chain.addr(0)).expect("read"));
    let rec: stpb::DoubleSignResponse = chain.query(
        "/evidence/double_sign",
        &stpb::DoubleSignRequest {
            operator: chain.addr(0).to_string(),
        },
    );
    assert!(rec.found);
    assert_eq!((rec.height, rec.round, rec.vote_type), (h, 0, 1));
    assert_eq!(rec.slashed, slashed.to_string());
    assert_eq!(rec.submitter, chain.addr(2).to_string());
    chain.check_invariants();

    // The same offence again, or another pair of the same validator: a duplicate (162), nothing changes.
    chain.assert_msg_rejected(2, evidence(&chain, 2, b.clone(), a.clone()), 162);
    chain.assert_msg_rejected(
        3,
        evidence(
            &chain,
            3,
            vote(&k0, CHAIN_ID, h + 1, 2, 0, Some(7)),
            vote(&k0, CHAIN_ID, h + 1, 2, 0, None),
        ),
        162,
    );
    // It never returns: unjail is refused with 45, however long it waits; its missed blocks no longer count.
    chain.advance_to(chain.height + params().staking.jail_blocks + 1);
    chain.assert_msg_rejected(
        0,
        Msg::Staking(StakingMsg::Unjail {
            operator: chain.addr(0),
        }),
        45,
    );
    let set = lode_state::validators::load(chain.app.store()).expect("set");
    assert!(set.iter().all(|(k, _)| *k != key0), "{set:?}");
    // Evidence older than the maximum age is refused (161) even for another validator.
    let k1 = consensus(1);
    chain.ok(
        1,
        Msg::Staking(StakingMsg::CreateValidator {
            operator: chain.addr(1),
            consensus_key: k1.verification_key().to_bytes(),
            moniker: "v1".into(),
            self_bond: 10 * REDUCTION,
        }),
    );
    let old = chain.height - MAX_AGE - 2;
    chain.assert_msg_rejected(
        2,
        evidence(
            &chain,
            2,
            vote(&k1, CHAIN_ID, old, 0, 1, Some(1)),
            vote(&k1, CHAIN_ID, old, 0, 1, Some(2)),
        ),
        161,
    );
    // The chain goes on, every invariant holds.
    chain.advance_to(chain.height + 3);
    chain.check_invariants();
    // An exported genesis leaves the tombstoned validator out (its tokens are its operator's balance).
    let exported = lode_state::genesis::export(chain.app.store()).expect("export");
    assert!(exported
        .validators
        .iter()
        .all(|v| v.operator != chain.addr(0).to_string()));
    assert!(exported
        .validators
        .iter()
        .any(|v| v.operator == chain.addr(1).to_string()));
}
