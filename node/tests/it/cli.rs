//! `lode init` and `lode keys`.

use std::os::unix::fs::PermissionsExt;

use lode_genesis::Genesis;
use lode_node::{config::Config, keys::KeyFile};

use crate::support::{init_home, lode_ok, path_str, run_lode};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn init_writes_config_keys_and_a_one_validator_genesis_funding_dev0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    init_home(&home);

    let config = Config::load(&home.join("config.toml")).expect("config");
    assert_eq!(config.abci.listen.to_string(), "127.0.0.1:26658");
    for key in ["node_key", "validator_key", "dev0"] {
        let path = home.join("keys").join(format!("{key}.json"));
        assert_eq!(mode(&path), 0o600, "{key}");
        KeyFile::load(&path).expect("valid key file");
    }
    let genesis = Genesis::load(home.join("genesis.json")).expect("valid genesis");
    assert_eq!(genesis.chain_id, "lode-test-1");
    assert_eq!(genesis.validators.len(), 1);
    let validator = KeyFile::load(&home.join("keys/validator_key.json")).expect("validator key");
    assert_eq!(genesis.validators[0].pub_key, validator.public_key);
    // The only validator holds all the power (10^9) by the proof-of-useful-compute rule.
    assert_eq!(genesis.validators[0].power, 1_000_000_000);
    let dev0 = KeyFile::load(&home.join("keys/dev0.json")).expect("dev0 key");
    assert_eq!(genesis.app_state.balances.len(), 1);
    assert_eq!(genesis.app_state.balances[0].address, dev0.address);
}

#[test]
fn init_refuses_an_existing_home_unless_forced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    init_home(home);
    let before = std::fs::read_to_string(home.join("genesis.json")).expect("genesis");

    let out = run_lode(&["init", "--home", path_str(home)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(
        std::fs::read_to_string(home.join("genesis.json")).expect("genesis"),
        before
    );

    lode_ok(&["init", "--home", path_str(home), "--force"]);
    assert_ne!(
        std::fs::read_to_string(home.join("genesis.json")).expect("genesis"),
        before
    );
}

#[test]
fn init_with_an_invalid_chain_id_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let out = run_lode(&["init", "--home", path_str(&home), "--chain-id", "bad id"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chain_id"));
    assert!(!home.join("config.toml").exists());
    assert!(!home.join("keys").exists());
}

#[test]
fn keys_add_list_and_show_never_print_the_private_key_unless_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = path_str(dir.path());
    let added = lode_ok(&["keys", "add", "alice", "--home", home]);
    let path = dir.path().join("keys/alice.json");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("keys")), 0o700);
    let key = KeyFile::load(&path).expect("key");
    assert!(added.contains(&key.address));
    assert!(!added.contains(&key.private_key));

    lode_ok(&["keys", "add", "bob", "--home", home]);
    let listed = lode_ok(&["keys", "list", "--home", home]);
    let names: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert!(!listed.contains(&key.private_key));

    let shown = lode_ok(&["keys", "show", "alice", "--home", home]);
    assert!(shown.contains(&key.public_key) && !shown.contains(&key.private_key));
    let shown = lode_ok(&["keys", "show", "alice", "--home", home, "--private"]);
    assert!(shown.contains(&key.private_key));
}

#[test]
fn keys_add_refuses_a_duplicate_name_and_keeps_the_old_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = path_str(dir.path());
    lode_ok(&["keys", "add", "alice", "--home", home]);
    let before = std::fs::read_to_string(dir.path().join("keys/alice.json")).expect("key");
    let out = run_lode(&["keys", "add", "alice", "--home", home]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("keys/alice.json")).expect("key"),
        before
    );
}

#[test]
fn keys_add_refuses_a_name_that_is_not_a_plain_file_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_lode(&["keys", "add", "../escape", "--home", path_str(dir.path())]);
    assert!(!out.status.success());
    assert!(!dir.path().join("escape.json").exists());
}

#[test]
fn abci_without_an_initialised_home_fails_with_a_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_lode(&[
        "abci",
        "--home",
        path_str(dir.path()),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lode init"));
}

#[test]
fn start_refuses_to_run_when_its_consensus_port_is_taken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    init_home(&home);
    let ports = lode_test_ports::PortBlock::reserve();
    let path = home.join("config.toml");
    let mut config = Config::load(&path).expect("config");
    let at = |i| std::net::SocketAddr::from(([127, 0, 0, 1], ports.port(i)));
    config.p2p.listen = at(0);
    config.p2p.gossip_listen = at(1);
    config.grpc.listen = at(2);
    config.abci.listen = at(3);
    config.save(&path).expect("save config");
    let _squatter = std::net::TcpListener::bind(at(0)).expect("bind the consensus port first");

    let out = run_lode(&["start", "--home", path_str(&home)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "lode start ran without its consensus port"
    );
    assert!(
        stderr.contains(&format!("consensus p2p cannot listen on {}", at(0))),
        "{stderr}"
    );
}

#[test]
fn devnet_refuses_to_reuse_a_devnet_whose_genesis_this_version_refuses_and_says_to_reset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = lode_test_ports::PortBlock::reserve();
    lode_ok(&[
        "testnet",
        "init",
        "--validators",
        "1",
        "--out",
        path_str(dir.path()),
        "--base-port",
        &ports.base().to_string(),
    ]);
    // What an older lode wrote: a genesis validator that no self-bond backs.
    let path = dir.path().join("node0/genesis.json");
    let mut g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    g["app_state"]["validators"] = serde_json::json!([]);
    std::fs::write(&path, g.to_string()).expect("write");
    let out = run_lode(&["devnet", "--dir", path_str(dir.path())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("start over with --reset"), "{err}");
    // Nothing was started: the node's log was never created.
    assert!(!dir.path().join("node0/node.log").exists());
}
