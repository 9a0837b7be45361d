//! Two `lode start` processes sign with one validator key: node 3, and a duplicate started from another home
//! holding a copy of node 3's validator key but a node key (network identity) and ports of its own. Their
//! conflicting votes reach the honest nodes, whose engines record the equivocation; the nodes submit it as
//! `MsgSubmitDoubleSign` on their own, it lands, and validator 3 is slashed, tombstoned (unjail refused with
//! 45) and out of the set, while the chain keeps finalizing and the honest nodes agree on the app hash. An
//! outside watcher's `lode tx staking submit-double-sign` with two vote files reaches the same checks.
//!
//! Without node keys the duplicate shared node 3's peer id and its votes never crossed; without the
//! node-side reporter the evidence never reached a block.

use std::time::{Duration, Instant};

use lode_node::keys::KeyFile;
use serde_json::Value;

use crate::four_validators_commit_a_transfer::{
    app_hashes_at_common_height, keep_genesis_validators, status, Net,
};
use crate::governance_on_a_devnet::Cli;
use crate::support::{path_str, run_lode};

/// Every wait in this file is bounded by this.
const WAIT: Duration = Duration::from_secs(180);
/// Power reduction of this test's genesis.
const REDUCTION: u128 = 1_000_000;

async fn min_height(net: &Net, nodes: &[usize]) -> u64 {
    let mut min = u64::MAX;
    for &i in nodes {
        let h = status(&net.grpc[i]).await.map_or(0, |s| s.latest_height);
        min = min.min(h);
    }
    min
}

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

fn operator_of(net: &Net, i: usize) -> String {
    KeyFile::load(&net.homes[i].join("keys/operator.json"))
        .expect("operator key")
        .address
}

async fn validator(cli: &Cli, operator: &str) -> Value {
    let all = cli.query(&["staking", "validators"]).await;
    all["validators"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["operator"] == operator).cloned())
        .unwrap_or_else(|| panic!("no validator {operator} in {all}"))
}

fn num(v: &Value) -> u128 {
    v.as_u64()
        .map(u128::from)
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_signing_with_one_validator_key_get_it_slashed_tombstoned_and_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Five homes; nodes 0..=3 are the genesis validators (equal stake), node 4's home becomes the duplicate.
    let mut net = Net::start_with_genesis(dir.path(), 5, 4, |g| {
        keep_genesis_validators(g, &[0, 1, 2, 3], 10 * REDUCTION, REDUCTION);
    });
    wait_nodes(&net, &[0, 1, 2, 3], 2).await;
    let cli = Cli {
        home: net.homes[0].clone(),
        node: net.grpc[0].clone(),
    };
    let op3 = operator_of(&net, 3);
    let before = validator(&cli, &op3).await;
    assert_eq!(before["status"], "bonded", "{before}");
    assert_eq!(num(&before["tokens"]), 10 * REDUCTION);
    let none = cli.query(&["staking", "double-sign", &op3]).await;
    assert_eq!(none["found"], false, "{none}");

    // The duplicate: node 3's validator key in node 4's home (its own node key, ports and data).
    let node4_keys = net.homes[4].join("keys");
    assert_ne!(
        std::fs::read(node4_keys.join("node_key.json")).expect("node 4 node key"),
        std::fs::read(net.homes[3].join("keys/node_key.json")).expect("node 3 node key"),
        "every home has a node key of its own"
    );
    std::fs::copy(
        net.homes[3].join("keys/validator_key.json"),
        node4_keys.join("validator_key.json"),
    )
    .expect("copy the validator key");
    net.children[4] = Some(net.spawn(4));

    // Some honest node's engine sees the two processes' conflicting votes; the evidence lands.
    let deadline = Instant::now() + WAIT;
    let record = loop {
        let r = cli.query(&["staking", "double-sign", &op3]).await;
        if r["found"] == true {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no double-sign evidence for validator 3 landed: {r}\n{}",
            net.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // Slashed slash_double_sign_bps (5%) of its stake, out of the set for good.
    let slashed = num(&record["slashed"]);
    assert_eq!(slashed, 10 * REDUCTION * 500 / 10_000, "{record}");
    let punished_at = u64::try_from(num(&record["punished_at"])).expect("height");
    let after = validator(&cli, &op3).await;
    assert_eq!(num(&after["tokens"]), 10 * REDUCTION - slashed, "{after}");
    assert_ne!(after["status"], "bonded", "{after}");
    assert_eq!(num(&after["power"]), 0, "{after}");
    // The consensus set follows at punished_at + 2: wait past it, then the set holds no power for it.
    wait_nodes(&net, &[0, 1, 2], punished_at + 3).await;
    let after = validator(&cli, &op3).await;
    assert_eq!(num(&after["set_power"]), 0, "{after}");
    // Tombstoned: its operator's unjail is refused with 45, whatever the height.
    let out = run_lode(&[
        "tx",
        "staking",
        "unjail",
        "--from",
        "operator",
        "--home",
        path_str(&net.homes[3]),
        "--node",
        &net.grpc[0],
        "--wait",
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "unjail of a tombstoned validator: {text}"
    );
    assert!(text.contains("45"), "unjail refused with code 45: {text}");

    // An outside watcher's evidence by hand (`lode tx staking submit-double-sign`, two vote files) reaches
    // the same checks: a vote whose signature is not the validator's is refused (163), and a genuine pair
    // for a validator already punished is a duplicate (162).
    let chain_id = {
        let g: Value = serde_json::from_slice(
            &std::fs::read(net.homes[0].join("genesis.json")).expect("genesis"),
        )
        .expect("genesis json");
        g["chain_id"].as_str().expect("chain id").to_owned()
    };
    let key3 = KeyFile::load(&net.homes[3].join("keys/validator_key.json"))
        .expect("validator key")
        .signing_key()
        .expect("signing key");
    let signer = lode_consensus::LodeSigner::new(
        lode_consensus::types::PrivateKey::from_seed(key3.to_bytes()),
        &chain_id,
    );
    let forger = lode_consensus::LodeSigner::new(
        lode_consensus::types::PrivateKey::from_seed([42; 32]),
        &chain_id,
    );
    let vote_file = |name: &str, value: u8, by: &lode_consensus::LodeSigner| {
        let vote = lode_consensus::types::Vote {
            vote_type: malachitebft_core_types::VoteType::Prevote,
            height: lode_consensus::Height(punished_at),
            round: malachitebft_core_types::Round::new(0),
            value_id: malachitebft_core_types::NilOrVal::Val(lode_consensus::types::BlockId(
                [value; 32],
            )),
            validator_address: signer.address(),
            extension: None,
        };
        let signed = by.sign_vote_sync(vote);
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            serde_json::json!({
                "vote_type": 0,
                "height": punished_at,
                "round": 0,
                "value_id": hex::encode([value; 32]),
                "validator_address": hex::encode(signer.address().0),
                "signature": hex::encode(signed.signature.0),
            })
            .to_string(),
        )
        .expect("vote file");
        path
    };
    let a = vote_file("a.json", 1, &signer);
    let b = vote_file("b.json", 2, &signer);
    let forged = vote_file("forged.json", 2, &forger);
    for (second, code) in [(&forged, "163"), (&b, "162")] {
        let out = run_lode(&[
            "tx",
            "staking",
            "submit-double-sign",
            "--vote-a",
            path_str(&a),
            "--vote-b",
            path_str(second),
            "--from",
            "dev0",
            "--home",
            path_str(&net.homes[0]),
            "--node",
            &net.grpc[0],
            "--wait",
        ]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{text}");
        assert!(text.contains(code), "refused with {code}: {text}");
    }

    // The chain stays live without it: the three honest validators (30 of 40) keep finalizing.
    let h = min_height(&net, &[0, 1, 2]).await;
    wait_nodes(&net, &[0, 1, 2], h + 5).await;
    net.stop_all();
    let (height, hashes) = app_hashes_at_common_height(&net.homes[0..3]);
    assert!(height > punished_at, "{height}");
    assert!(
        hashes.windows(2).all(|w| w[0] == w[1]),
        "honest nodes disagree at height {height}: {hashes:?}"
    );
}
