//! The committed tx test vectors (`docs/tx-test-vectors.json`, described in `docs/tx-format.md`): keys from
//! the devnet mnemonic, addresses, tx bodies, auth infos, sign bytes, signatures, txs and hashes.
//!
//! Each vector is checked three times: through the chain's own code (`lode_state`: prost encoding, `sign_raw`,
//! `check_stateless` accepts it), through the client crate's signing path (`lode_client::tx::TxBuilder`, what
//! wallets call), and by an independent re-derivation here (protobuf written by hand from
//! the field numbers, bech32m with the `bech32` crate, SHA-256, ed25519) that never calls the signing path.
//! `LODE_BLESS=1` rewrites the file from the chain's code (then review the diff: a change breaks wallets).

use ed25519_consensus::SigningKey;
use lode_proto::bank::v1 as bankpb;
use lode_proto::tx::v1 as txpb;
use prost::Message;
use sha2::{Digest, Sha256};

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/tx-test-vectors.json");
const CHAIN: &str = "lode-devnet-1";

struct Case {
    name: &'static str,
    signer: u32,
    to: u32,
    amount: &'static str,
    memo: &'static str,
    timeout_height: u64,
    nonce: u64,
    fee: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "send, first tx of dev0",
        signer: 0,
        to: 1,
        amount: "1000",
        memo: "",
        timeout_height: 0,
        nonce: 0,
        fee: "2000",
    },
    Case {
        name: "send with memo, timeout height and a later nonce",
        signer: 1,
        to: 0,
        amount: "340282366920938463463374607431768211455",
        memo: "rent 4 GPU-hours",
        timeout_height: 1_000_000,
        nonce: 300,
        fee: "123456789",
    },
];

// ---- the independent re-derivation: protobuf by hand ----

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field (wire type 2); omitted when empty, as proto3 does.
fn bytes_field(tag: u32, v: &[u8], out: &mut Vec<u8>) {
    if v.is_empty() {
        return;
    }
    varint(u64::from(tag << 3 | 2), out);
    varint(v.len() as u64, out);
    out.extend_from_slice(v);
}

/// A varint field (wire type 0); omitted when 0.
fn varint_field(tag: u32, v: u64, out: &mut Vec<u8>) {
    if v == 0 {
        return;
    }
    varint(u64::from(tag << 3), out);
    varint(v, out);
}

fn hand_address(public: &[u8; 32]) -> String {
    let digest = Sha256::digest(public);
    bech32::encode::<bech32::Bech32m>(bech32::Hrp::parse("lode").expect("hrp"), &digest[..20])
        .expect("bech32m")
}

struct Hand {
    body: Vec<u8>,
    auth: Vec<u8>,
    sign_doc: Vec<u8>,
    signature: [u8; 64],
    tx: Vec<u8>,
    hash: [u8; 32],
}

fn hand_tx(c: &Case, key: &SigningKey, to: &str) -> Hand {
    let public = key.verification_key().to_bytes();
    let from = hand_address(&public);
    // MsgSend { from = 1, to = 2, amount = 3 }, inside Msg's oneof as `send = 1`.
    let mut send = Vec::new();
    bytes_field(1, from.as_bytes(), &mut send);
    bytes_field(2, to.as_bytes(), &mut send);
    bytes_field(3, c.amount.as_bytes(), &mut send);
    let mut msg = Vec::new();
    bytes_field(1, &send, &mut msg);
    // TxBody { msgs = 1, memo = 2, timeout_height = 3, chain_id = 4 }.
    let mut body = Vec::new();
    bytes_field(1, &msg, &mut body);
    bytes_field(2, c.memo.as_bytes(), &mut body);
    varint_field(3, c.timeout_height, &mut body);
    bytes_field(4, CHAIN.as_bytes(), &mut body);
    // AuthInfo { public_key = 1, nonce = 2, fee = 3 (Fee { amount = 1 }) }, in field-number order.
    let mut fee = Vec::new();
    bytes_field(1, c.fee.as_bytes(), &mut fee);
    let mut auth = Vec::new();
    bytes_field(1, &public, &mut auth);
    varint_field(2, c.nonce, &mut auth);
    bytes_field(3, &fee, &mut auth);
    // SignDoc { chain_id = 1, body_bytes = 2, auth_info_bytes = 3 }.
    let mut sign_doc = Vec::new();
    bytes_field(1, CHAIN.as_bytes(), &mut sign_doc);
    bytes_field(2, &body, &mut sign_doc);
    bytes_field(3, &auth, &mut sign_doc);
    let signature = key.sign(&sign_doc).to_bytes();
    // Tx { body_bytes = 1, auth_info_bytes = 2, signatures = 3 (repeated) }.
    let mut tx = Vec::new();
    bytes_field(1, &body, &mut tx);
    bytes_field(2, &auth, &mut tx);
    bytes_field(3, &signature, &mut tx);
    let hash = Sha256::digest(&tx).into();
    Hand {
        body,
        auth,
        sign_doc,
        signature,
        tx,
        hash,
    }
}

// ---- the chain's own path ----

fn key(i: u32) -> SigningKey {
    lode_node::hd::account_key(lode_node::hd::DEVNET_MNEMONIC, "", i).expect("devnet key")
}

fn address(k: &SigningKey) -> String {
    lode_state::Address::from_public_key(&k.verification_key().to_bytes()).to_string()
}

fn vector(c: &Case) -> serde_json::Value {
    let (sk, to) = (key(c.signer), address(&key(c.to)));
    let body = txpb::TxBody {
        msgs: vec![txpb::Msg {
            sum: Some(txpb::msg::Sum::Send(bankpb::MsgSend {
                from: address(&sk),
                to: to.clone(),
                amount: c.amount.into(),
            })),
        }],
        memo: c.memo.into(),
        timeout_height: c.timeout_height,
        chain_id: CHAIN.into(),
    };
    let auth = txpb::AuthInfo {
        public_key: sk.verification_key().to_bytes().to_vec(),
        multisig: None,
        nonce: c.nonce,
        fee: Some(txpb::Fee {
            amount: c.fee.into(),
        }),
    };
    let tx = lode_state::tx::sign_raw(&body, &auth, &sk);
    let decoded = txpb::Tx::decode(tx.as_slice()).expect("decode");
    let sign_doc =
        lode_state::tx::sign_doc_bytes(CHAIN, &decoded.body_bytes, &decoded.auth_info_bytes);
    serde_json::json!({
        "name": c.name,
        "chain_id": CHAIN,
        "signer": {
            "derivation_path": lode_node::hd::path_string(&lode_node::hd::account_path(c.signer).expect("path")),
            "private_key": hex::encode(sk.to_bytes()),
            "public_key": hex::encode(sk.verification_key().to_bytes()),
            "address": address(&sk),
        },
        "msg": { "type": "bank.MsgSend", "from": address(&sk), "to": to, "amount": c.amount },
        "memo": c.memo,
        "timeout_height": c.timeout_height,
        "nonce": c.nonce,
        "fee": c.fee,
        "body_bytes": hex::encode(&decoded.body_bytes),
        "auth_info_bytes": hex::encode(&decoded.auth_info_bytes),
        "sign_doc_bytes": hex::encode(&sign_doc),
        "signature": hex::encode(&decoded.signatures[0]),
        "tx_bytes": hex::encode(&tx),
        "tx_hash": hex::encode_upper(lode_state::tx::tx_hash(&tx)),
    })
}

#[test]
fn committed_tx_vectors_match_the_chain_and_an_independent_derivation() {
    let now = serde_json::json!({
        "mnemonic": lode_node::hd::DEVNET_MNEMONIC,
        "vectors": CASES.iter().map(vector).collect::<Vec<_>>(),
    });
    if std::env::var_os("LODE_BLESS").is_some() {
        std::fs::write(
            FILE,
            serde_json::to_string_pretty(&now).expect("json") + "\n",
        )
        .expect("write vectors");
    }
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(FILE).expect("docs/tx-test-vectors.json"))
            .expect("json");
    assert_eq!(
        committed, now,
        "the chain's encoding, keys or hashes changed: wallets built from the vectors would break"
    );

    // The client crate's path: keys from the mnemonic, the typed transfer, the builder's sign bytes, signature
    // and hash.
    for (c, v) in CASES
        .iter()
        .zip(committed["vectors"].as_array().expect("vectors"))
    {
        let field = |k: &str| v[k].as_str().expect(k).to_owned();
        let sk = lode_client::hd::account_key(lode_client::hd::DEVNET_MNEMONIC, "", c.signer)
            .expect("key");
        let from = lode_client::tx::address_of(&sk);
        let to: lode_client::Address = v["msg"]["to"].as_str().expect("to").parse().expect("to");
        assert_eq!(v["signer"]["address"], from.to_string(), "{}", c.name);
        let amount: u128 = c.amount.parse().expect("amount");
        let builder = lode_client::tx::TxBuilder::new(CHAIN)
            .msg(lode_client::tx::msgs::send(&from, &to, amount))
            .memo(c.memo)
            .timeout_height(c.timeout_height)
            .nonce(c.nonce)
            .fee(c.fee.parse().expect("fee"));
        let public = sk.verification_key().to_bytes();
        assert_eq!(
            field("sign_doc_bytes"),
            hex::encode(builder.sign_bytes(&public)),
            "{}",
            c.name
        );
        let signed = builder.sign(&sk);
        assert_eq!(field("tx_bytes"), hex::encode(&signed.bytes), "{}", c.name);
        assert_eq!(
            field("tx_hash"),
            hex::encode_upper(signed.hash),
            "{}",
            c.name
        );
    }

    let params = lode_state::Params::default();
    for (c, v) in CASES
        .iter()
        .zip(committed["vectors"].as_array().expect("vectors"))
    {
        let sk = key(c.signer);
        let h = hand_tx(c, &sk, v["msg"]["to"].as_str().expect("to"));
        let field = |k: &str| v[k].as_str().expect(k).to_owned();
        assert_eq!(
            v["signer"]["address"],
            hand_address(&sk.verification_key().to_bytes())
        );
        assert_eq!(field("body_bytes"), hex::encode(&h.body), "{}", c.name);
        assert_eq!(field("auth_info_bytes"), hex::encode(&h.auth), "{}", c.name);
        assert_eq!(
            field("sign_doc_bytes"),
            hex::encode(&h.sign_doc),
            "{}",
            c.name
        );
        // ed25519 signatures are deterministic (RFC 8032): the same key and bytes give the same signature.
        assert_eq!(field("signature"), hex::encode(h.signature), "{}", c.name);
        assert_eq!(field("tx_bytes"), hex::encode(&h.tx), "{}", c.name);
        assert_eq!(field("tx_hash"), hex::encode_upper(h.hash), "{}", c.name);
        // The chain accepts the hand-made tx (encoding, chain id, key, signature count, message).
        let tx =
            lode_state::tx::Tx::check_stateless(&h.tx, CHAIN, &params).expect("stateless checks");
        assert!(lode_state::tx::signatures_verify(&tx), "{}", c.name);
        // Another chain refuses it; a signature with one bit flipped does not verify.
        assert!(lode_state::tx::Tx::check_stateless(&h.tx, "lode-other-1", &params).is_err());
        let mut bad = h.tx.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let tx =
            lode_state::tx::Tx::check_stateless(&bad, CHAIN, &params).expect("still well formed");
        assert!(!lode_state::tx::signatures_verify(&tx), "{}", c.name);
    }
}
