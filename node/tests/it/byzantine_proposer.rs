//! Four in-process validators running the real application (RocksDB, LodeApp, the node's mempool and block
//! store) under Malachite. Validator 0 is byzantine: its proposals carry a badly signed transfer that its own
//! PrepareProposal would have dropped. Honest validators reject those blocks in ProcessProposal and prevote
//! nil; each such height completes in a later round with an honest proposer's valid block, and a valid
//! transfer submitted to an honest node is committed everywhere.

use std::sync::Arc;

use bytes::Bytes;
use ed25519_consensus::SigningKey;
use lode_consensus::{Abci, AbciError, Height};
use lode_node::services::in_process::AppAbci;
use lode_state::tx::{address_of, sign_send};
use lode_state::LodeApp;
use tendermint_proto::v0_38::abci::{
    request, response, Request, RequestQuery, Response, ResponsePrepareProposal,
};

use crate::in_process::{agreed_decision, four_validators, wait_decided};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byzantine_proposers_badly_signed_block_is_rejected_and_heights_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sender = SigningKey::from([3u8; 32]);
    let recipient = address_of(&SigningKey::from([4u8; 32]));
    let mut bad_tx = sign_send(CHAIN, &sender, 0, 10_000, &recipient, 666);
    let last = bad_tx.len() - 1;
    bad_tx[last] ^= 1; // the signature is the tx's last field
    let good_tx = Bytes::from(sign_send(CHAIN, &sender, 0, 10_000, &recipient, 777));

    let (_ports, validators) = four_validators(dir.path(), CHAIN, 40, &sender);
    let byzantine = validators[0].key.public_key();
    let mut nodes = Vec::new();
    for (i, v) in validators.into_iter().enumerate() {
        let (config, app, mempool, store) = (v.config, v.app, v.mempool, v.store);
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
    wait_decided(&nodes[2].3, Height(1), "node 2").await;
    nodes[2].1.add(good_tx).expect("valid tx admitted");

    let target = Height(8);
    for (i, (.., handle)) in nodes.iter().enumerate() {
        wait_decided(handle, target, &format!("node {i}")).await;
    }

    let mut later_rounds = 0;
    for height in 1..=target.0 {
        let decided = agreed_decision(nodes.iter().map(|(_, _, s, _)| s), height);
        let block = &decided.block;
        assert!(
            block.txs().iter().all(|t| t.as_ref() != bad_tx.as_slice()),
            "the badly signed tx was decided at height {height}"
        );
        assert_ne!(
            block.header().proposer,
            lode_consensus::Address::from_public_key(&byzantine),
            "the byzantine proposer's block was decided at height {height}"
        );
        if decided.certificate.round.as_i64() > 0 {
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
