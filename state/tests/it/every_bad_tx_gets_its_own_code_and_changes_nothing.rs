//! Every kind of bad tx gets its own code and a readable log, and changes nothing.

use bytes::Bytes;
use lode_proto::{bank::v1 as bankpb, tx::v1 as pb};
use lode_state::{
    tx::{sign_msgs, sign_raw, sign_send, Msg},
    Address, Params,
};
use prost::Message;
use tendermint_proto::v0_38::abci::{
    request, response, Request, RequestFinalizeBlock, RequestInitChain,
};

use crate::common::*;

/// Asserts CheckTx and FinalizeBlock both reject `tx` with `code` and a log naming `name`, and that
/// committed state is unchanged.
fn assert_rejected(chain: &mut Chain, tx: Vec<u8>, code: u32, name: &str) {
    let before = chain.snapshot();
    let (c, log) = chain.check(&tx);
    assert_eq!(c, code, "CheckTx: {log}");
    assert!(
        log.starts_with(name),
        "log {log:?} should start with {name}"
    );
    let (results, _) = chain.block(vec![tx]);
    assert_eq!(results[0].code, code, "FinalizeBlock: {}", results[0].log);
    assert_eq!(results[0].codespace, "lode");
    assert_eq!(before, chain.snapshot(), "state changed");
}

fn body(chain_id: &str, msgs: Vec<pb::Msg>) -> pb::TxBody {
    pb::TxBody {
        msgs,
        memo: String::new(),
        timeout_height: 0,
        chain_id: chain_id.into(),
    }
}

fn send_pb(from: &Address, to: &str, amount: &str) -> pb::Msg {
    pb::Msg {
        sum: Some(pb::msg::Sum::Send(bankpb::MsgSend {
            from: from.to_string(),
            to: to.into(),
            amount: amount.into(),
        })),
    }
}

fn auth(k: &ed25519_consensus::SigningKey, nonce: u64, fee: u128) -> pb::AuthInfo {
    pb::AuthInfo {
        public_key: k.verification_key().to_bytes().to_vec(),
        nonce,
        fee: Some(pb::Fee {
            amount: fee.to_string(),
        }),
        ..Default::default()
    }
}

#[test]
fn undecodable_bytes_are_rejected() {
    let mut chain = Chain::new(2);
    assert_rejected(&mut chain, vec![0xff, 0xff, 0xff], 2, "ERR_DECODE");
    // A valid outer Tx whose body is garbage.
    let tx = pb::Tx {
        body_bytes: vec![0x0a, 0xff],
        auth_info_bytes: vec![],
        signatures: vec![],
    }
    .encode_to_vec();
    assert_rejected(&mut chain, tx, 2, "ERR_DECODE");
}

#[test]
fn an_oversized_tx_is_rejected() {
    let mut chain = Chain::with_params(
        2,
        Params {
            max_tx_bytes: 512,
            ..Params::default()
        },
    );
    let k = chain.keys[0].clone();
    let to = addr(&chain.keys[1]);
    let memo = "x".repeat(200);
    let msgs: Vec<Msg> = (0..3)
        .map(|_| {
            Msg::Bank(BankMsg::Send {
                from: addr(&k),
                to,
                amount: 1,
            })
        })
        .collect();
    let tx = sign_msgs(CHAIN_ID, &k, 0, FEE, &msgs, &memo);
    assert!(tx.len() > 512);
    assert_rejected(&mut chain, tx, 3, "ERR_TX_TOO_LARGE");
}

#[test]
fn a_tx_for_another_chain_is_rejected() {
    let mut chain = Chain::new(2);
    let tx = sign_send(
        "other-chain",
        &chain.keys[0],
        0,
        FEE,
        &addr(&chain.keys[1]),
        1,
    );
    assert_rejected(&mut chain, tx, 4, "ERR_WRONG_CHAIN_ID");
}

#[test]
fn a_bad_signature_is_rejected() {
    let mut chain = Chain::new(2);
    let k = chain.keys[0].clone();
    // Signed by another key than the one the auth info names.
    let b = body(
        CHAIN_ID,
        vec![send_pb(&addr(&k), &addr(&chain.keys[1]).to_string(), "1")],
    );
    let mut wire =
        pb::Tx::decode(sign_raw(&b, &auth(&k, 0, FEE), &chain.keys[1]).as_slice()).expect("decode");
    assert_eq!(wire.signatures.len(), 1);
    let tx = wire.encode_to_vec();
    assert_rejected(&mut chain, tx, 5, "ERR_BAD_SIGNATURE");
    // A flipped bit in the signature.
    let good = sign_raw(&b, &auth(&k, 0, FEE), &k);
    wire = pb::Tx::decode(good.as_slice()).expect("decode");
    wire.signatures[0][10] ^= 0x40;
    assert_rejected(&mut chain, wire.encode_to_vec(), 5, "ERR_BAD_SIGNATURE");
}

#[test]
fn non_canonical_and_small_order_keys_are_rejected() {
    let mut chain = Chain::new(2);
    let to = addr(&chain.keys[1]).to_string();
    // y = p + 1 (not reduced): decodes to the identity under ZIP-215 but is not a canonical encoding.
    let mut non_canonical = [0xffu8; 32];
    non_canonical[0] = 0xee;
    non_canonical[31] = 0x7f;
    // The identity point, canonically encoded: small order.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    for (pk, _why) in [(non_canonical, "non-canonical"), (identity, "small order")] {
        let signer = Address::from_public_key(&pk);
        let b = body(CHAIN_ID, vec![send_pb(&signer, &to, "1")]);
        let a = pb::AuthInfo {
            public_key: pk.to_vec(),
            nonce: 0,
            fee: Some(pb::Fee {
                amount: FEE.to_string(),
            }),
            ..Default::default()
        };
        let tx = pb::Tx {
            body_bytes: b.encode_to_vec(),
            auth_info_bytes: a.encode_to_vec(),
            signatures: vec![vec![0u8; 64]],
        }
        .encode_to_vec();
        assert_rejected(&mut chain, tx, 6, "ERR_INVALID_PUBLIC_KEY");
    }
}

#[test]
fn replayed_and_skipped_nonces_are_rejected() {
    let mut chain = Chain::new(2);
    let to = addr(&chain.keys[1]);
    let t0 = sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &to, 1);
    let (r, _) = chain.block(vec![t0.clone()]);
    assert_eq!(r[0].code, 0);
    assert_rejected(&mut chain, t0, 7, "ERR_NONCE_REPLAYED");
    let t5 = sign_send(CHAIN_ID, &chain.keys[0], 5, FEE, &to, 1);
    assert_rejected(&mut chain, t5, 8, "ERR_NONCE_GAP");
}

#[test]
fn a_fee_below_the_minimum_is_rejected() {
    let mut chain = Chain::new(2);
    let tx = sign_send(CHAIN_ID, &chain.keys[0], 0, 10, &addr(&chain.keys[1]), 1);
    assert_rejected(&mut chain, tx, 9, "ERR_INSUFFICIENT_FEE");
}

#[test]
fn spending_more_than_the_balance_is_rejected() {
    let mut chain = Chain::new(2);
    let a = addr(&chain.keys[0]);
    let to = addr(&chain.keys[1]);
    // A fee the account cannot pay: rejected in ante, nothing changes anywhere.
    let tx = sign_send(CHAIN_ID, &chain.keys[0], 0, START_BALANCE + 1, &to, 1);
    assert_rejected(&mut chain, tx, 10, "ERR_INSUFFICIENT_FUNDS");

    // A transfer larger than the balance: CheckTx rejects it without any change.
    let tx = sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &to, START_BALANCE);
    let before = chain.snapshot();
    let (code, log) = chain.check(&tx);
    assert_eq!(code, 10, "{log}");
    assert_eq!(before, chain.snapshot());
    // Forced into a block anyway, the transfer does nothing; the signer pays the fee and uses the nonce.
    let (r, _) = chain.block(vec![tx]);
    assert_eq!(r[0].code, 10);
    assert_eq!(chain.account(&a).balance, START_BALANCE - FEE);
    assert_eq!(chain.account(&to).balance, START_BALANCE);
    assert_eq!(chain.account(&a).nonce, 1);
}

#[test]
fn an_amount_that_overflows_u128_is_rejected() {
    let mut chain = Chain::new(2);
    let k = chain.keys[0].clone();
    let to = addr(&chain.keys[1]).to_string();
    let too_big = "340282366920938463463374607431768211456";
    let tx = sign_raw(
        &body(CHAIN_ID, vec![send_pb(&addr(&k), &to, too_big)]),
        &auth(&k, 0, FEE),
        &k,
    );
    assert_rejected(&mut chain, tx, 11, "ERR_OVERFLOW");
    // Outputs that each fit but whose sum does not.
    let outs = vec![(addr(&chain.keys[1]), u128::MAX), (addr(&chain.keys[1]), 2)];
    let tx = sign_msgs(
        CHAIN_ID,
        &k,
        0,
        FEE,
        &[Msg::Bank(BankMsg::MultiSend {
            from: addr(&k),
            outputs: outs,
        })],
        "",
    );
    let (code, log) = chain.check(&tx);
    assert_eq!(code, 11, "{log}");
}

#[test]
fn a_tx_without_messages_is_rejected() {
    let mut chain = Chain::new(2);
    let k = chain.keys[0].clone();
    let tx = sign_raw(&body(CHAIN_ID, vec![]), &auth(&k, 0, FEE), &k);
    assert_rejected(&mut chain, tx, 12, "ERR_EMPTY_MSGS");
}

#[test]
fn sending_to_a_malformed_address_is_rejected() {
    let mut chain = Chain::new(2);
    let k = chain.keys[0].clone();
    for to in [
        "lode1qqqq",
        "cosmos1xyz",
        "",
        "LODE1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ",
    ] {
        let tx = sign_raw(
            &body(CHAIN_ID, vec![send_pb(&addr(&k), to, "1")]),
            &auth(&k, 0, FEE),
            &k,
        );
        assert_rejected(&mut chain, tx, 13, "ERR_INVALID_ADDRESS");
    }
}

#[test]
fn sending_from_someone_elses_account_is_rejected() {
    let mut chain = Chain::new(2);
    let k = chain.keys[0].clone();
    let victim = addr(&chain.keys[1]);
    let tx = sign_raw(
        &body(CHAIN_ID, vec![send_pb(&victim, &addr(&k).to_string(), "5")]),
        &auth(&k, 0, FEE),
        &k,
    );
    assert_rejected(&mut chain, tx, 15, "ERR_SIGNER_MISMATCH");
}

#[test]
fn abci_requests_missing_their_fields_get_exceptions_not_panics() {
    let chain = Chain::new(1);
    let is_exception = |r: Request| {
        matches!(
            chain.app.handle(r).value,
            Some(response::Value::Exception(_))
        )
    };
    assert!(is_exception(Request { value: None }));
    assert!(is_exception(Request {
        value: Some(request::Value::InitChain(RequestInitChain::default()))
    }));
    assert!(is_exception(Request {
        value: Some(request::Value::FinalizeBlock(
            RequestFinalizeBlock::default()
        ))
    }));
    assert!(is_exception(Request {
        value: Some(request::Value::Commit(Default::default()))
    }));
    // Defaults elsewhere are answered normally.
    for v in [
        request::Value::Info(Default::default()),
        request::Value::Query(Default::default()),
        request::Value::CheckTx(Default::default()),
        request::Value::PrepareProposal(Default::default()),
        request::Value::ProcessProposal(Default::default()),
        request::Value::Echo(Default::default()),
    ] {
        assert!(chain.app.handle(Request { value: Some(v) }).value.is_some());
    }
    let _ = Bytes::new();
}

#[test]
fn bad_txs_anywhere_in_a_large_block_fail_alone_and_change_nothing() {
    // Large enough that FinalizeBlock checks signatures in chunks while it executes earlier txs.
    const TXS: usize = 1_500;
    let mut with_bad = Chain::new(300);
    let mut good_only = Chain::new(300);
    let mut nonces = vec![0u64; 300];
    let (mut all, mut good, mut expected) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..TXS {
        let from = i % 300;
        let to = addr(&with_bad.keys[(i * 7 + 1) % 300]);
        let tx =
            lode_state::tx::sign_send(CHAIN_ID, &with_bad.keys[from], nonces[from], FEE, &to, 1);
        if i % 97 == 5 {
            let mut bad = tx;
            let n = bad.len();
            bad[n - 20] ^= 0x01;
            all.push(bad);
            expected.push(5);
        } else if i % 211 == 7 {
            all.push(vec![0xff; 40]);
            expected.push(2);
        } else {
            nonces[from] += 1;
            all.push(tx.clone());
            good.push(tx);
            expected.push(0);
        }
    }
    let (results, hash) = with_bad.block(all);
    let codes: Vec<u32> = results.iter().map(|r| r.code).collect();
    assert_eq!(codes, expected);
    let (good_results, good_hash) = good_only.block(good);
    assert!(good_results.iter().all(|r| r.code == 0));
    assert_eq!(hash, good_hash);
}
