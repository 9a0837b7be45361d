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

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_lode()"),
        ("zsh", "#compdef lode"),
        ("fish", "complete -c lode"),
    ] {
        let out = lode_ok(&["completions", shell]);
        assert!(out.contains(marker), "{shell}: {out:.200}");
        // Subcommands and global options are completed.
        assert!(out.contains("devnet") && out.contains("output"), "{shell}");
    }
    let out = run_lode(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Dev account k derived outside the CLI's path: BIP-39 seed (PBKDF2-HMAC-SHA512), then SLIP-0010 ed25519
/// along `m/44'/7337'/0'/0'/k'`, written out here step by step.
fn derived_dev_address(words: &str, k: u32) -> String {
    use hmac::{Hmac, Mac};
    type H = Hmac<sha2::Sha512>;
    let mut seed = [0u8; 64];
    // PBKDF2 with one 64-byte block: U1 = HMAC(P, S || 1), Ui = HMAC(P, Ui-1), T = xor of all.
    let mut u = {
        let mut m = H::new_from_slice(words.as_bytes()).expect("hmac");
        m.update(b"mnemonic");
        m.update(&1u32.to_be_bytes());
        m.finalize().into_bytes()
    };
    seed.copy_from_slice(&u);
    for _ in 1..2048 {
        let mut m = H::new_from_slice(words.as_bytes()).expect("hmac");
        m.update(&u);
        u = m.finalize().into_bytes();
        for (s, x) in seed.iter_mut().zip(u.iter()) {
            *s ^= x;
        }
    }
    let mut m = H::new_from_slice(b"ed25519 seed").expect("hmac");
    m.update(&seed);
    let mut i = m.finalize().into_bytes();
    for step in [44u32, 7337, 0, 0, k] {
        let mut m = H::new_from_slice(&i[32..]).expect("hmac");
        m.update(&[0]);
        m.update(&i[..32]);
        m.update(&(step | 0x8000_0000).to_be_bytes());
        i = m.finalize().into_bytes();
    }
    let key: [u8; 32] = i[..32].try_into().expect("32");
    KeyFile::from_signing_key("x", &ed25519_consensus::SigningKey::from(key)).address
}

#[test]
fn testnet_init_derives_dev_accounts_from_the_devnet_mnemonic_and_describes_itself_in_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, r) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("r"),
    );
    let init = |out: &std::path::Path, extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "testnet",
            "init",
            "--validators",
            "2",
            "--dev-accounts",
            "3",
            "--base-port",
            "0",
            "--out",
            path_str(out),
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        let stdout = lode_ok(&args);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
    };
    let ja = init(&a, &[]);
    let jb = init(&b, &[]);
    let jr = init(&r, &["--random-keys"]);

    // The document printed is the devnet.json written, and it names every node's addresses.
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("devnet.json")).expect("devnet.json"))
            .expect("json");
    assert_eq!(file, ja);
    assert_eq!(ja["chain_id"], "lode-devnet-1");
    assert_eq!(ja["nodes"].as_array().expect("nodes").len(), 2);
    for n in ja["nodes"].as_array().expect("nodes") {
        let grpc = n["grpc"].as_str().expect("grpc");
        assert!(grpc.starts_with("http://127.0.0.1:"), "{grpc}");
        for k in ["consensus", "gossip", "abci"] {
            n[k].as_str()
                .expect(k)
                .parse::<std::net::SocketAddr>()
                .expect("address");
        }
    }

    // The same addresses on every machine: derived from the documented mnemonic, account k at
    // m/44'/7337'/0'/0'/k'.
    let words = lode_node::hd::DEVNET_MNEMONIC;
    assert_eq!(ja["mnemonic"], words);
    let accounts = ja["accounts"].as_array().expect("accounts");
    assert_eq!(accounts.len(), 3);
    for (k, acc) in accounts.iter().enumerate() {
        assert_eq!(acc["name"], format!("dev{k}"));
        assert_eq!(acc["derivation_path"], format!("m/44'/7337'/0'/0'/{k}'"));
        assert_eq!(
            acc["address"],
            derived_dev_address(words, k as u32),
            "dev{k}"
        );
        assert_eq!(acc["address"], jb["accounts"][k]["address"]);
        // The key file on disk holds the same key.
        let key = KeyFile::load(std::path::Path::new(
            acc["key_file"].as_str().expect("key file"),
        ))
        .expect("key");
        assert_eq!(key.address, acc["address"]);
        // The genesis funds it.
        let g = Genesis::load(a.join("node0/genesis.json")).expect("genesis");
        assert!(g
            .app_state
            .balances
            .iter()
            .any(|b| b.address == key.address));
    }
    // --random-keys: other addresses, and no mnemonic recorded.
    assert!(jr["mnemonic"].is_null());
    assert_ne!(jr["accounts"][0]["address"], ja["accounts"][0]["address"]);
    assert!(jr["accounts"][0]["derivation_path"].is_null());
}

#[test]
fn a_bad_mnemonic_is_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("net");
    for words in [
        // Checksum wrong.
        "test test test test test test test test test test test test",
        // Not a word of the list.
        "test test test test test test test test test test test lodex",
    ] {
        let out = run_lode(&[
            "testnet",
            "init",
            "--validators",
            "1",
            "--base-port",
            "0",
            "--out",
            path_str(&out_dir),
            "--mnemonic",
            words,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("not a BIP-39 mnemonic"), "{err}");
        assert!(!out_dir.join("node0").exists());
    }
    // --mnemonic and --random-keys together are a usage error.
    let out = run_lode(&[
        "testnet",
        "init",
        "--out",
        path_str(&out_dir),
        "--random-keys",
        "--mnemonic",
        lode_node::hd::DEVNET_MNEMONIC,
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn keys_commands_print_json_that_scripts_can_parse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    init_home(&home);
    let h = path_str(&home);
    let added: serde_json::Value = serde_json::from_str(&lode_ok(&[
        "keys", "add", "alice", "--home", h, "-o", "json",
    ]))
    .expect("json");
    assert_eq!(added["name"], "alice");
    assert!(added.get("private_key").is_none());
    let list: serde_json::Value =
        serde_json::from_str(&lode_ok(&["keys", "list", "--home", h, "-o", "json"])).expect("json");
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|k| k["name"].as_str().expect("name"))
        .collect();
    assert!(
        names.contains(&"alice") && names.contains(&"dev0"),
        "{names:?}"
    );
    let shown: serde_json::Value = serde_json::from_str(&lode_ok(&[
        "keys",
        "show",
        "alice",
        "--home",
        h,
        "--private",
        "-o",
        "json",
    ]))
    .expect("json");
    assert_eq!(shown["address"], added["address"]);
    assert_eq!(shown["private_key"].as_str().expect("private").len(), 64);
    // -o takes json or text only.
    let out = run_lode(&["keys", "list", "--home", h, "-o", "yaml"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn devnet_in_json_prints_its_description_then_one_line_per_height_and_stops_on_sigterm() {
    use std::io::BufReader;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().expect("tempdir");
    let net = dir.path().join("net");
    let mut child = crate::support::lode()
        .args([
            "devnet",
            "--validators",
            "1",
            "--base-port",
            "0",
            "--timeout-propose-ms",
            "300",
            "--dir",
            path_str(&net),
            "-o",
            "json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let docs = serde_json::Deserializer::from_reader(BufReader::new(stdout))
            .into_iter::<serde_json::Value>();
        for d in docs {
            if tx.send(d.map_err(|e| e.to_string())).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let next = || {
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the devnet printed nothing in time")
            .expect("stdout is a stream of JSON documents")
    };
    let manifest = next();
    let heights: Vec<u64> = (0..2)
        .map(|_| next()["height"].as_u64().expect("a height line"))
        .collect();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("sigterm");
    let stop = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if stop.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the devnet did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(heights[0] >= 1 && heights[1] > heights[0], "{heights:?}");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(net.join("devnet.json")).expect("file"))
            .expect("json");
    assert_eq!(manifest, file);
    assert_eq!(
        manifest["accounts"][0]["address"],
        derived_dev_address(lode_node::hd::DEVNET_MNEMONIC, 0)
    );
}
