//! Four in-process validators running the real application (RocksDB, LodeApp, the node's mempool and block
//! store) under Malachite. Validator 0 is byzantine: its proposals carry a badly signed transfer that its own
//! PrepareProposal would have dropped. Honest validators reject those blocks in ProcessProposal and prevote
//! nil; each such height completes in a later round with an honest proposer's valid block, and a valid
//! transfer submitted to an honest node is committed everywhere.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ed25519_consensus::SigningKey;
use lode_consensus::{
    Abci, AbciError, BlockStore, BlockTime, ConsensusConfig, Height, PrivateKey, Timeouts,
};
use lode_node::services::{
    app::AppAbci,
    block_store::RocksBlockStore,
    mempool::{Mempool, MempoolLimits},
};
use lode_state::genesis::{AppState, GenesisBalance};
use lode_state::tx::{address_of, sign_send};
use lode_state::LodeApp;
use lode_tests::ports::PortBlock;
use tendermint_proto::v0_38::abci::{
    request, response, Request, RequestQuery, Response, ResponsePrepareProposal,
};

const CHAIN: &str = "lode-byzantine-1";

/// A proposer that ignores its application's filtering and puts a badly signed tx first in every block.
struct Byzantine {
    honest: AppAbci,
    bad_tx: Bytes,
}

impl Abci for Byzantine {
    fn call(&self, req: Request) -> Result<Response, AbciError> {
        if let Some(request::Value::PrepareProposal(p)) = &req.value {
            let mut txs = vec![self.bad_tx.clone()];
            txs.extend(p.txs.iter().cloned());
            return Ok(Response {
                value: Some(response::Value::PrepareProposal(ResponsePrepareProposal {
                    txs,
                })),
            });
        }
        self.honest.call(req)
    }
}

fn balance(app: &LodeApp, address: &str) -> String {
    let r = app.query(RequestQuery {
        data: Bytes::from(address.to_owned()),
        path: "/account".into(),
        height: 0,
        prove: false,
    });
    let acct = <lode_proto::query::v1::Account as prost::Message>::decode(r.value.as_ref())
        .expect("account");
    acct.balance
}

/// Validator `i` of an in-process network on `addrs` (every other address a persistent peer), with short
/// timeouts, a fixed genesis time and its WAL under `dir`.
pub fn validator_config(
    dir: &std::path::Path,
    chain: &str,
    i: usize,
    addrs: &[std::net::SocketAddr],
    key: &PrivateKey,
    genesis: &[(lode_consensus::PublicKey, u64)],
    app_state_bytes: &Bytes,
) -> ConsensusConfig {
    ConsensusConfig {
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
        genesis_validators: genesis.to_vec(),
        genesis_time: BlockTime {
            seconds: 1_700_000_000,
            nanos: 0,
        },
        app_state_bytes: app_state_bytes.clone(),
        max_block_tx_bytes: 1 << 20,
        max_clock_drift: Duration::from_secs(10),
        value_sync: true,
        empty_block_interval: Duration::from_millis(100),
    }
}

/// A node's application, mempool and block store, opened under `dir`.
pub fn node_parts(
    dir: &std::path::Path,
    i: usize,
) -> (LodeApp, Arc<Mempool>, Arc<RocksBlockStore>) {
    let app = LodeApp::open(&dir.join(format!("data-{i}"))).expect("open");
    let mempool = Arc::new(Mempool::new(
        app.clone(),
        MempoolLimits {
            max_txs: 100,
            max_bytes: 1 << 20,
            max_tx_bytes: 1 << 16,
        },
    ));
    let store = Arc::new(RocksBlockStore::new(app.clone()));
    (app, mempool, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byzantine_proposers_badly_signed_block_is_rejected_and_heights_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sender = SigningKey::from([3u8; 32]);
    let app_state = AppState {
        balances: vec![GenesisBalance {
            address: address_of(&sender).to_string(),
            amount: "1000000000".into(),
        }],
        ..AppState::default()
    };
    let app_state_bytes = Bytes::from(serde_json::to_vec(&app_state).expect("json"));
    let recipient = address_of(&SigningKey::from([4u8; 32]));
    let mut bad_tx = sign_send(CHAIN, &sender, 0, 10_000, &recipient, 666);
    let last = bad_tx.len() - 1;
    bad_tx[last] ^= 1; // the signature is the tx's last field
    let good_tx = Bytes::from(sign_send(CHAIN, &sender, 0, 10_000, &recipient, 777));

    let keys: Vec<PrivateKey> = (0..4u8)
        .map(|i| PrivateKey::from_seed([i + 40; 32]))
        .collect();
    let genesis: Vec<_> = keys.iter().map(|k| (k.public_key(), 10u64)).collect();
    let ports = PortBlock::reserve();
    let addrs: Vec<std::net::SocketAddr> = (0..4)
        .map(|i| std::net::SocketAddr::from(([127, 0, 0, 1], ports.port(i))))
        .collect();
    let mut nodes = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let (app, mempool, store) = node_parts(dir.path(), i);
        let config = validator_config(
            dir.path(),
            CHAIN,
            i,
            &addrs,
            key,
            &genesis,
            &app_state_bytes,
        );
        let honest = AppAbci::new(app.clone(), mempool.clone());
        let handle = if i == 0 {
            let abci = Byzantine {
                honest,
                bad_tx: Bytes::from(bad_tx.clone()),
            };
            lode_consensus::run(config, Arc::new(abci), store.clone(), mempool.clone()).await
        } else {
            lode_consensus::run(config, Arc::new(honest), store.clone(), mempool.clone()).await
        }
        .expect("start consensus");
        nodes.push((app, mempool, store, handle));
    }

    // Node 2 (honest) holds the valid transfer; it is proposed when node 2's turn comes.
    nodes[2].1.add(good_tx).expect("valid tx admitted");

    let target = Height(8);
    for (i, (.., handle)) in nodes.iter().enumerate() {
        let mut rx = handle.decided();
        tokio::time::timeout(Duration::from_secs(120), rx.wait_for(|d| *d >= target))
            .await
            .unwrap_or_else(|_| panic!("node {i} did not reach height {target}"))
            .expect("decided channel");
    }

    let byzantine = keys[0].public_key();
    let mut later_rounds = 0;
    for height in 1..=target.0 {
        let decided: Vec<_> = nodes
            .iter()
            .map(|(_, _, s, _)| {
                s.get_decided(Height(height))
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
        let block = &decided[0].block;
        assert!(
            block.txs().iter().all(|t| t.as_ref() != bad_tx.as_slice()),
            "the badly signed tx was decided at height {height}"
        );
        assert_ne!(
            block.header().proposer,
            lode_consensus::Address::from_public_key(&byzantine),
            "the byzantine proposer's block was decided at height {height}"
        );
        if decided[0].certificate.round.as_i64() > 0 {
            later_rounds += 1;
        }
    }
    assert!(
        later_rounds > 0,
        "the byzantine validator never led round 0 in {} heights",
        target.0
    );
    for (i, (app, ..)) in nodes.iter().enumerate() {
        assert_eq!(balance(app, &recipient.to_string()), "777", "node {i}");
    }
    for (.., handle) in nodes {
        handle.shutdown().await;
    }
}
