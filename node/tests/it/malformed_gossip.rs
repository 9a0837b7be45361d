//! A misbehaving mempool-gossip peer: garbage on the tx topic is dropped and logged, the node keeps running,
//! and a valid tx from the same peer still gets in and is committed — that tx, not its forged copy, with the
//! sender debited exactly once.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lode_node::keys::KeyFile;
use lode_node::services::gossip::{self, GossipConfig};
use lode_node::services::mempool::{Mempool, MempoolLimits};
use lode_state::LodeApp;

use crate::four_validators_commit_a_transfer::{balance, status};
use crate::support::{lode, path_str, single_validator_home};
use crate::workload::{account, get_tx};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_a_gossip_peer_is_dropped_and_the_node_keeps_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let ports = single_validator_home(&home, |_| {});
    let at = |i| SocketAddr::from(([127, 0, 0, 1], ports.port(i)));
    let log_path = home.join("node.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut node = lode()
        .env("RUST_LOG", "info,lode_node::services::gossip=debug")
        .args(["start", "--home", path_str(&home)])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn lode start");
    let url = format!("http://{}", at(2));
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(&url).await.is_none_or(|s| s.latest_height < 1) {
        assert!(Instant::now() < deadline, "node did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The misbehaving peer: our own gossip swarm, publishing raw bytes through its outbox.
    let peer_app = LodeApp::open(&dir.path().join("peer-data")).expect("peer app");
    let peer_pool = Arc::new(Mempool::new(
        peer_app,
        MempoolLimits {
            max_txs: 10,
            max_bytes: 1 << 20,
            max_tx_bytes: 1 << 16,
            max_txs_per_sender: 10,
        },
    ));
    let peer = gossip::spawn(
        GossipConfig {
            listen: at(4),
            peers: vec![at(1)],
            max_message_bytes: 1 << 17,
            max_peers: 8,
        },
        [9; 32],
        peer_pool,
    )
    .expect("peer swarm");

    let dev0 = KeyFile::load(&home.join("keys/dev0.json")).expect("dev0");
    let dev0_addr: lode_state::Address = dev0.address.parse().expect("address");
    let before = account(&url, &dev0_addr).await.expect("dev0 account");
    let recipient = KeyFile::generate("recipient").expect("key").address;
    let to: lode_state::Address = recipient.parse().expect("address");
    let valid = Bytes::from(lode_state::tx::sign_send(
        "lode-test-1",
        &dev0.signing_key().expect("key"),
        0,
        10_000,
        &to,
        4242,
    ));
    let garbage: Vec<Bytes> = vec![
        Bytes::from_static(b"\x00\xffnot a transaction"),
        Bytes::from(vec![0xAB; 4000]),
        // A valid tx with a flipped signature bit: decodes, fails the signature check.
        {
            let mut v = valid.to_vec();
            let last = v.len() - 1;
            v[last] ^= 1;
            Bytes::from(v)
        },
    ];
    // Until the peer's subscription has propagated, publishes may go nowhere: repeat (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for g in &garbage {
            let _ = peer.outbox.try_send(g.clone());
        }
        let _ = peer.outbox.try_send(valid.clone());
        tokio::time::sleep(Duration::from_millis(300)).await;
        if balance(&url, &recipient).await.as_deref() == Some("4242") {
            break;
        }
        assert!(
            node.try_wait().expect("wait").is_none(),
            "the node exited after garbage from a peer"
        );
        assert!(
            Instant::now() < deadline,
            "the valid gossiped tx was never committed\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    }
    // What committed is the valid tx itself: the forged copy is in no block, and the sender paid the amount
    // and the fee once.
    use sha2::{Digest, Sha256};
    let hash = |b: &Bytes| -> [u8; 32] { Sha256::digest(b).into() };
    let committed = get_tx(&url, &hash(&valid))
        .await
        .expect("the valid tx is committed");
    assert_eq!(committed.result.map(|r| r.code), Some(0));
    let mut txs =
        lode_node::services::grpc::pb::tx_service_client::TxServiceClient::connect(url.clone())
            .await
            .expect("connect");
    for g in &garbage {
        let r = txs
            .get_tx(lode_node::services::grpc::pb::GetTxRequest {
                hash: hash(g).to_vec(),
            })
            .await;
        assert_eq!(
            r.map(|_| ()).map_err(|s| s.code()),
            Err(tonic::Code::NotFound),
            "a garbage tx was committed"
        );
    }
    let after = account(&url, &dev0_addr).await.expect("dev0 account");
    let paid = before.balance.parse::<u128>().expect("balance")
        - after.balance.parse::<u128>().expect("balance");
    assert_eq!((paid, after.nonce), (4242 + 10_000, before.nonce + 1));
    assert!(node.try_wait().expect("wait").is_none(), "node exited");
    assert!(status(&url).await.is_some(), "node stopped answering");
    let text = std::fs::read_to_string(&log_path).expect("log");
    assert!(
        text.contains("dropped gossiped tx"),
        "garbage not logged:\n{text}"
    );
    let _ = node.kill();
    let _ = node.wait();
}
