//! Server reflection answers as both `grpc.reflection.v1` and `v1alpha` (the API and the tx format), and `QueryService.Status` reports the
//! node's version, id, last block time and whether it is catching up.

use lode_node::services::grpc::pb::{self, query_service_client::QueryServiceClient};

use crate::support::SingleNode;

/// Asks the v1 (or v1alpha) reflection service for the list of services and for the file defining `symbol`.
macro_rules! reflect {
    ($module:ident, $ch:expr, $symbol:expr) => {{
        use tonic_reflection::pb::$module::{
            server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
            ServerReflectionRequest,
        };
        let requests = [
            MessageRequest::ListServices(String::new()),
            MessageRequest::FileContainingSymbol($symbol.to_string()),
        ]
        .map(|m| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(m),
        });
        let mut responses = ServerReflectionClient::new($ch)
            .server_reflection_info(futures::stream::iter(requests))
            .await
            .expect(concat!(stringify!($module), " reflection"))
            .into_inner();
        let mut services = Vec::new();
        let mut files = 0;
        while let Some(r) = responses.message().await.expect("response") {
            match r.message_response {
                Some(MessageResponse::ListServicesResponse(l)) => {
                    services.extend(l.service.into_iter().map(|s| s.name))
                }
                Some(MessageResponse::FileDescriptorResponse(f)) => {
                    files += f.file_descriptor_proto.len()
                }
                other => panic!("unexpected reflection answer {other:?}"),
            }
        }
        (services, files)
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_answers_as_v1_and_v1alpha_and_status_reports_the_node() {
    let node = SingleNode::start(|_| {}).await;
    node.wait_height(2).await;
    let ch = node.channel().await;

    let (v1, v1_files) = reflect!(v1, ch.clone(), "lode.node.v1.GetTxRequest");
    let (v1alpha, v1alpha_files) = reflect!(v1alpha, ch.clone(), "lode.node.v1.GetTxRequest");
    for services in [&v1, &v1alpha] {
        for s in [
            "lode.node.v1.TxService",
            "lode.node.v1.QueryService",
            "lode.node.v1.BlockService",
            "lode.node.v1.EventService",
        ] {
            assert!(
                services.iter().any(|n| n == s),
                "{s} missing from {services:?}"
            );
        }
    }
    assert!(v1_files > 0 && v1alpha_files > 0);
    // The tx format too, so a client that learns the API by reflection alone can build and decode a tx.
    let (_, tx_files) = reflect!(v1, ch.clone(), "lode.tx.v1.Tx");
    let (_, tx_files_alpha) = reflect!(v1alpha, ch.clone(), "lode.tx.v1.TxBody");
    assert!(tx_files > 0 && tx_files_alpha > 0);

    let s = QueryServiceClient::new(ch)
        .status(pb::StatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(s.version, env!("CARGO_PKG_VERSION"));
    // An ed25519 libp2p peer id.
    assert!(s.node_id.starts_with("12D3KooW"), "{}", s.node_id);
    assert!(
        !s.catching_up,
        "a live single validator reported catching up"
    );
    let t = s.latest_block_time.expect("a block time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!((now - t.seconds).abs() < 30, "block time {t:?}, now {now}");
}
