use bytes::Bytes;
use lode_consensus::context::LodeContext;
use lode_consensus::types::{BlockHeader, PartInit, ProposalPart, Vote};
use lode_consensus::{
    Address, Block, BlockId, BlockTime, CompactBlock, CompactTx, DecidedBlock, Height, LodeCodec,
    LodeSigner, PrivateKey, Signature,
};
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::codec::Codec;
use malachitebft_app_channel::app::types::SignedConsensusMsg;
use malachitebft_core_types::{CommitCertificate, CommitSignature, Context, NilOrVal, Round};
use proptest::prelude::*;
use prost::Message as _;

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
        // The message carries the header only: the decoded value is header-only, with the same id.
        let SignedConsensusMsg::Proposal(ref back_p) = back else { panic!("not a proposal") };
        prop_assert!(back_p.message.value.is_header_only());
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn compact_blocks_round_trip_and_resolve_to_their_block(height in 1u64..1000, txs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8), named in proptest::collection::vec(any::<bool>(), 0..8)) {
        use sha2::Digest as _;
        let b = block(height, txs, 5);
        let hashes: Vec<[u8; 32]> = b.txs().iter().map(|t| sha2::Sha256::digest(t).into()).collect();
        let names: Vec<Option<[u8; 32]>> = hashes.iter().zip(named.iter().chain(std::iter::repeat(&false))).map(|(h, n)| n.then_some(*h)).collect();
        let c = CompactBlock::of(&b, &names);
        prop_assert_eq!(CompactBlock::decode(&c.encode()).expect("compact block"), c.clone());
        // Resolved from a pool holding every tx: the same block, field by field.
        let pool: std::collections::HashMap<[u8; 32], Bytes> = hashes.iter().copied().zip(b.txs().iter().cloned()).collect();
        let resolved = c.clone().resolve(&pool).expect("every named tx held");
        prop_assert_eq!(resolved.txs(), b.txs());
        prop_assert_eq!(resolved.id(), b.id());
        // From an empty pool: exactly the named ones are missing, in block order.
        let missing = c.resolve(&std::collections::HashMap::new()).err().unwrap_or_default();
        prop_assert_eq!(missing, names.iter().flatten().copied().collect::<Vec<_>>());
    }

    #[test]
    fn malformed_bytes_are_rejected_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let b = Bytes::from(bytes);
        let _ = <LodeCodec as Codec<SignedConsensusMsg<LodeContext>>>::decode(&LodeCodec, b.clone());
        let _ = <LodeCodec as Codec<StreamMessage<ProposalPart>>>::decode(&LodeCodec, b.clone());
        let _ = <LodeCodec as Codec<ProposalPart>>::decode(&LodeCodec, b.clone());
        let _ = Block::decode(&b);
        let _ = CompactBlock::decode(&b);
        let _ = DecidedBlock::decode(&b);
    }
}

/// A compact block's tx must be whole or a 32-byte hash; anything else is refused, not guessed at.
#[test]
fn a_compact_tx_named_by_anything_but_a_32_byte_hash_is_refused() {
    use lode_proto::consensus::v1 as pb;
    let b = block(3, vec![b"a=1".to_vec()], 0);
    let good = CompactBlock::of(&b, &[]);
    assert_eq!(good.txs, vec![CompactTx::Whole(Bytes::from_static(b"a=1"))]);
    let mut wire = pb::CompactBlock::decode(good.encode()).expect("decode");
    for bad in [
        Some(pb::compact_tx::Tx::Hash(vec![7; 31])),
        Some(pb::compact_tx::Tx::Hash(vec![7; 33])),
        None,
    ] {
        wire.txs = vec![pb::CompactTx { tx: bad }];
        assert!(CompactBlock::decode(&wire.encode_to_vec()).is_err());
    }
}

/// A signed proposal message carries its block's header, not its body (which travels once, in the
/// proposal stream): its size does not grow with the block, its signature still verifies, and its value
/// equals the whole block, which consensus pairs with it by id.
#[test]
fn a_proposal_message_carries_its_blocks_header_only() {
    let signer = LodeSigner::new(PrivateKey::from_seed([2; 32]), "lode-test");
    let size = |txs: usize| {
        let b = block(5, (0..txs).map(|i| vec![i as u8; 200]).collect(), 7);
        let p = LodeContext.new_proposal(
            Height(5),
            Round::new(0),
            b.clone(),
            Round::Nil,
            signer.address(),
        );
        let msg = SignedConsensusMsg::Proposal(signer.sign_proposal_sync(p));
        let bytes = LodeCodec.encode(&msg).expect("encode");
        let back: SignedConsensusMsg<LodeContext> =
            LodeCodec.decode(bytes.clone()).expect("decode");
        let SignedConsensusMsg::Proposal(back) = back else {
            panic!("not a proposal")
        };
        assert!(back.message.value.is_header_only());
        assert!(back.message.value.txs().is_empty());
        assert_eq!(back.message.value.id(), b.id());
        assert_eq!(back.message.value, b);
        assert!(lode_consensus::signing::verify(
            &signer.public_key(),
            &lode_consensus::signing::proposal_sign_bytes("lode-test", &back.message),
            &back.signature,
        ));
        bytes.len()
    };
    assert_eq!(size(0), size(1_000));
    // A peer that puts a body into the message anyway: it is dropped, the value stays header-only.
    let b = block(5, vec![vec![1; 200]; 3], 7);
    let p = LodeContext.new_proposal(
        Height(5),
        Round::new(0),
        b.clone(),
        Round::Nil,
        signer.address(),
    );
    let signed = signer.sign_proposal_sync(p);
    let mut pb_msg = lode_proto::consensus::v1::SignedMessage::decode(
        LodeCodec
            .encode(&SignedConsensusMsg::Proposal(signed))
            .expect("encode"),
    )
    .expect("proto");
    let Some(lode_proto::consensus::v1::signed_message::Message::Proposal(ref mut pp)) =
        pb_msg.message
    else {
        panic!("not a proposal")
    };
    pp.value = Some(b.to_proto());
    let back: SignedConsensusMsg<LodeContext> = LodeCodec
        .decode(Bytes::from(pb_msg.encode_to_vec()))
        .expect("decode");
    let SignedConsensusMsg::Proposal(back) = back else {
        panic!("not a proposal")
    };
    assert!(back.message.value.is_header_only());
    assert!(back.message.value.txs().is_empty());
    assert_eq!(back.message.value.id(), b.id());
}

/// Whole blocks compare field by field; a header-only block equals the whole block of its header (and
/// hashes alike), and no block with another header.
#[test]
fn a_header_only_block_equals_its_whole_block_and_no_other() {
    use std::hash::{BuildHasher, RandomState};
    let whole = block(3, vec![b"a".to_vec(), b"b".to_vec()], 1);
    // The same header over another body (a tx list that does not match the root).
    let swapped = Block::new(whole.header().clone(), vec![Bytes::from_static(b"c")]);
    assert_eq!(swapped.id(), whole.id());
    assert_ne!(swapped, whole);
    let header_only = whole.to_header_only();
    assert_eq!(header_only, whole);
    assert_eq!(whole, header_only);
    let s = RandomState::new();
    assert_eq!(s.hash_one(&header_only), s.hash_one(&whole));
    assert_ne!(block(4, vec![b"a".to_vec()], 1).to_header_only(), whole);
    assert_eq!(header_only.cmp(&whole), std::cmp::Ordering::Equal);
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

/// A stored validator set is read back only if the engine could have built it: at least one validator, every
/// power above zero, the total within `MAX_TOTAL_POWER`. An empty set would leave proposer selection without a
/// candidate; a good one round-trips.
#[test]
fn a_stored_validator_set_that_no_engine_could_build_is_refused() {
    use lode_consensus::store::HeightValidators;
    use lode_consensus::types::{Validator, ValidatorSet, MAX_TOTAL_POWER};
    use lode_proto::consensus::v1 as pb;
    let key = |seed: u8| PrivateKey::from_seed([seed; 32]).public_key();
    let good = ValidatorSet::new([Validator::new(key(1), 10), Validator::new(key(2), 20)]);
    let v = HeightValidators {
        height: Height(3),
        current: good.clone(),
        next: good,
    };
    assert_eq!(HeightValidators::decode(&v.encode()).expect("decode"), v);
    let stored = pb::HeightValidators::decode(v.encode().as_ref()).expect("pb");
    let with = |f: &dyn Fn(&mut pb::ValidatorSet)| {
        let mut s = stored.clone();
        f(s.current.as_mut().expect("current"));
        Bytes::from(s.encode_to_vec())
    };
    for (what, bytes) in [
        ("empty", with(&|s| s.validators.clear())),
        ("zero power", with(&|s| s.validators[0].voting_power = 0)),
        (
            "one over the total",
            with(&|s| {
                s.validators[0].voting_power = MAX_TOTAL_POWER - 19;
            }),
        ),
        (
            "each at the largest",
            with(&|s| {
                for v in &mut s.validators {
                    v.voting_power = u64::MAX;
                }
            }),
        ),
    ] {
        assert!(HeightValidators::decode(&bytes).is_err(), "{what}");
    }
    let at_limit = with(&|s| s.validators[0].voting_power = MAX_TOTAL_POWER - 20);
    assert!(HeightValidators::decode(&at_limit).is_ok());
}
