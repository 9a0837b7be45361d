//! A proposal's whole life on four running validators, driven through the `lode` CLI and gRPC: validators
//! register and bond, a delegator bonds, a parameter-change proposal gathers its deposit from two accounts,
//! several accounts vote (one delegator overriding its validator with a split vote), the tally runs in
//! FinalizeBlock, the parameter changes; a treasury-spend proposal pays its recipient.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lode_node::keys::KeyFile;
use serde_json::{json, Value};

use crate::four_validators_commit_a_transfer::{keep_genesis_validators, status, wait_height, Net};
use crate::support::{lode_ok, path_str};

/// Blocks a proposal stays in its voting period.
const VOTING_BLOCKS: u64 = 40;

/// The `lode` CLI pointed at one node's home and gRPC URL.
pub struct Cli {
    pub home: PathBuf,
    pub node: String,
}

impl Cli {
    /// `lode tx … --from FROM --wait` against node 0; panics unless the tx is committed with code 0.
    pub async fn tx(&self, from: &str, args: &[&str]) -> String {
        let mut full: Vec<String> = vec!["tx".into()];
        full.extend(args.iter().map(|s| s.to_string()));
        full.extend(
            [
                "--from",
                from,
                "--home",
                path_str(&self.home),
                "--node",
                &self.node,
                "--wait",
            ]
            .map(String::from),
        );
        let out = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = full.iter().map(String::as_str).collect();
            lode_ok(&refs)
        })
        .await
        .expect("lode tx");
        assert!(out.contains("result: ok"), "{out}");
        out
    }

    /// `lode query …` against node 0, its JSON output parsed.
    pub async fn query(&self, args: &[&str]) -> Value {
        let mut full: Vec<String> = vec!["query".into()];
        full.extend(args.iter().map(|s| s.to_string()));
        full.extend(["--node", &self.node].map(String::from));
        let out = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = full.iter().map(String::as_str).collect();
            lode_ok(&refs)
        })
        .await
        .expect("lode query");
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("query output is not JSON ({e}): {out}"))
    }

    pub async fn address(&self, key: &str) -> String {
        KeyFile::load(&self.home.join("keys").join(format!("{key}.json")))
            .expect("dev key")
            .address
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_lives_its_whole_life_on_a_running_devnet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut net = Net::start_with_genesis(dir.path(), 4, 4, |g| {
        // Nodes 2 and 3 are the genesis validators, with a stake too small to count in the votes below;
        // nodes 0 and 1 join when dev0 and dev2 bond to their keys.
        keep_genesis_validators(g, &[2, 3], 10, 1);
        let gov = &mut g["app_state"]["params"]["gov"];
        gov["voting_period_blocks"] = json!(VOTING_BLOCKS);
        gov["deposit_period_blocks"] = json!(200);
        gov["min_deposit"] = json!("1000");
        gov["treasury_fee_bps"] = json!(5000);
    });
    wait_height(&net, 2).await;
    let cli = Cli {
        home: net.homes[0].clone(),
        node: net.grpc[0].clone(),
    };
    let (dev0, dev1) = (cli.address("dev0").await, cli.address("dev1").await);
    let node1_key = KeyFile::load(&net.homes[1].join("keys/validator_key.json"))
        .expect("node1 key")
        .public_key;

    // Bonded stake: dev0 and dev2 run validators, dev1 delegates to dev0.
    cli.tx(
        "dev0",
        &[
            "staking",
            "create-validator",
            "--moniker",
            "v0",
            "--self-bond",
            "1000000",
        ],
    )
    .await;
    cli.tx(
        "dev2",
        &[
            "staking",
            "create-validator",
            "--moniker",
            "v2",
            "--self-bond",
            "300000",
            "--consensus-key",
            &node1_key,
        ],
    )
    .await;
    cli.tx(
        "dev1",
        &[
            "staking",
            "delegate",
            "--validator",
            &dev0,
            "--amount",
            "500000",
        ],
    )
    .await;
    let validators = cli.query(&["staking", "validators"]).await;
    // The two genesis validators' 10 each, and the bonds above.
    assert_eq!(validators["total_bonded"], "1800020", "{validators}");
    let delegations = cli.query(&["staking", "delegations", &dev1]).await;
    assert_eq!(
        delegations["delegations"][0]["amount"], "500000",
        "{delegations}"
    );

    // Proposal 1: a parameter change, its deposit completed by a second account.
    cli.tx(
        "dev0",
        &[
            "gov",
            "submit",
            "--title",
            "raise the royalty cap",
            "--param",
            "nft.max_royalty_bps=2500",
            "--deposit",
            "400",
        ],
    )
    .await;
    let p1 = cli.query(&["gov", "proposal", "1"]).await;
    assert_eq!(
        p1["proposal"]["status"], "PROPOSAL_STATUS_DEPOSIT_PERIOD",
        "{p1}"
    );
    cli.tx(
        "dev1",
        &["gov", "deposit", "--proposal", "1", "--amount", "600"],
    )
    .await;
    let p1 = cli.query(&["gov", "proposal", "1"]).await;
    assert_eq!(
        p1["proposal"]["status"], "PROPOSAL_STATUS_VOTING_PERIOD",
        "{p1}"
    );
    let deposits = cli.query(&["gov", "deposits", "1"]).await;
    assert_eq!(
        deposits["deposits"].as_array().map(Vec::len),
        Some(2),
        "{deposits}"
    );

    // Proposal 2: pay 2000 from the treasury (funded by half of every fee so far) to a fresh address.
    let recipient = KeyFile::generate("recipient").expect("key").address;
    cli.tx(
        "dev2",
        &[
            "gov",
            "submit",
            "--title",
            "pay a contributor",
            "--spend-to",
            &recipient,
            "--spend-amount",
            "2000",
            "--deposit",
            "1000",
        ],
    )
    .await;

    // Votes: dev0 (1.0M self-bond, and 0.5M delegated unless dev1 votes) yes on both; dev1 overrides with a
    // split vote on proposal 1; dev2 (0.3M) no on 1 and yes on 2.
    cli.tx(
        "dev0",
        &["gov", "vote", "--proposal", "1", "--option", "yes"],
    )
    .await;
    cli.tx(
        "dev0",
        &["gov", "vote", "--proposal", "2", "--option", "yes"],
    )
    .await;
    cli.tx(
        "dev1",
        &[
            "gov",
            "vote",
            "--proposal",
            "1",
            "--option",
            "yes=0.5,no=0.5",
        ],
    )
    .await;
    cli.tx(
        "dev2",
        &["gov", "vote", "--proposal", "1", "--option", "no"],
    )
    .await;
    cli.tx(
        "dev2",
        &["gov", "vote", "--proposal", "2", "--option", "yes"],
    )
    .await;
    let votes = cli.query(&["gov", "votes", "1"]).await;
    assert_eq!(votes["votes"].as_array().map(Vec::len), Some(3), "{votes}");

    // Both voting periods end; the tallies run in FinalizeBlock.
    let p2 = cli.query(&["gov", "proposal", "2"]).await;
    let end = p2["proposal"]["voting_end_height"]
        .as_u64()
        .expect("end height");
    wait_height(&net, end + 1).await;

    let p1 = cli.query(&["gov", "proposal", "1"]).await;
    assert_eq!(p1["proposal"]["status"], "PROPOSAL_STATUS_PASSED", "{p1}");
    let tally = &p1["proposal"]["final_tally"];
    assert_eq!(tally["yes"], "1250000", "{p1}");
    assert_eq!(tally["no"], "550000", "{p1}");
    assert_eq!(tally["outcome"], "passed", "{p1}");
    let nft = cli.query(&["params", "nft"]).await;
    assert_eq!(nft["max_royalty_bps"], 2500, "{nft}");

    let p2 = cli.query(&["gov", "proposal", "2"]).await;
    assert_eq!(p2["proposal"]["status"], "PROPOSAL_STATUS_PASSED", "{p2}");
    // Every node agrees that the recipient was paid.
    let deadline = Instant::now() + Duration::from_secs(60);
    for url in &net.grpc {
        loop {
            let b = crate::four_validators_commit_a_transfer::balance(url, &recipient).await;
            if b.as_deref() == Some("2000") {
                break;
            }
            assert!(Instant::now() < deadline, "{url}: recipient balance {b:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(status(&net.grpc[0]).await.is_some());
    // Every node holds the same chain, and the same balances for every account the test touched.
    let mut touched: Vec<lode_state::Address> = (0..4)
        .map(|k| crate::workload::dev_address(&net, k))
        .collect();
    touched.push(recipient.parse().expect("address"));
    crate::workload::assert_nodes_agree(&net, &touched).await;
    net.stop_all();
}
