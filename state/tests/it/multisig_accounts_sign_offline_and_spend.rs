//! Multisig accounts: k-of-n signing collected offline, then broadcast.

use lode_proto::tx::v1 as pb;
use lode_state::tx::{
    multisig::{self, MultisigKey, MultisigTx},
    Msg,
};
use prost::Message;

use crate::common::*;

fn setup() -> (Chain, MultisigKey) {
    let mut chain = Chain::new(4);
    let keys = (1..4)
        .map(|i| chain.keys[i].verification_key().to_bytes())
        .collect();
    let mk = MultisigKey::new(2, keys).expect("multisig");
    let tx = lode_state::tx::sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &mk.address(), 1_000_000);
    let (r, _) = chain.block(vec![tx]);
    assert_eq!(r[0].code, 0, "{}", r[0].log);
    (chain, mk)
}

fn doc(chain: &Chain, mk: &MultisigKey, nonce: u64) -> MultisigTx {
    let to = chain.addr(0);
    multisig::unsigned_doc(
        CHAIN_ID,
        mk,
        nonce,
        MODULE_FEE,
        &[Msg::Bank(BankMsg::Send {
            from: mk.address(),
            to,
            amount: 500,
        })],
        "team treasury",
        0,
    )
}

#[test]
fn two_of_three_signatures_collected_offline_move_funds() {
    let (mut chain, mk) = setup();
    let mut d = doc(&chain, &mk, 0);
    // Signers 1 and 3 sign on their machines; the document travels as JSON.
    for i in [1usize, 3] {
        let json = serde_json::to_string(&d).expect("json");
        let received: MultisigTx = serde_json::from_str(&json).expect("parse");
        let sig = multisig::sign(&received, &chain.keys[i]);
        multisig::add_signature(&mut d, &chain.keys[i].verification_key().to_bytes(), &sig)
            .expect("add");
    }
    let tx = multisig::assemble(&d).expect("assemble");
    assert_eq!(chain.check(&tx).0, 0);
    let before = chain.balance(&chain.addr(0));
    let (r, _) = chain.block(vec![tx]);
    assert_eq!(r[0].code, 0, "{}", r[0].log);
    assert_eq!(chain.balance(&chain.addr(0)), before + 500);
    assert_eq!(chain.account(&mk.address()).nonce, 1);
    // Single-key txs still work unchanged.
    let to = chain.addr(1);
    let tx = lode_state::tx::sign_send(CHAIN_ID, &chain.keys[0], 1, FEE, &to, 1);
    assert_eq!(chain.block(vec![tx]).0[0].code, 0);
}

#[test]
fn below_threshold_bad_slots_and_unsorted_keys_are_refused() {
    let (mut chain, mk) = setup();
    let mut d = doc(&chain, &mk, 0);
    let sig = multisig::sign(&d, &chain.keys[1]);
    multisig::add_signature(&mut d, &chain.keys[1].verification_key().to_bytes(), &sig)
        .expect("add");
    assert_eq!(multisig::assemble(&d).map_err(|e| e.code()), Err(22));
    // Forced onto the wire anyway: refused statelessly.
    let one = pb::Tx {
        body_bytes: d.body_bytes.clone(),
        auth_info_bytes: d.auth_info_bytes.clone(),
        signatures: d
            .signatures
            .iter()
            .map(|s| hex::decode(s).expect("hex"))
            .collect(),
    }
    .encode_to_vec();
    assert_eq!(chain.check(&one).0, 22);
    // A signature by a key outside the set, or a wrong signature, is refused by add_signature.
    let outsider = multisig::sign(&d, &chain.keys[0]);
    assert_eq!(
        multisig::add_signature(
            &mut d,
            &chain.keys[0].verification_key().to_bytes(),
            &outsider
        )
        .map_err(|e| e.code()),
        Err(21)
    );
    let wrong = multisig::sign(&d, &chain.keys[3]);
    assert_eq!(
        multisig::add_signature(&mut d, &chain.keys[2].verification_key().to_bytes(), &wrong)
            .map_err(|e| e.code()),
        Err(5)
    );
    // A wrong signature smuggled into a slot fails verification in the block.
    let mut wire = pb::Tx::decode(one.as_slice()).expect("decode");
    let slot = mk
        .keys
        .iter()
        .position(|k| *k == chain.keys[2].verification_key().to_bytes())
        .expect("slot");
    wire.signatures[slot] = wrong.to_vec();
    let before = chain.snapshot();
    let (r, _) = chain.block(vec![wire.encode_to_vec()]);
    assert_eq!(r[0].code, 5);
    assert_eq!(before, chain.snapshot());
    // Unsorted keys on the wire.
    let mut auth = pb::AuthInfo::decode(d.auth_info_bytes.as_slice()).expect("auth");
    if let Some(m) = auth.multisig.as_mut() {
        m.public_keys.reverse();
    }
    let tx = pb::Tx {
        body_bytes: d.body_bytes.clone(),
        auth_info_bytes: auth.encode_to_vec(),
        signatures: vec![vec![]; 3],
    }
    .encode_to_vec();
    assert_eq!(chain.check(&tx).0, 21);
    assert_eq!(
        MultisigKey::new(0, mk.keys.clone()).map_err(|e| e.code()),
        Err(21)
    );
    assert_eq!(
        MultisigKey::new(4, mk.keys.clone()).map_err(|e| e.code()),
        Err(21)
    );
}

#[test]
fn the_multisig_address_depends_on_keys_and_threshold_not_their_order() {
    let chain = Chain::new(3);
    let keys: Vec<[u8; 32]> = chain
        .keys
        .iter()
        .map(|k| k.verification_key().to_bytes())
        .collect();
    let mut rev = keys.clone();
    rev.reverse();
    let a = MultisigKey::new(2, keys.clone()).expect("a");
    let b = MultisigKey::new(2, rev).expect("b");
    let c = MultisigKey::new(3, keys).expect("c");
    assert_eq!(a.address(), b.address());
    assert_ne!(a.address(), c.address());
    assert_ne!(a.address(), chain.addr(0));
}
