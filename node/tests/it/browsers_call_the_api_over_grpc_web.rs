//! A web page calls the node over gRPC-web (HTTP/1.1) from an origin `[grpc] cors_origins` allows: the
//! preflight is answered with the CORS headers a browser needs, the call returns the real answer and its
//! gRPC status in the trailer frame, and a page from any other origin gets no CORS grant. Health says
//! SERVING on a node in step with its chain.

use std::time::Duration;

use crate::support::{header, http, SingleNode};
use lode_node::services::grpc::pb;
use prost::Message;

const ALLOWED: &str = "http://explorer.test:8080";

/// The gRPC-web frames of a response body: (flags, payload).
fn frames(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        out.push((body[0], body[5..5 + len].to_vec()));
        body = &body[5 + len..];
    }
    assert!(body.is_empty(), "trailing bytes after the last frame");
    out
}

fn grpc_web_call(url: &str, origin: &str, path: &str, message: &[u8]) -> Vec<u8> {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    let host = url.trim_start_matches("http://");
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nContent-Type: application/grpc-web+proto\r\n\
         Accept: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        framed.len()
    )
    .into_bytes();
    req.extend_from_slice(&framed);
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_from_an_allowed_origin_calls_the_node_over_grpc_web() {
    let node = SingleNode::start(|c| c.grpc.cors_origins = vec![ALLOWED.into()]).await;
    node.wait_height(2).await;

    // The browser's preflight: allowed, with the headers a gRPC-web client sends.
    let preflight = |origin: &str| {
        format!(
            "OPTIONS /lode.node.v1.QueryService/Status HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type,x-grpc-web\r\n\
             Connection: close\r\n\r\n"
        )
    };
    let (head, _) = http(&node.url, preflight(ALLOWED).as_bytes()).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        Some(ALLOWED),
        "{head}"
    );
    let methods = header(&head, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("post"), "{head}");
    let headers = header(&head, "access-control-allow-headers").unwrap_or_default();
    assert!(
        headers.contains("content-type") && headers.contains("x-grpc-web"),
        "{head}"
    );

    // The call itself: the real Status, then a trailer frame with grpc-status 0.
    let req = grpc_web_call(
        &node.url,
        ALLOWED,
        "/lode.node.v1.QueryService/Status",
        &pb::StatusRequest {}.encode_to_vec(),
    );
    let (head, body) = http(&node.url, &req).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        Some(ALLOWED),
        "{head}"
    );
    assert!(
        header(&head, "access-control-expose-headers")
            .unwrap_or_default()
            .contains("grpc-status"),
        "{head}"
    );
    assert!(
        header(&head, "content-type")
            .unwrap_or_default()
            .starts_with("application/grpc-web"),
        "{head}"
    );
    let frames = frames(&body);
    let (flags, payload) = &frames[0];
    assert_eq!(*flags, 0, "the first frame is the message");
    let status = pb::StatusResponse::decode(&payload[..]).expect("StatusResponse");
    assert!(status.latest_height >= 2, "{status:?}");
    assert!(!status.chain_id.is_empty());
    let trailer = frames
        .iter()
        .find(|(f, _)| f & 0x80 != 0)
        .expect("trailers");
    let trailer = String::from_utf8_lossy(&trailer.1).to_ascii_lowercase();
    assert!(trailer.contains("grpc-status:0"), "{trailer}");

    // An error keeps its code over gRPC-web: an unknown tx is NOT_FOUND (5).
    let req = grpc_web_call(
        &node.url,
        ALLOWED,
        "/lode.node.v1.TxService/GetTx",
        &pb::GetTxRequest { hash: vec![7; 32] }.encode_to_vec(),
    );
    let (head, body) = http(&node.url, &req).await;
    let all = format!("{head}\n{}", String::from_utf8_lossy(&body)).to_ascii_lowercase();
    assert!(
        all.contains("grpc-status: 5") || all.contains("grpc-status:5"),
        "{all}"
    );

    // A page from another origin gets no grant: the browser refuses to hand it the answer.
    let (head, _) = http(&node.url, preflight("http://evil.test").as_bytes()).await;
    assert_eq!(header(&head, "access-control-allow-origin"), None, "{head}");
    let req = grpc_web_call(
        &node.url,
        "http://evil.test",
        "/lode.node.v1.QueryService/Status",
        &pb::StatusRequest {}.encode_to_vec(),
    );
    let (head, _) = http(&node.url, &req).await;
    assert_eq!(header(&head, "access-control-allow-origin"), None, "{head}");

    // Health: SERVING on a node in step with its chain.
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    // Health re-reads the node's state at every new height and every second.
    let mut status = 0;
    for _ in 0..20 {
        status = HealthClient::new(node.channel().await)
            .check(HealthCheckRequest {
                service: "lode.node.v1.QueryService".into(),
            })
            .await
            .expect("health")
            .into_inner()
            .status;
        if status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
        "a node in step with its chain is not SERVING"
    );
}
