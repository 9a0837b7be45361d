//! `/metrics` on `[metrics] listen`: Prometheus text with the node's and Malachite's metrics; the height gauge
//! follows the chain, and gRPC calls are counted by method and code.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use lode_node::services::grpc::pb::{self, tx_service_client::TxServiceClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::SingleNode;

/// `GET path` over plain HTTP/1.1; returns (status line, body).
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("answer within 10 s")
        .expect("read");
    let text = String::from_utf8(out).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

/// Parses Prometheus/OpenMetrics text into `series → value`, checking every line's form.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let name = series.split('{').next().expect("name");
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "bad labels in {line:?}"
            );
        }
        let v: f64 = value.parse().expect("a number");
        out.insert(series.to_owned(), v);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_the_height_gauge_increases() {
    let mut addr = None;
    let node = SingleNode::start(|c| {
        let a = SocketAddr::from(([127, 0, 0, 1], c.grpc.listen.port() + 2));
        c.metrics.listen = Some(a);
        addr = Some(a);
    })
    .await;
    let addr = addr.expect("metrics address");
    // One failed and one successful call to count.
    let mut txs = TxServiceClient::new(node.channel().await);
    let _ = txs.get_tx(pb::GetTxRequest { hash: vec![1] }).await;
    let _ = txs
        .simulate(pb::SimulateRequest { tx: vec![1, 2, 3] })
        .await;

    let (status, body) = get(addr, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    let first = parse(&body);
    let height = |m: &BTreeMap<String, f64>| m.get("lode_height").copied().expect("lode_height");
    let h1 = height(&first);
    assert!(h1 >= 1.0, "{h1}");
    for name in [
        "lode_block_interval_seconds_count",
        "lode_block_txs_count",
        "lode_block_bytes_count",
        "lode_mempool_txs",
        "lode_mempool_bytes",
        "lode_finalize_block_seconds_count",
        "lode_check_tx_seconds_count",
        // Registered before any block with reveals (observed only for those; the value is tested in the
        // state crate's market tests).
        "lode_block_verification_seconds_count",
    ] {
        assert!(first.contains_key(name), "{name} missing:\n{body}");
    }
    assert!(first["lode_finalize_block_seconds_count"] >= 1.0);
    assert_eq!(
        first.get(r#"lode_grpc_requests_total{method="/lode.node.v1.TxService/GetTx",code="INVALID_ARGUMENT"}"#),
        Some(&1.0),
        "{body}"
    );
    assert!(
        first.keys().any(|k| k.starts_with("malachitebft_")),
        "no Malachite metric:\n{body}"
    );
    // Jobs by live state, from the market's state: none on a fresh chain.
    for state in [
        "open",
        "matched",
        "accepted",
        "committed",
        "revealing",
        "settled",
    ] {
        assert_eq!(
            first.get(&format!(r#"lode_jobs{{state="{state}"}}"#)),
            Some(&0.0),
            "lode_jobs{{state={state:?}}} missing:\n{body}"
        );
    }

    // A committed transfer is counted by its events' types.
    let (home, url) = (node.home.clone(), node.url.clone());
    let to = lode_node::keys::KeyFile::generate("x")
        .expect("key")
        .address;
    tokio::task::spawn_blocking(move || {
        crate::support::lode_ok(&[
            "tx",
            "send",
            "--home",
            crate::support::path_str(&home),
            "--from",
            "dev0",
            "--to",
            &to,
            "--amount",
            "5",
            "--node",
            &url,
            "--wait",
        ])
    })
    .await
    .expect("tx send");
    assert_eq!(
        first.get(r#"lode_events_total{type="transfer"}"#),
        None,
        "no transfer before the first tx"
    );

    node.wait_height(h1 as u64 + 2).await;
    let (_, body) = get(addr, "/metrics").await;
    let second = parse(&body);
    assert!(
        second
            .get(r#"lode_events_total{type="transfer"}"#)
            .is_some_and(|v| *v >= 1.0),
        "{body}"
    );
    assert!(
        height(&second) >= h1 + 2.0,
        "height gauge did not increase: {h1} -> {}",
        height(&second)
    );

    // Anything but `GET /metrics` is refused.
    assert!(get(addr, "/").await.0.contains("404"));
}
