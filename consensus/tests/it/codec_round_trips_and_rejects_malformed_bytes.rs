use bytes::Bytes;
use lode_consensus::context::LodeContext;
use lode_consensus::types::{BlockHeader, PartInit, ProposalPart, Vote};
use lode_consensus::{
    Address, Block, BlockId, BlockTime, DecidedBlock, Height, LodeCodec, LodeSigner, PrivateKey,
    Signature,
};
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::codec::Codec;
use malachitebft_app_channel::app::types::SignedConsensusMsg;
use malachitebft_core_types::{CommitCertificate, CommitSignature, Context, NilOrVal, Round};
use proptest::prelude::*;

fn block(height: u64, txs: Vec<Vec<u8>>, nanos: u32) -> Block {
    let txs: Vec<Bytes> = txs.into_iter().map(Bytes::from).collect();
    Block::new(
        BlockHeader {
            chain_id: "lode-test".into(),
            height: Height(height),
            time: BlockTime {
                seconds: 1_700_000_000,
                nanos,
            },
            proposer: Address([3; 20]),
            last_block_id: (height > 1).then_some(BlockId([4; 32])),
            tx_root: lode_consensus::types::tx_root(&txs),
            app_hash: Bytes::from_static(b"hash"),
            last_commit_hash: None,
        },
        txs,
    )
}

proptest! {
    #[test]
    fn signed_votes_round_trip(height in 1u64..1_000_000, round in 0u32..1000, nil in any::<bool>(), id in any::<[u8; 32]>()) {
        let signer = LodeSigner::new(PrivateKey::from_seed([1; 32]), "lode-test");
        let value = if nil { NilOrVal::Nil } else { NilOrVal::Val(BlockId(id)) };
        let vote: Vote = LodeContext.new_precommit(Height(height), Round::new(round), value, signer.address());
        let msg = SignedConsensusMsg::Vote(signer.sign_vote_sync(vote));
        let bytes = LodeCodec.encode(&msg).expect("encode");
        let back: SignedConsensusMsg<LodeContext> = LodeCodec.decode(bytes).expect("decode");
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn proposals_and_blocks_round_trip(height in 1u64..1000, txs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8), nanos in 0u32..1_000_000_000) {
        let signer = LodeSigner::new(PrivateKey::from_seed([2; 32]), "lode-test");
        let b = block(height, txs, nanos);
        prop_assert_eq!(Block::decode(&b.encode()).expect("block"), b.clone());
        let p = LodeContext.new_proposal(Height(height), Round::new(1), b, Round::Nil, signer.address());
        let msg = SignedConsensusMsg::Proposal(signer.sign_proposal_sync(p));
        let back: SignedConsensusMsg<LodeContext> = LodeCodec.decode(LodeCodec.encode(&msg).expect("encode")).expect("decode");
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn malformed_bytes_are_rejected_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let b = Bytes::from(bytes);
        let _ = <LodeCodec as Codec<SignedConsensusMsg<LodeContext>>>::decode(&LodeCodec, b.clone());
        let _ = <LodeCodec as Codec<StreamMessage<ProposalPart>>>::decode(&LodeCodec, b.clone());
        let _ = <LodeCodec as Codec<ProposalPart>>::decode(&LodeCodec, b.clone());
        let _ = Block::decode(&b);
        let _ = DecidedBlock::decode(&b);
    }
}

#[test]
fn stream_messages_and_decided_blocks_round_trip() {
    let parts = [
        ProposalPart::Init(PartInit {
            height: Height(2),
            round: Round::new(0),
            valid_round: Round::Nil,
            proposer: Address([9; 20]),
        }),
        ProposalPart::Data(Bytes::from_static(b"chunk")),
        ProposalPart::Fin(Signature([7; 64])),
    ];
    for (i, p) in parts.into_iter().enumerate() {
        let m = StreamMessage::new(
            StreamId::new(Bytes::from_static(b"s")),
            i as u64,
            StreamContent::Data(p),
        );
        let back: StreamMessage<ProposalPart> = LodeCodec
            .decode(LodeCodec.encode(&m).expect("encode"))
            .expect("decode");
        assert_eq!(back, m);
    }
    let b = block(2, vec![b"a".to_vec()], 5);
    let d = DecidedBlock {
        certificate: CommitCertificate {
            height: Height(2),
            round: Round::new(0),
            value_id: b.id(),
            commit_signatures: vec![CommitSignature::new(Address([1; 20]), Signature([2; 64]))],
        },
        block: b,
    };
    assert_eq!(DecidedBlock::decode(&d.encode()).expect("decode"), d);
}

#[test]
fn wrong_lengths_are_rejected() {
    // A vote whose validator address is 3 bytes long.
    let bad = lode_proto::consensus::v1::SignedMessage {
        message: Some(lode_proto::consensus::v1::signed_message::Message::Vote(
            lode_proto::consensus::v1::Vote {
                vote_type: 0,
                height: 1,
                round: 0,
                value_id: vec![],
                validator_address: vec![1, 2, 3],
                extension: None,
            },
        )),
        signature: vec![0; 64],
    };
    let bytes = Bytes::from(prost::Message::encode_to_vec(&bad));
    assert!(
        <LodeCodec as Codec<SignedConsensusMsg<LodeContext>>>::decode(&LodeCodec, bytes).is_err()
    );
}
