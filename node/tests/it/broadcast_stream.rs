//! `TxService.BroadcastStream` against running validators: consecutive nonces sent back to back are all
//! committed, each bad tx gets its own verdict, a committed tx sent again reports its commit, a tx sent twice
//! is answered under both ids, and the server ends the stream once the client is done and every admitted
//! tx has its final event. Without a quorum, admitted txs expire.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::SinkExt;
use lode_node::keys::KeyFile;
use lode_node::services::grpc::pb::{
    self, broadcast_stream_event::Event, tx_service_client::TxServiceClient,
};

use crate::four_validators_commit_a_transfer::{status, wait_height, Net};

/// Every wait in this file is bounded by this.
const WAIT: Duration = Duration::from_secs(120);

/// Sends `reqs` over one stream, closes the sending side, and collects every event until the server ends
/// the stream: id → events in arrival order.
async fn exchange(url: &str, reqs: Vec<pb::BroadcastStreamRequest>) -> BTreeMap<u64, Vec<Event>> {
    let mut client = TxServiceClient::connect(url.to_owned())
        .await
        .expect("connect");
    let (mut send, outgoing) = futures::channel::mpsc::channel(reqs.len() + 1);
    for r in reqs {
        send.send(r).await.expect("queue request");
    }
    drop(send);
    let mut events = client
        .broadcast_stream(outgoing)
        .await
        .expect("open stream")
        .into_inner();
    let mut by_id: BTreeMap<u64, Vec<Event>> = BTreeMap::new();
    let collect = async {
        while let Some(ev) = events.message().await.expect("stream event") {
            by_id
                .entry(ev.id)
                .or_default()
                .push(ev.event.expect("event set"));
        }
    };
    tokio::time::timeout(WAIT, collect)
        .await
        .expect("the server ended the stream in time");
    by_id
}

fn req(tx: Vec<u8>, id: u64) -> pb::BroadcastStreamRequest {
    pb::BroadcastStreamRequest {
        tx,
        id,
        timeout_ms: 60_000,
    }
}

fn committed_ok(events: &[Event]) -> Option<u64> {
    match events {
        [Event::Checked(c), Event::Committed(done)]
            if c.code == 0 && done.result.as_ref().is_some_and(|r| r.code == 0) =>
        {
            Some(done.height)
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_commits_consecutive_nonces_and_answers_every_tx() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut net = Net::start(dir.path(), 4);
    wait_height(&net, 2).await;
    let chain_id = status(&net.grpc[1]).await.expect("status").chain_id;
    let dev1 = KeyFile::load(&net.homes[0].join("keys/dev1.json"))
        .expect("dev1")
        .signing_key()
        .expect("key");
    let to: lode_state::Address = KeyFile::generate("to")
        .expect("key")
        .address
        .parse()
        .expect("address");
    let send = |nonce: u64| lode_state::tx::sign_send(&chain_id, &dev1, nonce, 10_000, &to, 7);

    // Ids 0..20: nonces 0..20 back to back. Then the bad ones, each with its own verdict.
    let mut reqs: Vec<_> = (0..20).map(|n| req(send(n), n)).collect();
    let mut forged = send(20);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    reqs.push(req(forged, 100));
    reqs.push(req(b"not a tx".to_vec(), 101));
    reqs.push(req(send(25), 102)); // a nonce gap
    reqs.push(req(vec![0u8; 2 * 1024 * 1024], 103)); // over the mempool's per-tx limit
    reqs.push(req(send(19), 104)); // the same bytes as id 19, still pending
    let first = exchange(&net.grpc[1], reqs).await;

    let mut heights = Vec::new();
    for id in 0..20 {
        let events = &first[&id];
        heights.push(committed_ok(events).unwrap_or_else(|| panic!("tx {id}: {events:?}")));
    }
    assert!(heights.windows(2).all(|w| w[0] <= w[1]), "{heights:?}");
    let code = |id: u64| match first[&id].as_slice() {
        [Event::Checked(c)] => c.code,
        other => panic!("tx {id}: {other:?}"),
    };
    assert_eq!(code(100), 5, "bad signature");
    assert_ne!(code(101), 0, "undecodable");
    assert_ne!(code(102), 0, "nonce gap");
    match first[&103].as_slice() {
        [Event::Refused(r)] => {
            assert_eq!(r.grpc_code, tonic::Code::InvalidArgument as u32, "{r:?}")
        }
        other => panic!("oversized tx: {other:?}"),
    }
    // The same bytes again: answered under its own id, with the one commit. Checked first when it was still
    // pending at its turn; only `committed` when that block was already in.
    let (checked, done) = match first[&104].as_slice() {
        [Event::Checked(c), Event::Committed(d)] => (Some(c.code), d),
        [Event::Committed(d)] => (None, d),
        other => panic!("duplicate: {other:?}"),
    };
    assert_eq!(checked.unwrap_or(0), 0, "duplicate: {:?}", first[&104]);
    assert_eq!(done.height, heights[19]);
    assert_eq!(done.result.as_ref().map(|r| r.code), Some(0));

    // A committed tx sent again (here to another node) reports its commit, not a nonce error. Node 1 reported
    // the commit as soon as it had committed the block; node 2 may still be finishing that height, and until
    // it has, the tx is rightly still pending there (checked, then committed). So wait for every node first.
    wait_height(&net, heights[3]).await;
    let again = exchange(&net.grpc[2], vec![req(send(3), 7)]).await;
    match again[&7].as_slice() {
        [Event::Committed(c)] => assert_eq!(c.height, heights[3]),
        other => panic!("resent tx: {other:?}"),
    }
    // Every node holds the 20 transfers once each and none of the refused ones: the sender paid 20 × (7 +
    // fee) and is at nonce 20, the recipient has 140.
    let sender = crate::workload::dev_address(&net, 1);
    let held = crate::workload::assert_nodes_agree(&net, &[sender, to]).await;
    assert_eq!(
        held,
        vec![
            (crate::workload::DEV_BALANCE - 20 * (7 + 10_000), 20),
            (140, 0)
        ]
    );
    net.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_an_admitted_tx_expires() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Two of four validators: CheckTx works on the genesis state, but no block is ever decided.
    let mut net = Net::start_first(dir.path(), 4, 2);
    let url = net.grpc[0].clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    // Served and past InitChain (the genesis app hash is set): gRPC answers before the engine has
    // initialised the application, and a tx admitted then is refused as "chain not initialised".
    let chain_id = loop {
        if let Some(s) = status(&url).await.filter(|s| !s.app_hash.is_empty()) {
            break s.chain_id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node 0 never served an initialised chain"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let dev0 = KeyFile::load(&net.homes[0].join("keys/dev0.json"))
        .expect("dev0")
        .signing_key()
        .expect("key");
    let to = lode_state::tx::address_of(&dev0);
    let tx = lode_state::tx::sign_send(&chain_id, &dev0, 0, 10_000, &to, 1);
    let mut r = req(tx, 1);
    r.timeout_ms = 500;
    let events = exchange(&url, vec![r]).await;
    match events[&1].as_slice() {
        [Event::Checked(c), Event::Expired(_)] => assert_eq!(c.code, 0),
        other => panic!("{other:?}"),
    }
    net.stop_all();
}
