//! The two halves of double-sign evidence agree: two votes signed by the consensus engine's own signer
//! (`lode_consensus::LodeSigner`, what a validator's node signs) are evidence the application verifies
//! (`lode_state::modules::evidence::SignedVote`): the same sign bytes, the same consensus address, the same
//! ZIP-215 check; on another chain they do not verify.

use lode_consensus::{
    signing::vote_sign_bytes,
    types::{Address, BlockId, PrivateKey, Vote},
    Height, LodeSigner,
};
use lode_state::modules::{
    evidence::{msg::check_conflict, SignedVote},
    staking::set::cons_addr,
};
use malachitebft_core_types::{NilOrVal, Round, VoteType};

fn engine_vote(signer: &LodeSigner, value: Option<u8>, chain: &str) -> (Vote, SignedVote) {
    let vote = Vote {
        vote_type: VoteType::Prevote,
        height: Height(7),
        round: Round::new(2),
        value_id: value.map_or(NilOrVal::Nil, |b| NilOrVal::Val(BlockId([b; 32]))),
        validator_address: signer.address(),
        extension: None,
    };
    let signed = signer.sign_vote_sync(vote.clone());
    let evidence = SignedVote {
        vote_type: 0,
        height: 7,
        round: 2,
        value_id: value.map(|b| vec![b; 32]).unwrap_or_default(),
        validator_address: signed.message.validator_address.0,
        signature: signed.signature.0,
    };
    assert_eq!(vote_sign_bytes(chain, &vote), evidence.sign_bytes(chain));
    (vote, evidence)
}

#[test]
fn votes_the_engine_signs_are_evidence_the_app_verifies() {
    const CHAIN: &str = "lode-evidence-1";
    let key = PrivateKey::from_seed([7; 32]);
    let public = key.public_key().0;
    let signer = LodeSigner::new(key, CHAIN);
    assert_eq!(
        signer.address(),
        Address::from_public_key(&signer.public_key())
    );
    assert_eq!(signer.address().0, cons_addr(&public));
    let (_, a) = engine_vote(&signer, Some(1), CHAIN);
    let (_, b) = engine_vote(&signer, None, CHAIN);
    assert!(a.verifies(CHAIN, &public));
    assert!(b.verifies(CHAIN, &public));
    check_conflict(&a, &b).expect("a value and nil in one round conflict");
    // Signed for another chain: the app refuses it here.
    let other = LodeSigner::new(PrivateKey::from_seed([7; 32]), "another-chain");
    let (_, c) = engine_vote(&other, Some(2), "another-chain");
    assert!(!c.verifies(CHAIN, &public));
    assert!(c.verifies("another-chain", &public));
}
