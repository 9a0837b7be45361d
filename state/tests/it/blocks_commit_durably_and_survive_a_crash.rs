//! The happy path and crash consistency.

use bytes::Bytes;
use lode_proto::query::v1 as querypb;
use lode_state::{modules::bank, tx::sign_msgs, tx::sign_send, tx::Msg, LodeApp, Params};
use prost::Message;
use tendermint_proto::v0_38::abci::{
    RequestFinalizeBlock, RequestInfo, RequestPrepareProposal, RequestQuery,
};

use crate::common::*;

#[test]
fn a_signed_transfer_moves_funds_and_charges_the_fee() {
    let mut chain = Chain::new(3);
    let (a, b) = (addr(&chain.keys[0]), addr(&chain.keys[1]));
    let tx = sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &b, 500);
    assert_eq!(chain.check(&tx).0, 0);
    let (results, _) = chain.block(vec![tx]);
    assert_eq!(results[0].code, 0, "{}", results[0].log);
    assert_eq!(chain.account(&a).balance, START_BALANCE - 500 - FEE);
    assert_eq!(chain.account(&a).nonce, 1);
    assert_eq!(chain.account(&b).balance, START_BALANCE + 500);
    // The treasury takes its share of the fee (10% by default); the fee collector the rest.
    let to_treasury = FEE * Params::default().gov.treasury_fee_bps as u128 / 10_000;
    assert_eq!(
        chain.account(&bank::fee_collector()).balance,
        FEE - to_treasury
    );
    assert_eq!(
        chain.account(&lode_state::modules::gov::treasury()).balance,
        to_treasury
    );
    let (sum, supply) = chain.supply_check();
    assert_eq!(sum, supply);
    assert_eq!(supply, 3 * START_BALANCE + genesis_bond(&Params::default()));
    assert!(results[0].events.iter().any(|e| e.r#type == "transfer"));
}

#[test]
fn a_multi_send_pays_every_output_or_none() {
    let mut chain = Chain::new(3);
    let from = addr(&chain.keys[0]);
    let outs = vec![(addr(&chain.keys[1]), 7), (addr(&chain.keys[2]), 9)];
    let tx = sign_msgs(
        CHAIN_ID,
        &chain.keys[0],
        0,
        FEE,
        &[Msg::Bank(BankMsg::MultiSend {
            from,
            outputs: outs,
        })],
        "hi",
    );
    let (r, _) = chain.block(vec![tx]);
    assert_eq!(r[0].code, 0, "{}", r[0].log);
    assert_eq!(
        chain.account(&addr(&chain.keys[2])).balance,
        START_BALANCE + 9
    );

    // Second output unaffordable: the first must not move either; fee and nonce are spent.
    let outs = vec![
        (addr(&chain.keys[1]), 1),
        (addr(&chain.keys[2]), START_BALANCE * 2),
    ];
    let tx = sign_msgs(
        CHAIN_ID,
        &chain.keys[0],
        1,
        FEE,
        &[Msg::Bank(BankMsg::MultiSend {
            from,
            outputs: outs,
        })],
        "",
    );
    let before_b = chain.account(&addr(&chain.keys[1])).balance;
    let (r, _) = chain.block(vec![tx]);
    assert_eq!(r[0].code, 10, "{}", r[0].log);
    assert_eq!(chain.account(&addr(&chain.keys[1])).balance, before_b);
    assert_eq!(chain.account(&from).nonce, 2);
    let (sum, supply) = chain.supply_check();
    assert_eq!(sum, supply);
}

#[test]
fn query_returns_the_balance_with_a_proof_against_the_app_hash() {
    let mut chain = Chain::new(2);
    let b = addr(&chain.keys[1]);
    let (_, app_hash) = chain.block(vec![sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &b, 42)]);
    let r = chain.app.query(RequestQuery {
        path: "/account".into(),
        data: Bytes::from(b.to_string()),
        height: 0,
        prove: true,
    });
    assert_eq!(r.code, 0, "{}", r.log);
    assert_eq!(r.height, 1);
    let acct = querypb::Account::decode(r.value.as_ref()).expect("decode");
    assert_eq!(acct.balance, (START_BALANCE + 42).to_string());
    let ops = r.proof_ops.expect("proof").ops;
    assert_eq!(ops.len(), 1, "/account reads one key");
    let op = &ops[0];
    assert_eq!(op.r#type, "ics23:jmt-sha256");
    assert_eq!(op.key, bank::state_key::account(&b));
    let proof = <ics23::CommitmentProof as prost013::Message>::decode(op.data.as_slice())
        .expect("proof decodes");
    let stored = bank::Account {
        balance: START_BALANCE + 42,
        nonce: 0,
    }
    .encode();
    // Lode's spec carries leaf values as their SHA-256 (docs/proofs.md).
    let spec = lode_state::query::proof_spec();
    let hashed = |v: &[u8]| <sha2::Sha256 as sha2::Digest>::digest(v).to_vec();
    assert!(ics23::verify_membership::<ics23::HostFunctionsManager>(
        &proof,
        &spec,
        &app_hash,
        &op.key,
        &hashed(&stored)
    ));
    // A forged value does not verify.
    let forged = bank::Account {
        balance: START_BALANCE + 43,
        nonce: 0,
    }
    .encode();
    assert!(!ics23::verify_membership::<ics23::HostFunctionsManager>(
        &proof,
        &spec,
        &app_hash,
        &op.key,
        &hashed(&forged)
    ));

    // After another block, height 1 still answers with the balance it had then.
    chain.block(vec![sign_send(CHAIN_ID, &chain.keys[0], 1, FEE, &b, 8)]);
    let at = |height: i64| {
        let r = chain.app.query(RequestQuery {
            path: "/account".into(),
            data: Bytes::from(b.to_string()),
            height,
            prove: false,
        });
        assert_eq!(r.code, 0, "{}", r.log);
        assert_eq!(r.height, if height == 0 { 2 } else { height });
        querypb::Account::decode(r.value.as_ref())
            .expect("decode")
            .balance
    };
    assert_eq!(at(1), (START_BALANCE + 42).to_string());
    assert_eq!(at(0), (START_BALANCE + 50).to_string());
}

#[test]
fn bad_queries_get_their_own_codes() {
    let chain = Chain::new(1);
    let q = |path: &str, data: &str, height: i64| {
        chain
            .app
            .query(RequestQuery {
                path: path.into(),
                data: Bytes::from(data.to_string()),
                height,
                prove: false,
            })
            .code
    };
    let good = addr(&chain.keys[0]).to_string();
    assert_eq!(q("/nope", &good, 0), 30);
    assert_eq!(q("/account", "lode1notanaddress", 0), 13);
    assert_eq!(q("/account", &good, 99), 31);
}

#[test]
fn a_restarted_app_reports_the_same_height_hash_and_balances() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys: Vec<_> = (0..2).map(key).collect();
    let b = addr(&keys[1]);
    let hash = {
        let app = LodeApp::open(dir.path()).expect("open");
        app.try_init_chain(init_request(&keys, &Params::default()))
            .expect("init");
        let resp = app
            .try_finalize_block(RequestFinalizeBlock {
                txs: vec![Bytes::from(sign_send(CHAIN_ID, &keys[0], 0, FEE, &b, 5))],
                height: 1,
                ..Default::default()
            })
            .expect("finalize");
        app.try_commit().expect("commit");
        resp.app_hash
    };
    let app = LodeApp::open(dir.path()).expect("reopen");
    let info = app.info(RequestInfo::default());
    assert_eq!(info.last_block_height, 1);
    assert_eq!(info.last_block_app_hash, hash);
    assert_eq!(
        bank::account(app.store(), &b).expect("acct").balance,
        START_BALANCE + 5
    );
    // InitChain again on an initialised store is refused rather than silently resetting state.
    assert!(app
        .try_init_chain(init_request(&keys, &Params::default()))
        .is_err());
}

#[test]
fn a_crash_between_finalize_and_commit_replays_to_the_same_app_hash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys: Vec<_> = (0..2).map(key).collect();
    let block = || RequestFinalizeBlock {
        txs: vec![Bytes::from(sign_send(
            CHAIN_ID,
            &keys[0],
            0,
            FEE,
            &addr(&keys[1]),
            5,
        ))],
        height: 1,
        ..Default::default()
    };
    let first = {
        let app = LodeApp::open(dir.path()).expect("open");
        app.try_init_chain(init_request(&keys, &Params::default()))
            .expect("init");
        // Genesis done twice (CometBFT restarts before block 1) is a no-op.
        app.try_init_chain(init_request(&keys, &Params::default()))
            .expect("init is idempotent");
        app.try_finalize_block(block()).expect("finalize").app_hash
        // dropped without Commit: the crash
    };
    let app = LodeApp::open(dir.path()).expect("reopen");
    assert_eq!(app.info(RequestInfo::default()).last_block_height, 0);
    let replayed = app
        .try_finalize_block(block())
        .expect("finalize again")
        .app_hash;
    assert_eq!(first, replayed);
    app.try_commit().expect("commit");
    assert_eq!(app.info(RequestInfo::default()).last_block_app_hash, first);
}

#[test]
fn engine_contract_violations_are_errors_not_panics() {
    let mut chain = Chain::new(1);
    assert!(chain.app.try_commit().is_err(), "commit without finalize");
    let wrong = RequestFinalizeBlock {
        height: 5,
        ..Default::default()
    };
    assert!(chain.app.try_finalize_block(wrong).is_err());
    chain.block(vec![]);
    assert_eq!(chain.app.info(RequestInfo::default()).last_block_height, 1);
}

#[test]
fn prepare_proposal_keeps_valid_txs_within_the_byte_limit() {
    let chain = Chain::new(3);
    let to = addr(&chain.keys[2]);
    let good0 = sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &to, 1);
    let good1 = sign_send(CHAIN_ID, &chain.keys[0], 1, FEE, &to, 1);
    let gap = sign_send(CHAIN_ID, &chain.keys[1], 5, FEE, &to, 1);
    let garbage = vec![1, 2, 3];
    let len = good0.len() as i64;
    let txs: Vec<Bytes> = [good0.clone(), garbage, gap, good1.clone()]
        .into_iter()
        .map(Bytes::from)
        .collect();
    let all = chain.app.prepare_proposal(RequestPrepareProposal {
        max_tx_bytes: 1 << 20,
        txs: txs.clone(),
        height: 1,
        ..Default::default()
    });
    assert_eq!(
        all.txs,
        vec![Bytes::from(good0.clone()), Bytes::from(good1)]
    );
    let one = chain.app.prepare_proposal(RequestPrepareProposal {
        max_tx_bytes: len + 10,
        txs,
        height: 1,
        ..Default::default()
    });
    assert_eq!(one.txs, vec![Bytes::from(good0)]);
}

#[test]
fn process_proposal_rejects_garbage_oversized_and_badly_signed_blocks() {
    let chain = Chain::with_params(
        2,
        Params {
            max_block_bytes: 64 * 1024,
            ..Params::default()
        },
    );
    let to = addr(&chain.keys[1]);
    let good = sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &to, 1);
    assert!(chain.process(vec![good.clone()]));
    assert!(
        !chain.process(vec![good.clone(), vec![0xff, 0x00, 0x13]]),
        "undecodable"
    );
    let mut bad_sig = good.clone();
    let n = bad_sig.len();
    bad_sig[n - 1] ^= 1;
    assert!(!chain.process(vec![bad_sig]), "bad signature");
    let many: Vec<Vec<u8>> = (0..400)
        .map(|i| sign_send(CHAIN_ID, &chain.keys[0], i, FEE, &to, 1))
        .collect();
    assert!(!chain.process(many), "over max_block_bytes");
}

#[test]
fn checktx_admits_sequential_nonces_and_resets_at_commit() {
    let mut chain = Chain::new(2);
    let to = addr(&chain.keys[1]);
    let t0 = sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &to, 1);
    let t1 = sign_send(CHAIN_ID, &chain.keys[0], 1, FEE, &to, 1);
    assert_eq!(chain.check(&t0).0, 0);
    assert_eq!(
        chain.check(&t1).0,
        0,
        "the mempool view carries nonce 0's effect"
    );
    assert_eq!(chain.check(&t0).0, 7, "replay in the mempool view");
    chain.block(vec![t0]);
    // After Commit the view restarts from the committed state: t1 is next, t0 is stale.
    assert_eq!(chain.check(&t1).0, 0);
    assert_eq!(chain.nonce(0), 1);
}

#[test]
fn a_committed_block_reads_back_as_finalize_block_answered_it() {
    let chain = Chain::new(3);
    let b = addr(&chain.keys[1]);
    let txs = vec![
        sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &b, 42),
        // A skipped nonce: a failed result with a log and a codespace.
        sign_send(CHAIN_ID, &chain.keys[2], 5, FEE, &b, 1),
        vec![0xde, 0xad],
    ];
    let resp = chain
        .app
        .try_finalize_block(RequestFinalizeBlock {
            txs: txs.iter().cloned().map(Bytes::from).collect(),
            height: 1,
            ..Default::default()
        })
        .expect("finalize");
    chain.app.try_commit().expect("commit");
    assert_eq!(resp.tx_results[0].code, 0);
    assert_ne!(resp.tx_results[1].code, 0);
    let stored = chain.app.store().block(1).expect("read").expect("stored");
    assert_eq!(stored.txs, txs);
    assert_eq!(stored.results, resp.encode_to_vec());
}
