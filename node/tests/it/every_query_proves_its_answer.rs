//! Proofs on every state query: a validator with state in every module (a proposal, an NFT, a provider)
//! answers each query path of every module with ICS-23 proofs that verify against the app hash the chain
//! committed to at that height (the block's `result_app_hash` and the next header's `app_hash`); a tampered
//! proof or answer fails; a height above the chain, a listing at a past height, an oversized or malformed
//! request each get their code; the CLI's `--prove` verifies and says so. (A height the node does not hold,
//! code 35, is tested on a running node in `a_chain_starts_at_its_genesis_initial_height`, on the store in
//! `lode_state::query`'s unit tests, and its gRPC code in `grpc.rs`'s.)

use lode_node::proof::{verify_answer, AnswerError, ProofError};
use lode_node::services::grpc::pb::{
    self, block_service_client::BlockServiceClient, query_service_client::QueryServiceClient,
};
use lode_proto::{
    gov::v1 as govpb, market::v1 as mpb, nft::v1 as nftpb, query::v1 as qpb, staking::v1 as stpb,
};
use prost::Message;
use tonic::Code;

use crate::four_validators_commit_a_transfer::{wait_height, Net};
use crate::governance_on_a_devnet::Cli;
use crate::support::run_lode;

async fn ask(
    q: &mut QueryServiceClient<tonic::transport::Channel>,
    path: &str,
    data: Vec<u8>,
    height: u64,
) -> Result<pb::StateQueryResponse, tonic::Status> {
    q.query(pb::StateQueryRequest {
        path: path.into(),
        data,
        height,
        prove: true,
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn block(
    b: &mut BlockServiceClient<tonic::transport::Channel>,
    height: u64,
) -> pb::GetBlockResponse {
    b.get_block(pb::GetBlockRequest {
        at: Some(pb::get_block_request::At::Height(height)),
    })
    .await
    .unwrap_or_else(|e| panic!("block {height}: {e}"))
    .into_inner()
}

/// Runs `lode ARGS`: (success, stdout + stderr).
async fn lode(args: Vec<String>) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_lode(&refs);
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    })
    .await
    .expect("lode")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_module_query_proves_its_answer_against_the_app_hash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = Net::start(dir.path(), 1);
    wait_height(&net, 2).await;
    let cli = Cli {
        home: net.homes[0].clone(),
        node: net.grpc[0].clone(),
    };
    let dev0 = cli.address("dev0").await;
    let dev1 = cli.address("dev1").await;
    let ch = tonic::transport::Channel::from_shared(cli.node.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut q = QueryServiceClient::new(ch.clone());
    let mut b = BlockServiceClient::new(ch);

    // State in every module: a proposal with a deposit, a collection with a token, a provider.
    cli.tx(
        "dev0",
        &[
            "gov",
            "submit",
            "--title",
            "T",
            "--deposit",
            "1000",
            "--text",
        ],
    )
    .await;
    let before_nft = ask(&mut q, "/account", dev1.clone().into_bytes(), 0)
        .await
        .expect("account");
    cli.tx(
        "dev0",
        &[
            "nft", "create", "--id", "art", "--name", "Art", "--symbol", "ART",
        ],
    )
    .await;
    cli.tx(
        "dev0",
        &[
            "nft",
            "mint",
            "--collection",
            "art",
            "--token",
            "t1",
            "--to",
            &dev1,
        ],
    )
    .await;
    cli.tx(
        "dev1",
        &[
            "market",
            "register-provider",
            "--moniker",
            "box",
            "--device",
            "cpu:1024:1",
            "--ask",
            "5",
            "--bond",
            "1000000",
        ],
    )
    .await;

    let validators = stpb::ValidatorsResponse::decode(
        ask(
            &mut q,
            "/staking/validators",
            stpb::ValidatorsRequest::default().encode_to_vec(),
            0,
        )
        .await
        .expect("validators")
        .value
        .as_slice(),
    )
    .expect("decode");
    let operator = validators.validators[0].operator.clone();

    let queries: Vec<(&str, Vec<u8>)> = vec![
        ("/account", dev0.clone().into_bytes()),
        ("/params", qpb::ParamsRequest::default().encode_to_vec()),
        (
            "/gov/proposals",
            govpb::ProposalsRequest::default().encode_to_vec(),
        ),
        (
            "/gov/proposal",
            govpb::ProposalRequest { id: 1 }.encode_to_vec(),
        ),
        (
            "/gov/votes",
            govpb::VotesRequest {
                proposal_id: 1,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/gov/deposits",
            govpb::DepositsRequest {
                proposal_id: 1,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        ("/gov/treasury", govpb::TreasuryRequest {}.encode_to_vec()),
        (
            "/nft/collections",
            nftpb::CollectionsRequest::default().encode_to_vec(),
        ),
        (
            "/nft/collection",
            nftpb::CollectionRequest { id: "art".into() }.encode_to_vec(),
        ),
        (
            "/nft/tokens_by_owner",
            nftpb::TokensByOwnerRequest {
                owner: dev1.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/nft/token",
            nftpb::TokenRequest {
                collection: "art".into(),
                id: "t1".into(),
            }
            .encode_to_vec(),
        ),
        (
            "/nft/listings",
            nftpb::ListingsRequest::default().encode_to_vec(),
        ),
        (
            "/market/providers",
            mpb::ProvidersRequest::default().encode_to_vec(),
        ),
        (
            "/market/provider",
            mpb::ProviderRequest {
                address: dev1.clone(),
            }
            .encode_to_vec(),
        ),
        (
            "/market/jobs",
            mpb::JobsRequest {
                consumer: dev0.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        ("/market/stats", mpb::StatsRequest {}.encode_to_vec()),
        (
            "/staking/validators",
            stpb::ValidatorsRequest::default().encode_to_vec(),
        ),
        (
            "/staking/delegations",
            stpb::DelegationsRequest {
                delegator: operator.clone(),
            }
            .encode_to_vec(),
        ),
        ("/staking/power", stpb::PowerRequest {}.encode_to_vec()),
        (
            "/staking/link",
            stpb::LinkRequest {
                address: dev1.clone(),
            }
            .encode_to_vec(),
        ),
        (
            "/staking/signing_info",
            stpb::SigningInfoRequest {
                operator: operator.clone(),
            }
            .encode_to_vec(),
        ),
        (
            "/evidence/double_sign",
            stpb::DoubleSignRequest {
                operator: operator.clone(),
            }
            .encode_to_vec(),
        ),
    ];
    let mut answers = Vec::new();
    for (path, data) in &queries {
        let r = ask(&mut q, path, data.clone(), 0)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        // A listing with nothing to list reads no entry: nothing to prove (and emptiness cannot be).
        let empty_listing = ["/nft/listings", "/market/jobs"].contains(path);
        assert_eq!(
            r.proofs.is_empty(),
            empty_listing,
            "{path}: {} proofs",
            r.proofs.len()
        );
        verify_answer(path, data, &r).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            block(&mut b, r.height).await.result_app_hash,
            r.app_hash,
            "{path}: not the app hash block {} committed to",
            r.height
        );
        answers.push((path, data, r));
    }
    // The next header carries the same app hash, signed by the validators that decided it.
    let last = answers
        .iter()
        .map(|(_, _, r)| r.height)
        .max()
        .expect("answers");
    wait_height(&net, last + 1).await;
    for (path, _, r) in &answers {
        assert_eq!(
            block(&mut b, r.height + 1)
                .await
                .header
                .expect("header")
                .app_hash,
            r.app_hash,
            "{path}"
        );
    }
    // A listing proves each entry it returns: the token dev1 owns is there.
    let (_, _, tokens) = answers
        .iter()
        .find(|(p, _, _)| **p == "/nft/tokens_by_owner")
        .expect("tokens");
    let tokens = nftpb::TokensByOwnerResponse::decode(tokens.value.as_slice()).expect("decode");
    assert_eq!(tokens.tokens[0].id, "t1");

    // Tampering: an entry's value, its key, the root, the answer's bytes.
    let (path, data, r) = answers
        .iter()
        .find(|(p, _, _)| **p == "/gov/proposal")
        .expect("proposal");
    let present = r
        .proofs
        .iter()
        .position(|e| e.exists)
        .expect("a present key");
    let mut t = r.clone();
    t.proofs[present].value[0] ^= 1;
    assert!(
        verify_answer(path, data, &t).is_err(),
        "changed value verified"
    );
    let mut t = r.clone();
    t.proofs[present].key.push(0);
    assert!(
        verify_answer(path, data, &t).is_err(),
        "changed key verified"
    );
    let mut t = r.clone();
    t.app_hash[0] ^= 1;
    assert!(
        matches!(
            verify_answer(path, data, &t),
            Err(AnswerError::Proof(ProofError::Invalid { .. }))
        ),
        "changed root verified"
    );
    let mut t = r.clone();
    let mut p = govpb::ProposalResponse::decode(t.value.as_slice()).expect("decode");
    p.proposal.as_mut().expect("proposal").title = "U".into();
    t.value = p.encode_to_vec();
    assert!(
        matches!(verify_answer(path, data, &t), Err(AnswerError::Replay(_))),
        "changed answer verified"
    );
    // Another path's answer under this one's request.
    assert!(verify_answer("/gov/treasury", data, r).is_err());

    // A past height: dev1's account before its NFT, against that height's block.
    let then = ask(
        &mut q,
        "/account",
        dev1.clone().into_bytes(),
        before_nft.height,
    )
    .await
    .expect("past account");
    verify_answer("/account", dev1.as_bytes(), &then).expect("past proof");
    assert_eq!(then.value, before_nft.value);
    assert_eq!(then.app_hash, before_nft.app_hash);
    assert_eq!(
        block(&mut b, then.height).await.result_app_hash,
        then.app_hash
    );
    // Above the chain: not found.
    let code = |r: Result<pb::StateQueryResponse, tonic::Status>| r.expect_err("refused").code();
    assert_eq!(
        code(ask(&mut q, "/account", dev0.clone().into_bytes(), last + 1_000).await),
        Code::NotFound
    );
    let e = ask(
        &mut q,
        "/nft/collections",
        nftpb::CollectionsRequest::default().encode_to_vec(),
        before_nft.height,
    )
    .await
    .expect_err("past listing");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e}");
    assert!(e.message().starts_with("code 36:"), "{e}");
    // Oversized, malformed, unknown.
    assert_eq!(
        code(ask(&mut q, "/gov/proposal", vec![0; 65 * 1024], 0).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(ask(&mut q, "/gov/proposal", vec![0xff, 0xff, 0xff], 0).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(ask(&mut q, &"/x".repeat(100), vec![], 0).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(ask(&mut q, "/nope", vec![], 0).await),
        Code::Unimplemented
    );

    // The CLI verifies and says so; a refused proof request is an error exit.
    let (ok, out) = lode(
        [
            "query", "gov", "proposal", "1", "--prove", "--node", &cli.node,
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("proof: verified against app hash"), "{out}");
    let (ok, out) = lode(
        [
            "query",
            "account",
            &dev1,
            "--prove",
            "--height",
            &before_nft.height.to_string(),
            "--node",
            &cli.node,
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("at height {}", before_nft.height)),
        "{out}"
    );
    let (ok, out) = lode(
        [
            "query",
            "nft",
            "collections",
            "--prove",
            "--height",
            "2",
            "--node",
            &cli.node,
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(!ok && out.contains("FailedPrecondition"), "{out}");
}
