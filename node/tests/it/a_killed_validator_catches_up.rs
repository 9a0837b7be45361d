//! With one of four validators SIGKILLed the other three keep finalizing; restarted, it catches up and
//! agrees on the app hash. With two of four down the chain halts (no fork) and resumes when one returns.
//! Both tests run under a workload of transfers (see [`crate::workload`]) and end with its checks: every
//! acknowledged tx at its height on every node, the same block id and app hash at every height, and every
//! balance and nonce to the unit on every node.

use std::time::{Duration, Instant};

use crate::four_validators_commit_a_transfer::{
    app_hashes_at_common_height, status, wait_height, Net,
};
use crate::workload::{assert_verdict, verify, Report, Workload};

/// Every tx the workload signed got an answer, and some were acknowledged.
fn assert_all_acked(report: &Report) {
    assert!(
        report.acked() > 0 && report.sent.iter().all(|s| s.acked.is_some()),
        "{} of {} txs acknowledged",
        report.acked(),
        report.sent.len()
    );
}

async fn height(url: &str) -> u64 {
    status(url).await.map_or(0, |s| s.latest_height)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_validator_is_not_needed_and_catches_up_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut net = Net::start(dir.path(), 4);
    wait_height(&net, 2).await;
    let workload = Workload::start(&net, 4, 10_000, 16).await;
    workload.wait_acked(4, Duration::from_secs(60)).await;

    // SIGKILL node 3.
    if let Some(mut c) = net.children[3].take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    let h0 = height(&net.grpc[0]).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while height(&net.grpc[0]).await < h0 + 5 {
        assert!(
            Instant::now() < deadline,
            "three validators stopped finalizing\n{}",
            net.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ... and keep committing the workload's txs.
    workload
        .wait_acked(workload.acked() + 4, Duration::from_secs(60))
        .await;

    // Two of four down: no progress.
    if let Some(mut c) = net.children[2].take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let halted = height(&net.grpc[0]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = height(&net.grpc[0]).await;
    assert!(
        still <= halted + 1,
        "progress with half the power down: {halted} -> {still}"
    );

    // Both come back: the chain resumes and every node catches up past the halt.
    net.children[2] = Some(net.spawn(2));
    net.children[3] = Some(net.spawn(3));
    wait_height(&net, still + 5).await;
    workload
        .wait_acked(workload.acked() + 4, Duration::from_secs(60))
        .await;

    let report = workload.stop().await;
    assert_all_acked(&report);
    let verdict = verify(&net, &report).await;
    assert_verdict(&verdict, &net);
    net.stop_all();
    let (h, hashes) = app_hashes_at_common_height(&net.homes);
    assert!(h >= still + 5);
    for (i, hash) in hashes.iter().enumerate() {
        assert_eq!(hash, &hashes[0], "node {i} disagrees at height {h}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_started_late_syncs_from_genesis() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut net = Net::start_first(dir.path(), 4, 3);
    // Three of four validators hold 3/4 of the power: they commit the workload's txs without node 3.
    let workload = Workload::start(&net, 4, 10_000, 17).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while height(&net.grpc[0]).await < 15 {
        assert!(
            Instant::now() < deadline,
            "three validators did not reach height 15\n{}",
            net.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    workload.wait_acked(8, Duration::from_secs(60)).await;
    net.children[3] = Some(net.spawn(3));
    let target = height(&net.grpc[0]).await;
    wait_height(&net, target).await;
    let report = workload.stop().await;
    assert_all_acked(&report);
    // Node 3 holds every block from genesis, the same as the others, and the same balances.
    let verdict = verify(&net, &report).await;
    assert_verdict(&verdict, &net);
    net.stop_all();
    let (h, hashes) = app_hashes_at_common_height(&net.homes);
    assert!(h >= target);
    for (i, hash) in hashes.iter().enumerate() {
        assert_eq!(hash, &hashes[0], "node {i} disagrees at height {h}");
    }
}
