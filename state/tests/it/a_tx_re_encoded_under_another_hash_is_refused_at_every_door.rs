//! Issue 15, hole 8: tx hash malleability. A tx's hash covers its raw bytes, its signature only the body
//! and auth bytes, and prost skips unknown fields: anyone could re-broadcast a pending tx with an extra field
//! (or a padded varint, a repeated field) under another hash, and a wallet waiting on the original hash
//! would never see it commit. Only the canonical encoding is accepted: CheckTx refuses any other with
//! `ERR_NON_CANONICAL_ENCODING` (23), a proposal carrying one is rejected, and a decided block that holds
//! one gives it that code and changes nothing.

use lode_proto::{bank::v1 as bankpb, tx::v1 as pb};
use lode_state::tx::{sign_raw, sign_send, tx_hash, verify_signatures, Tx};
use prost::Message;

use crate::common::*;

const NON_CANONICAL: u32 = 23;

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field; with `pad`, its length is a varint one byte longer than needed.
fn len_field(tag: u32, bytes: &[u8], pad: bool, out: &mut Vec<u8>) {
    varint(((tag as u64) << 3) | 2, out);
    let mut len = Vec::new();
    varint(bytes.len() as u64, &mut len);
    if pad {
        if let Some(last) = len.last_mut() {
            *last |= 0x80;
        }
        len.push(0);
    }
    out.extend_from_slice(&len);
    out.extend_from_slice(bytes);
}

fn varint_field(tag: u32, v: u64, out: &mut Vec<u8>) {
    varint((tag as u64) << 3, out);
    varint(v, out);
}

fn body(chain: &Chain, amount: &str) -> pb::TxBody {
    pb::TxBody {
        msgs: vec![pb::Msg {
            sum: Some(pb::msg::Sum::Send(bankpb::MsgSend {
                from: chain.addr(0).to_string(),
                to: chain.addr(1).to_string(),
                amount: amount.into(),
            })),
        }],
        memo: String::new(),
        timeout_height: 0,
        chain_id: CHAIN_ID.into(),
    }
}

fn auth(chain: &Chain, nonce: u64) -> pb::AuthInfo {
    pb::AuthInfo {
        public_key: chain.keys[0].verification_key().to_bytes().to_vec(),
        nonce,
        fee: Some(pb::Fee {
            amount: FEE.to_string(),
        }),
        multisig: None,
    }
}

/// Signs explicit body and auth bytes (which need not be canonical) and returns the canonical outer tx.
fn sign_bytes(chain: &Chain, body_bytes: Vec<u8>, auth_info_bytes: Vec<u8>) -> Vec<u8> {
    let doc = lode_state::tx::sign_doc_bytes(CHAIN_ID, &body_bytes, &auth_info_bytes);
    pb::Tx {
        body_bytes,
        auth_info_bytes,
        signatures: vec![chain.keys[0].sign(&doc).to_bytes().to_vec()],
    }
    .encode_to_vec()
}

/// Re-encodings of the valid, signed `good` that anyone holding it can make without the key: each decodes
/// to the same `pb::Tx`, so its signature still verifies, but its hash differs.
fn third_party_variants(good: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let wire = pb::Tx::decode(good).expect("decode");
    let sig = &wire.signatures[0];
    let mut unknown = good.to_vec();
    varint_field(15, 1, &mut unknown);
    let mut padded = Vec::new();
    len_field(1, &wire.body_bytes, true, &mut padded);
    len_field(2, &wire.auth_info_bytes, false, &mut padded);
    len_field(3, sig, false, &mut padded);
    let mut repeated = Vec::new();
    len_field(1, &wire.body_bytes, false, &mut repeated);
    len_field(1, &wire.body_bytes, false, &mut repeated);
    len_field(2, &wire.auth_info_bytes, false, &mut repeated);
    len_field(3, sig, false, &mut repeated);
    let mut reordered = Vec::new();
    len_field(3, sig, false, &mut reordered);
    len_field(2, &wire.auth_info_bytes, false, &mut reordered);
    len_field(1, &wire.body_bytes, false, &mut reordered);
    let mut overridden = Vec::new();
    len_field(1, b"anything", false, &mut overridden);
    overridden.extend_from_slice(good);
    vec![
        ("an unknown field appended", unknown),
        ("a length varint padded to two bytes", padded),
        ("the body field repeated", repeated),
        ("the fields out of tag order", reordered),
        ("a body field that a later one overrides", overridden),
    ]
}

/// Non-canonical body or auth bytes, signed by the key's holder: the same tx as a canonical one, which a
/// careless or hostile wallet could sign twice under two hashes.
fn signer_variants(chain: &Chain, nonce: u64) -> Vec<(&'static str, Vec<u8>)> {
    let b = body(chain, "5").encode_to_vec();
    let a = auth(chain, nonce).encode_to_vec();
    let mut body_unknown = b.clone();
    varint_field(99, 7, &mut body_unknown);
    let mut body_default = b.clone();
    varint_field(3, 0, &mut body_default); // timeout_height = 0, written out
    let mut auth_unknown = a.clone();
    len_field(9, b"x", false, &mut auth_unknown);
    let mut auth_nonce_twice = a.clone();
    varint_field(2, nonce, &mut auth_nonce_twice);
    vec![
        (
            "an unknown field in the body",
            sign_bytes(chain, body_unknown, a.clone()),
        ),
        (
            "a default value written out in the body",
            sign_bytes(chain, body_default, a.clone()),
        ),
        (
            "an unknown field in the auth info",
            sign_bytes(chain, b.clone(), auth_unknown),
        ),
        (
            "the nonce written twice in the auth info",
            sign_bytes(chain, b, auth_nonce_twice),
        ),
    ]
}

#[test]
fn a_pending_tx_re_encoded_with_an_unknown_field_keeps_its_signature_but_is_refused_by_check_tx() {
    let chain = Chain::new(2);
    let good = sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &chain.addr(1), 5);
    let mut forged = good.clone();
    varint_field(15, 1, &mut forged);
    // The forgery is the same tx to a decoder, under another hash, and its signature verifies.
    assert_eq!(
        pb::Tx::decode(forged.as_slice()).expect("decode"),
        pb::Tx::decode(good.as_slice()).expect("decode")
    );
    assert_ne!(tx_hash(&forged), tx_hash(&good));
    let wire = pb::Tx::decode(forged.as_slice()).expect("decode");
    let doc = lode_state::tx::sign_doc_bytes(CHAIN_ID, &wire.body_bytes, &wire.auth_info_bytes);
    let sig = ed25519_consensus::Signature::try_from(wire.signatures[0].as_slice()).expect("sig");
    assert!(chain.keys[0].verification_key().verify(&sig, &doc).is_ok());

    let (code, log) = chain.check(&forged);
    assert_eq!(code, NON_CANONICAL, "CheckTx of the forgery: {log}");
    assert!(log.starts_with("ERR_NON_CANONICAL_ENCODING"), "{log}");
    // The original is still admitted: the forgery did not use up its nonce in the mempool's view.
    let (code, log) = chain.check(&good);
    assert_eq!(code, 0, "CheckTx of the original: {log}");
}

#[test]
fn every_non_canonical_encoding_is_refused_statelessly_with_its_own_code() {
    let chain = Chain::new(2);
    let params = lode_state::Params::default();
    let good = sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &chain.addr(1), 5);
    let canonical_signed = sign_bytes(
        &chain,
        body(&chain, "5").encode_to_vec(),
        auth(&chain, 0).encode_to_vec(),
    );
    assert!(Tx::check_stateless(&canonical_signed, CHAIN_ID, &params).is_ok());
    let mut all = third_party_variants(&good);
    all.extend(signer_variants(&chain, 0));
    for (what, tx) in all {
        assert_ne!(tx_hash(&tx), tx_hash(&good), "{what}");
        let err = Tx::check_stateless(&tx, CHAIN_ID, &params).expect_err(what);
        assert_eq!(err.code(), NON_CANONICAL, "{what}: {err}");
        assert_eq!(err.name(), "ERR_NON_CANONICAL_ENCODING", "{what}");
        let (code, log) = chain.check(&tx);
        assert_eq!(code, NON_CANONICAL, "CheckTx, {what}: {log}");
    }
    // The variants are refused for their encoding alone: the canonical original passes every check.
    let tx = Tx::check_stateless(&good, CHAIN_ID, &params).expect("canonical");
    assert!(verify_signatures(&[&tx])[0]);
}

#[test]
fn a_proposal_carrying_a_re_encoded_tx_is_rejected_and_a_decided_one_changes_nothing() {
    let mut chain = Chain::new(2);
    let good = sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &chain.addr(1), 5);
    assert!(
        chain.process(vec![good.clone()]),
        "the canonical tx is valid"
    );
    let mut all = third_party_variants(&good);
    all.extend(signer_variants(&chain, 0));
    for (what, tx) in &all {
        assert!(
            !chain.process(vec![good.clone(), tx.clone()]),
            "a proposal carrying {what} was accepted"
        );
        assert!(
            !chain.process(vec![tx.clone()]),
            "a proposal of only {what} was accepted"
        );
    }
    // A block decided with them anyway (by a byzantine majority): each gets the code and changes nothing;
    // the canonical tx, placed after them, executes at nonce 0.
    let before = chain.balance(&chain.addr(1));
    let mut txs: Vec<Vec<u8>> = all.iter().map(|(_, tx)| tx.clone()).collect();
    txs.push(good.clone());
    let (results, _) = chain.block(txs);
    let (last, forged) = results.split_last().expect("results");
    for ((what, _), r) in all.iter().zip(forged) {
        assert_eq!(r.code, NON_CANONICAL, "FinalizeBlock, {what}: {}", r.log);
    }
    assert_eq!(last.code, 0, "{}", last.log);
    assert_eq!(chain.balance(&chain.addr(1)), before + 5);
    assert_eq!(chain.nonce(0), 1);
}

#[test]
fn what_lode_signs_is_canonical_so_honest_clients_are_unaffected() {
    let chain = Chain::new(2);
    let signed = sign_raw(&body(&chain, "5"), &auth(&chain, 0), &chain.keys[0]);
    let (code, log) = chain.check(&signed);
    assert_eq!(code, 0, "{log}");
}
