//! A peer floods the mempool gossip topic with junk: the node relays none of it (gossipsub validation mode:
//! only what CheckTx admitted travels on), and an honest peer's tx sent during the flood is still admitted
//! and committed promptly; `lode_gossip_dropped_total{reason="invalid_tx"}` on `/metrics` counts the junk.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use libp2p::{gossipsub, identity::Keypair, noise, swarm::SwarmEvent, tcp, yamux, Multiaddr};
use lode_node::keys::KeyFile;
use lode_node::services::gossip::{self, GossipConfig, TX_TOPIC};
use lode_node::services::grpc::pb::TxBatch;
use lode_node::services::mempool::{Mempool, MempoolLimits};
use lode_state::LodeApp;
use prost::Message;
use tokio::sync::mpsc;

use crate::four_validators_commit_a_transfer::{balance, status};
use crate::support::{lode, path_str, single_validator_home, KillOnDrop};

fn multiaddr(a: SocketAddr) -> Multiaddr {
    let mut m = Multiaddr::from(a.ip());
    m.push(libp2p::multiaddr::Protocol::Tcp(a.port()));
    m
}

/// A bare gossipsub peer that dials `node`, subscribes to the tx topic and hands over every tx it receives.
fn observer(listen: SocketAddr, node: SocketAddr) -> mpsc::UnboundedReceiver<Vec<u8>> {
    let (seen, rx) = mpsc::unbounded_channel();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp")
        .with_behaviour(|_key| {
            let cfg = gossipsub::ConfigBuilder::default()
                .heartbeat_interval(Duration::from_millis(500))
                .validation_mode(gossip::VALIDATION_MODE)
                .max_transmit_size(1 << 20)
                .build()
                .expect("config");
            let b: gossipsub::Behaviour =
                gossipsub::Behaviour::new(gossip::AUTHENTICITY, cfg).expect("behaviour");
            b
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    swarm
        .behaviour_mut()
        .subscribe(&gossipsub::IdentTopic::new(TX_TOPIC))
        .expect("subscribe");
    swarm.listen_on(multiaddr(listen)).expect("listen");
    swarm.dial(multiaddr(node)).expect("dial");
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(gossipsub::Event::Message { message, .. }) =
                swarm.select_next_some().await
            {
                match TxBatch::decode(message.data.as_slice()) {
                    Ok(batch) => {
                        for tx in batch.txs {
                            let _ = seen.send(tx);
                        }
                    }
                    Err(_) => {
                        let _ = seen.send(message.data);
                    }
                }
            }
        }
    });
    rx
}

/// A gossip peer (the node's own swarm code) whose outbox the test fills.
fn peer(
    dir: &std::path::Path,
    name: &str,
    listen: SocketAddr,
    node: SocketAddr,
    seed: u8,
) -> gossip::Gossip {
    let app = LodeApp::open(&dir.join(name)).expect("peer app");
    let pool = Arc::new(Mempool::new(
        app,
        MempoolLimits {
            max_txs: 10,
            max_bytes: 1 << 20,
            max_tx_bytes: 1 << 16,
            max_txs_per_sender: 10,
        },
    ));
    gossip::spawn(
        GossipConfig {
            listen,
            peers: vec![node],
            max_message_bytes: 1 << 20,
            max_peers: 8,
        },
        [seed; 32],
        pool,
    )
    .expect("peer swarm")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_gossip_peer_is_not_relayed_and_does_not_hold_up_an_honest_peers_tx() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let mut metrics_addr = None;
    let ports = single_validator_home(&home, |c| {
        let a = SocketAddr::from(([127, 0, 0, 1], c.grpc.listen.port() + 5));
        c.metrics.listen = Some(a);
        metrics_addr = Some(a);
    });
    let metrics_addr = metrics_addr.expect("metrics address");
    let at = |i| SocketAddr::from(([127, 0, 0, 1], ports.port(i)));
    let log_path = home.join("node.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut node = KillOnDrop(
        lode()
            .env("RUST_LOG", "info")
            .args(["start", "--home", path_str(&home)])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn lode start"),
    );
    let url = format!("http://{}", at(2));
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(&url).await.is_none_or(|s| s.latest_height < 1) {
        assert!(Instant::now() < deadline, "node did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let dropped_before = invalid_tx_dropped(metrics_addr).await;
    let mut seen = observer(at(4), at(1));
    let flooder = peer(dir.path(), "flooder", at(5), at(1), 7);
    let honest = peer(dir.path(), "honest", at(6), at(1), 8);

    let dev0 = KeyFile::load(&home.join("keys/dev0.json")).expect("dev0");
    let key = dev0.signing_key().expect("key");
    let recipient = KeyFile::generate("recipient").expect("key").address;
    let to: lode_state::Address = recipient.parse().expect("address");
    let transfer = |nonce: u64, amount: u128| {
        Bytes::from(lode_state::tx::sign_send(
            "lode-test-1",
            &key,
            nonce,
            10_000,
            &to,
            amount,
        ))
    };
    let first = transfer(0, 100);
    let second = transfer(1, 20);

    // The mesh forms within a few heartbeats: the honest peer's first tx, relayed by the node, reaches the
    // observer (bounded retries: publishes before the subscriptions propagated go nowhere).
    let deadline = Instant::now() + Duration::from_secs(60);
    'mesh: loop {
        let _ = honest.outbox.try_send(first.clone());
        let until = Instant::now() + Duration::from_millis(500);
        while let Ok(Some(tx)) = tokio::time::timeout_at(until.into(), seen.recv()).await {
            if tx == first {
                break 'mesh;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the node never relayed a valid tx"
        );
    }

    // The flood: batches of well-formed txs with broken signatures (each costs a signature check), and
    // undecodable bytes, as fast as the flooder's outbox takes them.
    let forged = |salt: u64| {
        let mut v = lode_state::tx::sign_send(
            "lode-test-1",
            &key,
            2 + salt % 50,
            10_000,
            &to,
            u128::from(salt),
        )
        .to_vec();
        let last = v.len() - 1;
        v[last] ^= 1;
        Bytes::from(v)
    };
    let mut junk: HashSet<Vec<u8>> = HashSet::new();
    let flood_until = Instant::now() + Duration::from_secs(8);
    let mut salt = 0u64;
    let mut second_sent = None;
    while Instant::now() < flood_until {
        for _ in 0..256 {
            salt += 1;
            let j = if salt.is_multiple_of(16) {
                Bytes::from(vec![0xAB; 64 + (salt % 100) as usize])
            } else {
                forged(salt)
            };
            if flooder.outbox.try_send(j.clone()).is_ok() {
                junk.insert(j.to_vec());
            }
        }
        if second_sent.is_none() && salt > 4096 {
            let _ = honest.outbox.try_send(second.clone());
            second_sent = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second_sent = second_sent.expect("the honest tx was sent during the flood");
    // The honest tx sent in the middle of the flood commits promptly.
    let deadline = second_sent + Duration::from_secs(15);
    while balance(&url, &recipient).await.as_deref() != Some("120") {
        assert!(
            Instant::now() < deadline,
            "the honest peer's tx did not commit within 15 s of being sent during the flood\n{}",
            std::fs::read_to_string(&log_path)
                .unwrap_or_default()
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let committed_after = second_sent.elapsed();
    // Give the relay time to show anything it would forward, then look at everything the observer got.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut relayed_junk = 0usize;
    let mut relayed = 0usize;
    while let Ok(tx) = seen.try_recv() {
        relayed += 1;
        if junk.contains(&tx) {
            relayed_junk += 1;
        }
    }
    eprintln!(
        "gossip flood: {} junk txs sent, {relayed} txs relayed to the observer after the mesh formed, {relayed_junk} of them junk; honest tx committed {committed_after:?} after it was sent",
        junk.len()
    );
    assert_eq!(
        relayed_junk, 0,
        "the node relayed junk it had not validated"
    );
    assert!(
        node.0.try_wait().expect("wait").is_none(),
        "the node exited under the flood"
    );
    assert_eq!(balance(&url, &recipient).await.as_deref(), Some("120"));
    // The refused junk is counted as dropped gossip.
    let dropped = invalid_tx_dropped(metrics_addr).await;
    eprintln!("gossip flood: lode_gossip_dropped_total{{reason=\"invalid_tx\"}} {dropped_before} -> {dropped}");
    assert!(
        dropped > dropped_before,
        "the junk did not move lode_gossip_dropped_total{{reason=\"invalid_tx\"}} ({dropped_before} -> {dropped})"
    );
    drop(node);
}

/// `lode_gossip_dropped_total{reason="invalid_tx"}` from the node's `/metrics` (0 before the first drop).
async fn invalid_tx_dropped(addr: SocketAddr) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect metrics");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("metrics answer within 10 s")
        .expect("read");
    let text = String::from_utf8(out).expect("utf-8");
    text.lines()
        .find(|l| l.starts_with("lode_gossip_dropped_total{reason=\"invalid_tx\"}"))
        .and_then(|l| l.rsplit_once(' '))
        .map(|(_, v)| v.parse().expect("a number"))
        .unwrap_or(0.0)
}
