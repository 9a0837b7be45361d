//! The NFT market and the offline multisig flow through the `lode` CLI on four running validators.

use lode_node::keys::KeyFile;

use crate::four_validators_commit_a_transfer::{balance, wait_height, Net};
use crate::governance_on_a_devnet::Cli;
use crate::support::{path_str, run_lode};

async fn balance_of(cli: &Cli, address: &str) -> u128 {
    balance(&cli.node, address)
        .await
        .and_then(|b| b.parse().ok())
        .expect("balance")
}

/// Runs `lode ARGS` and returns (success, stdout + stderr).
async fn lode(args: Vec<String>) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_lode(&refs);
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    })
    .await
    .expect("lode")
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nft_sale_pays_royalty_and_a_multisig_spends_with_two_of_three() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut net = Net::start(dir.path(), 4);
    wait_height(&net, 2).await;
    let cli = Cli {
        home: net.homes[0].clone(),
        node: net.grpc[0].clone(),
    };
    let dev0 = cli.address("dev0").await;
    let dev1 = cli.address("dev1").await;
    let dev2 = cli.address("dev2").await;

    // dev0 creates a collection with a 5% royalty and mints to dev1; dev1 lists; dev2 buys.
    cli.tx(
        "dev0",
        &[
            "nft",
            "create",
            "--id",
            "art",
            "--name",
            "Art",
            "--symbol",
            "ART",
            "--royalty-bps",
            "500",
        ],
    )
    .await;
    cli.tx(
        "dev0",
        &[
            "nft",
            "mint",
            "--collection",
            "art",
            "--token",
            "t1",
            "--uri",
            "ipfs://t1",
            "--to",
            &dev1,
        ],
    )
    .await;
    cli.tx(
        "dev1",
        &[
            "nft",
            "list",
            "--collection",
            "art",
            "--token",
            "t1",
            "--price",
            "10001",
        ],
    )
    .await;
    let listings = cli.query(&["nft", "listings", "--collection", "art"]).await;
    assert_eq!(listings["listings"][0]["price"], "10001", "{listings}");

    // A buy at another price than the listing's is refused and changes nothing.
    let (ok, out) = lode(args(&[
        "tx",
        "nft",
        "buy",
        "--collection",
        "art",
        "--token",
        "t1",
        "--price",
        "9000",
        "--from",
        "dev2",
        "--home",
        path_str(&cli.home),
        "--node",
        &cli.node,
        "--wait",
    ]))
    .await;
    assert!(!ok, "bought below the listed price: {out}");

    let (creator_before, seller_before, buyer_before) = (
        balance_of(&cli, &dev0).await,
        balance_of(&cli, &dev1).await,
        balance_of(&cli, &dev2).await,
    );
    cli.tx(
        "dev2",
        &[
            "nft",
            "buy",
            "--collection",
            "art",
            "--token",
            "t1",
            "--price",
            "10001",
            "--fee",
            "1000000",
        ],
    )
    .await;
    // Royalty floor(10001 × 500 / 10000) = 500 to the creator, the rest to the seller; the buyer paid the
    // price and the fee.
    assert_eq!(balance_of(&cli, &dev0).await, creator_before + 500);
    assert_eq!(balance_of(&cli, &dev1).await, seller_before + 9_501);
    assert_eq!(
        balance_of(&cli, &dev2).await,
        buyer_before - 10_001 - 1_000_000
    );
    let token = cli.query(&["nft", "token", "art", "t1"]).await;
    assert_eq!(token["token"]["owner"], dev2.as_str(), "{token}");
    let owned = cli.query(&["nft", "tokens", &dev2]).await;
    assert_eq!(owned["tokens"].as_array().map(Vec::len), Some(1), "{owned}");
    // Unknown tokens and malformed owners are errors with the gRPC code and the query code.
    let (ok, out) = lode(args(&[
        "query", "nft", "token", "art", "nope", "--node", &cli.node,
    ]))
    .await;
    assert!(
        !ok && out.contains("NotFound") && out.contains("code 34"),
        "{out}"
    );
    let (ok, out) = lode(args(&[
        "query", "nft", "tokens", "lode1bad", "--node", &cli.node,
    ]))
    .await;
    assert!(!ok && out.contains("InvalidArgument"), "{out}");
    let listings = cli.query(&["nft", "listings"]).await;
    assert!(
        listings["listings"].as_array().is_none_or(Vec::is_empty),
        "{listings}"
    );

    // A 2-of-3 multisig of dev0, dev1, dev2, funded by dev3.
    let home = path_str(&cli.home).to_owned();
    let (ok, out) = lode(args(&[
        "keys",
        "multisig",
        "team",
        "--threshold",
        "2",
        "--key",
        "dev0",
        "--key",
        "dev1",
        "--key",
        "dev2",
        "--home",
        &home,
    ]))
    .await;
    assert!(ok, "{out}");
    let team = out
        .lines()
        .find_map(|l| l.strip_prefix("address:"))
        .map(|a| a.trim().to_owned())
        .expect("multisig address");
    cli.tx("dev3", &["send", "--to", &team, "--amount", "1000000"])
        .await;

    let recipient = KeyFile::generate("recipient").expect("key").address;
    let doc = dir.path().join("spend.json");
    let doc_s = path_str(&doc).to_owned();
    let (ok, out) = lode(args(&[
        "tx", "send", "--from", "team", "--to", &recipient, "--amount", "777", "--fee", "100000",
        "--out", &doc_s, "--home", &home, "--node", &cli.node,
    ]))
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("needs 2 of 3 signatures"), "{out}");

    let sign = |from: &str| {
        args(&[
            "tx", "multisig", "sign", &doc_s, "--from", from, "--home", &home,
        ])
    };
    let broadcast = args(&[
        "tx",
        "multisig",
        "broadcast",
        &doc_s,
        "--node",
        &cli.node,
        "--wait",
    ]);
    // A key outside the multisig cannot sign; one signature is not enough to broadcast.
    let (ok, out) = lode(sign("dev3")).await;
    assert!(!ok && out.contains("not part of this multisig"), "{out}");
    let (ok, out) = lode(sign("dev0")).await;
    assert!(ok && out.contains("1 of 2"), "{out}");
    let (ok, out) = lode(broadcast.clone()).await;
    assert!(!ok, "broadcast with one of two signatures: {out}");
    let (ok, out) = lode(sign("dev2")).await;
    assert!(ok && out.contains("2 of 2"), "{out}");
    let (ok, out) = lode(broadcast).await;
    assert!(ok && out.contains("result: ok"), "{out}");
    assert_eq!(balance_of(&cli, &recipient).await, 777);
    // The multisig account paid the amount and the fee once; every node holds the same chain and the same
    // balances for every account the test touched.
    let mut touched: Vec<lode_state::Address> = [&dev0, &dev1, &dev2, &team, &recipient]
        .iter()
        .map(|a| a.parse().expect("address"))
        .collect();
    touched.push(crate::workload::dev_address(&net, 3));
    let held = crate::workload::assert_nodes_agree(&net, &touched).await;
    assert_eq!(
        held[3],
        (1_000_000 - 777 - 100_000, 1),
        "the multisig account"
    );
    assert_eq!(held[4], (777, 0), "the recipient");
    net.stop_all();
}
