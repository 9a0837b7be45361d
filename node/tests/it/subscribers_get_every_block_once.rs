//! `EventService.Subscribe` on a running node: a subscription from height 1 replays every block exactly once,
//! in order, then follows live blocks with no gap; filters pick tx results by event type and attribute; a
//! subscriber that stops reading is ended with the last height it was sent, and blocks keep coming.

use std::time::{Duration, Instant};

use lode_node::keys::KeyFile;
use lode_node::services::grpc::pb::{
    self, event_service_client::EventServiceClient, tx_service_client::TxServiceClient,
};
use lode_state::tx::{sign_send, tx_hash};
use tonic::{transport::Channel, Code, Streaming};

use crate::support::{run_lode, SingleNode, STEP};

/// The next event of `s`, bounded by [`STEP`].
async fn next(s: &mut Streaming<pb::BlockEvent>) -> Result<Option<pb::BlockEvent>, tonic::Status> {
    tokio::time::timeout(STEP, s.message())
        .await
        .expect("no event within STEP")
}

fn height(e: &pb::BlockEvent) -> u64 {
    e.header.as_ref().expect("header").height
}

async fn subscribe(
    ch: Channel,
    from: Option<u64>,
    filters: Vec<pb::EventFilter>,
) -> Result<Streaming<pb::BlockEvent>, tonic::Status> {
    EventServiceClient::new(ch)
        .subscribe(pb::SubscribeRequest {
            from_height: from,
            filters,
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_from_height_one_gets_every_block_once_in_order_then_live_ones() {
    let node = SingleNode::start(|c| c.consensus.empty_block_interval_ms = 0).await;
    node.wait_height(50).await;
    let ch = node.channel().await;
    let tip = node.height().await.expect("height");

    let mut all = subscribe(ch.clone(), Some(1), vec![])
        .await
        .expect("subscribe");
    let dev0 = KeyFile::load(&node.home.join("keys/dev0.json")).expect("dev0");
    let key = dev0.signing_key().expect("key");
    let bob = KeyFile::generate("bob").expect("key").address;
    let to: lode_state::Address = bob.parse().expect("address");
    let mut only_bob = subscribe(
        ch.clone(),
        None,
        vec![pb::EventFilter {
            r#type: "transfer".into(),
            attribute: "recipient".into(),
            value: bob.clone(),
        }],
    )
    .await
    .expect("subscribe");

    // Replay: 1..=tip, consecutive, each block linked to the one before.
    let mut prev: Option<pb::BlockEvent> = None;
    let mut expect = 1;
    while expect <= tip + 5 {
        let e = next(&mut all).await.expect("stream").expect("not ended");
        assert_eq!(height(&e), expect, "a gap or a duplicate");
        if let Some(p) = &prev {
            assert_eq!(e.header.as_ref().expect("header").last_block_id, p.block_id);
        }
        assert_eq!(e.txs.len(), e.num_txs as usize, "no filter: every tx");
        prev = Some(e);
        expect += 1;
    }

    // A transfer to bob: the filtered subscription gets its block with exactly that tx and its events.
    let tx = sign_send("lode-test-1", &key, 0, 50_000, &to, 321);
    let r = TxServiceClient::new(ch.clone())
        .broadcast_and_wait(pb::BroadcastAndWaitRequest {
            tx: tx.clone(),
            timeout_ms: 30_000,
        })
        .await
        .expect("broadcast")
        .into_inner();
    assert_eq!(r.result.as_ref().map(|r| r.code), Some(0));
    let mut last = None;
    let found = loop {
        let e = next(&mut only_bob)
            .await
            .expect("stream")
            .expect("not ended");
        if let Some(l) = last {
            assert_eq!(height(&e), l + 1, "a gap or a duplicate in the live stream");
        }
        last = Some(height(&e));
        if !e.txs.is_empty() {
            break e;
        }
        assert!(height(&e) < r.height, "the tx's block came without it");
    };
    assert_eq!(height(&found), r.height);
    assert_eq!(found.txs.len(), 1);
    assert_eq!(found.txs[0].tx_hash, tx_hash(&tx).to_vec());
    assert!(found.txs[0].tx.is_empty(), "subscriptions carry no raw tx");
    assert!(found.txs[0].events.iter().any(|e| e.r#type == "transfer"
        && e.attributes
            .iter()
            .any(|a| a.key == "amount" && a.value == "321")));
    // The unfiltered subscription saw the same block, in its place.
    loop {
        let e = next(&mut all).await.expect("stream").expect("not ended");
        assert_eq!(height(&e), expect);
        expect += 1;
        if height(&e) == r.height {
            assert_eq!(e.num_txs, 1);
            assert_eq!(e.txs[0].tx_hash, tx_hash(&tx).to_vec());
            break;
        }
    }

    // Malformed requests.
    for (from, filters) in [
        (Some(u64::MAX), vec![]),
        (
            None,
            vec![pb::EventFilter {
                r#type: String::new(),
                ..Default::default()
            }],
        ),
        (
            None,
            vec![pb::EventFilter {
                r#type: "transfer".into(),
                attribute: String::new(),
                value: "x".into(),
            }],
        ),
        (
            None,
            vec![
                pb::EventFilter {
                    r#type: "transfer".into(),
                    ..Default::default()
                };
                17
            ],
        ),
    ] {
        let e = subscribe(ch.clone(), from, filters)
            .await
            .expect_err("a malformed subscription");
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    }

    // `lode events`: one JSON line per height; the filtered form prints the transfer's block with the tx.
    let url = node.url.clone();
    let bob_filter = format!("transfer.recipient={bob}");
    let from = r.height.to_string();
    let (plain, filtered, bad) = tokio::task::spawn_blocking(move || {
        (
            run_lode(&["events", "--from", "1", "--count", "5", "--node", &url]),
            run_lode(&[
                "events",
                "--from",
                &from,
                "--count",
                "1",
                "--filter",
                &bob_filter,
                "--node",
                &url,
            ]),
            run_lode(&["events", "--filter", "transfer=x", "--node", &url]),
        )
    })
    .await
    .expect("lode events");
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let heights: Vec<u64> = String::from_utf8_lossy(&plain.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json line")["height"]
                .as_u64()
                .expect("height")
        })
        .collect();
    assert_eq!(heights, [1, 2, 3, 4, 5]);
    assert!(
        filtered.status.success(),
        "{}",
        String::from_utf8_lossy(&filtered.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&filtered.stdout).expect("one json line");
    assert_eq!(v["txs"][0]["tx_hash"], hex::encode_upper(tx_hash(&tx)));
    assert!(!bad.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_ended_with_its_last_height_and_blocks_keep_coming() {
    let node = SingleNode::start(|c| {
        c.consensus.empty_block_interval_ms = 0;
        c.grpc.subscription_buffer = 4;
        c.grpc.stream_stall_timeout_ms = 1_000;
    })
    .await;
    node.wait_height(20).await;
    // A client whose HTTP/2 window holds about one event: what it does not read stays queued in the node.
    let slow = tonic::transport::Endpoint::from_shared(node.url.clone())
        .expect("url")
        .initial_stream_window_size(Some(1024))
        .connect()
        .await
        .expect("connect");
    let mut stream = subscribe(slow, Some(1), vec![]).await.expect("subscribe");
    let at_stop = node.height().await.expect("height");

    // It reads nothing for a while; blocks keep coming meanwhile.
    let deadline = Instant::now() + STEP;
    while node.height().await.expect("height") < at_stop + 10 {
        assert!(Instant::now() < deadline, "block production stalled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    // Now it reads: consecutive heights from 1, then RESOURCE_EXHAUSTED naming the last one.
    let mut expect = 1;
    let end = loop {
        match next(&mut stream).await {
            Ok(Some(e)) => {
                assert_eq!(height(&e), expect);
                expect += 1;
            }
            Ok(None) => panic!("ended without a status after height {}", expect - 1),
            Err(s) => break s,
        }
    };
    let last = expect - 1;
    assert_eq!(end.code(), Code::ResourceExhausted, "{end:?}");
    assert!(
        end.message()
            .contains(&format!("the last height sent is {last}")),
        "{end:?}"
    );
    assert_eq!(
        end.metadata()
            .get("lode-last-height")
            .and_then(|v| v.to_str().ok()),
        Some(last.to_string().as_str())
    );
    assert!(
        last < node.height().await.expect("height"),
        "the stream was not behind the chain"
    );

    // It resumes from the next height with nothing missed.
    let mut resumed = subscribe(node.channel().await, Some(last + 1), vec![])
        .await
        .expect("resume");
    for h in last + 1..last + 4 {
        let e = next(&mut resumed)
            .await
            .expect("stream")
            .expect("not ended");
        assert_eq!(height(&e), h);
    }
}
