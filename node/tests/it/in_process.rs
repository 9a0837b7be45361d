//! Four in-process validators on the real application (RocksDB, LodeApp, the node's mempool and block
//! store), each with its consensus config; the tests start consensus on them with the application (and
//! network codec) they need.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ed25519_consensus::SigningKey;
use lode_consensus::{BlockTime, ConsensusConfig, PrivateKey, Timeouts};
use lode_node::services::{
    block_store::RocksBlockStore,
    mempool::{Mempool, MempoolLimits},
};
use lode_state::genesis::{AppState, GenesisBalance};
use lode_state::tx::address_of;
use lode_state::LodeApp;
use lode_test_ports::PortBlock;

/// One validator, not started yet.
pub struct Validator {
    pub key: PrivateKey,
    pub config: ConsensusConfig,
    pub app: LodeApp,
    pub mempool: Arc<Mempool>,
    pub store: Arc<RocksBlockStore>,
}

/// Four validators of equal power under `dir` on a reserved loopback port block, every other validator a
/// persistent peer, with short timeouts, a fixed genesis time and `sender` funded in genesis. Validator keys
/// are derived from `key_seed`. The port block must live as long as the validators run.
pub fn four_validators(
    dir: &Path,
    chain: &str,
    key_seed: u8,
    sender: &SigningKey,
) -> (PortBlock, Vec<Validator>) {
    let mut app_state = AppState {
        balances: vec![GenesisBalance {
            address: address_of(sender).to_string(),
            amount: "1000000000".into(),
        }],
        ..AppState::default()
    };
    let keys: Vec<PrivateKey> = (0..4u8)
        .map(|i| PrivateKey::from_seed([i + key_seed; 32]))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        app_state.add_self_bonded_validator(&format!("node-{i}"), &k.public_key().0, 10);
    }
    let app_state_bytes = Bytes::from(serde_json::to_vec(&app_state).expect("json"));
    // Equal self-bonds: equal shares of the total power (the proof-of-useful-compute rule).
    let set = lode_state::genesis::validator_set(&app_state).expect("genesis set");
    let genesis: Vec<_> = keys
        .iter()
        .map(|k| {
            let p = set
                .iter()
                .find(|(key, _)| *key == k.public_key().0)
                .map(|(_, p)| *p)
                .expect("in the set");
            (k.public_key(), p)
        })
        .collect();
    let ports = PortBlock::reserve();
    let addrs: Vec<SocketAddr> = (0..4)
        .map(|i| SocketAddr::from(([127, 0, 0, 1], ports.port(i))))
        .collect();
    let validators = keys
        .into_iter()
        .enumerate()
        .map(|(i, key)| {
            let app = LodeApp::open(&dir.join(format!("data-{i}"))).expect("open");
            let mempool = Arc::new(Mempool::new(
                app.clone(),
                MempoolLimits {
                    max_txs: 100,
                    max_bytes: 1 << 20,
                    max_tx_bytes: 1 << 16,
                    max_txs_per_sender: 100,
                },
            ));
            let store = Arc::new(RocksBlockStore::new(app.clone()));
            let config = ConsensusConfig {
                moniker: format!("node-{i}"),
                chain_id: chain.into(),
                listen_addr: addrs[i],
                persistent_peers: addrs
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, a)| *a)
                    .collect(),
                timeouts: Timeouts {
                    propose: Duration::from_millis(1000),
                    prevote: Duration::from_millis(500),
                    precommit: Duration::from_millis(500),
                    delta: Duration::from_millis(250),
                },
                wal_dir: dir.join(format!("wal-{i}")),
                signing_key: key.clone(),
                node_key: None,
                genesis_validators: genesis.clone(),
                genesis_time: BlockTime {
                    seconds: 1_700_000_000,
                    nanos: 0,
                },
                app_state_bytes: app_state_bytes.clone(),
                max_block_tx_bytes: 1 << 20,
                max_clock_drift: Duration::from_secs(10),
                value_sync: true,
                empty_block_interval: Duration::from_millis(100),
                min_block_interval: Duration::ZERO,
                clock_offset_ms: 0,
                initial_height: 1,
            };
            Validator {
                key,
                config,
                app,
                mempool,
                store,
            }
        })
        .collect();
    (ports, validators)
}

/// Waits, at most two minutes, until the validator behind `handle` has decided `height`. Its application is
/// initialised only once consensus has started it, so a test adds txs to a mempool after height 1.
pub async fn wait_decided(
    handle: &lode_consensus::Handle,
    height: lode_consensus::Height,
    who: &str,
) {
    let mut rx = handle.decided();
    tokio::time::timeout(Duration::from_secs(120), rx.wait_for(|d| *d >= height))
        .await
        .unwrap_or_else(|_| panic!("{who} did not reach height {height}"))
        .expect("decided channel");
}

/// The block every one of `stores` decided at `height`, after checking that they all decided the same one.
pub fn agreed_decision<'a>(
    stores: impl IntoIterator<Item = &'a Arc<RocksBlockStore>>,
    height: u64,
) -> lode_consensus::DecidedBlock {
    use lode_consensus::BlockStore;
    let decided: Vec<_> = stores
        .into_iter()
        .map(|s| {
            s.get_decided(lode_consensus::Height(height))
                .expect("store")
                .expect("decided block")
        })
        .collect();
    for d in &decided[1..] {
        assert_eq!(
            d.block, decided[0].block,
            "nodes disagree at height {height}"
        );
    }
    decided.into_iter().next().expect("at least one store")
}
