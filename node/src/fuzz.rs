//! Fuzz entry points: one function per decoder that takes bytes from outside the node, each taking the raw
//! bytes a client, a peer, an operator's file or the disk could supply. The libFuzzer targets in `fuzz/`
//! (run with `scripts/fuzz.sh`, see `docs/fuzzing.md`) are one-line wrappers around these, and this module's
//! tests replay the committed seed corpus (`fuzz/seeds/<target>/`) through the same functions, so the
//! ordinary test suite checks every target without a fuzzer.
//!
//! Each function must return normally on every input: an `Err` from the code under test is the expected
//! answer to bad bytes. A panic is a finding, and so is a broken property the function asserts (a decoded
//! value that does not encode back to bytes that decode to the same value).
//!
//! [`seeds`] builds the seed corpus from valid encodings; `LODE_WRITE_FUZZ_SEEDS=1 cargo nextest run -p
//! lode-node -E 'test(fuzz::tests::)'` writes it to `fuzz/seeds/`.

use std::sync::OnceLock;

use bytes::Bytes;
use ed25519_consensus::SigningKey;
use lode_consensus::{
    codec::LodeCodec,
    types::{tx_root, ProposalPart},
    validity::{check_body, decode_bounded, decode_compact_bounded, BlockLimits},
    Block, BlockHeader, BlockTime, Codec, CompactBlock, DecidedBlock, Height,
};
use lode_gpu_verify::{
    fraud::verify_fraud_proof,
    matrix::{MatrixI32, MatrixI8},
    merkle::{InclusionProof, MerkleTree},
    verify::{verify_reveal, Job, Prover},
};
use lode_proto::compute::v1 as cpb;
use lode_proto::consensus::v1 as pb;
use lode_proto::tx::v1::msg::Sum;
use lode_state::{
    genesis::{AppState, GenesisBalance},
    modules::compute::ComputeMsg,
    tx::{address_of, sign_send, signatures_verify, Tx},
    LodeApp, Params,
};
use malachitebft_app_channel::app::{
    consensus::LivenessMsg,
    streaming::StreamMessage,
    types::{
        core::{CommitCertificate, PolkaCertificate, ValidatorProof},
        sync::{Request as SyncRequest, Response as SyncResponse, Status},
        ProposedValue, SignedConsensusMsg,
    },
};
use prost::Message;
use tendermint_proto::v0_38::abci::{
    request, Request, RequestCheckTx, RequestEcho, RequestFinalizeBlock, RequestInfo,
    RequestInitChain, RequestQuery, ValidatorUpdate,
};

use crate::services::{abci_socket, gossip};

/// Chain id of the fuzz targets' chain (txs signed for another chain fail the stateless checks early).
pub const CHAIN_ID: &str = "lode-fuzz";

/// A fuzz target: its name and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by name: the names of `fuzz/fuzz_targets/*.rs` and of the seed folders.
pub const TARGETS: &[Target] = &[
    ("tx_check_stateless", tx_check_stateless),
    ("consensus_block", consensus_block),
    ("consensus_message", consensus_message),
    ("abci_frame", abci_frame),
    ("gossip_tx_batch", gossip_tx_batch),
    ("query", query),
    ("gpu_matrix", gpu_matrix),
    ("gpu_proof", gpu_proof),
    ("genesis", genesis),
    ("config", config),
];

// ---- targets ----

/// A tx from a client or a peer: decode plus every stateless check, then gas, fee and signatures, as
/// CheckTx and block execution run them.
pub fn tx_check_stateless(data: &[u8]) {
    let params = Params::default();
    if let Ok(tx) = Tx::check_stateless(data, CHAIN_ID, &params) {
        let _ = tx.gas(&params);
        let _ = tx.min_fee(&params);
        let _ = signatures_verify(&tx);
    }
}

/// A block from value sync or the block store (`Block`, size-bounded as sync decodes it, with the body
/// checks every door runs), a proposal stream's body (`CompactBlock`, size-bounded as the bridge decodes
/// it) and a stored `DecidedBlock`. Each must re-encode to itself.
pub fn consensus_block(data: &[u8]) {
    let limits = BlockLimits {
        max_tx_bytes: 1 << 20,
    };
    if let Ok(block) = decode_bounded(data, &limits) {
        let _ = check_body(&block, &limits);
        let _ = block.id();
        let again = Block::decode(&block.encode()).expect("a decoded block re-decodes");
        assert_eq!(again, block, "block changed in an encode/decode round trip");
    }
    if let Ok(body) = decode_compact_bounded(data, &limits) {
        let _ = body.named();
        let again = CompactBlock::decode(&body.encode()).expect("a decoded body re-decodes");
        assert_eq!(
            again, body,
            "compact block changed in an encode/decode round trip"
        );
    }
    if let Ok(decided) = DecidedBlock::decode(data) {
        let again = DecidedBlock::decode(&decided.encode()).expect("a decoded block re-decodes");
        assert_eq!(again, decided, "decided block changed in a round trip");
    }
}

/// A consensus-network message, as the codec Malachite calls on gossip, the WAL and value sync decodes it.
/// The first byte picks the message type; the rest is its encoding. A decoded message must re-encode to
/// bytes that decode to a message with the same encoding.
pub fn consensus_message(data: &[u8]) {
    let _ = consensus_message_decodes(data);
}

/// [`consensus_message`], saying whether the bytes decoded.
fn consensus_message_decodes(data: &[u8]) -> bool {
    use lode_consensus::LodeContext as C;
    let Some((&kind, bytes)) = data.split_first() else {
        return false;
    };
    match kind % 11 {
        0 => round_trip::<SignedConsensusMsg<C>>(bytes),
        1 => round_trip::<ProposalPart>(bytes),
        2 => round_trip::<StreamMessage<ProposalPart>>(bytes),
        3 => round_trip::<PolkaCertificate<C>>(bytes),
        4 => round_trip::<CommitCertificate<C>>(bytes),
        5 => round_trip::<LivenessMsg<C>>(bytes),
        6 => round_trip::<ValidatorProof<C>>(bytes),
        7 => round_trip::<ProposedValue<C>>(bytes),
        8 => round_trip::<Status<C>>(bytes),
        9 => round_trip::<SyncRequest<C>>(bytes),
        _ => round_trip::<SyncResponse<C>>(bytes),
    }
}

/// Decodes `bytes` as a `T`; a decoded value must re-encode to bytes that decode to a value with the same
/// encoding. Whether `bytes` decoded.
fn round_trip<T>(bytes: &[u8]) -> bool
where
    LodeCodec: Codec<T>,
{
    let Ok(value) = Codec::<T>::decode(&LodeCodec, Bytes::copy_from_slice(bytes)) else {
        return false;
    };
    let once = Codec::<T>::encode(&LodeCodec, &value).expect("a decoded message encodes");
    let again: T = Codec::<T>::decode(&LodeCodec, once.clone()).expect("re-encoded bytes decode");
    let twice = Codec::<T>::encode(&LodeCodec, &again).expect("encodes again");
    assert_eq!(
        once, twice,
        "message changed in an encode/decode round trip"
    );
    true
}

/// A byte stream on the ABCI socket: length-prefixed frames read as the server reads them, each decoded as
/// a `Request`; the read-only requests (echo, flush, info, query, check_tx) are answered by a real
/// application.
pub fn abci_frame(data: &[u8]) {
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime starts")
    });
    let frames = runtime.block_on(async {
        let mut rd = data;
        let mut frames = Vec::new();
        while let Ok(Some(frame)) = abci_socket::read_frame(&mut rd, ABCI_MAX_FRAME).await {
            frames.push(frame);
        }
        frames
    });
    for frame in frames {
        let Ok(request) = Request::decode(frame.as_slice()) else {
            return;
        };
        if matches!(
            request.value,
            Some(
                request::Value::Echo(_)
                    | request::Value::Flush(_)
                    | request::Value::Info(_)
                    | request::Value::Query(_)
                    | request::Value::CheckTx(_)
            )
        ) {
            let _ = app().handle(request);
        }
    }
}

/// The ABCI frame limit the fuzz target reads with (the node's default is 64 MiB; a frame's buffer grows
/// only with the bytes that arrive, so the limit costs nothing).
const ABCI_MAX_FRAME: usize = 64 * 1024 * 1024;

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// A gossip message from a peer: a `TxBatch` decoded as the gossip service decodes it, then every tx's
/// stateless checks, as the CheckTx workers run them.
pub fn gossip_tx_batch(data: &[u8]) {
    if let Some(txs) = gossip::decode_batch(data) {
        for tx in txs {
            tx_check_stateless(&tx);
        }
    }
}

/// An ABCI query (what the gRPC query services forward): a `RequestQuery` answered by a real application
/// on an initialised chain with one committed block.
pub fn query(data: &[u8]) {
    if let Ok(req) = RequestQuery::decode(data) {
        let _ = app().query(req);
    }
}

/// A matrix file (`lode job` inputs, provider daemon files): the raw format and `.npy`, as int8 and int32.
pub fn gpu_matrix(data: &[u8]) {
    use lode_gpu_verify::format::{decode, decode_npy};
    if let Ok(m) = decode::<i8>(data) {
        assert_eq!(
            decode::<i8>(&lode_gpu_verify::format::encode(&m)).ok(),
            Some(m)
        );
    }
    if let Ok(m) = decode::<i32>(data) {
        assert_eq!(
            decode::<i32>(&lode_gpu_verify::format::encode(&m)).ok(),
            Some(m)
        );
    }
    let _ = decode_npy::<i8>(data);
    let _ = decode_npy::<i32>(data);
}

/// Compute proofs from a provider or a fraud-proof submitter, as txs carry them. The first byte picks: a
/// `MsgRevealSamples` (converted as the state machine converts it, then verified against two small jobs),
/// a `MsgFraudProof` (likewise), or a bare Merkle inclusion proof checked against a small tree.
pub fn gpu_proof(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    let jobs = jobs();
    match kind % 3 {
        0 => {
            let Ok(m) = cpb::MsgRevealSamples::decode(bytes) else {
                return;
            };
            if let Ok(ComputeMsg::RevealSamples { reveal, .. }) =
                ComputeMsg::try_from(Sum::ComputeRevealSamples(m))
            {
                for job in &jobs.jobs {
                    let _ = verify_reveal(job, &jobs.seed, &reveal);
                }
            }
        }
        1 => {
            let Ok(m) = cpb::MsgFraudProof::decode(bytes) else {
                return;
            };
            if let Ok(ComputeMsg::FraudProof { proof, .. }) =
                ComputeMsg::try_from(Sum::ComputeFraudProof(m))
            {
                for job in &jobs.jobs {
                    let _ = verify_fraud_proof(job, &proof);
                }
            }
        }
        _ => {
            if let Ok(p) = InclusionProof::from_bytes(bytes) {
                assert_eq!(
                    InclusionProof::from_bytes(&p.to_bytes()).ok(),
                    Some(p.clone())
                );
                let leaf = jobs.tree.leaves()[0];
                let _ = p.verify(&jobs.tree.root(), &leaf);
                let _ = p.verify_at(&jobs.tree.root(), &leaf, 0, jobs.tree.leaf_count());
            }
        }
    }
}

/// A genesis file: parsed and validated; a valid one is turned into its InitChain request and the
/// application's genesis writes, as `lode start` and InitChain do.
pub fn genesis(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(g) = lode_genesis::Genesis::from_json(text) {
        let init = g
            .init_chain_request()
            .expect("a validated genesis has an InitChain request");
        if let Ok(app_state) = lode_state::genesis::parse(&init.app_state_bytes) {
            let _ = app_state.validate();
            if let Ok(validators) = lode_state::genesis::validator_set(&app_state) {
                let _ = lode_state::genesis::build(&app_state, &validators);
            }
        }
    }
    let _ = lode_state::genesis::parse(data);
}

/// A node's `config.toml`, with everything `lode start` derives from it.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = crate::config::Config::from_toml(text) {
        let _ = c.app.options();
        let _ = c.grpc.limits();
        let _ = c.compute.apply();
    }
}

// ---- shared fixtures ----

/// One application per process for the query and ABCI targets: a chain initialised from a small genesis
/// with one committed block (a transfer), in a fresh directory under the temp dir.
fn app() -> &'static LodeApp {
    static APP: OnceLock<LodeApp> = OnceLock::new();
    APP.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("lode-fuzz-app-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let app = LodeApp::open(&dir).expect("the fuzz application opens");
        app.try_init_chain(init_chain())
            .expect("the fuzz genesis initialises");
        app.try_finalize_block(RequestFinalizeBlock {
            txs: vec![Bytes::from(transfer(0))],
            height: 1,
            ..Default::default()
        })
        .expect("block 1 finalizes");
        app.try_commit().expect("block 1 commits");
        app
    })
}

fn funded_key() -> SigningKey {
    SigningKey::from([7u8; 32])
}

fn validator_key() -> SigningKey {
    SigningKey::from([9u8; 32])
}

fn transfer(nonce: u64) -> Vec<u8> {
    let to = address_of(&SigningKey::from([8u8; 32]));
    sign_send(CHAIN_ID, &funded_key(), nonce, 10_000, &to, 1)
}

fn init_chain() -> RequestInitChain {
    let mut app_state = AppState {
        balances: vec![GenesisBalance {
            address: address_of(&funded_key()).to_string(),
            amount: "1000000000000".into(),
        }],
        ..AppState::default()
    };
    let vk = validator_key().verification_key().to_bytes();
    app_state.add_self_bonded_validator("fuzz", &vk, 10);
    // The consensus power genesis must carry: the proof-of-useful-compute rule over the self-bonds.
    let power = lode_state::genesis::validator_set(&app_state)
        .expect("the fuzz genesis has a validator set")
        .first()
        .map_or(0, |(_, p)| *p);
    RequestInitChain {
        chain_id: CHAIN_ID.into(),
        initial_height: 1,
        app_state_bytes: Bytes::from(serde_json::to_vec(&app_state).expect("app state encodes")),
        validators: vec![ValidatorUpdate {
            pub_key: Some(tendermint_proto::crypto::PublicKey {
                sum: Some(tendermint_proto::crypto::public_key::Sum::Ed25519(
                    vk.to_vec(),
                )),
            }),
            power: i64::try_from(power).expect("power fits"),
        }],
        ..Default::default()
    }
}

/// Two small compute jobs over the same 8×8 inputs with 4×4 tiles: an honest provider's and a cheating
/// one's (one wrong element of C), a challenge seed, and a small Merkle tree.
struct Jobs {
    jobs: [Job; 2],
    provers: [Prover; 2],
    seed: [u8; 32],
    tree: MerkleTree,
}

fn jobs() -> &'static Jobs {
    static JOBS: OnceLock<Jobs> = OnceLock::new();
    JOBS.get_or_init(|| {
        let n = 8;
        let a: Vec<i8> = (0..n * n).map(|i| (i % 7) as i8 - 3).collect();
        let b: Vec<i8> = (0..n * n).map(|i| (i % 5) as i8 - 2).collect();
        let mut c = vec![0i32; n * n];
        for i in 0..n {
            for j in 0..n {
                c[i * n + j] = (0..n)
                    .map(|k| i32::from(a[i * n + k]) * i32::from(b[k * n + j]))
                    .sum();
            }
        }
        let mut wrong = c.clone();
        wrong[9] += 1;
        let matrix_a = || MatrixI8::new(n, n, a.clone()).expect("a");
        let matrix_b = MatrixI8::new(n, n, b.clone()).expect("b");
        let honest = Prover::new(
            matrix_a(),
            &matrix_b,
            MatrixI32::new(n, n, c).expect("c"),
            4,
        )
        .expect("honest prover");
        let cheat = Prover::new(
            matrix_a(),
            &matrix_b,
            MatrixI32::new(n, n, wrong).expect("c"),
            4,
        )
        .expect("cheating prover");
        let tree =
            MerkleTree::from_leaf_hashes((0u8..5).map(|i| [i; 32]).collect()).expect("small tree");
        Jobs {
            jobs: [honest.job([1; 32], 2), cheat.job([2; 32], 2)],
            provers: [honest, cheat],
            seed: [3; 32],
            tree,
        }
    })
}

// ---- seeds ----

/// The seed corpus: (target, file name, bytes), every entry a valid encoding of what its target decodes
/// (or, for the multi-type targets, a selector byte and one).
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push((target, name.to_string(), bytes));
    };

    // txs
    let tx = transfer(1);
    add("tx_check_stateless", "transfer", tx.clone());
    add("tx_check_stateless", "transfer-other-chain", {
        let to = address_of(&SigningKey::from([8u8; 32]));
        sign_send("other-chain", &funded_key(), 0, 10_000, &to, 5)
    });
    let jobs = jobs();
    let reveal_tiles = jobs.jobs[0].challenge(&jobs.seed).unwrap_or_default();
    if let Ok(reveal) = jobs.provers[0].reveal(&reveal_tiles) {
        let msg = ComputeMsg::RevealSamples {
            provider: address_of(&funded_key()),
            job: jobs.jobs[0].id,
            reveal,
            digest: [0; 32],
        };
        let sum = Sum::from(&msg);
        if let Sum::ComputeRevealSamples(m) = &sum {
            add(
                "gpu_proof",
                "reveal-honest",
                [&[0u8][..], &m.encode_to_vec()].concat(),
            );
        }
        let signed = lode_state::tx::sign_msgs(
            CHAIN_ID,
            &funded_key(),
            2,
            10_000,
            &[lode_state::tx::Msg::Compute(msg)],
            "",
        );
        add("tx_check_stateless", "compute-reveal", signed);
    }
    if let Ok(proof) = jobs.provers[1].fraud_proof(jobs.jobs[1].id, 2, 1) {
        let msg = ComputeMsg::FraudProof {
            submitter: address_of(&funded_key()),
            job: jobs.jobs[1].id,
            proof: Box::new(proof),
        };
        if let Sum::ComputeFraudProof(m) = Sum::from(&msg) {
            add(
                "gpu_proof",
                "fraud-proof",
                [&[1u8][..], &m.encode_to_vec()].concat(),
            );
        }
    }
    if let Ok(p) = jobs.tree.prove(3) {
        add(
            "gpu_proof",
            "inclusion-proof",
            [&[2u8][..], &p.to_bytes()].concat(),
        );
    }

    // gossip
    add(
        "gossip_tx_batch",
        "two-txs",
        crate::services::grpc::pb::TxBatch {
            txs: vec![tx.clone(), transfer(2)],
        }
        .encode_to_vec(),
    );

    // consensus
    let header = BlockHeader {
        chain_id: CHAIN_ID.into(),
        height: Height(2),
        time: BlockTime::from_unix_nanos(1_700_000_000_000_000_000),
        proposer: lode_consensus::Address([4; 20]),
        last_block_id: Some(lode_consensus::BlockId([5; 32])),
        tx_root: tx_root(&[Bytes::from(tx.clone())]),
        app_hash: Bytes::from_static(&[6; 32]),
        last_commit_hash: None,
    };
    let block = Block::new(header.clone(), vec![Bytes::from(tx.clone())]);
    add("consensus_block", "block", block.encode().to_vec());
    let named: [u8; 32] = crate::services::mempool::tx_hash(&tx);
    add(
        "consensus_block",
        "compact-block",
        CompactBlock::of(&block, &[Some(named)]).encode().to_vec(),
    );
    let cert = pb::CommitCertificate {
        height: 2,
        round: 0,
        value_id: block.id().0.to_vec(),
        signatures: vec![pb::AddressSignature {
            address: vec![4; 20],
            signature: vec![7; 64],
        }],
    };
    add(
        "consensus_block",
        "decided-block",
        pb::DecidedBlock {
            block: Some(block.to_proto()),
            certificate: Some(cert.clone()),
        }
        .encode_to_vec(),
    );
    let vote = pb::Vote {
        vote_type: 1,
        height: 2,
        round: 0,
        value_id: block.id().0.to_vec(),
        validator_address: vec![4; 20],
        extension: None,
    };
    let signed_vote = pb::SignedMessage {
        message: Some(pb::signed_message::Message::Vote(vote)),
        signature: vec![7; 64],
    };
    let consensus = |kind: u8, m: &dyn Fn() -> Vec<u8>| [&[kind][..], &m()].concat();
    let mut c = |name: &str, kind: u8, bytes: Vec<u8>| {
        add(
            "consensus_message",
            name,
            consensus(kind, &|| bytes.clone()),
        );
    };
    c("signed-vote", 0, signed_vote.encode_to_vec());
    c(
        "signed-proposal",
        0,
        pb::SignedMessage {
            message: Some(pb::signed_message::Message::Proposal(pb::Proposal {
                height: 2,
                round: 0,
                value: Some(block.to_proto()),
                pol_round: -1,
                validator_address: vec![4; 20],
            })),
            signature: vec![7; 64],
        }
        .encode_to_vec(),
    );
    let init = pb::ProposalPart {
        part: Some(pb::proposal_part::Part::Init(pb::PartInit {
            height: 2,
            round: 0,
            valid_round: -1,
            proposer: vec![4; 20],
        })),
    };
    c("part-init", 1, init.encode_to_vec());
    c(
        "part-data",
        1,
        pb::ProposalPart {
            part: Some(pb::proposal_part::Part::Data(pb::PartData {
                chunk: block.encode().to_vec(),
            })),
        }
        .encode_to_vec(),
    );
    c(
        "part-fin",
        1,
        pb::ProposalPart {
            part: Some(pb::proposal_part::Part::Fin(pb::PartFin {
                signature: vec![7; 64],
            })),
        }
        .encode_to_vec(),
    );
    c(
        "stream-data",
        2,
        pb::StreamMessage {
            stream_id: vec![1, 2, 3],
            sequence: 0,
            content: Some(pb::stream_message::Content::Data(init.clone())),
        }
        .encode_to_vec(),
    );
    c(
        "stream-fin",
        2,
        pb::StreamMessage {
            stream_id: vec![1, 2, 3],
            sequence: 3,
            content: Some(pb::stream_message::Content::Fin(true)),
        }
        .encode_to_vec(),
    );
    let polka = pb::PolkaCertificate {
        height: 2,
        round: 0,
        value_id: block.id().0.to_vec(),
        signatures: cert.signatures.clone(),
    };
    c("polka-certificate", 3, polka.encode_to_vec());
    c("commit-certificate", 4, cert.encode_to_vec());
    c(
        "liveness-vote",
        5,
        pb::LivenessMessage {
            message: Some(pb::liveness_message::Message::Vote(signed_vote.clone())),
        }
        .encode_to_vec(),
    );
    c(
        "liveness-polka",
        5,
        pb::LivenessMessage {
            message: Some(pb::liveness_message::Message::PolkaCertificate(polka)),
        }
        .encode_to_vec(),
    );
    c(
        "liveness-round-certificate",
        5,
        pb::LivenessMessage {
            message: Some(pb::liveness_message::Message::SkipRoundCertificate(
                pb::RoundCertificate {
                    height: 2,
                    round: 1,
                    cert_type: 1,
                    signatures: vec![pb::RoundSignature {
                        vote_type: 1,
                        value_id: block.id().0.to_vec(),
                        address: vec![4; 20],
                        signature: vec![7; 64],
                    }],
                },
            )),
        }
        .encode_to_vec(),
    );
    let peer = lode_consensus::streams::peer_id_of(&lode_consensus::PublicKey(
        validator_key().verification_key().to_bytes(),
    ))
    .map(|p| p.to_bytes())
    .unwrap_or_default();
    c(
        "validator-proof",
        6,
        pb::ValidatorProof {
            public_key: validator_key().verification_key().to_bytes().to_vec(),
            peer_id: peer.clone(),
            signature: vec![7; 64],
        }
        .encode_to_vec(),
    );
    c(
        "proposed-value",
        7,
        pb::ProposedValue {
            height: 2,
            round: 0,
            valid_round: -1,
            proposer: vec![4; 20],
            value: Some(block.to_proto()),
            valid: true,
        }
        .encode_to_vec(),
    );
    c(
        "sync-status",
        8,
        pb::SyncStatus {
            peer_id: peer,
            tip_height: 9,
            history_min_height: 1,
        }
        .encode_to_vec(),
    );
    c(
        "sync-request",
        9,
        pb::SyncRequest {
            from_height: 2,
            to_height: 4,
        }
        .encode_to_vec(),
    );
    c(
        "sync-response",
        10,
        pb::SyncResponse {
            start_height: 2,
            values: vec![pb::RawDecidedValue {
                value_bytes: block.encode().to_vec(),
                certificate: Some(pb::ExtendedCommitCertificate {
                    height: 2,
                    round: 0,
                    value_id: block.id().0.to_vec(),
                    signatures: vec![pb::ExtendedCommitSignature {
                        address: vec![4; 20],
                        signature: vec![7; 64],
                        extension: Some(pb::Extension {
                            data: vec![1, 2],
                            signature: vec![7; 64],
                        }),
                    }],
                }),
            }],
        }
        .encode_to_vec(),
    );

    // ABCI socket: a pipelined stream of frames.
    let frames: Vec<u8> = [
        Request {
            value: Some(request::Value::Echo(RequestEcho {
                message: "hello".into(),
            })),
        },
        Request {
            value: Some(request::Value::Info(RequestInfo::default())),
        },
        Request {
            value: Some(request::Value::CheckTx(RequestCheckTx {
                tx: Bytes::from(tx.clone()),
                r#type: 0,
            })),
        },
        Request {
            value: Some(request::Value::Query(RequestQuery {
                path: "/account".into(),
                data: Bytes::from(address_of(&funded_key()).to_string()),
                height: 0,
                prove: true,
            })),
        },
    ]
    .iter()
    .flat_map(|r| r.encode_length_delimited_to_vec())
    .collect();
    add("abci_frame", "echo-info-checktx-query", frames);

    // queries
    let account = address_of(&funded_key()).to_string();
    add(
        "query",
        "account-proven",
        RequestQuery {
            path: "/account".into(),
            data: Bytes::from(account.clone()),
            height: 1,
            prove: true,
        }
        .encode_to_vec(),
    );
    for path in [
        "/params",
        "/staking/validators",
        "/staking/delegations",
        "/gov/proposals",
        "/gov/proposal",
        "/gov/votes",
        "/gov/deposits",
        "/gov/treasury",
        "/nft/collections",
        "/nft/collection",
        "/nft/tokens_by_owner",
        "/nft/token",
        "/nft/listings",
    ] {
        add(
            "query",
            &path.trim_start_matches('/').replace('/', "-"),
            RequestQuery {
                path: path.into(),
                data: Bytes::new(),
                height: 0,
                prove: false,
            }
            .encode_to_vec(),
        );
    }

    // gpu-verify matrix files
    let m = MatrixI8::new(2, 3, vec![1, -2, 3, -4, 5, -6]).expect("2x3");
    add("gpu_matrix", "i8-raw", lode_gpu_verify::format::encode(&m));
    add(
        "gpu_matrix",
        "i8-npy",
        lode_gpu_verify::format::encode_npy(&m),
    );
    let m = MatrixI32::new(2, 2, vec![1, -70_000, 3, i32::MAX]).expect("2x2");
    add("gpu_matrix", "i32-raw", lode_gpu_verify::format::encode(&m));
    add(
        "gpu_matrix",
        "i32-npy",
        lode_gpu_verify::format::encode_npy(&m),
    );

    // genesis
    let init = init_chain();
    let genesis = lode_genesis::Genesis {
        chain_id: CHAIN_ID.into(),
        genesis_time: "2025-01-01T00:00:00Z".into(),
        initial_height: 1,
        validators: vec![lode_genesis::GenesisValidator {
            name: "fuzz".into(),
            pub_key: hex::encode(validator_key().verification_key().to_bytes()),
            power: init.validators[0].power.unsigned_abs(),
        }],
        app_state: serde_json::from_slice(&init.app_state_bytes).expect("app state decodes"),
    };
    add(
        "genesis",
        "one-validator",
        genesis.to_json().expect("genesis encodes").into_bytes(),
    );

    // config
    add(
        "config",
        "default",
        toml::to_string_pretty(&crate::config::Config::default())
            .expect("config encodes")
            .into_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn seeds_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds")
    }

    /// Every committed seed (and every input a fuzzing run added to `fuzz/seeds/`, e.g. a former crash)
    /// goes through its target: the CI's replay of the corpus.
    #[test]
    fn every_committed_seed_runs_through_its_target() {
        let mut ran = 0;
        for (target, run) in TARGETS {
            let dir = seeds_dir().join(target);
            let entries = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("seed folder {}: {e}", dir.display()));
            for entry in entries {
                let path = entry.expect("dir entry").path();
                let bytes = std::fs::read(&path).expect("seed reads");
                run(&bytes);
                ran += 1;
            }
        }
        assert!(ran >= TARGETS.len(), "only {ran} seeds ran");
    }

    /// The generated seeds are committed (set LODE_WRITE_FUZZ_SEEDS=1 to write them), so a change to an
    /// encoding cannot leave the corpus describing the old one unnoticed.
    #[test]
    fn the_seed_corpus_holds_every_generated_seed() {
        let write = std::env::var_os("LODE_WRITE_FUZZ_SEEDS").is_some();
        let mut missing = Vec::new();
        for (target, name, bytes) in seeds() {
            assert!(
                TARGETS.iter().any(|(t, _)| *t == target),
                "seed {name} for unknown target {target}"
            );
            let path = seeds_dir().join(target).join(&name);
            if write {
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                std::fs::write(&path, &bytes).expect("write seed");
            } else if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
                missing.push(format!("{target}/{name}"));
            }
        }
        assert!(
            missing.is_empty(),
            "seeds missing or stale (regenerate with LODE_WRITE_FUZZ_SEEDS=1): {missing:?}"
        );
    }

    /// CI does not build the fuzz crate (docs/fuzzing.md), so this holds it to [`TARGETS`]: one wrapper file
    /// per target calling the function of its name, each declared in fuzz/Cargo.toml, and nothing else.
    #[test]
    fn the_fuzz_crate_has_one_wrapper_per_target() {
        let fuzz_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let manifest =
            std::fs::read_to_string(fuzz_dir.join("Cargo.toml")).expect("fuzz/Cargo.toml");
        let mut files: Vec<String> = std::fs::read_dir(fuzz_dir.join("fuzz_targets"))
            .expect("fuzz/fuzz_targets")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut names: Vec<String> = TARGETS.iter().map(|(t, _)| format!("{t}.rs")).collect();
        names.sort();
        assert_eq!(
            files, names,
            "fuzz/fuzz_targets/ and lode_node::fuzz::TARGETS differ"
        );
        for (target, _) in TARGETS {
            let text =
                std::fs::read_to_string(fuzz_dir.join("fuzz_targets").join(format!("{target}.rs")))
                    .expect("wrapper reads");
            assert!(
                text.contains(&format!("lode_node::fuzz::{target}(data)")),
                "fuzz/fuzz_targets/{target}.rs does not call lode_node::fuzz::{target}"
            );
            assert!(
                manifest.contains(&format!(
                    "name = \"{target}\"\npath = \"fuzz_targets/{target}.rs\""
                )),
                "fuzz/Cargo.toml has no [[bin]] for {target}"
            );
        }
    }

    /// Each target accepts the empty input and a few junk inputs without panicking.
    #[test]
    fn every_target_survives_empty_and_junk_input() {
        for (_, run) in TARGETS {
            run(&[]);
            run(&[0xff; 64]);
            run(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        }
    }

    /// The seeds are meaningful: each one of the decoding targets is accepted by the code under test, not
    /// rejected at the first byte.
    #[test]
    fn seeds_decode() {
        let params = Params::default();
        for (target, name, bytes) in seeds() {
            let ok = match target {
                "tx_check_stateless" => {
                    name.contains("other-chain")
                        || Tx::check_stateless(&bytes, CHAIN_ID, &params).is_ok()
                }
                "consensus_block" => {
                    Block::decode(&bytes).is_ok()
                        || CompactBlock::decode(&bytes).is_ok()
                        || DecidedBlock::decode(&bytes).is_ok()
                }
                "gossip_tx_batch" => gossip::decode_batch(&bytes).is_some(),
                "consensus_message" => consensus_message_decodes(&bytes),
                "query" => {
                    let resp = app().query(RequestQuery::decode(bytes.as_slice()).expect("req"));
                    resp.code == 0 || !name.contains("account")
                }
                "genesis" => {
                    lode_genesis::Genesis::from_json(std::str::from_utf8(&bytes).expect("utf8"))
                        .is_ok()
                }
                "config" => {
                    crate::config::Config::from_toml(std::str::from_utf8(&bytes).expect("utf8"))
                        .is_ok()
                }
                _ => true,
            };
            assert!(ok, "seed {target}/{name} is rejected by its decoder");
        }
    }
}
