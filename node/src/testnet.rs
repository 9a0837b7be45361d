//! Local multi-validator networks: `lode testnet init` lays out the homes, `lode devnet` runs them.
//!
//! ```text
//! <dir>/node<i>/          a full node home (config.toml, genesis.json, keys/, data/)
//! <dir>/node0/keys/dev<k>.json   funded development accounts
//! ```

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use eyre::{ensure, WrapErr};
use lode_genesis::{Genesis, GenesisValidator};
use lode_state::genesis::{AppState, GenesisBalance, GenesisStakingValidator};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::{
    config::Config,
    home::{Home, NODE_KEY, VALIDATOR_KEY},
    keys::{self, KeyFile},
};

/// Balance of each dev account, in base units.
pub const DEV_BALANCE: u128 = 1_000_000_000_000_000;
/// Self-bond of each validator, in units of `staking.power_reduction`. Consensus power follows from the
/// self-bonds by the proof-of-useful-compute rule (equal bonds: equal shares of 10^9).
pub const VALIDATOR_BOND_UNITS: u64 = 10;
/// Name of each node's validator operator key (in its keys directory): the account that self-bonds at
/// genesis and signs the validator's staking txs (`unjail`).
pub const OPERATOR_KEY: &str = "operator";
/// Balance of each operator account beyond its self-bond (for fees).
pub const OPERATOR_SPARE: u128 = 1_000_000_000_000;

/// A genesis validator as staking and consensus see it: the entry of the genesis file's `validators` (its
/// power still 0: [`Genesis::set_validator_powers`] computes every power once all are known), the staking
/// validator in `app_state.validators` (self-bonding `units` of `params.staking`'s power_reduction from
/// `operator`), and the operator's balance (the self-bond plus `spare`).
pub fn genesis_validator(
    moniker: &str,
    consensus_key_hex: &str,
    operator: &str,
    units: u64,
    spare: u128,
    params: &lode_state::Params,
) -> eyre::Result<(GenesisValidator, GenesisStakingValidator, GenesisBalance)> {
    let self_bond = u128::from(units)
        .checked_mul(params.staking.power_reduction)
        .ok_or_else(|| eyre::eyre!("self-bond overflows"))?;
    Ok((
        GenesisValidator {
            name: moniker.to_string(),
            pub_key: consensus_key_hex.to_string(),
            power: 0,
        },
        GenesisStakingValidator {
            operator: operator.to_string(),
            moniker: moniker.to_string(),
            consensus_key: consensus_key_hex.to_string(),
            self_bond: self_bond.to_string(),
        },
        GenesisBalance {
            address: operator.to_string(),
            amount: self_bond
                .checked_add(spare)
                .ok_or_else(|| eyre::eyre!("operator balance overflows"))?
                .to_string(),
        },
    ))
}

/// What to create.
#[derive(Debug, Clone)]
pub struct TestnetSpec {
    /// Chain id.
    pub chain_id: String,
    /// Number of validators.
    pub validators: usize,
    /// Number of funded dev accounts.
    pub dev_accounts: usize,
    /// First port; node i uses `base + 10i` (consensus), `+1` (gossip), `+2` (gRPC), `+3` (abci) and `+4`
    /// (Prometheus metrics).
    /// 0 picks free ports from the operating system.
    pub base_port: u16,
    /// Consensus propose timeout in ms (the other timeouts follow from it).
    pub timeout_propose_ms: u64,
    /// The BIP-39 mnemonic the dev accounts are derived from (`dev<k>` is account k on Lode's path, see
    /// [`crate::hd`]); `None` generates random keys.
    pub mnemonic: Option<String>,
}

/// The file describing a testnet for scripts: chain id, dev accounts with their keys, every node's
/// addresses (written by [`create`] into the testnet's directory).
pub const MANIFEST: &str = "devnet.json";

/// One created node.
#[derive(Debug, Clone)]
pub struct TestnetNode {
    /// Its home.
    pub home: PathBuf,
    /// Its gRPC address.
    pub grpc: SocketAddr,
}

/// The home of node `i` under `dir`.
pub fn node_home(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("node{i}"))
}

fn ports(spec: &TestnetSpec) -> eyre::Result<Vec<[SocketAddr; 5]>> {
    let lo = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    if spec.base_port != 0 {
        return (0..spec.validators)
            .map(|i| {
                let b = u16::try_from(usize::from(spec.base_port) + 10 * i)
                    .ok()
                    .filter(|b| *b <= u16::MAX - 5)
                    .ok_or_else(|| {
                        eyre::eyre!("--base-port too high for {} nodes", spec.validators)
                    })?;
                Ok([lo(b), lo(b + 1), lo(b + 2), lo(b + 3), lo(b + 4)])
            })
            .collect();
    }
    // Hold every listener until all are bound, so no two ports collide.
    let listeners: Vec<TcpListener> = (0..spec.validators * 5)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<_, _>>()?;
    Ok(addrs
        .chunks(5)
        .map(|c| [c[0], c[1], c[2], c[3], c[4]])
        .collect())
}

/// Creates `spec.validators` homes under `dir` (which must not contain a `node0` yet) sharing one genesis.
pub fn create(dir: &Path, spec: &TestnetSpec) -> eyre::Result<Vec<TestnetNode>> {
    ensure!(spec.validators >= 1, "need at least one validator");
    ensure!(
        !node_home(dir, 0).exists(),
        "{} already holds a testnet",
        dir.display()
    );
    let ports = ports(spec)?;
    let validator_keys: Vec<KeyFile> = (0..spec.validators)
        .map(|_| KeyFile::generate(VALIDATOR_KEY))
        .collect::<Result<_, _>>()?;
    // The mnemonic is checked (and its seed computed) once, before anything is written.
    let seed = spec
        .mnemonic
        .as_deref()
        .map(|words| crate::hd::seed(words, ""))
        .transpose()?;
    let dev_keys: Vec<KeyFile> = (0..spec.dev_accounts)
        .map(|k| {
            let name = format!("dev{k}");
            match &seed {
                None => KeyFile::generate(&name),
                Some(seed) => {
                    let i = u32::try_from(k).unwrap_or(u32::MAX);
                    let key = crate::hd::seed_account_key(seed, i)?;
                    Ok(KeyFile::from_signing_key(&name, &key))
                }
            }
        })
        .collect::<eyre::Result<_>>()?;
    let operator_keys: Vec<KeyFile> = (0..spec.validators)
        .map(|_| KeyFile::generate(OPERATOR_KEY))
        .collect::<Result<_, _>>()?;
    let params = lode_state::Params::default();
    let mut validators = Vec::new();
    let mut staking = Vec::new();
    let mut balances: Vec<GenesisBalance> = dev_keys
        .iter()
        .map(|k| GenesisBalance {
            address: k.address.clone(),
            amount: DEV_BALANCE.to_string(),
        })
        .collect();
    for (i, (k, op)) in validator_keys.iter().zip(&operator_keys).enumerate() {
        let (v, sv, b) = genesis_validator(
            &format!("node{i}"),
            &k.public_key,
            &op.address,
            VALIDATOR_BOND_UNITS,
            OPERATOR_SPARE,
            &params,
        )?;
        validators.push(v);
        staking.push(sv);
        balances.push(b);
    }
    let mut genesis = Genesis {
        chain_id: spec.chain_id.clone(),
        genesis_time: OffsetDateTime::now_utc()
            .replace_nanosecond(0)?
            .format(&Rfc3339)?,
        initial_height: 1,
        validators,
        app_state: AppState {
            balances,
            validators: staking,
            params,
            compute_power: None,
        },
    };
    genesis.set_validator_powers()?;
    let issues = genesis.validate();
    if !issues.is_empty() {
        return Err(lode_genesis::GenesisError::Invalid(issues).into());
    }
    let propose = spec.timeout_propose_ms;
    let mut nodes = Vec::new();
    for (i, vkey) in validator_keys.iter().enumerate() {
        let home = Home::new(node_home(dir, i));
        std::fs::create_dir_all(home.root())
            .wrap_err_with(|| format!("cannot create {}", home.root().display()))?;
        keys::create_keys_dir(&home.keys_dir())?;
        vkey.save_new(&home.key_path(VALIDATOR_KEY))?;
        operator_keys[i].save_new(&home.key_path(OPERATOR_KEY))?;
        KeyFile::generate(NODE_KEY)?.save_new(&home.key_path(NODE_KEY))?;
        if i == 0 {
            for k in &dev_keys {
                k.save_new(&home.key_path(&k.name))?;
            }
        }
        genesis.save(home.genesis_path())?;
        let mut config = Config {
            moniker: format!("node{i}"),
            ..Config::default()
        };
        config.p2p.listen = ports[i][0];
        config.p2p.gossip_listen = ports[i][1];
        config.grpc.listen = ports[i][2];
        config.abci.listen = ports[i][3];
        // Local networks serve Prometheus metrics by default.
        config.metrics.listen = Some(ports[i][4]);
        // ... and let any web page on this machine call their API over gRPC-web (the node holds no keys; a
        // page can only read and broadcast txs signed elsewhere).
        config.grpc.cors_origins = vec!["*".into()];
        for (j, p) in ports.iter().enumerate() {
            if j != i {
                config.p2p.persistent_peers.push(p[0]);
                config.p2p.gossip_peers.push(p[1]);
            }
        }
        config.consensus.timeout_propose_ms = propose;
        config.consensus.timeout_prevote_ms = propose.div_ceil(2);
        config.consensus.timeout_precommit_ms = propose.div_ceil(2);
        config.consensus.timeout_delta_ms = propose.div_ceil(3);
        // Local networks halt on a broken invariant rather than carry it forward.
        config.app.check_invariants = true;
        config.save(&home.config_path())?;
        nodes.push(TestnetNode {
            home: home.root().to_path_buf(),
            grpc: ports[i][2],
        });
    }
    write_manifest(dir, spec.mnemonic.as_deref())?;
    Ok(nodes)
}

/// Writes `<dir>/devnet.json` ([`MANIFEST`]) from the testnet's homes: chain id, the mnemonic the dev
/// accounts come from (null for random keys), each dev account (name, address, keys, derivation path,
/// balance, key file) and each node (home, gRPC URL, consensus, gossip, ABCI and metrics addresses).
/// Replaces an older file atomically.
pub fn write_manifest(dir: &Path, mnemonic: Option<&str>) -> eyre::Result<PathBuf> {
    let home0 = Home::new(node_home(dir, 0));
    let genesis = lode_genesis::Genesis::load(home0.genesis_path())?;
    let accounts: Vec<serde_json::Value> = dev_keys(dir)?
        .iter()
        .map(|k| {
            let index = k
                .name
                .strip_prefix("dev")
                .and_then(|n| n.parse::<u32>().ok());
            let path = match (mnemonic, index) {
                (Some(_), Some(i)) => crate::hd::account_path(i)
                    .ok()
                    .map(|p| crate::hd::path_string(&p)),
                _ => None,
            };
            serde_json::json!({
                "name": k.name,
                "address": k.address,
                "public_key": k.public_key,
                "private_key": k.private_key,
                "derivation_path": path,
                "balance": DEV_BALANCE.to_string(),
                "key_file": home0.key_path(&k.name),
            })
        })
        .collect();
    let mut nodes = Vec::new();
    for i in 0.. {
        let home = Home::new(node_home(dir, i));
        if !home.config_path().exists() {
            break;
        }
        let c = Config::load(&home.config_path())?;
        nodes.push(serde_json::json!({
            "index": i,
            "moniker": c.moniker,
            "home": home.root(),
            "grpc": format!("http://{}", c.grpc.listen),
            "consensus": c.p2p.listen.to_string(),
            "gossip": c.p2p.gossip_listen.to_string(),
            "abci": c.abci.listen.to_string(),
            "metrics": c.metrics.listen.map(|m| format!("http://{m}/metrics")),
            "explorer": c.grpc.explorer.then(|| format!("http://{}/explorer/", c.grpc.listen)),
            "log": home.root().join("node.log"),
        }));
    }
    let doc = serde_json::json!({
        "chain_id": genesis.chain_id,
        "mnemonic": mnemonic,
        "accounts": accounts,
        "nodes": nodes,
    });
    let path = dir.join(MANIFEST);
    let tmp = dir.join(format!("{MANIFEST}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(&doc)?)
        .wrap_err_with(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// The mnemonic recorded in `<dir>/devnet.json`, if the file exists and names one.
pub fn manifest_mnemonic(dir: &Path) -> Option<String> {
    let text = crate::home::read_text(&dir.join(MANIFEST)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("mnemonic")?.as_str().map(str::to_owned)
}

/// The nodes of an existing testnet under `dir`, in order.
pub fn load(dir: &Path) -> eyre::Result<Vec<TestnetNode>> {
    let mut nodes = Vec::new();
    for i in 0.. {
        let home = Home::new(node_home(dir, i));
        if !home.config_path().exists() {
            break;
        }
        let config = Config::load(&home.config_path())?;
        nodes.push(TestnetNode {
            home: home.root().to_path_buf(),
            grpc: config.grpc.listen,
        });
    }
    ensure!(!nodes.is_empty(), "no testnet under {}", dir.display());
    Ok(nodes)
}

/// The dev account keys of a testnet (in node 0's keys directory).
pub fn dev_keys(dir: &Path) -> eyre::Result<Vec<KeyFile>> {
    Ok(keys::list(&Home::new(node_home(dir, 0)).keys_dir())?
        .into_iter()
        .filter(|k| k.name.starts_with("dev"))
        .collect())
}

/// `$HOME/.lode-devnet`, the default devnet directory.
pub fn default_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from(".lode-devnet"),
        |h| PathBuf::from(h).join(".lode-devnet"),
    )
}
