use lode_consensus::context::LodeContext;
use lode_consensus::types::{BlockHeader, Proposal, Vote};
use lode_consensus::{
    Address, Block, BlockId, BlockTime, Height, LodeSigner, LodeVerifier, PrivateKey,
};
use malachitebft_core_types::{Context, NilOrVal, Round};

fn block() -> Block {
    let txs = vec![bytes::Bytes::from_static(b"tx")];
    Block::new(
        BlockHeader {
            chain_id: "lode-test".into(),
            height: Height(3),
            time: BlockTime {
                seconds: 1,
                nanos: 2,
            },
            proposer: Address([1; 20]),
            last_block_id: Some(BlockId([2; 32])),
            tx_root: lode_consensus::types::tx_root(&txs),
            app_hash: bytes::Bytes::from_static(b"app"),
            last_commit_hash: None,
        },
        txs,
    )
}

#[test]
fn a_signed_vote_verifies_and_a_tampered_vote_is_rejected() {
    let key = PrivateKey::from_seed([7; 32]);
    let signer = LodeSigner::new(key.clone(), "lode-test");
    let verifier = LodeVerifier::new("lode-test");
    let vote: Vote = LodeContext.new_prevote(
        Height(3),
        Round::new(0),
        NilOrVal::Val(BlockId([9; 32])),
        signer.address(),
    );
    let signed = signer.sign_vote_sync(vote.clone());
    assert!(verifier.verify_vote(&vote, &signed.signature, &key.public_key()));

    let mut tampered = vote.clone();
    tampered.value_id = NilOrVal::Nil;
    assert!(!verifier.verify_vote(&tampered, &signed.signature, &key.public_key()));
    let mut tampered = vote.clone();
    tampered.round = Round::new(1);
    assert!(!verifier.verify_vote(&tampered, &signed.signature, &key.public_key()));

    let other = PrivateKey::from_seed([8; 32]).public_key();
    assert!(!verifier.verify_vote(&vote, &signed.signature, &other));
}

#[test]
fn a_signature_from_another_chain_is_rejected() {
    let key = PrivateKey::from_seed([7; 32]);
    let signer = LodeSigner::new(key.clone(), "other-chain");
    let vote: Vote =
        LodeContext.new_precommit(Height(1), Round::new(0), NilOrVal::Nil, signer.address());
    let signed = signer.sign_vote_sync(vote.clone());
    assert!(!LodeVerifier::new("lode-test").verify_vote(
        &vote,
        &signed.signature,
        &key.public_key()
    ));
}

#[test]
fn a_signed_proposal_verifies_and_a_changed_block_is_rejected() {
    let key = PrivateKey::from_seed([5; 32]);
    let signer = LodeSigner::new(key.clone(), "lode-test");
    let verifier = LodeVerifier::new("lode-test");
    let proposal: Proposal = LodeContext.new_proposal(
        Height(3),
        Round::new(0),
        block(),
        Round::Nil,
        signer.address(),
    );
    let signed = signer.sign_proposal_sync(proposal.clone());
    assert!(verifier.verify_proposal(&proposal, &signed.signature, &key.public_key()));

    let mut h = block().header().clone();
    h.time.nanos += 1;
    let mut changed = proposal.clone();
    changed.value = Block::new(h, block().txs().to_vec());
    assert!(!verifier.verify_proposal(&changed, &signed.signature, &key.public_key()));
}
