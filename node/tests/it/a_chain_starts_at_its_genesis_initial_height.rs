//! A chain whose genesis sets `initial_height` (a chain restarted from exported state) starts there: the
//! in-process engine runs InitChain with that height and decides its first block at it, heights below it
//! are not held (a proved query there gets FAILED_PRECONDITION, code 35 "not held"), and the genesis state
//! is answered at `initial_height - 1`.

use lode_node::services::grpc::pb::{
    self, block_service_client::BlockServiceClient, query_service_client::QueryServiceClient,
};
use lode_proto::query::v1 as qpb;
use prost::Message;
use tonic::Code;

use crate::support::SingleNode;

const INITIAL: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_with_a_genesis_initial_height_starts_there_and_holds_nothing_below() {
    let node = SingleNode::start_with_genesis(
        |_| {},
        |g| g["initial_height"] = serde_json::json!(INITIAL),
    )
    .await;
    node.wait_height(INITIAL + 1).await;
    let channel = node.channel().await;
    let mut blocks = BlockServiceClient::new(channel.clone());
    let get = |h: u64| pb::GetBlockRequest {
        at: Some(pb::get_block_request::At::Height(h)),
    };
    let first = blocks
        .get_block(get(INITIAL))
        .await
        .unwrap_or_else(|e| panic!("block {INITIAL}: {e}\n{}", node.log_tail()))
        .into_inner();
    assert_eq!(first.header.as_ref().map(|h| h.height), Some(INITIAL));
    for h in [1, INITIAL - 1] {
        let e = blocks.get_block(get(h)).await.expect_err("no block there");
        assert_eq!(e.code(), Code::NotFound, "block {h}: {e}");
    }

    let mut q = QueryServiceClient::new(channel);
    let params = qpb::ParamsRequest::default().encode_to_vec();
    let ask = |height: u64| pb::StateQueryRequest {
        path: "/params".into(),
        data: params.clone(),
        height,
        prove: true,
    };
    // Below the genesis state: not held.
    for h in [1, INITIAL / 2, INITIAL - 2] {
        let e = q.query(ask(h)).await.expect_err("below genesis");
        assert_eq!(e.code(), Code::FailedPrecondition, "height {h}: {e}");
        assert!(e.message().contains("not held"), "height {h}: {e}");
    }
    // The genesis state, and the first block's.
    for h in [INITIAL - 1, INITIAL] {
        let r = q
            .query(ask(h))
            .await
            .unwrap_or_else(|e| panic!("height {h}: {e}"))
            .into_inner();
        assert_eq!(r.height, h);
        assert!(!r.proofs.is_empty(), "height {h}: no proof");
    }
    assert_eq!(
        q.query(ask(INITIAL))
            .await
            .expect("first block")
            .into_inner()
            .app_hash,
        first.result_app_hash,
        "the state at the first block is the one its result app hash commits to"
    );
}
