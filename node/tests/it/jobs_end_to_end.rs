//! `lode job` end to end: real validators (`lode start`), real provider daemons (`lode provider run`, CPU
//! backend; the cheating ones built with the test-only `provider-faults` feature) and the consumer's `lode job
//! submit --wait`, all on loopback. An honest job settles and the consumer gets A·B and its receipt NFT; a
//! provider corrupting every tile fails the sample, is slashed, and the job settles with a second provider; a
//! provider corrupting one element escapes the sample and the consumer's Freivalds check catches it with a
//! fraud proof; a provider withholding C is caught by an availability challenge. On the topology (four
//! validators, three providers on nodes 1–3, the consumer on node 0, 512³) a job outlives a validator SIGKILLed
//! mid-job and every node agrees on every height's app hash and keeps every invariant.
//!
//! Size: the CI size is 512³ (the four-validator test runs it); the others run 256³ (k = 256, 4096 tiles of 4×4) because a test runs on two
//! shared cores next to other builds, and every scenario runs validators, daemons and the consumer at once.
//! The ignored bench at the end runs 1024³ (or `LODE_JOB_BENCH_N`).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use lode_gpu_verify::commit::{commit_a, commit_b};
use lode_gpu_verify::{format, Backend, Engine, MatrixI32, MatrixI8};
use lode_node::blobs::client::BlobClient;
use lode_state::modules::bank;
use lode_state::LodeApp;
use serde_json::Value;

use crate::four_validators_commit_a_transfer::{
    app_hashes_at_common_height, balance, status, wait_height, Net,
};
use crate::governance_on_a_devnet::Cli;
use crate::provider_daemon::{market_devnet, ProviderDaemon};
use crate::support::{path_str, run_lode_within};

/// The side of the CI jobs (m = k = n).
const N: usize = 256;
/// Bound on one `lode job` command, `--wait` included.
const JOB_BOUND: Duration = Duration::from_secs(300);
/// Bound on a job reaching a state the test waits for.
const STATE_BOUND: Duration = Duration::from_secs(180);
/// The bond each provider posts.
const BOND: u128 = 1_000_000;

/// A devnet of `validators` with verification windows sized for a test (blocks come about every second):
/// the fraud window leaves the consumer time to download and check C.
async fn devnet(dir: &Path, validators: usize) -> (Net, Cli) {
    market_devnet(dir, validators, 15, 60, 100).await
}

/// Deterministic int8 inputs of `n`³ (xorshift), written as `.npy` into `dir`.
fn inputs(dir: &Path, n: usize, seed: u64) -> (MatrixI8, MatrixI8, PathBuf, PathBuf) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 56) as u8 as i8
    };
    let a = MatrixI8::from_fn(n, n, |_, _| next()).expect("A");
    let b = MatrixI8::from_fn(n, n, |_, _| next()).expect("B");
    let (pa, pb) = (
        dir.join(format!("A{seed}.npy")),
        dir.join(format!("B{seed}.npy")),
    );
    format::write_npy(&pa, &a).expect("write A");
    format::write_npy(&pb, &b).expect("write B");
    (a, b, pa, pb)
}

/// A provider daemon for `key` on node `node` of `net`, with a state directory under `dir` and `extra` flags.
fn provider(
    net: &Net,
    dir: &Path,
    key: &str,
    node: usize,
    ask: u128,
    extra: &[&str],
) -> ProviderDaemon {
    let ask = ask.to_string();
    let bond = BOND.to_string();
    let mut args = vec![
        "--ask",
        &ask,
        "--bond",
        &bond,
        "--device",
        "cpu:1024:1",
        "--moniker",
        key,
    ];
    args.extend(extra);
    // Dev keys live in node 0's home; a provider on another node signs with the file.
    let key_file = net.homes[0].join("keys").join(format!("{key}.json"));
    ProviderDaemon::start(
        &net.homes[node],
        path_str(&key_file),
        &net.grpc[node],
        &dir.join(format!("provider-{key}")),
        &args,
    )
}

/// Waits until every address in `addrs` is an active provider.
async fn wait_providers(cli: &Cli, addrs: &[&str], daemons: &[&ProviderDaemon]) {
    let t = Instant::now();
    loop {
        let r = cli
            .query(&["market", "providers", "--status", "active"])
            .await;
        let active: Vec<&str> = r["providers"]
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p["address"].as_str()).collect())
            .unwrap_or_default();
        if addrs.iter().all(|a| active.contains(a)) {
            return;
        }
        assert!(
            t.elapsed() < STATE_BOUND,
            "providers never registered: {r}\n{}",
            daemons
                .iter()
                .map(|d| d.report())
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `lode job ARGS… --node URL` (bounded by [`JOB_BOUND`]), on a blocking thread.
async fn job(cli: &Cli, args: &[&str]) -> Output {
    let mut full: Vec<String> = vec!["job".into()];
    full.extend(args.iter().map(|s| s.to_string()));
    full.extend(["--node", &cli.node].map(String::from));
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        run_lode_within(&refs, JOB_BOUND)
    })
    .await
    .expect("lode job")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `lode job submit --from dev0 … --wait --out OUT` with `extra` flags.
async fn submit(cli: &Cli, pa: &Path, pb: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "submit",
        "--from",
        "dev0",
        "--a",
        path_str(pa),
        "--b",
        path_str(pb),
        "--max-price",
        "7",
        "--wait",
        "--out",
        path_str(out),
        "--fetch-timeout",
        "30",
        "--home",
        path_str(&cli.home),
    ];
    args.extend(extra);
    job(cli, &args).await
}

/// The job id `submit` printed (`job <hex> posted …`).
fn job_id(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("job ")
                .and_then(|r| r.split_whitespace().next())
                .filter(|_| l.contains(" posted at height "))
        })
        .unwrap_or_else(|| panic!("no job id in the output:\n{}", text(out)))
        .to_owned()
}

/// Polls the job until its status is `want` (bounded by [`STATE_BOUND`]).
#[cfg_attr(not(feature = "provider-faults"), allow(dead_code))]
async fn wait_status(cli: &Cli, id: &str, want: &str, daemons: &[&ProviderDaemon]) -> Value {
    let t = Instant::now();
    loop {
        let j = cli.query(&["market", "job", id]).await;
        if j["job"]["status"] == want {
            return j;
        }
        assert!(
            t.elapsed() < STATE_BOUND,
            "job never reached {want}: {j}\n{}",
            daemons
                .iter()
                .map(|d| d.report())
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg_attr(not(feature = "provider-faults"), allow(dead_code))]
async fn bond(cli: &Cli, addr: &str) -> u128 {
    let p = cli.query(&["market", "provider", addr]).await;
    p["provider"]["bond"]
        .as_str()
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("no bond in {p}"))
}

fn product(a: &MatrixI8, b: &MatrixI8) -> MatrixI32 {
    Engine::new(Backend::Cpu)
        .expect("cpu")
        .gemm(a, b)
        .expect("A·B")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_job_settles_and_the_consumer_gets_a_times_b_and_its_receipt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut net, cli) = devnet(dir.path(), 1).await;
    let dev0 = cli.address("dev0").await;
    let dev1 = cli.address("dev1").await;
    let p1 = provider(&net, dir.path(), "dev1", 0, 5, &[]);
    wait_providers(&cli, &[&dev1], &[&p1]).await;

    let (a, b, pa, pb) = inputs(dir.path(), N, 1);
    let validate = job(
        &cli,
        &["validate", "--a", path_str(&pa), "--b", path_str(&pb)],
    )
    .await;
    assert!(validate.status.success(), "{}", text(&validate));
    assert!(
        String::from_utf8_lossy(&validate.stdout).contains("the chain would accept"),
        "{}",
        text(&validate)
    );

    let c_path = dir.path().join("C.npy");
    let out = submit(&cli, &pa, &pb, &c_path, &[]).await;
    assert!(out.status.success(), "{}\n{}", text(&out), p1.report());
    let stdout = String::from_utf8_lossy(&out.stdout);
    for step in [
        "(1-f)^16",
        "matched to",
        "accepted by",
        "committed: output root",
        "challenged: tiles",
        "revealed tiles",
        "settled:",
        "C checked in full",
    ] {
        assert!(stdout.contains(step), "no {step:?} in\n{}", text(&out));
    }
    let id = job_id(&out);

    // The consumer's C is A·B, and the receipt NFT is theirs.
    let c: MatrixI32 = format::read_npy(&c_path).expect("C.npy");
    assert!(c == product(&a, &b), "the consumer's C is not A·B");
    let receipt = cli
        .query(&["nft", "token", "lode-compute-receipts", &id])
        .await;
    assert_eq!(receipt["token"]["owner"], dev0, "{receipt}");

    // get and list show it; result checks it again (A and B from the blob service this time).
    let got = job(&cli, &["get", &id, "--json"]).await;
    assert!(got.status.success(), "{}", text(&got));
    let got: Value = serde_json::from_slice(&got.stdout).expect("get --json");
    assert_eq!(got["status"], "settled", "{got}");
    assert_eq!(got["provider"], dev1, "{got}");
    let list = job(&cli, &["list", "--consumer", &dev0]).await;
    assert!(
        String::from_utf8_lossy(&list.stdout).contains(&id),
        "{}",
        text(&list)
    );
    let again = dir.path().join("C2.npy");
    let result = job(
        &cli,
        &[
            "result",
            &id,
            "--out",
            path_str(&again),
            "--home",
            path_str(&cli.home),
        ],
    )
    .await;
    assert!(result.status.success(), "{}", text(&result));
    let c2: MatrixI32 = format::read_npy(&again).expect("C2.npy");
    assert!(c2 == c);
    net.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_jobs_are_refused_before_paying_and_unknown_jobs_fail_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut net, cli) = devnet(dir.path(), 1).await;
    let dev0 = cli.address("dev0").await;
    let (_, _, pa, _) = inputs(dir.path(), 16, 1);
    let (_, _, _, pb) = inputs(dir.path(), 12, 2);
    // B has 12 rows, A 16 columns.
    let bad = job(
        &cli,
        &["validate", "--a", path_str(&pa), "--b", path_str(&pb)],
    )
    .await;
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("B has 12 rows"),
        "{}",
        text(&bad)
    );
    let (_, _, pa, pb) = inputs(dir.path(), 16, 3);
    let bad = job(
        &cli,
        &[
            "validate",
            "--a",
            path_str(&pa),
            "--b",
            path_str(&pb),
            "--tile",
            "3",
        ],
    )
    .await;
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    // submit refuses the same job before uploading or paying: the consumer's balance is unchanged.
    let before = balance(&cli.node, &dev0).await;
    let out = dir.path().join("C.npy");
    let refused = submit(&cli, &pa, &pb, &out, &["--tile", "3"]).await;
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("the chain would refuse this job"),
        "{}",
        text(&refused)
    );
    assert!(before.is_some());
    assert_eq!(before, balance(&cli.node, &dev0).await);
    let none = job(&cli, &["get", &"ab".repeat(32)]).await;
    assert_eq!(none.status.code(), Some(1), "{}", text(&none));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no job"));
    net.stop_all();
}

/// The cheating providers (feature `provider-faults`; `scripts/test.sh` runs every test with `provider_faults`
/// in its path in its second pass, with the feature).
#[cfg(feature = "provider-faults")]
mod provider_faults {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_provider_corrupting_every_tile_is_slashed_and_the_job_settles_with_another() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut net, cli) = devnet(dir.path(), 1).await;
        let dev1 = cli.address("dev1").await;
        let dev2 = cli.address("dev2").await;
        // The cheater asks less, so the job is matched to it first.
        let cheat = provider(
            &net,
            dir.path(),
            "dev1",
            0,
            3,
            &["--cheat", "corrupt-tiles=1"],
        );
        let honest = provider(&net, dir.path(), "dev2", 0, 5, &[]);
        wait_providers(&cli, &[&dev1, &dev2], &[&cheat, &honest]).await;

        let (a, b, pa, pb) = inputs(dir.path(), N, 2);
        let c_path = dir.path().join("C.npy");
        let out = submit(&cli, &pa, &pb, &c_path, &[]).await;
        let report = format!("{}\n{}\n{}", text(&out), cheat.report(), honest.report());
        assert!(out.status.success(), "{report}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        for step in [
            format!("matched to {dev1}"),
            "revealed tiles".into(),
            "wrong result".into(),
            format!("failed: {dev1}"),
            format!("provider {dev1} slashed"),
            "re-queued for another provider".into(),
            format!("matched to {dev2}"),
            "settled:".into(),
            "C checked in full".into(),
        ] {
            assert!(stdout.contains(&step), "no {step:?} in\n{report}");
        }
        let c: MatrixI32 = format::read_npy(&c_path).expect("C.npy");
        assert!(c == product(&a, &b), "the consumer's C is not A·B");
        // 10% of the cheater's bond is gone (compute.slash_bps), the honest one's is whole.
        assert_eq!(bond(&cli, &dev1).await, BOND - BOND / 10);
        assert_eq!(bond(&cli, &dev2).await, BOND);
        let id = job_id(&out);
        let j = cli.query(&["market", "job", &id]).await;
        assert_eq!(j["job"]["provider"], dev2, "{j}");
        net.stop_all();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_provider_corrupting_one_element_escapes_the_sample_but_not_the_consumers_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut net, cli) = devnet(dir.path(), 1).await;
        let dev1 = cli.address("dev1").await;
        let cheat = provider(&net, dir.path(), "dev1", 0, 5, &["--cheat", "one-element"]);
        wait_providers(&cli, &[&dev1], &[&cheat]).await;

        // One wrong tile of 4096 escapes 16 samples with probability 99.6%; the job then settles. In the other
        // 0.4% the sample itself catches it (the provider is slashed, the job refunded: exit 4): that is not the
        // path under test, so post another job, at most three in all.
        let c_path = dir.path().join("C.npy");
        let mut attempt = 0;
        let (out, before) = loop {
            attempt += 1;
            let before = bond(&cli, &dev1).await;
            let (_, _, pa, pb) = inputs(dir.path(), N, 3 + attempt);
            let out = submit(&cli, &pa, &pb, &c_path, &["--refund"]).await;
            if out.status.code() == Some(4) && attempt < 3 {
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(
                    stdout.contains("refund"),
                    "exit 4 without a refund:\n{}",
                    text(&out)
                );
                continue;
            }
            break (out, before);
        };
        let report = format!("{}\n{}", text(&out), cheat.report());
        assert_eq!(out.status.code(), Some(2), "{report}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        for step in [
            "settled:",
            "C is WRONG",
            "fraud proof for C[",
            "landed at height",
        ] {
            assert!(stdout.contains(step), "no {step:?} in\n{report}");
        }
        assert!(!c_path.exists(), "a wrong C was written to --out");
        let id = job_id(&out);
        let j = cli.query(&["market", "job", &id]).await;
        assert_eq!(j["job"]["status"], "fraud_proven", "{j}");
        // Half the bond is slashed (compute.fraud_slash_bps), a fifth of that to the consumer who proved it,
        // and the held-back payment goes back to the consumer.
        assert_eq!(bond(&cli, &dev1).await, before - before / 2);
        let entry = j["job"]["history"]
            .as_array()
            .and_then(|h| h.iter().find(|e| e["step"] == "fraud_proven"))
            .unwrap_or_else(|| panic!("no fraud_proven step: {j}"));
        let detail = entry["detail"].as_str().expect("detail");
        assert!(
            detail.contains(&format!("{} slashed", before / 2)),
            "{detail}"
        );
        assert!(
            !detail.contains("holdback 0 to the consumer"),
            "the consumer got its holdback back: {detail}"
        );
        let slashed_to_consumer = stdout.lines().any(|l| {
            l.contains("fraud proof for C[")
                && l.contains(&format!("provider {dev1} slashed {}", before / 2))
        });
        assert!(slashed_to_consumer, "{report}");
        net.stop_all();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_provider_withholding_c_is_caught_by_an_availability_challenge() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut net, cli) = devnet(dir.path(), 1).await;
        let dev1 = cli.address("dev1").await;
        let cheat = provider(&net, dir.path(), "dev1", 0, 5, &["--cheat", "withhold"]);
        wait_providers(&cli, &[&dev1], &[&cheat]).await;

        let (_, _, pa, pb) = inputs(dir.path(), N, 4);
        let c_path = dir.path().join("C.npy");
        let out = submit(&cli, &pa, &pb, &c_path, &[]).await;
        let report = format!("{}\n{}", text(&out), cheat.report());
        assert_eq!(out.status.code(), Some(3), "{report}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        for step in [
            "settled:",
            "C is not available",
            "availability challenge for tiles",
        ] {
            assert!(stdout.contains(step), "no {step:?} in\n{report}");
        }
        let id = job_id(&out);
        // The provider ignores the challenge: at the answer deadline it is slashed and the job is withheld.
        let j = wait_status(&cli, &id, "withheld", &[&cheat]).await;
        assert_eq!(bond(&cli, &dev1).await, BOND - BOND / 10, "{j}");
        // A second look finds the job over, without a result.
        let again = job(&cli, &["result", &id, "--home", path_str(&cli.home)]).await;
        assert_eq!(again.status.code(), Some(4), "{}", text(&again));
        net.stop_all();
    }
}

/// The seconds stamp of the first `--wait` line containing `what` (`[  12.34s] height H: …`).
fn stamp(stdout: &str, what: &str) -> Option<f64> {
    stdout
        .lines()
        .find(|l| l.contains(what))
        .and_then(|l| l.strip_prefix('[')?.split_once("s]")?.0.trim().parse().ok())
}

/// A number that follows `after` on the first line containing it, e.g. `in 123 ms`.
fn number_after(stdout: &str, after: &str) -> Option<f64> {
    stdout.lines().find_map(|l| {
        let rest = &l[l.find(after)? + after.len()..];
        let num: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        num.parse().ok()
    })
}

/// The 1024³ job end to end on a one-validator devnet (300 ms propose timeout) with one CPU provider: the
/// consumer's timeline split into upload, match, fetch, compute and commit, seed, reveal + verification +
/// settlement, download and the consumer's check; then Freivalds against the product itself. Run with
/// `cargo nextest run --workspace --run-ignored only -E 'test(a_job_end_to_end_breakdown)' --no-capture`
/// (`LODE_JOB_BENCH_N=2048` for another size).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures, takes a minute"]
async fn a_job_end_to_end_breakdown() {
    let n: usize = std::env::var("LODE_JOB_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut net, cli) = devnet(dir.path(), 1).await;
    let dev1 = cli.address("dev1").await;
    let p1 = provider(&net, dir.path(), "dev1", 0, 5, &[]);
    wait_providers(&cli, &[&dev1], &[&p1]).await;
    let (a, b, pa, pb) = inputs(dir.path(), n, 7);
    let c_path = dir.path().join("C.npy");
    let out = submit(&cli, &pa, &pb, &c_path, &[]).await;
    assert!(out.status.success(), "{}\n{}", text(&out), p1.report());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let provider_out = p1.output();
    println!("--- lode job submit --wait ({n}³) ---\n{stdout}");
    println!("--- provider ---\n{provider_out}");

    let t = |what: &str| stamp(&stdout, what).unwrap_or(f64::NAN);
    let posted = number_after(&stdout, ") at").unwrap_or(f64::NAN);
    let upload_ms = number_after(&stdout, "bytes) in").unwrap_or(f64::NAN);
    let compute_s = number_after(&provider_out, "computed in").unwrap_or(f64::NAN);
    let (matched, accepted, committed, challenged, settled) = (
        t("matched to"),
        t("accepted by"),
        t("committed: output root"),
        t("challenged: tiles"),
        t("settled:"),
    );
    let download_ms = number_after(&stdout, "checked) in").unwrap_or(f64::NAN);
    let check_ms = number_after(&stdout, "trials,").unwrap_or(f64::NAN);
    let total = number_after(&stdout, "total").unwrap_or(f64::NAN);
    println!("--- {n}³ end to end, seconds ---");
    println!("upload A and B            {:>8.3}", upload_ms / 1e3);
    println!(
        "post (tx committed)       {:>8.3}",
        posted - upload_ms / 1e3
    );
    println!("match                     {:>8.3}", matched - posted);
    println!("fetch + check + accept    {:>8.3}", accepted - matched);
    println!("compute (provider)        {:>8.3}", compute_s);
    println!(
        "hashing, store C, commit  {:>8.3}",
        committed - accepted - compute_s
    );
    println!("seed block                {:>8.3}", challenged - committed);
    println!("reveal + verify + settle  {:>8.3}", settled - challenged);
    println!("download C                {:>8.3}", download_ms / 1e3);
    println!("consumer Freivalds        {:>8.3}", check_ms / 1e3);
    println!("total                     {:>8.3}", total);
    println!(
        "chain's share (post, match, seed, reveal/verify/settle, accept and commit txs less fetch and compute): about {:.3}",
        (posted - upload_ms / 1e3) + (matched - posted) + (challenged - committed) + (settled - challenged)
    );

    // The consumer's check against computing the product.
    let c: MatrixI32 = format::read_npy(&c_path).expect("C.npy");
    let t0 = Instant::now();
    let report = lode_gpu_verify::freivalds::check(&a, &b, &c, &[9; 32], 2).expect("freivalds");
    let freivalds = t0.elapsed();
    assert!(report.accepted());
    let t0 = Instant::now();
    let again = product(&a, &b);
    let gemm = t0.elapsed();
    assert!(again == c);
    println!(
        "consumer check {n}³: Freivalds (2 trials) {:.1} ms, the product on the CPU {:.1} ms: {:.1}x less",
        freivalds.as_secs_f64() * 1e3,
        gemm.as_secs_f64() * 1e3,
        gemm.as_secs_f64() / freivalds.as_secs_f64().max(1e-9)
    );
    net.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_uploaded_to_one_node_reach_a_provider_attached_to_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut net, cli) = devnet(dir.path(), 2).await;
    let dev1 = cli.address("dev1").await;
    // The provider follows and stores on node 1; the consumer uploads to and downloads from node 0.
    let p1 = provider(&net, dir.path(), "dev1", 1, 5, &[]);
    wait_providers(&cli, &[&dev1], &[&p1]).await;
    let (a, b, pa, pb) = inputs(dir.path(), 128, 5);
    let c_path = dir.path().join("C.npy");
    let out = submit(&cli, &pa, &pb, &c_path, &[]).await;
    assert!(out.status.success(), "{}\n{}", text(&out), p1.report());
    let c: MatrixI32 = format::read_npy(&c_path).expect("C.npy");
    assert!(c == product(&a, &b), "the consumer's C is not A·B");
    net.stop_all();
}

/// The job's status on node 0.
async fn status_of(cli: &Cli, id: &str) -> String {
    let j = cli.query(&["market", "job", id]).await;
    j["job"]["status"].as_str().unwrap_or_default().to_owned()
}

/// The latest height node `i` reports (0 while it is down).
async fn height_of(net: &Net, i: usize) -> u64 {
    status(&net.grpc[i]).await.map_or(0, |s| s.latest_height)
}

/// Whether node `i`'s blob store holds `root` (`Stat` reads only this node's index; it fetches nothing).
async fn holds(net: &Net, i: usize, root: &[u8; 32]) -> bool {
    let channel = tonic::transport::Channel::from_shared(net.grpc[i].clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    BlobClient::new(channel)
        .stat(root)
        .await
        .expect("stat")
        .is_some()
}

/// The topology: four validators (each node checks every invariant after every block: `lode testnet
/// init` sets `[app] check_invariants = true`), three CPU providers on nodes 1, 2 and 3, and the consumer
/// uploading to and submitting on node 0, a 512³ job. Node 3's provider asks least, so the job is its; it
/// fetches A and B from its own node, which has them only from node 0 over the blob exchange. Once the job is
/// matched, node 2's validator is SIGKILLed: an idle provider follows it (its daemon is left to reconnect),
/// and the three other validators hold 3/4 of the voting power, so the job goes on. Node 2 is restarted after
/// the chain has gone two blocks without it and before the job settles; it catches up and decides the job's
/// last blocks with the others. Afterwards the job has settled with C = A·B and the receipt NFT, and every
/// node has the same app hash at every height from genesis to the last common one (every height of the job,
/// those node 2 synced after its restart included) and keeps every invariant (supply included) there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_three_providers_a_job_outlives_a_killed_validator_and_all_agree() {
    const CI_N: usize = 512;
    const KILLED: usize = 2;
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut net, cli) = devnet(dir.path(), 4).await;
    for home in &net.homes {
        let config = std::fs::read_to_string(home.join("config.toml")).expect("config");
        assert!(
            config.contains("check_invariants = true"),
            "{}: invariants are not checked per block",
            home.display()
        );
    }
    let dev0 = cli.address("dev0").await;
    let devs = [
        cli.address("dev1").await,
        cli.address("dev2").await,
        cli.address("dev3").await,
    ];
    let p1 = provider(&net, dir.path(), "dev1", 1, 6, &[]);
    let p2 = provider(&net, dir.path(), "dev2", 2, 5, &[]);
    let p3 = provider(&net, dir.path(), "dev3", 3, 3, &[]);
    let daemons = [&p1, &p2, &p3];
    wait_providers(&cli, &[&devs[0], &devs[1], &devs[2]], &daemons).await;

    let (a, b, pa, pb) = inputs(dir.path(), CI_N, 12);
    let roots = [
        commit_a(&a).expect("A root").root(),
        commit_b(&b).expect("B root").root(),
    ];
    for root in &roots {
        for i in 0..4 {
            assert!(
                !holds(&net, i, root).await,
                "node {i} has an input before the upload"
            );
        }
    }

    let c_path = dir.path().join("C.npy");
    let consumer = submit(&cli, &pa, &pb, &c_path, &[]);
    let fault = async {
        let line = p3
            .wait_line(&["matched: fetching inputs"], STATE_BOUND)
            .await;
        let id = line
            .strip_prefix("job ")
            .and_then(|r| r.split_whitespace().next())
            .expect("job id")
            .to_owned();
        let killed_at = height_of(&net, 0).await;
        if let Some(mut c) = net.children[KILLED].take() {
            c.kill().expect("SIGKILL");
            c.wait().expect("reap");
        }
        let t = Instant::now();
        while height_of(&net, 0).await < killed_at + 2 {
            assert!(
                t.elapsed() < STATE_BOUND,
                "the chain stopped without node {KILLED}\n{}",
                net.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let at_restart = status_of(&cli, &id).await;
        net.children[KILLED] = Some(net.spawn(KILLED));
        (id, killed_at, at_restart)
    };
    let (out, (id, killed_at, at_restart)) = tokio::join!(consumer, fault);
    let report = || {
        format!(
            "{}\n{}\n{}",
            text(&out),
            daemons.map(|d| d.report()).join("\n"),
            net.logs()
        )
    };
    assert!(out.status.success(), "{}", report());
    assert_eq!(job_id(&out), id, "{}", report());
    assert!(
        ["matched", "accepted", "committed", "revealing"].contains(&at_restart.as_str()),
        "node {KILLED} was restarted with the job {at_restart}, not mid-job\n{}",
        report()
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    for step in [
        format!("matched to {}", devs[2]),
        format!("accepted by {}", devs[2]),
        "settled:".into(),
        "C checked in full".into(),
    ] {
        assert!(stdout.contains(&step), "no {step:?} in\n{}", report());
    }
    let c: MatrixI32 = format::read_npy(&c_path).expect("C.npy");
    assert!(c == product(&a, &b), "the consumer's C is not A·B");
    let receipt = cli
        .query(&["nft", "token", "lode-compute-receipts", &id])
        .await;
    assert_eq!(receipt["token"]["owner"], dev0, "{receipt}");
    let j = cli.query(&["market", "job", &id]).await;
    assert_eq!(j["job"]["provider"], devs[2], "{j}");
    // Uploaded to node 0 only; node 3 (its provider accepted after checking them against the roots) now holds
    // both inputs, fetched from node 0.
    p3.wait_line(&[&id, "accepted at height"], STATE_BOUND)
        .await;
    for root in &roots {
        assert!(holds(&net, 0, root).await);
        assert!(holds(&net, 3, root).await, "node 3 never fetched an input");
    }

    // The restarted node catches up past the job's settlement.
    let settled_at = height_of(&net, 0).await;
    wait_height(&net, settled_at + 1).await;
    drop((p1, p2, p3));
    net.stop_all();

    let (common, hashes) = app_hashes_at_common_height(&net.homes);
    for (i, h) in hashes.iter().enumerate() {
        assert_eq!(h, &hashes[0], "node {i} disagrees at height {common}");
    }
    assert!(
        common > settled_at,
        "common height {common}, settled by {settled_at}"
    );
    let posted: u64 = stdout
        .lines()
        .find_map(|l| l.split(" posted at height ").nth(1))
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("no posting height in\n{stdout}"));
    assert!(posted <= killed_at && killed_at < settled_at);
    let apps: Vec<LodeApp> = net
        .homes
        .iter()
        .map(|h| LodeApp::open(&h.join("data")).expect("open db"))
        .collect();
    let record = apps[0].last_commit().expect("committed");
    for h in 1..=common {
        let version = record.version_of(h).expect("version");
        let root = apps[0].store().root_at(version).expect("root");
        for (i, app) in apps.iter().enumerate().skip(1) {
            assert_eq!(
                app.store().root_at(version).expect("root"),
                root,
                "node {i} disagrees with node 0 at height {h} (job posted at {posted}, node {KILLED} \
                 killed at {killed_at}, settled by {settled_at})"
            );
        }
    }
    println!(
        "job {id}: posted at {posted}, node {KILLED} killed at {killed_at} and restarted with the job \
         {at_restart}, settled by {settled_at}; app hashes equal at heights 1..={common}"
    );
    let supply = bank::supply(apps[0].store()).expect("supply");
    for (i, app) in apps.iter().enumerate() {
        let last = app.last_commit().expect("committed").height;
        lode_state::modules::check_invariants(app.store(), last)
            .unwrap_or_else(|e| panic!("node {i} at height {last}: {e}"));
        if last == record.height {
            assert_eq!(bank::supply(app.store()).expect("supply"), supply);
        }
    }
}
