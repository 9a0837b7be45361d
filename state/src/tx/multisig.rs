//! Multisig accounts (k of n ed25519 keys) and the offline signing flow a CLI uses:
//! [`unsigned_doc`] builds the tx every co-signer signs, each signer runs [`sign`] on their own machine,
//! [`add_signature`] checks and slots each signature in, and [`assemble`] produces the broadcastable tx once
//! the threshold is met. [`MultisigTx`] is serde (JSON with hex bytes) so it can travel as a file.
//!
//! On the wire: `AuthInfo.multisig` names the key set, and `Tx.signatures` holds one entry per key slot in
//! key order: 64 bytes, or empty for a key that did not sign.

use ed25519_consensus::{Signature, SigningKey, VerificationKey};
use lode_proto::tx::v1 as pb;
use prost::Message;
use serde::{Deserialize, Serialize};

use super::{check_public_key, sign_doc_bytes, Msg};
use crate::{address::Address, error::TxError};

/// A k-of-n key set, keys strictly ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultisigKey {
    pub threshold: u32,
    pub keys: Vec<[u8; 32]>,
}

impl MultisigKey {
    /// Sorts the keys and checks the set: 1 <= threshold <= n, no duplicates, every key valid.
    pub fn new(threshold: u32, mut keys: Vec<[u8; 32]>) -> Result<MultisigKey, TxError> {
        keys.sort();
        MultisigKey::checked(threshold, keys)
    }

    /// Checks a key set as given (it must already be sorted: one set, one encoding, one address).
    pub fn checked(threshold: u32, keys: Vec<[u8; 32]>) -> Result<MultisigKey, TxError> {
        if keys.is_empty() {
            return Err(TxError::InvalidMultisig("no keys"));
        }
        if threshold == 0 || threshold as usize > keys.len() {
            return Err(TxError::InvalidMultisig(
                "threshold must be in 1..=number of keys",
            ));
        }
        if !keys.is_sorted_by(|a, b| a < b) {
            return Err(TxError::InvalidMultisig(
                "keys must be strictly ascending (sorted, no duplicates)",
            ));
        }
        for k in &keys {
            check_public_key(k)?;
        }
        Ok(MultisigKey { threshold, keys })
    }

    /// The account's address.
    pub fn address(&self) -> Address {
        Address::multisig(self.threshold, &self.keys)
    }

    pub fn to_pb(&self) -> pb::MultisigPublicKey {
        pb::MultisigPublicKey {
            threshold: self.threshold,
            public_keys: self.keys.iter().map(|k| k.to_vec()).collect(),
        }
    }

    pub fn from_pb(m: &pb::MultisigPublicKey) -> Result<MultisigKey, TxError> {
        let keys = m
            .public_keys
            .iter()
            .map(|k| {
                <[u8; 32]>::try_from(k.as_slice())
                    .map_err(|_| TxError::InvalidPublicKey("public key must be 32 bytes"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        MultisigKey::checked(m.threshold, keys)
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

/// A multisig tx being signed: the exact bytes every co-signer signs, and one slot per key (hex signature,
/// or empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultisigTx {
    pub chain_id: String,
    #[serde(with = "hex_bytes")]
    pub body_bytes: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub auth_info_bytes: Vec<u8>,
    pub signatures: Vec<String>,
}

impl MultisigTx {
    /// The bytes each co-signer signs.
    pub fn sign_bytes(&self) -> Vec<u8> {
        sign_doc_bytes(&self.chain_id, &self.body_bytes, &self.auth_info_bytes)
    }

    /// The key set named by the auth info.
    pub fn key(&self) -> Result<MultisigKey, TxError> {
        let auth = pb::AuthInfo::decode(self.auth_info_bytes.as_slice())
            .map_err(|e| TxError::Decode(format!("auth info: {e}")))?;
        let m = auth
            .multisig
            .ok_or(TxError::InvalidMultisig("auth info names no multisig key"))?;
        MultisigKey::from_pb(&m)
    }

    /// Slots filled so far.
    pub fn signed(&self) -> usize {
        self.signatures.iter().filter(|s| !s.is_empty()).count()
    }
}

/// Builds the unsigned tx for a multisig account (the messages' sender must be `key.address()`).
pub fn unsigned_doc(
    chain_id: &str,
    key: &MultisigKey,
    nonce: u64,
    fee: u128,
    msgs: &[Msg],
    memo: &str,
    timeout_height: u64,
) -> MultisigTx {
    let body = pb::TxBody {
        msgs: msgs.iter().map(pb::Msg::from).collect(),
        memo: memo.to_string(),
        timeout_height,
        chain_id: chain_id.to_string(),
    };
    let auth = pb::AuthInfo {
        public_key: Vec::new(),
        nonce,
        fee: Some(pb::Fee {
            amount: fee.to_string(),
        }),
        multisig: Some(key.to_pb()),
    };
    MultisigTx {
        chain_id: chain_id.to_string(),
        body_bytes: body.encode_to_vec(),
        auth_info_bytes: auth.encode_to_vec(),
        signatures: vec![String::new(); key.keys.len()],
    }
}

/// A co-signer's signature over the document (run offline, on the signer's machine).
pub fn sign(doc: &MultisigTx, key: &SigningKey) -> [u8; 64] {
    key.sign(&doc.sign_bytes()).to_bytes()
}

/// Verifies a co-signer's signature (ZIP-215) and puts it into that key's slot.
pub fn add_signature(
    doc: &mut MultisigTx,
    public_key: &[u8; 32],
    signature: &[u8; 64],
) -> Result<(), TxError> {
    let key = doc.key()?;
    let slot = key
        .keys
        .iter()
        .position(|k| k == public_key)
        .ok_or(TxError::InvalidMultisig("key is not part of this multisig"))?;
    VerificationKey::try_from(*public_key)
        .and_then(|vk| vk.verify(&Signature::from(*signature), &doc.sign_bytes()))
        .map_err(|_| TxError::BadSignature)?;
    if doc.signatures.len() != key.keys.len() {
        doc.signatures.resize(key.keys.len(), String::new());
    }
    if let Some(entry) = doc.signatures.get_mut(slot) {
        // Always there: `slot` < keys.len() = signatures.len().
        *entry = hex::encode(signature);
    }
    Ok(())
}

/// The broadcastable tx, once at least `threshold` slots are signed.
pub fn assemble(doc: &MultisigTx) -> Result<Vec<u8>, TxError> {
    let key = doc.key()?;
    if doc.signatures.len() != key.keys.len() {
        return Err(TxError::SignatureCount {
            got: doc.signatures.len(),
            want: key.keys.len(),
        });
    }
    let signatures = doc
        .signatures
        .iter()
        .map(|s| hex::decode(s).map_err(|e| TxError::Decode(format!("signature: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if doc.signed() < key.threshold as usize {
        return Err(TxError::MultisigThreshold {
            got: doc.signed(),
            threshold: key.threshold,
        });
    }
    Ok(pb::Tx {
        body_bytes: doc.body_bytes.clone(),
        auth_info_bytes: doc.auth_info_bytes.clone(),
        signatures,
    }
    .encode_to_vec())
}
