//! Proof of useful compute through the `lode` CLI on a running validator: a validator operator links a
//! registered provider (the provider's consent signed with `--provider-key`), the link shows in
//! `lode query staking link` and `lode query staking power`, a second link of the same provider is refused
//! with its code, and the operator unlinks it.

use crate::support::lode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_links_and_unlinks_a_provider_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut net, cli) = crate::provider_daemon::market_devnet(dir.path(), 1, 10, 12, 30).await;
    // The devnet's validator is a staking validator from genesis, its operator key in node 0's home.
    let dev0 = cli.address("operator").await;
    let dev1 = cli.address("dev1").await;
    cli.tx(
        "dev1",
        &[
            "market",
            "register-provider",
            "--moniker",
            "gpu-box",
            "--device",
            "cpu:1024:1",
            "--ask",
            "5",
            "--bond",
            "1000000",
        ],
    )
    .await;

    let nonce = cli.query(&["staking", "link", &dev1]).await;
    assert_eq!(nonce["provider_nonce"], 0, "{nonce}");
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
    assert_eq!(link["validator"], dev0.as_str(), "{link}");
    assert_eq!(link["provider"], dev1.as_str(), "{link}");
    assert_eq!(link["provider_nonce"], 1, "{link}");
    let power = cli.query(&["staking", "power"]).await;
    let v0 = power["validators"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["operator"] == dev0.as_str()))
        .unwrap_or_else(|| panic!("dev0 not listed: {power}"));
    assert_eq!(v0["provider"], dev1.as_str(), "{power}");
    assert_eq!(
        v0["power"], 1_000_000_000u64,
        "the only staking validator: {power}"
    );

    // The same provider again (a spent nonce, and already linked): refused with 46, nothing changes.
    let home = cli.home.to_string_lossy().into_owned();
    let out = tokio::task::spawn_blocking({
        let (dev1, node) = (dev1.clone(), cli.node.clone());
        move || {
            lode()
                .args([
                    "tx",
                    "staking",
                    "link-provider",
                    "--provider",
                    &dev1,
                    "--provider-key",
                    "dev1",
                    "--nonce",
                    "1",
                    "--from",
                    "operator",
                    "--home",
                    &home,
                    "--node",
                    &node,
                    "--wait",
                ])
                .output()
                .expect("run lode")
        }
    })
    .await
    .expect("lode");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("code 46"), "{text}");

    cli.tx(
        "operator",
        &["staking", "unlink-provider", "--provider", &dev1],
    )
    .await;
    let link = cli.query(&["staking", "link", &dev1]).await;
    assert_eq!(link["validator"], "", "{link}");
    net.stop_all();
}
