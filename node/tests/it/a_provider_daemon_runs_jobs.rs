//! `lode provider run` on a one-validator devnet: the daemon registers, takes a job posted through the CLI
//! with inputs uploaded to the node's blob service, accepts, computes, stores C, commits and reveals, and the
//! chain settles the job; the consumer's C from the blob service equals A·B. Stopped with SIGTERM it exits
//! cleanly; a job matched while it was down is found at its next start and settled. SIGKILLed right after
//! accepting a job (feature `provider-faults`), it restarts and still commits and reveals in time. A job whose
//! inputs are not in the blob service is declined (unslashed) before the accept deadline, with the reason.

use std::time::{Duration, Instant};

use lode_gpu_verify::{Backend, Engine, MatrixI8};
use lode_node::blobs::client::BlobClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::four_validators_commit_a_transfer::Net;
use crate::governance_on_a_devnet::Cli;
use crate::provider_daemon::{market_devnet, upload_inputs, ProviderDaemon};
use crate::support::path_str;

/// Bound on each job step the tests wait for.
const STEP: Duration = Duration::from_secs(120);

/// A one-validator devnet with short verification windows, and the CLI on it.
async fn devnet(dir: &std::path::Path) -> (Net, Cli) {
    market_devnet(dir, 1, 10, 12, 30).await
}

/// Polls the job until its status is `want` (bounded by [`STEP`]).
async fn wait_status(cli: &Cli, id: &str, want: &str, p: &ProviderDaemon) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let j = cli.query(&["market", "job", id]).await;
        if j["job"]["status"] == want {
            return j;
        }
        assert!(
            t.elapsed() < STEP,
            "job never reached {want}: {j}\n{}",
            p.report()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn matrices(seed: usize) -> (MatrixI8, MatrixI8) {
    let a = MatrixI8::from_fn(64, 128, |i, j| ((i * 3 + j * 5 + seed) % 17) as i8 - 8).expect("a");
    let b = MatrixI8::from_fn(128, 64, |i, j| ((i * 7 + j + seed) % 13) as i8 - 6).expect("b");
    (a, b)
}

/// Uploads the job's inputs, posts it as dev0 with `.npy` files and returns its id.
async fn post_job(net: &Net, cli: &Cli, dir: &std::path::Path, seed: usize) -> String {
    post_job_with(net, cli, dir, seed, true).await
}

/// [`post_job`], uploading the inputs only when `upload`.
async fn post_job_with(
    net: &Net,
    cli: &Cli,
    dir: &std::path::Path,
    seed: usize,
    upload: bool,
) -> String {
    let (a, b) = matrices(seed);
    if upload {
        let key = net.homes[0].join("keys").join("dev0.json");
        let (ra, rb) = upload_inputs(&net.grpc[0], &key, &a, &b).await;
        assert_eq!(
            ra,
            lode_gpu_verify::commit::commit_a(&a)
                .expect("commit a")
                .root()
        );
        assert_eq!(
            rb,
            lode_gpu_verify::commit::commit_b(&b)
                .expect("commit b")
                .root()
        );
    }
    let (pa, pb) = (
        dir.join(format!("A{seed}.npy")),
        dir.join(format!("B{seed}.npy")),
    );
    lode_gpu_verify::format::write_npy(&pa, &a).expect("write A");
    lode_gpu_verify::format::write_npy(&pb, &b).expect("write B");
    let dev0 = cli.address("dev0").await;
    let before: Vec<String> = job_ids(cli, &dev0).await;
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
    job_ids(cli, &dev0)
        .await
        .into_iter()
        .find(|id| !before.contains(id))
        .expect("the posted job")
}

async fn job_ids(cli: &Cli, consumer: &str) -> Vec<String> {
    let jobs = cli.query(&["market", "jobs", "--consumer", consumer]).await;
    jobs["jobs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|j| j["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The product the provider stored, read back from the blob service and checked against A·B.
async fn check_output(net: &Net, job: &serde_json::Value, seed: usize) {
    let root: [u8; 32] = hex::decode(job["job"]["output_root"].as_str().expect("output root"))
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let channel = tonic::transport::Channel::from_shared(net.grpc[0].clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let c = BlobClient::new(channel)
        .get_c(&root)
        .await
        .expect("C from the blob service");
    let (a, b) = matrices(seed);
    let want = Engine::new(Backend::Cpu)
        .expect("cpu")
        .gemm(&a, &b)
        .expect("A·B");
    assert_eq!(c, want, "the stored C is A·B");
}

/// `GET /metrics` from the daemon's own server.
async fn scrape(addr: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_daemon_takes_posted_jobs_to_settlement_and_resumes_after_a_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut net, cli) = devnet(dir.path()).await;
    let dev0 = cli.address("dev0").await;
    let dev1 = cli.address("dev1").await;
    let state = dir.path().join("provider");
    let mut p = ProviderDaemon::start(
        &net.homes[0],
        "dev1",
        &net.grpc[0],
        &state,
        &[
            "--ask",
            "5",
            "--bond",
            "1000000",
            "--device",
            "cpu:1024:1",
            "--moniker",
            "cpu-box",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    p.wait_line(&["provider", &dev1, "registered at height"], STEP)
        .await;
    p.wait_line(&["ready at height"], STEP).await;
    let metrics_line = p.wait_line(&["provider metrics on http://"], STEP).await;
    let metrics_addr = metrics_line
        .rsplit("http://")
        .next()
        .and_then(|s| s.strip_suffix("/metrics"))
        .expect("metrics address")
        .to_owned();

    let id = post_job(&net, &cli, dir.path(), 1).await;
    let job = wait_status(&cli, &id, "settled", &p).await;
    assert_eq!(job["job"]["provider"], dev1, "{job}");
    assert_eq!(job["job"]["price_per_cu"], "5", "{job}");
    for step in [
        "accepted at height",
        "stored C",
        "committed at height",
        "revealed tiles",
    ] {
        p.wait_line(&["job", &id, step], STEP).await;
    }
    p.wait_line(&["job", &id, "now settled"], STEP).await;
    let receipt = cli
        .query(&["nft", "token", "lode-compute-receipts", &id])
        .await;
    assert_eq!(receipt["token"]["owner"], dev0, "{receipt}");
    check_output(&net, &job, 1).await;
    let m = scrape(&metrics_addr).await;
    for line in [
        "lode_provider_jobs_total{step=\"accepted\"} 1",
        "lode_provider_jobs_total{step=\"committed\"} 1",
        "lode_provider_jobs_total{step=\"revealed\"} 1",
        "lode_provider_jobs_total{step=\"settled\"} 1",
        "lode_provider_jobs_total{step=\"failed\"} 0",
    ] {
        assert!(m.contains(line), "no {line:?} in\n{m}");
    }

    // Stopped with SIGTERM, the daemon exits cleanly; a job matched while it is down is found at the next
    // start (the chain's list of its jobs) and settled.
    assert!(p.terminate(), "clean exit on SIGTERM\n{}", p.report());
    assert!(
        p.output().contains("provider stopped: accepted=1"),
        "{}",
        p.report()
    );
    let id2 = post_job(&net, &cli, dir.path(), 2).await;
    wait_status(&cli, &id2, "matched", &p).await;
    p.restart_without(&["--metrics-listen", "127.0.0.1:0"]);
    p.wait_line(&["job", &id2, "found on chain at start"], STEP)
        .await;
    let job2 = wait_status(&cli, &id2, "settled", &p).await;
    check_output(&net, &job2, 2).await;
    let prov = cli.query(&["market", "provider", &dev1]).await;
    assert_eq!(prov["provider"]["jobs_settled"], 2, "{prov}");
    assert_eq!(prov["provider"]["jobs_failed"], 0, "{prov}");

    // The first job's fraud window closes: the daemon drops it from its table.
    wait_status(&cli, &id, "final", &p).await;
    p.wait_line(&["job", &id, "now final"], STEP).await;
    assert!(p.terminate(), "clean exit\n{}", p.report());
    let table: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("jobs.json")).expect("table"))
            .expect("json");
    assert!(table["jobs"].get(&id).is_none(), "{table}");
    net.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_declines_unslashed_a_job_whose_inputs_are_not_in_the_blob_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut net, cli) = devnet(dir.path()).await;
    let dev1 = cli.address("dev1").await;
    let mut p = ProviderDaemon::start(
        &net.homes[0],
        "dev1",
        &net.grpc[0],
        &dir.path().join("provider"),
        &["--ask", "5", "--bond", "1000000", "--device", "cpu:1024:1"],
    );
    p.wait_line(&["ready at height"], STEP).await;
    let id = post_job_with(&net, &cli, dir.path(), 4, false).await;
    let line = p
        .wait_line(&["job", &id, "declined: inputs unavailable"], STEP)
        .await;
    assert!(line.contains("fetching A"), "{line}");
    let job = cli.query(&["market", "job", &id]).await;
    assert_eq!(job["job"]["status"], "open", "re-queued: {job}");
    assert_eq!(job["job"]["excluded_providers"][0], dev1, "{job}");
    let prov = cli.query(&["market", "provider", &dev1]).await;
    assert_eq!(prov["provider"]["bond"], "1000000", "not slashed: {prov}");
    assert_eq!(prov["provider"]["jobs_failed"], 0, "{prov}");
    assert_eq!(prov["provider"]["jobs_in_flight"], 0, "{prov}");
    assert!(
        !p.output().contains(&format!("job {id} failed")),
        "{}",
        p.report()
    );
    assert!(p.terminate(), "clean exit\n{}", p.report());
    net.stop_all();
}

/// Tests that need the `provider-faults` feature; `scripts/test.sh` runs every test with `provider_faults` in
/// its path in its second pass, with the feature on.
#[cfg(feature = "provider-faults")]
mod provider_faults {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_provider_killed_after_accepting_restarts_and_still_commits_and_reveals_in_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut net, cli) = devnet(dir.path()).await;
        let dev1 = cli.address("dev1").await;
        let state = dir.path().join("provider");
        let mut p = ProviderDaemon::start(
            &net.homes[0],
            "dev1",
            &net.grpc[0],
            &state,
            &[
                "--ask",
                "5",
                "--bond",
                "1000000",
                "--device",
                "cpu:1024:1",
                "--stall-after-accept",
            ],
        );
        p.wait_line(&["ready at height"], STEP).await;
        let id = post_job(&net, &cli, dir.path(), 3).await;
        p.wait_line(&["job", &id, "stalled after accepting"], STEP)
            .await;
        let job = wait_status(&cli, &id, "accepted", &p).await;
        let deadline = job["job"]["deadline_height"].as_u64().expect("deadline");
        p.kill();
        // Whatever moment the kill hit, the table on disk is whole.
        lode_node::provider::table::JobTable::load(&state, &dev1).expect("the job table loads");
        assert!(
            !p.output().contains(&format!("job {id} committed")),
            "{}",
            p.report()
        );

        p.restart_without(&["--stall-after-accept"]);
        p.wait_line(&["job", &id, "committed at height"], STEP)
            .await;
        p.wait_line(&["job", &id, "revealed tiles"], STEP).await;
        let job = wait_status(&cli, &id, "settled", &p).await;
        assert!(
            job["job"]["commit_height"].as_u64().expect("commit height") <= deadline,
            "{job}"
        );
        check_output(&net, &job, 3).await;
        let prov = cli.query(&["market", "provider", &dev1]).await;
        assert_eq!(prov["provider"]["jobs_settled"], 1, "{prov}");
        assert_eq!(prov["provider"]["jobs_failed"], 0, "{prov}");
        assert!(p.terminate(), "clean exit\n{}", p.report());
        net.stop_all();
    }
}
