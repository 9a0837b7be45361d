//! A validator killed at each step of the commit path (a crash point that aborts the process, as SIGKILL
//! would) restarts every time at a height it has everything for (the decided block, the application's
//! commit and the next height's validator sets), catches up, and agrees with the others on the app hash.
//! Needs the `failpoints` feature:
//! `cargo nextest run --workspace --features lode-node/failpoints -E 'test(commit_path)'` (`scripts/test.sh` runs it).

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use lode_consensus::{failpoint::POINTS, BlockStore, Height};
use lode_node::services::block_store::RocksBlockStore;
use lode_state::LodeApp;

use crate::four_validators_commit_a_transfer::{
    app_hashes_at_common_height, status, wait_height, Net,
};
use crate::support::{lode, path_str};

const VICTIM: usize = 3;

fn spawn_armed(net: &Net, point: &str) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(net.homes[VICTIM].join("node.log"))
        .expect("log file");
    lode()
        .env("RUST_LOG", "info")
        .env("LODE_FAILPOINT", point)
        .args(["start", "--home", path_str(&net.homes[VICTIM])])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn lode start")
}

/// What the killed node's database holds: its committed height, and whether the decided block of that
/// height and the validator sets of the next one are there.
fn durable_state(net: &Net) -> (u64, [u8; 32], bool, bool) {
    let app = LodeApp::open(&net.homes[VICTIM].join("data")).expect("open the killed node's db");
    let record = app.last_commit().expect("initialised");
    let store = RocksBlockStore::new(app.clone());
    let decided = store
        .get_decided(Height(record.height))
        .expect("read")
        .is_some();
    let validators = store
        .get_validators(Height(record.height + 1))
        .expect("read")
        .is_some();
    (record.height, record.app_hash, decided, validators)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_at_each_step_of_the_commit_path_restarts_at_a_consistent_height() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut net = Net::start(dir.path(), 4);
    wait_height(&net, 2).await;
    let mut crashed_at = Vec::new();
    for point in POINTS {
        // Restart the victim with the crash point armed: it aborts in the next block it commits.
        if let Some(mut c) = net.children[VICTIM].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let mut armed = spawn_armed(&net, point);
        let deadline = Instant::now() + Duration::from_secs(90);
        let exit = loop {
            if let Some(s) = armed.try_wait().expect("wait") {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "node {VICTIM} never reached crash point {point}\n{}",
                net.log_tail(VICTIM, 40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(
            exit.signal(),
            Some(6),
            "node {VICTIM} did not abort at {point}: {exit:?}\n{}",
            net.log_tail(VICTIM, 40)
        );
        let (height, app_hash, decided, validators) = durable_state(&net);
        assert!(
            decided && validators,
            "after a crash at {point} the node holds height {height} without its decided block \
             ({decided}) or the next validator sets ({validators})"
        );
        crashed_at.push((point, height, app_hash));

        // Restarted without the crash point, it comes back and follows the chain again.
        net.children[VICTIM] = Some(net.spawn(VICTIM));
        let mut target = 0;
        for url in &net.grpc[..VICTIM] {
            target = target.max(status(url).await.map_or(0, |s| s.latest_height));
        }
        wait_height(&net, target + 2).await;
    }
    net.stop_all();

    // Every node agrees on the app hash now, and each height the victim held after a crash has the app hash
    // the others committed at that height.
    let (h, hashes) = app_hashes_at_common_height(&net.homes);
    for (i, hash) in hashes.iter().enumerate() {
        assert_eq!(hash, &hashes[0], "node {i} disagrees at height {h}");
    }
    let honest = LodeApp::open(&net.homes[0].join("data")).expect("open node 0");
    let record = honest.last_commit().expect("initialised");
    for (point, height, app_hash) in crashed_at {
        let version = record.version_of(height).expect("version");
        assert_eq!(
            honest.store().root_at(version).expect("root"),
            app_hash,
            "after a crash at {point} node {VICTIM} held a wrong app hash for height {height}"
        );
    }
}
