//! Stake drives the consensus set on running `lode start` processes: a fifth node bonds with
//! `create-validator`, enters the set two heights later and signs; after it undelegates everything it leaves
//! and the chain keeps finalizing. A stopped validator is jailed after its signing window (slashed), the
//! chain keeps going, and once restarted it unjails after `jail_blocks` and signs again.

use std::time::{Duration, Instant};

use lode_node::keys::KeyFile;
use serde_json::{json, Value};

use crate::four_validators_commit_a_transfer::{keep_genesis_validators, status, Net};
use crate::governance_on_a_devnet::Cli;

/// Every wait in this file is bounded by this.
const WAIT: Duration = Duration::from_secs(120);
/// Power reduction of these tests' genesis: a validator needs 1_000_000 bonded to hold power.
const REDUCTION: u128 = 1_000_000;

/// The highest height every node in `nodes` reports.
async fn min_height(net: &Net, nodes: &[usize]) -> u64 {
    let mut min = u64::MAX;
    for &i in nodes {
        let h = status(&net.grpc[i]).await.map_or(0, |s| s.latest_height);
        min = min.min(h);
    }
    min
}

/// Waits until every node in `nodes` reports at least `height`.
async fn wait_nodes(net: &Net, nodes: &[usize], height: u64) {
    let deadline = Instant::now() + WAIT;
    while min_height(net, nodes).await < height {
        assert!(
            Instant::now() < deadline,
            "nodes {nodes:?} did not reach height {height}\n{}",
            net.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The validator record of `operator` from `lode query staking validators`.
async fn validator(cli: &Cli, operator: &str) -> Value {
    let all = cli.query(&["staking", "validators"]).await;
    all["validators"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["operator"] == operator).cloned())
        .unwrap_or_else(|| panic!("no validator {operator} in {all}"))
}

/// Polls `check` on the validator record of `operator` until it holds (bounded by [`WAIT`]).
async fn wait_validator(
    net: &Net,
    cli: &Cli,
    operator: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = validator(cli, operator).await;
        if check(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "validator {operator} never became {what}: {v}\n{}",
            net.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The signing info of `operator`.
async fn signing_info(cli: &Cli, operator: &str) -> Value {
    cli.query(&["staking", "signing-info", operator]).await["info"].clone()
}

/// A number that the JSON output may carry as a number or a string (u64 fields are strings in proto3 JSON).
fn num(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

/// Waits until `operator`'s signing info shows it signed at least `signed` more blocks than at `from`
/// (tracked blocks minus missed ones grows only when its signature is in a block's last commit).
async fn wait_signing(net: &Net, cli: &Cli, operator: &str, signed: u64) {
    let count = |i: &Value| num(&i["index"]).saturating_sub(num(&i["missed_blocks"]));
    let from = count(&signing_info(cli, operator).await);
    let deadline = Instant::now() + WAIT;
    loop {
        let info = signing_info(cli, operator).await;
        if count(&info) >= from + signed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{operator} did not sign {signed} more blocks: {info}\n{}",
            net.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn operator_of(net: &Net, i: usize) -> String {
    KeyFile::load(&net.homes[i].join("keys/operator.json"))
        .expect("operator key")
        .address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifth_node_bonds_into_the_set_signs_and_leaves_when_it_unbonds() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Five homes; nodes 0..=3 are genesis validators, node 4 a full node whose operator is funded.
    let net = Net::start_with_genesis(dir.path(), 5, 5, |g| {
        keep_genesis_validators(g, &[0, 1, 2, 3], 10 * REDUCTION, REDUCTION);
    });
    wait_nodes(&net, &[0, 1, 2, 3, 4], 2).await;
    let cli4 = Cli {
        home: net.homes[4].clone(),
        node: net.grpc[4].clone(),
    };
    let op4 = operator_of(&net, 4);

    // Node 4's operator bonds as much as each genesis validator to node 4's consensus key (the home's
    // validator key).
    let out = cli4
        .tx(
            "operator",
            &[
                "staking",
                "create-validator",
                "--moniker",
                "node4",
                "--self-bond",
                &(10 * REDUCTION).to_string(),
            ],
        )
        .await;
    let bonded_at: u64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("committed at height "))
        .and_then(|h| h.trim().parse().ok())
        .unwrap_or_else(|| panic!("no commit height in {out}"));
    let v = wait_validator(&net, &cli4, &op4, "bonded", |v| v["status"] == "bonded").await;
    // Proof-of-useful-compute power: at most its stake share (a fifth of 10^9), less while the churn limit
    // holds it back after an epoch boundary; the consensus set holds what the rule gives.
    let power = num(&v["power"]);
    assert!(power > 0 && power <= 200_000_000, "{v}");
    assert_eq!(num(&v["set_power"]), power, "{v}");
    // In the set from bonded_at + 2 on: its precommits appear in the blocks' last commits.
    wait_nodes(&net, &[0, 1, 2, 3, 4], bonded_at + 3).await;
    wait_signing(&net, &cli4, &op4, 3).await;

    // It undelegates everything: power 0, out of the set; the four others keep finalizing.
    cli4.tx(
        "operator",
        &[
            "staking",
            "undelegate",
            "--validator",
            &op4,
            "--amount",
            &(10 * REDUCTION).to_string(),
        ],
    )
    .await;
    let v = wait_validator(&net, &cli4, &op4, "unbonded", |v| v["status"] == "unbonded").await;
    assert_eq!(num(&v["power"]), 0, "{v}");
    let h = min_height(&net, &[0, 1, 2, 3]).await;
    wait_nodes(&net, &[0, 1, 2, 3, 4], h + 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_validator_is_jailed_and_rejoins_after_unjailing() {
    const WINDOW: u64 = 20;
    const JAIL: u64 = 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut net = Net::start_with_genesis(dir.path(), 4, 4, |g| {
        keep_genesis_validators(g, &[0, 1, 2, 3], 10 * REDUCTION, REDUCTION);
        let st = &mut g["app_state"]["params"]["staking"];
        st["signed_blocks_window"] = json!(WINDOW);
        // Jailed only when it missed 19 of 20: a live validator whose precommit is sometimes not among
        // those a proposer's certificate holds is never near it.
        st["max_missed_bps"] = json!(9_000);
        st["jail_blocks"] = json!(JAIL);
        st["slash_downtime_bps"] = json!(100);
    });
    wait_nodes(&net, &[0, 1, 2, 3], 3).await;
    let cli0 = Cli {
        home: net.homes[0].clone(),
        node: net.grpc[0].clone(),
    };
    let op3 = operator_of(&net, 3);
    assert_eq!(validator(&cli0, &op3).await["status"], "bonded");

    // Node 3 stops: the other three (30 of 40) keep finalizing, and node 3 is jailed after its window.
    if let Some(mut c) = net.children[3].take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    let v = wait_validator(&net, &cli0, &op3, "jailed", |v| v["status"] == "jailed").await;
    // Slashed 1% of its 10 * REDUCTION tokens, out of the set.
    assert_eq!(
        v["tokens"],
        (10 * REDUCTION - REDUCTION / 10).to_string(),
        "{v}"
    );
    assert_eq!(num(&v["power"]), 0, "{v}");
    let jailed_until = num(&v["jailed_until"]);
    assert!(jailed_until > 0, "{v}");
    let h = min_height(&net, &[0, 1, 2]).await;
    wait_nodes(&net, &[0, 1, 2], h + 3).await;

    // Restarted, it catches up; from jailed_until on its operator unjails it (earlier is refused with its
    // own code: see the state tests).
    net.children[3] = Some(net.spawn(3));
    let cli3 = Cli {
        home: net.homes[3].clone(),
        node: net.grpc[0].clone(),
    };
    wait_nodes(&net, &[0, 1, 2, 3], jailed_until).await;
    cli3.tx("operator", &["staking", "unjail"]).await;
    let v = wait_validator(&net, &cli0, &op3, "bonded again", |v| {
        v["status"] == "bonded"
    })
    .await;
    // Back with power: 9.9 of 39.9 bonded, but four validators cannot all stay under the default 20% cap,
    // so each holds at most a quarter (less while the churn limit holds it back after an epoch boundary).
    let power = num(&v["power"]);
    assert!(power > 0 && power <= 250_000_000, "{v}");
    assert_eq!(num(&v["set_power"]), power, "{v}");
    // Back in the set two heights later, its signatures are in the blocks again.
    wait_signing(&net, &cli0, &op3, 3).await;
    let h = min_height(&net, &[0, 1, 2, 3]).await;
    wait_nodes(&net, &[0, 1, 2, 3], h + 3).await;
}
