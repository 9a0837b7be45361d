//! Four validators, each with its own in-memory kv application, decide blocks over loopback libp2p.
//! Validator 0 is byzantine at the application level: its mempool hands it a tx that every honest
//! ProcessProposal rejects, so its proposals get nil prevotes and later rounds decide instead.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use lode_consensus::{
    Abci, AbciError, BlockStore, BlockTime, ConsensusConfig, Height, InMemoryBlockStore, Mempool,
    PrivateKey, Timeouts,
};
use lode_test_ports::PortBlock;
use sha2::{Digest, Sha256};
use tendermint_proto::v0_38::abci::{
    request, response, Request, Response, ResponseCommit, ResponseFinalizeBlock, ResponseInfo,
    ResponseInitChain, ResponsePrepareProposal, ResponseProcessProposal,
};

const BAD_TX: &[u8] = b"bad";

/// A tiny deterministic kv application: txs are `key=value`; the tx `bad` is invalid.
#[derive(Default)]
struct KvApp {
    state: Mutex<KvState>,
}

#[derive(Default)]
struct KvState {
    kv: BTreeMap<Vec<u8>, Vec<u8>>,
    height: i64,
    app_hash: Vec<u8>,
    pending: Option<(i64, Vec<u8>)>,
}

impl Abci for KvApp {
    fn call(&self, req: Request) -> Result<Response, AbciError> {
        let mut s = self
            .state
            .lock()
            .map_err(|_| AbciError::Transport("poisoned".into()))?;
        let value = match req.value.ok_or(AbciError::UnexpectedResponse("empty"))? {
            request::Value::Info(_) => response::Value::Info(ResponseInfo {
                last_block_height: s.height,
                last_block_app_hash: s.app_hash.clone().into(),
                ..Default::default()
            }),
            request::Value::InitChain(_) => {
                s.app_hash = Sha256::digest(b"genesis").to_vec();
                response::Value::InitChain(ResponseInitChain {
                    app_hash: s.app_hash.clone().into(),
                    ..Default::default()
                })
            }
            request::Value::PrepareProposal(r) => {
                response::Value::PrepareProposal(ResponsePrepareProposal { txs: r.txs })
            }
            request::Value::ProcessProposal(r) => {
                let ok = r
                    .txs
                    .iter()
                    .all(|t| t.as_ref() != BAD_TX && t.contains(&b'='));
                response::Value::ProcessProposal(ResponseProcessProposal {
                    status: if ok { 1 } else { 2 },
                })
            }
            request::Value::FinalizeBlock(r) => {
                let mut h = Sha256::new();
                h.update(&s.app_hash);
                for tx in &r.txs {
                    if let Some(i) = tx.iter().position(|b| *b == b'=') {
                        s.kv.insert(tx[..i].to_vec(), tx[i + 1..].to_vec());
                    }
                    h.update(tx);
                }
                let hash = h.finalize().to_vec();
                s.pending = Some((r.height, hash.clone()));
                response::Value::FinalizeBlock(ResponseFinalizeBlock {
                    app_hash: hash.into(),
                    ..Default::default()
                })
            }
            request::Value::Commit(_) => {
                let (h, hash) = s
                    .pending
                    .take()
                    .ok_or(AbciError::Exception("nothing finalized".into()))?;
                s.height = h;
                s.app_hash = hash;
                response::Value::Commit(ResponseCommit::default())
            }
            _ => return Err(AbciError::UnexpectedResponse("unsupported")),
        };
        Ok(Response { value: Some(value) })
    }
}

struct TestMempool {
    node: usize,
    byzantine: bool,
    counter: AtomicU64,
}

impl Mempool for TestMempool {
    fn reap(&self, _max_bytes: u64) -> Vec<Bytes> {
        if self.byzantine {
            return vec![Bytes::from_static(BAD_TX)];
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        vec![Bytes::from(format!("n{}-{n}=v", self.node))]
    }

    fn on_committed(&self, _tx_hashes: &[[u8; 32]]) {}

    fn level(&self) -> lode_consensus::MempoolLevel {
        lode_consensus::MempoolLevel {
            txs: 1,
            bytes: 1,
            at_capacity: false,
        }
    }
}

/// `n` loopback addresses from a block reserved for the test's lifetime (see `lode_test_ports`).
fn reserved_ports(block: &PortBlock, n: u16) -> Vec<SocketAddr> {
    (0..n)
        .map(|i| SocketAddr::from(([127, 0, 0, 1], block.port(i))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_validators_decide_several_heights_and_agree_despite_a_byzantine_proposer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys: Vec<PrivateKey> = (0..4u8)
        .map(|i| PrivateKey::from_seed([i + 10; 32]))
        .collect();
    let genesis: Vec<_> = keys.iter().map(|k| (k.public_key(), 10u64)).collect();
    let ports = PortBlock::reserve();
    let addrs = reserved_ports(&ports, 4);
    let mut handles = Vec::new();
    let mut stores = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let config = ConsensusConfig {
            moniker: format!("node-{i}"),
            chain_id: "lode-test".into(),
            listen_addr: addrs[i],
            persistent_peers: addrs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| *a)
                .collect(),
            timeouts: Timeouts {
                propose: Duration::from_millis(1500),
                prevote: Duration::from_millis(500),
                precommit: Duration::from_millis(500),
                delta: Duration::from_millis(250),
            },
            wal_dir: dir.path().join(format!("wal-{i}")),
            signing_key: key.clone(),
            // Half the nodes run their swarm under a node key of their own, half under the consensus key
            // (homes made before node keys): proposals cross either way.
            node_key: (i % 2 == 0).then(|| PrivateKey::from_seed([i as u8 + 50; 32])),
            genesis_validators: genesis.clone(),
            genesis_time: BlockTime {
                seconds: 1_700_000_000,
                nanos: 0,
            },
            app_state_bytes: Bytes::new(),
            max_block_tx_bytes: 1 << 20,
            max_clock_drift: Duration::from_secs(10),
            value_sync: true,
            empty_block_interval: Duration::ZERO,
            min_block_interval: Duration::ZERO,
            clock_offset_ms: 0,
            initial_height: 1,
        };
        let store = Arc::new(InMemoryBlockStore::default());
        let mempool = Arc::new(TestMempool {
            node: i,
            byzantine: i == 0,
            counter: AtomicU64::new(0),
        });
        let handle =
            lode_consensus::run(config, Arc::new(KvApp::default()), store.clone(), mempool)
                .await
                .expect("start consensus");
        handles.push(handle);
        stores.push(store);
    }

    let target = Height(6);
    for (i, h) in handles.iter().enumerate() {
        let mut rx = h.decided();
        tokio::time::timeout(Duration::from_secs(120), rx.wait_for(|d| *d >= target))
            .await
            .unwrap_or_else(|_| panic!("node {i} did not reach height {target}"))
            .expect("decided channel");
    }

    for height in 1..=target.0 {
        let blocks: Vec<_> = stores
            .iter()
            .map(|s| {
                s.get_decided(Height(height))
                    .expect("store")
                    .expect("decided block")
            })
            .collect();
        for b in &blocks[1..] {
            assert_eq!(
                b.block, blocks[0].block,
                "nodes disagree at height {height}"
            );
        }
        assert!(
            blocks[0].block.txs().iter().all(|t| t.as_ref() != BAD_TX),
            "the byzantine block was decided at height {height}"
        );
        assert!(blocks[0].certificate.commit_signatures.len() >= 3);
    }
    for h in handles {
        h.shutdown().await;
    }
}
