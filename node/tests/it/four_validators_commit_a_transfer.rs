//! Four `lode start` processes on loopback produce blocks; a transfer broadcast to node 0 is committed and
//! visible on all four, which agree on the app hash.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use lode_node::keys::KeyFile;
use lode_node::services::grpc::pb::{
    self, query_service_client::QueryServiceClient, tx_service_client::TxServiceClient,
};
use lode_state::LodeApp;
use lode_test_ports::PortBlock;

use crate::support::{lode, lode_in_netns, lode_ok, path_str};

/// Every wait in this file is bounded by this.
const WAIT: Duration = Duration::from_secs(120);

/// Running validators; SIGKILLed when dropped (a failed test leaves no process behind).
pub struct Net {
    pub homes: Vec<PathBuf>,
    pub grpc: Vec<String>,
    pub children: Vec<Option<Child>>,
    /// The network namespace each node runs in (`ip netns exec`); empty: all in this one.
    pub netns: Vec<String>,
    /// A test-only clock offset per node (ms, `LODE_TEST_CLOCK_OFFSET_MS`), applied when it is (re)started;
    /// 0: none.
    pub clock_offset_ms: Vec<i64>,
    /// The loopback ports of every node, reserved for the whole test so a node restarted after a kill finds
    /// its ports free (see `lode_test_ports`).
    _ports: PortBlock,
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Net {
    /// `lode testnet init` with free ports, then `lode start` for every node.
    pub fn start(dir: &Path, n: usize) -> Net {
        Net::start_first(dir, n, n)
    }

    /// `lode testnet init` of `n` validators on a reserved port block, then `lode start` for the first
    /// `running`.
    pub fn start_first(dir: &Path, n: usize, running: usize) -> Net {
        Net::start_with_genesis(dir, n, running, |_| {})
    }

    /// Like [`Net::start_first`], with `edit` applied to the shared genesis (as JSON) before any node starts.
    pub fn start_with_genesis(
        dir: &Path,
        n: usize,
        running: usize,
        edit: impl Fn(&mut serde_json::Value),
    ) -> Net {
        Net::start_full(dir, n, running, 4, edit)
    }

    /// Like [`Net::start_with_genesis`], with `dev_accounts` funded dev accounts (`keys/dev<k>.json` in node
    /// 0's home) instead of `lode testnet init`'s default 4.
    pub fn start_full(
        dir: &Path,
        n: usize,
        running: usize,
        dev_accounts: usize,
        edit: impl Fn(&mut serde_json::Value),
    ) -> Net {
        let ports = PortBlock::reserve();
        assert!(
            10 * n <= usize::from(lode_test_ports::BLOCK),
            "too many nodes for one port block"
        );
        let out = lode_ok(&[
            "testnet",
            "init",
            "--validators",
            &n.to_string(),
            "--out",
            path_str(dir),
            "--base-port",
            &ports.base().to_string(),
            "--timeout-propose-ms",
            "300",
            "--dev-accounts",
            &dev_accounts.to_string(),
        ]);
        let grpc: Vec<String> = out
            .lines()
            .filter_map(|l| l.split("grpc ").nth(1))
            .map(|s| s.trim().to_owned())
            .collect();
        assert_eq!(grpc.len(), n, "testnet init output: {out}");
        let homes: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("node{i}"))).collect();
        for home in &homes {
            let path = home.join("genesis.json");
            let text = std::fs::read_to_string(&path).expect("read genesis");
            let mut genesis: serde_json::Value = serde_json::from_str(&text).expect("genesis json");
            edit(&mut genesis);
            std::fs::write(&path, serde_json::to_vec_pretty(&genesis).expect("json"))
                .expect("write genesis");
        }
        let mut net = Net {
            homes,
            grpc,
            children: Vec::new(),
            netns: Vec::new(),
            clock_offset_ms: vec![0; n],
            _ports: ports,
        };
        for i in 0..n {
            let c = (i < running).then(|| net.spawn(i));
            net.children.push(c);
        }
        net
    }

    pub fn spawn(&self, i: usize) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.homes[i].join("node.log"))
            .expect("log file");
        let mut cmd = match self.netns.get(i) {
            Some(ns) => lode_in_netns(ns),
            None => lode(),
        };
        if let Some(&offset) = self.clock_offset_ms.get(i).filter(|o| **o != 0) {
            cmd.env("LODE_TEST_CLOCK_OFFSET_MS", offset.to_string());
        }
        cmd.env("RUST_LOG", "info")
            .args(["start", "--home", path_str(&self.homes[i])])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn lode start")
    }

    /// SIGTERM every node and wait for it (bounded).
    pub fn stop_all(&mut self) {
        for c in self.children.iter().flatten() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for c in self.children.iter_mut().flatten() {
            while c.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.children.clear();
    }

    /// The last lines of every node's log.
    pub fn logs(&self) -> String {
        (0..self.homes.len())
            .map(|i| self.log_tail(i, 30))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The last `lines` lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let home = &self.homes[i];
        let text = std::fs::read_to_string(home.join("node.log")).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(lines).collect();
        format!(
            "--- {} ---\n{}",
            home.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }
}

/// Edits a `lode testnet init` genesis (as JSON) so only the nodes in `keep` are genesis validators, each
/// self-bonding `self_bond` base units at `staking.power_reduction = power_reduction` (the top-level
/// `validators` follow by the proof-of-useful-compute rule: equal bonds, equal shares of 10^9). The other
/// nodes start as full nodes; their operator accounts stay funded.
pub fn keep_genesis_validators(
    g: &mut serde_json::Value,
    keep: &[usize],
    self_bond: u128,
    power_reduction: u128,
) {
    let keep_name = |name: &serde_json::Value| {
        keep.iter()
            .any(|i| name.as_str() == Some(format!("node{i}").as_str()))
    };
    let top = g["validators"].as_array_mut().expect("validators");
    top.retain(|v| keep_name(&v["name"]));
    let staking = g["app_state"]["validators"]
        .as_array_mut()
        .expect("app_state.validators");
    staking.retain(|v| keep_name(&v["moniker"]));
    for v in staking.iter_mut() {
        v["self_bond"] = serde_json::json!(self_bond.to_string());
    }
    g["app_state"]["params"]["staking"]["power_reduction"] =
        serde_json::json!(power_reduction.to_string());
    let mut genesis: lode_genesis::Genesis =
        serde_json::from_value(g.clone()).expect("genesis shape");
    genesis.set_validator_powers().expect("validator powers");
    g["validators"] = serde_json::to_value(&genesis.validators).expect("json");
}

pub async fn status(url: &str) -> Option<pb::StatusResponse> {
    let mut q = QueryServiceClient::connect(url.to_owned()).await.ok()?;
    Some(q.status(pb::StatusRequest {}).await.ok()?.into_inner())
}

pub async fn balance(url: &str, address: &str) -> Option<String> {
    let mut q = QueryServiceClient::connect(url.to_owned()).await.ok()?;
    let r = q
        .account(pb::AccountRequest {
            address: address.to_owned(),
        })
        .await
        .ok()?;
    Some(r.into_inner().balance)
}

/// Waits until every node reports at least `height`.
pub async fn wait_height(net: &Net, height: u64) {
    let deadline = Instant::now() + WAIT;
    for (i, url) in net.grpc.iter().enumerate() {
        loop {
            if status(url).await.is_some_and(|s| s.latest_height >= height) {
                break;
            }
            // The lagging node's own log first: CI output keeps only the head of a long message.
            assert!(
                Instant::now() < deadline,
                "node {i} ({url}) did not reach height {height}\n{}\n{}",
                net.log_tail(i, 60),
                net.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The app hash of every home's database at the highest height all of them have committed.
pub fn app_hashes_at_common_height(homes: &[PathBuf]) -> (u64, Vec<[u8; 32]>) {
    let apps: Vec<LodeApp> = homes
        .iter()
        .map(|h| LodeApp::open(&h.join("data")).expect("open db"))
        .collect();
    let records: Vec<_> = apps
        .iter()
        .map(|a| a.last_commit().expect("initialised"))
        .collect();
    let h = records.iter().map(|r| r.height).min().expect("nodes");
    let hashes = apps
        .iter()
        .zip(&records)
        .map(|(a, r)| {
            a.store()
                .root_at(r.version_of(h).expect("version"))
                .expect("root")
        })
        .collect();
    (h, hashes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_commit_a_transfer_and_agree_on_the_app_hash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut net = Net::start(dir.path(), 4);
    wait_height(&net, 2).await;

    let to = KeyFile::generate("recipient").expect("key").address;
    let node0 = net.grpc[0].clone();
    let home0 = net.homes[0].clone();
    let to2 = to.clone();
    let out = tokio::task::spawn_blocking(move || {
        lode_ok(&[
            "tx",
            "send",
            "--home",
            path_str(&home0),
            "--from",
            "dev0",
            "--to",
            &to2,
            "--amount",
            "12345",
            "--node",
            &node0,
            "--wait",
        ])
    })
    .await
    .expect("tx send");
    assert!(out.contains("committed at height"), "{out}");

    let deadline = Instant::now() + WAIT;
    for url in &net.grpc {
        loop {
            if balance(url, &to).await.as_deref() == Some("12345") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{url} never saw the transfer\n{}",
                net.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // BroadcastAndWait is idempotent: the same tx again reports its commit instead of a nonce error.
    let chain_id = status(&net.grpc[1]).await.expect("status").chain_id;
    let dev1 = KeyFile::load(&net.homes[0].join("keys/dev1.json")).expect("dev1");
    let to_addr: lode_state::Address = to.parse().expect("address");
    let tx = lode_state::tx::sign_send(
        &chain_id,
        &dev1.signing_key().expect("key"),
        0,
        10_000,
        &to_addr,
        1,
    );
    let mut client = TxServiceClient::connect(net.grpc[1].clone())
        .await
        .expect("connect");
    let mut heights = Vec::new();
    for _ in 0..2 {
        let r = client
            .broadcast_and_wait(pb::BroadcastAndWaitRequest {
                tx: tx.clone(),
                timeout_ms: 60_000,
            })
            .await
            .expect("broadcast and wait")
            .into_inner();
        assert_eq!(r.result.as_ref().map(|r| r.code), Some(0), "{r:?}");
        heights.push(r.height);
    }
    assert_eq!(heights[0], heights[1], "one commit, reported twice");

    net.stop_all();
    let (h, hashes) = app_hashes_at_common_height(&net.homes);
    assert!(h >= 2);
    for (i, hash) in hashes.iter().enumerate() {
        assert_eq!(hash, &hashes[0], "node {i} disagrees at height {h}");
    }
}

/// `Net` nodes run with a 300 ms propose timeout, so an idle proposer waits 150 ms (half of it, below the
/// default 1 s `empty_block_interval_ms`) before it proposes an empty block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_chain_paces_its_empty_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut net = Net::start(dir.path(), 4);
    wait_height(&net, 2).await;
    let height = |s: Option<pb::StatusResponse>| s.map_or(0, |s| s.latest_height);
    let start = Instant::now();
    let h0 = height(status(&net.grpc[0]).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let h1 = height(status(&net.grpc[0]).await);
    let elapsed = start.elapsed();
    net.stop_all();
    // At most one block per 150 ms (plus the block in flight at each end); without pacing four local
    // validators decide an empty block every few milliseconds.
    let most = elapsed.as_millis() / 150 + 2;
    assert!(h1 > h0, "the idle chain stopped: {h0} -> {h1}");
    assert!(
        u128::from(h1 - h0) <= most,
        "{} empty blocks in {elapsed:?}, more than {most}",
        h1 - h0
    );
}
