//! A GPU-market job's whole life through the `lode` CLI on a running validator: a provider registers, a
//! consumer posts a job from `.npy` files, the provider accepts, commits, reveals the sampled tiles read back
//! with `lode query market job`, the chain verifies and settles, and the holdback is released when the fraud
//! window closes.

use std::time::{Duration, Instant};

use lode_gpu_verify::{format, Backend, Engine, MatrixI8};

use crate::governance_on_a_devnet::Cli;
use crate::support::path_str;

/// Polls `lode query market job ID` until its status is `want` (at most 60 s).
async fn wait_status(cli: &Cli, id: &str, want: &str) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let j = cli.query(&["market", "job", id]).await;
        if j["job"]["status"] == want {
            return j;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "job never reached {want}: {j}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_posted_matched_verified_and_paid_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Empty blocks come every second: short windows keep the test short.
    let (mut net, cli) = crate::provider_daemon::market_devnet(dir.path(), 1, 10, 12, 30).await;
    let dev0 = cli.address("dev0").await;
    let dev1 = cli.address("dev1").await;

    // The consumer's matrices, and the product the provider computes.
    let a = MatrixI8::from_fn(32, 64, |i, j| ((i * 3 + j * 5) % 17) as i8 - 8).expect("a");
    let b = MatrixI8::from_fn(64, 32, |i, j| ((i * 7 + j) % 13) as i8 - 6).expect("b");
    let c = Engine::new(Backend::Cpu)
        .expect("cpu")
        .gemm(&a, &b)
        .expect("c");
    let (pa, pb, pc) = (
        dir.path().join("A.npy"),
        dir.path().join("B.npy"),
        dir.path().join("C.npy"),
    );
    format::write_npy(&pa, &a).expect("write A");
    format::write_npy(&pb, &b).expect("write B");
    format::write_npy(&pc, &c).expect("write C");
    let files = [
        "--a",
        path_str(&pa),
        "--b",
        path_str(&pb),
        "--c",
        path_str(&pc),
    ];

    cli.tx(
        "dev1",
        &[
            "market",
            "register-provider",
            "--moniker",
            "cpu-box",
            "--device",
            "cpu:1024:1",
            "--ask",
            "5",
            "--bond",
            "1000000",
        ],
    )
    .await;
    let providers = cli
        .query(&["market", "providers", "--status", "active"])
        .await;
    assert_eq!(providers["providers"][0]["address"], dev1, "{providers}");

    cli.tx(
        "dev0",
        &[
            "market",
            "post-job",
            "--a",
            path_str(&pa),
            "--b",
            path_str(&pb),
            "--max-price",
            "7",
        ],
    )
    .await;
    let jobs = cli.query(&["market", "jobs", "--consumer", &dev0]).await;
    let id = jobs["jobs"][0]["id"].as_str().expect("job id").to_string();
    let job = wait_status(&cli, &id, "matched").await;
    assert_eq!(job["job"]["provider"], dev1, "{job}");
    assert_eq!(
        job["job"]["price_per_cu"], "5",
        "the provider's ask sets the price"
    );

    cli.tx("dev1", &["market", "accept-job", "--job", &id])
        .await;
    let mut commit = vec!["compute", "commit", "--job", &id];
    commit.extend(files);
    cli.tx("dev1", &commit).await;
    let job = wait_status(&cli, &id, "revealing").await;
    let tiles: Vec<String> = job["job"]["sampled_tiles"]
        .as_array()
        .expect("tiles")
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(tiles.len(), 16, "{job}");
    let list = tiles.join(",");
    let mut reveal = vec!["compute", "reveal", "--job", &id, "--tiles", &list];
    reveal.extend(files);
    cli.tx("dev1", &reveal).await;
    let job = wait_status(&cli, &id, "settled").await;
    // 1 CU at 5: 4 paid now, 1 held back (20%); the consumer's receipt NFT exists.
    assert_eq!(job["job"]["holdback"], "1", "{job}");
    let receipt = cli
        .query(&["nft", "token", "lode-compute-receipts", &id])
        .await;
    assert_eq!(receipt["token"]["owner"], dev0, "{receipt}");
    let stats = cli.query(&["market", "stats"]).await;
    assert_eq!(
        stats["last_clearing"]["median_price_per_cu"], "5",
        "{stats}"
    );

    let job = wait_status(&cli, &id, "final").await;
    assert_eq!(job["job"]["holdback"], "0", "{job}");
    let prov = cli.query(&["market", "provider", &dev1]).await;
    assert_eq!(prov["provider"]["jobs_settled"], 1, "{prov}");
    net.stop_all();
}
