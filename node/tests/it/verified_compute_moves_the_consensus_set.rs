//! Proof of useful compute reaches consensus on running `lode start` processes: two genesis validators with
//! equal stake; node 0's operator links a provider (`lode tx staking link-provider`), a `lode provider run`
//! daemon settles a job posted through the CLI, and once the job's fraud window has closed and its epoch has
//! ended, node 0 holds more power than node 1 in the consensus set the application hands to the engine
//! (`set_power` of `lode query staking validators`), while the chain keeps finalizing with the new powers.
//! (A job proven fraudulent adds nothing: the state test
//! `verified_compute_buys_voting_power_at_the_epoch_boundary` shows it with a real fraud proof.)

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::four_validators_commit_a_transfer::{status, wait_height, Net};
use crate::governance_on_a_devnet::Cli;
use crate::provider_daemon::{upload_inputs, ProviderDaemon};
use crate::support::path_str;

/// Every wait in this file is bounded by this.
const WAIT: Duration = Duration::from_secs(180);
/// Blocks per epoch: short, so the boundary after the job's fraud window comes soon.
const EPOCH: u64 = 20;

/// A number the JSON output may carry as a number or a string.
fn num(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

/// `operator`'s entry in `lode query staking <what>` (`validators` or `power`).
async fn entry(cli: &Cli, what: &str, operator: &str) -> Value {
    let all = cli.query(&["staking", what]).await;
    all["validators"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["operator"] == operator).cloned())
        .unwrap_or_else(|| panic!("no validator {operator} in {all}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_whose_provider_settles_jobs_gains_consensus_power_at_the_epoch_boundary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut net = Net::start_with_genesis(dir.path(), 2, 2, |g| {
        let p = &mut g["app_state"]["params"];
        p["compute"]["reveal_blocks"] = json!(10);
        p["compute"]["fraud_window_blocks"] = json!(12);
        p["compute"]["epoch_blocks"] = json!(EPOCH);
        p["market"]["unbonding_blocks"] = json!(30);
        let st = &mut p["staking"];
        // Half the power by verified compute, no cap below what two validators force (50%), a churn
        // limit of 10% an epoch; no CU floor and no assumed stake cost (so any protocol fee passes the
        // self-dealing check), so one small job earns the whole compute pool.
        st["compute_weight_bps"] = json!(5_000);
        st["max_power_bps"] = json!(10_000);
        st["max_churn_bps"] = json!(1_000);
        st["bonded_per_floor_cu"] = json!(u64::MAX);
        st["stake_cost_ppt_per_block"] = json!(0);
    });
    wait_height(&net, 2).await;
    let cli = Cli {
        home: net.homes[0].clone(),
        node: net.grpc[0].clone(),
    };
    let cli1 = Cli {
        home: net.homes[1].clone(),
        node: net.grpc[0].clone(),
    };
    let op0 = cli.address("operator").await;
    let op1 = cli1.address("operator").await;
    let dev1 = cli.address("dev1").await;

    // Genesis: equal stake, equal power, the consensus set holds exactly that.
    for op in [&op0, &op1] {
        let v = entry(&cli, "validators", op).await;
        assert_eq!(num(&v["power"]), 500_000_000, "{v}");
        assert_eq!(num(&v["set_power"]), 500_000_000, "{v}");
    }

    // dev1 runs a provider; node 0's operator links it (dev1 signs its consent).
    let state = dir.path().join("provider");
    let p = ProviderDaemon::start(
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
        ],
    );
    p.wait_line(&["ready at height"], WAIT).await;
    cli.tx(
        "operator",
        &[
            "staking",
            "link-provider",
            "--provider",
            &dev1,
            "--provider-key",
            "dev1",
        ],
    )
    .await;
    let link = cli.query(&["staking", "link", &dev1]).await;
    let linked_epoch = num(&link["changed_epoch"]);

    // A job posted through the CLI: the daemon computes it and the chain settles it.
    let a = lode_gpu_verify::MatrixI8::from_fn(64, 128, |i, j| ((i * 3 + j * 5) % 17) as i8 - 8)
        .expect("a");
    let b = lode_gpu_verify::MatrixI8::from_fn(128, 64, |i, j| ((i * 7 + j) % 13) as i8 - 6)
        .expect("b");
    let key = net.homes[0].join("keys").join("dev0.json");
    upload_inputs(&net.grpc[0], &key, &a, &b).await;
    let (pa, pb) = (dir.path().join("A.npy"), dir.path().join("B.npy"));
    lode_gpu_verify::format::write_npy(&pa, &a).expect("write A");
    lode_gpu_verify::format::write_npy(&pb, &b).expect("write B");
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
    let dev0 = cli.address("dev0").await;
    let jobs = cli.query(&["market", "jobs", "--consumer", &dev0]).await;
    let id = jobs["jobs"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no job in {jobs}"))
        .to_owned();

    // Final (fraud window closed, no fraud): its CU is recorded under the epoch of that height.
    let t = Instant::now();
    let released = loop {
        let j = cli.query(&["market", "job", &id]).await;
        let at = j["job"]["history"].as_array().and_then(|h| {
            h.iter()
                .find(|e| e["step"] == "holdback_released")
                .map(|e| num(&e["height"]))
        });
        if let Some(at) = at {
            break at;
        }
        assert!(
            t.elapsed() < WAIT,
            "job never final: {j}\n{}\n{}",
            p.report(),
            net.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let final_epoch = released / EPOCH;
    assert!(
        final_epoch > linked_epoch,
        "the link must predate the epoch whose CU counts ({linked_epoch} vs {final_epoch}); \
         raise EPOCH if this fails"
    );
    let pw = cli.query(&["staking", "power"]).await;
    if num(&pw["epoch"]) == final_epoch {
        // That epoch is still running: the power still follows stake alone.
        let v0 = entry(&cli, "validators", &op0).await;
        assert_eq!(num(&v0["set_power"]), 500_000_000, "{v0}");
    }

    // After the boundary: node 0's verified CU buys power, up to the churn limit (10%) in one epoch; the
    // consensus set holds the same powers.
    let boundary = (final_epoch + 1) * EPOCH;
    let t = Instant::now();
    let (p0, p1) = loop {
        let h = status(&net.grpc[0]).await.map_or(0, |s| s.latest_height);
        if h > boundary {
            let v0 = entry(&cli, "validators", &op0).await;
            let v1 = entry(&cli, "validators", &op1).await;
            break (v0, v1);
        }
        assert!(
            t.elapsed() < WAIT,
            "no height past {boundary}\n{}",
            net.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let pw = entry(&cli, "power", &op0).await;
    assert!(num(&pw["verified_cu"]) > 0, "{pw}");
    assert_eq!(pw["provider"], dev1.as_str(), "{pw}");
    assert_eq!(num(&p0["power"]), 600_000_000, "{p0}");
    assert_eq!(num(&p1["power"]), 400_000_000, "{p1}");
    assert_eq!(num(&p0["set_power"]), 600_000_000, "{p0}");
    assert_eq!(num(&p1["set_power"]), 400_000_000, "{p1}");

    // The engine runs with the new set: both nodes keep finalizing.
    let h = status(&net.grpc[1]).await.map_or(0, |s| s.latest_height);
    wait_height(&net, h + 4).await;
    drop(p);
    net.stop_all();
}
