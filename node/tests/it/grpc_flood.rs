//! One node under a gRPC flood from many clients: block times stay within bounds and transfers sent through
//! the flood commit exactly once, to the unit.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lode_consensus::{BlockStore, Height};
use lode_node::config::Config;
use lode_node::keys::KeyFile;
use lode_node::services::block_store::RocksBlockStore;
use lode_node::services::grpc::pb::{
    self, query_service_client::QueryServiceClient, tx_service_client::TxServiceClient,
};
use lode_state::LodeApp;
use lode_test_ports::PortBlock;
use tonic::transport::Channel;

use crate::four_validators_commit_a_transfer::{balance, status};
use crate::support::{lode, path_str, single_validator_home, KillOnDrop};

/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(12);
/// Unary flooding clients, each on its own connection.
const CLIENTS: usize = 64;
/// Clients that open a `BroadcastStream`, push junk and never read an event.
const STALLED_STREAMS: usize = 24;
/// Longest gap allowed between two blocks during the flood (idle blocks come every ~150-300 ms).
const MAX_GAP: Duration = Duration::from_millis(3_000);
/// Transfers a wallet sends through the flood.
const TRANSFERS: u64 = 4;
const FEE: u128 = 10_000;
/// Txs a `BroadcastStream` client that reads no answer tries to send.
const STALL_TXS: u64 = 100_000;

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// A tx that decodes and passes every stateless check but its signature: each costs the node a signature
/// verification. `salt` makes every one distinct.
fn forged(key: &ed25519_consensus::SigningKey, to: &lode_state::Address, salt: u64) -> Vec<u8> {
    let mut tx = lode_state::tx::sign_send(
        "lode-test-1",
        key,
        salt % 1000,
        FEE,
        to,
        u128::from(salt) + 1,
    );
    let last = tx.len() - 1;
    tx[last] ^= 1;
    tx
}

/// A connection whose HTTP/2 windows are small (16 KiB per stream): a client on it that reads nothing makes the
/// server's sends block after a few hundred events, however fast or slow the node produces them. With the
/// default windows (megabytes) the server had to answer tens of thousands of txs first, which took longer
/// than the test's deadline on a loaded machine.
async fn small_window_channel(url: &str) -> Option<Channel> {
    Channel::from_shared(url.to_owned())
        .ok()?
        .initial_stream_window_size(16 * 1024)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .ok()
}

async fn channel(url: &str) -> Option<Channel> {
    Channel::from_shared(url.to_owned())
        .ok()?
        .connect()
        .await
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_flood_from_many_clients_keeps_block_times_bounded_and_loses_no_transfer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let ports = single_validator_home(&home, |_| {});
    let at = |i| SocketAddr::from(([127, 0, 0, 1], ports.port(i)));
    let log_path = home.join("node.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut node = KillOnDrop(
        lode()
            .args(["start", "--home", path_str(&home)])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn lode start"),
    );
    let url = format!("http://{}", at(2));
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(&url).await.is_none_or(|s| s.latest_height < 2) {
        assert!(Instant::now() < deadline, "node did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dev0 = KeyFile::load(&home.join("keys/dev0.json")).expect("dev0");
    let key = dev0.signing_key().expect("key");
    let recipient = KeyFile::generate("recipient").expect("key").address;
    let to: lode_state::Address = recipient.parse().expect("address");
    let dev_before: u128 = balance(&url, &dev0.address)
        .await
        .expect("dev0 balance")
        .parse()
        .expect("decimal");

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let flood_start = SystemTime::now();
    let mut flood = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let (url, stop, served, key, to) =
            (url.clone(), stop.clone(), served.clone(), key.clone(), to);
        let address = dev0.address.clone();
        flood.spawn(async move {
            let Some(ch) = channel(&url).await else {
                return;
            };
            let mut tx = TxServiceClient::new(ch.clone());
            let mut q = QueryServiceClient::new(ch);
            let mut salt = (c as u64) << 32;
            while !stop.load(Ordering::Relaxed) {
                salt += 1;
                let ok = match salt % 4 {
                    0 => q.status(pb::StatusRequest {}).await.is_ok(),
                    1 => q
                        .account(pb::AccountRequest {
                            address: address.clone(),
                        })
                        .await
                        .is_ok(),
                    2 => tx
                        .broadcast(pb::BroadcastRequest {
                            tx: forged(&key, &to, salt),
                        })
                        .await
                        .is_ok(),
                    _ => tx
                        .broadcast_and_wait(pb::BroadcastAndWaitRequest {
                            tx: forged(&key, &to, salt),
                            timeout_ms: u32::MAX,
                        })
                        .await
                        .is_ok(),
                };
                if ok {
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    for s in 0..STALLED_STREAMS {
        let (url, stop, key, to) = (url.clone(), stop.clone(), key.clone(), to);
        flood.spawn(async move {
            let Some(ch) = channel(&url).await else {
                return;
            };
            let (sender, outgoing) = tokio::sync::mpsc::channel(64);
            let opened = TxServiceClient::new(ch)
                .broadcast_stream(tokio_stream_from(outgoing))
                .await;
            // Never read the events: the node must not buffer for this client without bound.
            let _events = opened;
            let mut salt = ((CLIENTS + s) as u64) << 32;
            while !stop.load(Ordering::Relaxed) {
                salt += 1;
                let req = pb::BroadcastStreamRequest {
                    tx: forged(&key, &to, salt),
                    id: salt,
                    timeout_ms: u32::MAX,
                };
                match tokio::time::timeout(Duration::from_millis(200), sender.send(req)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break,
                    Err(_) => {}
                }
            }
        });
    }

    // A wallet sends its transfers through the flood, retrying what the node refuses for load.
    let mut wallet = TxServiceClient::new(channel(&url).await.expect("wallet connects"));
    let mut committed_heights = Vec::new();
    // How long each transfer took from its first broadcast to its committed answer (reported, not asserted).
    let mut latencies_ms = Vec::new();
    for nonce in 0..TRANSFERS {
        let tx =
            lode_state::tx::sign_send("lode-test-1", &key, nonce, FEE, &to, u128::from(nonce) + 1);
        let sent = Instant::now();
        let deadline = sent + Duration::from_secs(60);
        loop {
            let r = wallet
                .broadcast_and_wait(pb::BroadcastAndWaitRequest {
                    tx: tx.clone(),
                    timeout_ms: 20_000,
                })
                .await;
            match r {
                Ok(r) => {
                    let r = r.into_inner();
                    let result = r.result.expect("committed result");
                    assert_eq!(result.code, 0, "transfer {nonce} failed: {}", result.log);
                    committed_heights.push(r.height);
                    latencies_ms.push(sent.elapsed().as_millis());
                    break;
                }
                Err(s) => {
                    assert!(
                        matches!(
                            s.code(),
                            tonic::Code::ResourceExhausted
                                | tonic::Code::Unavailable
                                | tonic::Code::DeadlineExceeded
                        ),
                        "transfer {nonce}: {s:?}"
                    );
                    assert!(
                        Instant::now() < deadline,
                        "transfer {nonce} never got through: {s:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    let left = FLOOD.saturating_sub(flood_start.elapsed().unwrap_or_default());
    tokio::time::sleep(left).await;
    let flood_end = SystemTime::now();
    stop.store(true, Ordering::Relaxed);
    let drained = tokio::time::timeout(Duration::from_secs(60), async {
        while flood.join_next().await.is_some() {}
    })
    .await;
    assert!(drained.is_ok(), "flood clients did not stop");
    assert!(
        node.0.try_wait().expect("wait").is_none(),
        "the node exited under the flood"
    );
    let last = status(&url)
        .await
        .expect("the node answers after the flood");
    let served = served.load(Ordering::Relaxed);

    // State: every transfer committed once, to the unit.
    let want: u128 = (1..=u128::from(TRANSFERS)).sum();
    assert_eq!(
        balance(&url, &recipient).await.as_deref(),
        Some(want.to_string().as_str())
    );
    assert_eq!(
        balance(&url, &dev0.address)
            .await
            .and_then(|b| b.parse::<u128>().ok()),
        Some(dev_before - want - FEE * u128::from(TRANSFERS))
    );
    drop(node);

    // Block times, from the decided headers (BFT time, the proposer's clock).
    let app = LodeApp::open(&home.join("data")).expect("open db");
    let blocks = RocksBlockStore::new(app);
    let mut times = Vec::new();
    for h in 1..=last.latest_height {
        if let Some(d) = blocks.get_decided(Height(h)).expect("read block") {
            let t = d.block.header().time;
            times.push(t.seconds as f64 + f64::from(t.nanos) * 1e-9);
        }
    }
    let (start, end) = (unix(flood_start), unix(flood_end));
    let mut during: Vec<f64> = times
        .iter()
        .copied()
        .filter(|t| *t >= start && *t <= end)
        .collect();
    during.sort_by(f64::total_cmp);
    let mut edges = vec![start];
    edges.extend(&during);
    edges.push(end);
    let max_gap = edges.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    let gaps: Vec<u64> = edges
        .windows(2)
        .map(|w| ((w[1] - w[0]) * 1e3) as u64)
        .collect();
    eprintln!("gaps between blocks during the flood (ms): {gaps:?}");
    let mut sorted = latencies_ms.clone();
    sorted.sort_unstable();
    eprintln!(
        "wallet transfers through the flood (ms, broadcast to commit): {latencies_ms:?}, median {}",
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    );
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let tail: String = text.lines().rev().take(40).collect::<Vec<_>>().join("\n");
    eprintln!(
        "flood: {served} requests served in {:.1} s, {} blocks, longest gap {:.0} ms, transfers at heights {committed_heights:?}",
        end - start,
        during.len(),
        max_gap * 1e3
    );
    assert!(
        max_gap <= MAX_GAP.as_secs_f64(),
        "a block took {:.0} ms under the flood ({} blocks in {:.1} s)\n{tail}",
        max_gap * 1e3,
        during.len(),
        end - start
    );
    assert!(served > 0, "the flood got nothing served");
}

/// A `tokio::sync::mpsc::Receiver` as a `Stream`, without another dependency.
fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Starts `lode start` on a fresh one-validator home with `edit` applied to its config; returns the child,
/// the gRPC URL and the temp dir.
async fn start_node(
    edit: impl FnOnce(&mut Config),
) -> (KillOnDrop, String, tempfile::TempDir, PortBlock) {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let ports = single_validator_home(&home, edit);
    let at = |i| SocketAddr::from(([127, 0, 0, 1], ports.port(i)));
    let log = std::fs::File::create(home.join("node.log")).expect("log");
    let node = KillOnDrop(
        lode()
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
    (node, url, dir, ports)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_streams_are_bounded_and_a_client_that_stops_reading_loses_its_stream() {
    let (mut node, url, _dir, _ports) = start_node(|c| {
        c.grpc.max_broadcast_streams = 2;
        c.grpc.stream_stall_timeout_ms = 1_000;
    })
    .await;
    // Two clients push txs the node answers (garbage: each gets a `checked` event with an error code) and
    // never read an answer.
    let mut stalled = Vec::new();
    for s in 0..2u64 {
        let ch = small_window_channel(&url).await.expect("connect");
        let (sender, outgoing) = tokio::sync::mpsc::channel(16);
        let events = TxServiceClient::new(ch)
            .broadcast_stream(tokio_stream_from(outgoing))
            .await
            .expect("a stream within the limit opens");
        let sent = Arc::new(AtomicU64::new(0));
        let count = sent.clone();
        let pusher = tokio::spawn(async move {
            for i in 0..STALL_TXS {
                let req = pb::BroadcastStreamRequest {
                    tx: format!("junk {s} {i}").into_bytes(),
                    id: i,
                    timeout_ms: 0,
                };
                if sender.send(req).await.is_err() {
                    return;
                }
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        stalled.push((events, pusher, sent));
    }
    // A third is refused while both are open.
    let ch = channel(&url).await.expect("connect");
    let (_keep, outgoing) = tokio::sync::mpsc::channel::<pb::BroadcastStreamRequest>(1);
    let third = TxServiceClient::new(ch)
        .broadcast_stream(tokio_stream_from(outgoing))
        .await;
    assert_eq!(
        third.as_ref().err().map(tonic::Status::code),
        Some(tonic::Code::ResourceExhausted),
        "a third stream opened"
    );
    // The chain keeps committing while those clients hold their streams and read nothing.
    let before = status(&url).await.expect("status").latest_height;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = status(&url).await.expect("status").latest_height;
    assert!(
        after >= before + 3,
        "the chain stalled: {before} -> {after}"
    );
    // Past the stall timeout the node gives those clients up: their slots come back while they are still
    // connected and still not reading.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ch = channel(&url).await.expect("connect");
        let (_keep, outgoing) = tokio::sync::mpsc::channel::<pb::BroadcastStreamRequest>(1);
        match TxServiceClient::new(ch)
            .broadcast_stream(tokio_stream_from(outgoing))
            .await
        {
            Ok(_) => break,
            Err(s) => {
                assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
                assert!(
                    Instant::now() < deadline,
                    "the stalled streams' slots never came back"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert!(node.0.try_wait().expect("wait").is_none(), "node exited");
    for (events, pusher, _) in stalled {
        pusher.abort();
        drop(events);
    }
    drop(node);
}
