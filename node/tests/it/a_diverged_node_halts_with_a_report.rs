//! Four in-process validators on the real application. Validator 3's application goes wrong in the first
//! block with a transaction: in one test it executes that block differently (its app hash diverges from the
//! chain's), in the other its FinalizeBlock fails. Either way it halts with a report (height, expected and
//! local app hash, the error) instead of committing on or retrying forever, while the other three go on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ed25519_consensus::SigningKey;
use lode_consensus::{Abci, AbciError, HaltReport, Height};
use lode_node::services::in_process::AppAbci;
use lode_state::tx::{address_of, sign_send};
use tendermint_proto::v0_38::abci::{request, response, Request, Response, ResponseException};

use crate::in_process::{four_validators, wait_decided};

#[derive(Clone, Copy)]
enum Fault {
    /// Executes the block without its txs: a real, different state (as a non-deterministic bug would).
    Diverge,
    /// Fails FinalizeBlock.
    Fail,
}

/// The real application, except for the first block with a transaction.
struct Faulty {
    honest: AppAbci,
    fault: Fault,
    /// FinalizeBlock calls for blocks with transactions.
    calls: Arc<AtomicUsize>,
}

impl Abci for Faulty {
    fn call(&self, mut req: Request) -> Result<Response, AbciError> {
        if let Some(request::Value::FinalizeBlock(f)) = &mut req.value {
            if !f.txs.is_empty() {
                self.calls.fetch_add(1, Ordering::SeqCst);
                match self.fault {
                    Fault::Diverge => f.txs.clear(),
                    Fault::Fail => {
                        return Ok(Response {
                            value: Some(response::Value::Exception(ResponseException {
                                error: "disk on fire".into(),
                            })),
                        })
                    }
                }
            }
        }
        self.honest.call(req)
    }
}

/// Runs the four validators with `fault` on validator 3 until it halts; returns its report, the height the
/// transfer was committed at by the others, the others' app hash at that height and before it, validator
/// 3's last committed height and app hash, and how often its FinalizeBlock saw the transfer's block.
async fn run(
    fault: Fault,
    chain: &str,
    key_seed: u8,
) -> (HaltReport, u64, Vec<[u8; 32]>, u64, [u8; 32], usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sender = SigningKey::from([5u8; 32]);
    let recipient = address_of(&SigningKey::from([6u8; 32]));
    let tx = Bytes::from(sign_send(chain, &sender, 0, 10_000, &recipient, 99));
    let (_ports, validators) = four_validators(dir.path(), chain, key_seed, &sender);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut nodes = Vec::new();
    for (i, v) in validators.into_iter().enumerate() {
        let honest = AppAbci::new(v.app.clone(), v.mempool.clone());
        let handle = if i == 3 {
            let abci = Faulty {
                honest,
                fault,
                calls: calls.clone(),
            };
            lode_consensus::run(v.config, Arc::new(abci), v.store.clone(), v.mempool.clone()).await
        } else {
            lode_consensus::run(
                v.config,
                Arc::new(honest),
                v.store.clone(),
                v.mempool.clone(),
            )
            .await
        }
        .expect("start consensus");
        nodes.push((v.app, v.mempool, handle));
    }
    wait_decided(&nodes[0].2, Height(1), "node 0").await;
    nodes[0].1.add(tx.clone()).expect("tx admitted");

    let mut halted = nodes[3].2.halted();
    let report = tokio::time::timeout(Duration::from_secs(120), halted.wait_for(Option::is_some))
        .await
        .expect("validator 3 did not halt")
        .expect("halt channel")
        .clone()
        .expect("report");
    // The others carry on; validator 3 commits nothing more (and does not retry the block).
    let h3 = nodes[3].0.last_commit().expect("initialised");
    let now = *nodes[0].2.decided().borrow();
    for (i, (.., handle)) in nodes[..3].iter().enumerate() {
        wait_decided(handle, Height(now.0 + 3), &format!("node {i}")).await;
    }
    assert!(
        nodes[3].2.is_finished(),
        "validator 3's consensus still runs"
    );
    assert_eq!(nodes[3].0.last_commit().expect("initialised"), h3);

    let record = nodes[0].0.last_commit().expect("initialised");
    let tx_height = nodes[0]
        .0
        .store()
        .tx_location(&lode_state::tx::tx_hash(&tx))
        .expect("index")
        .expect("the transfer was committed")
        .0;
    let roots = [tx_height - 1, tx_height]
        .iter()
        .map(|h| {
            nodes[0]
                .0
                .store()
                .root_at(record.version_of(*h).expect("version"))
                .expect("root")
        })
        .collect();
    let calls = calls.load(Ordering::SeqCst);
    for (.., handle) in nodes {
        handle.shutdown().await;
    }
    (report, tx_height, roots, h3.height, h3.app_hash, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_app_hash_diverges_from_the_decided_header_halts_with_a_report() {
    let (report, tx_height, roots, height3, hash3, _) =
        run(Fault::Diverge, "lode-diverge-1", 50).await;
    // It committed its own version of the transfer's block, then refused the next decided block, whose
    // header carries the chain's app hash for that height.
    assert_eq!(height3, tx_height);
    assert_ne!(hash3, roots[1], "validator 3 did not diverge");
    assert_eq!(report.height, tx_height, "{report}");
    assert_eq!(
        report.expected_app_hash.as_deref(),
        Some(&roots[1][..]),
        "{report}"
    );
    assert_eq!(report.local_app_hash, hash3.to_vec(), "{report}");
    assert!(report.error.contains("app hash"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_finalize_block_fails_on_a_decided_block_halts_instead_of_retrying() {
    let (report, tx_height, roots, height3, hash3, calls) =
        run(Fault::Fail, "lode-fail-1", 60).await;
    assert_eq!(height3, tx_height - 1);
    assert_eq!(hash3, roots[0]);
    assert_eq!(report.height, tx_height, "{report}");
    assert_eq!(report.expected_app_hash, None, "{report}");
    assert_eq!(report.local_app_hash, roots[0].to_vec(), "{report}");
    assert!(report.error.contains("disk on fire"), "{report}");
    assert_eq!(calls, 1, "FinalizeBlock of the failing block was retried");
}
