//! Transactions: decoding wire bytes into checked domain types (`check_stateless`), signing, and gas.
//!
//! Everything here needs no state, so a block's txs are checked in parallel before execution.

pub mod checker;
pub mod multisig;
mod verify;

pub use crate::address::check_public_key;
pub use crate::modules::Msg;
pub use multisig::MultisigKey;
pub use verify::{signatures_verify, verify_signatures};
// The tx format is the client crate's (one definition for the chain and for wallets).
pub use lode_client::tx::{address_of, sign_doc_bytes, sign_raw, tx_hash};

use ed25519_consensus::SigningKey;
use lode_proto::tx::v1 as pb;
use prost::Message;

use crate::{
    address::Address, amount::parse_amount, error::TxError, modules::bank::BankMsg, params::Params,
};

/// A decoded, statelessly checked transaction (signature not yet verified: see [`verify_signatures`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tx {
    pub body: TxBody,
    pub auth: AuthInfo,
    /// (public key, signature) pairs to verify: one for a single-key signer, one per signed slot of a
    /// multisig.
    pub signatures: Vec<([u8; 32], [u8; 64])>,
    /// The exact bytes the signature covers (an encoded `SignDoc`).
    pub sign_bytes: Vec<u8>,
    /// SHA-256 of the raw tx bytes: the tx's identity in the mempool and the tx index.
    pub hash: [u8; 32],
    /// Length of the raw tx bytes.
    pub len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxBody {
    pub chain_id: String,
    pub msgs: Vec<Msg>,
    pub memo: String,
    pub timeout_height: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthInfo {
    pub key: SignerKey,
    /// The account that signs: the key's address.
    pub signer: Address,
    pub nonce: u64,
    pub fee: u128,
}

/// Who signs a tx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerKey {
    Single([u8; 32]),
    Multi(MultisigKey),
}

impl SignerKey {
    pub fn address(&self) -> Address {
        match self {
            SignerKey::Single(k) => Address::from_public_key(k),
            SignerKey::Multi(m) => m.address(),
        }
    }
}

impl Tx {
    /// Decodes `raw` and runs every check that needs no state: size, encoding, chain id, key validity,
    /// signature count, message well-formedness. Signatures are verified separately, in batches.
    pub fn check_stateless(raw: &[u8], chain_id: &str, params: &Params) -> Result<Tx, TxError> {
        Self::check_stateless_hashed(raw, tx_hash(raw), chain_id, params)
    }

    /// [`Tx::check_stateless`] for a caller that already hashed `raw` (`hash` must be `tx_hash(raw)`).
    pub fn check_stateless_hashed(
        raw: &[u8],
        hash: [u8; 32],
        chain_id: &str,
        params: &Params,
    ) -> Result<Tx, TxError> {
        if raw.len() as u64 > params.max_tx_bytes {
            return Err(TxError::TooLarge {
                size: raw.len(),
                max: params.max_tx_bytes,
            });
        }
        let wire = pb::Tx::decode(raw).map_err(|e| TxError::Decode(format!("tx: {e}")))?;
        let body_pb = pb::TxBody::decode(wire.body_bytes.as_slice())
            .map_err(|e| TxError::Decode(format!("tx body: {e}")))?;
        let auth_pb = pb::AuthInfo::decode(wire.auth_info_bytes.as_slice())
            .map_err(|e| TxError::Decode(format!("auth info: {e}")))?;
        // The tx's hash covers its raw bytes but the signature covers only the body and auth bytes: were
        // several encodings of one tx accepted, anyone could re-broadcast a pending tx under another hash.
        check_canonical(raw, &wire, "tx")?;
        check_canonical(&wire.body_bytes, &body_pb, "tx body")?;
        check_canonical(&wire.auth_info_bytes, &auth_pb, "auth info")?;

        if body_pb.chain_id != chain_id {
            return Err(TxError::WrongChainId {
                got: body_pb.chain_id.chars().take(64).collect(),
                want: chain_id.to_string(),
            });
        }
        let fee = match &auth_pb.fee {
            Some(f) => parse_amount(&f.amount)?,
            None => 0,
        };
        let (key, signatures) = match &auth_pb.multisig {
            None => {
                let public_key: [u8; 32] = auth_pb
                    .public_key
                    .as_slice()
                    .try_into()
                    .map_err(|_| TxError::InvalidPublicKey("public key must be 32 bytes"))?;
                check_public_key(&public_key)?;
                let [signature] = wire.signatures.as_slice() else {
                    return Err(TxError::SignatureCount {
                        got: wire.signatures.len(),
                        want: 1,
                    });
                };
                let signature: [u8; 64] = signature
                    .as_slice()
                    .try_into()
                    .map_err(|_| TxError::Decode("signature must be 64 bytes".into()))?;
                (SignerKey::Single(public_key), vec![(public_key, signature)])
            }
            Some(m) => {
                if !auth_pb.public_key.is_empty() {
                    return Err(TxError::InvalidMultisig(
                        "public_key and multisig are both set",
                    ));
                }
                if m.public_keys.len() as u64 > params.max_multisig_keys {
                    return Err(TxError::InvalidMultisig("more keys than max_multisig_keys"));
                }
                let mk = MultisigKey::from_pb(m)?;
                if wire.signatures.len() != mk.keys.len() {
                    return Err(TxError::SignatureCount {
                        got: wire.signatures.len(),
                        want: mk.keys.len(),
                    });
                }
                let mut sigs = Vec::new();
                for (k, sig) in mk.keys.iter().zip(&wire.signatures) {
                    if sig.is_empty() {
                        continue;
                    }
                    let sig: [u8; 64] = sig
                        .as_slice()
                        .try_into()
                        .map_err(|_| TxError::Decode("signature must be 64 bytes".into()))?;
                    sigs.push((*k, sig));
                }
                if sigs.len() < mk.threshold as usize {
                    return Err(TxError::MultisigThreshold {
                        got: sigs.len(),
                        threshold: mk.threshold,
                    });
                }
                (SignerKey::Multi(mk), sigs)
            }
        };
        let signer = key.address();
        let auth = AuthInfo {
            key,
            signer,
            nonce: auth_pb.nonce,
            fee,
        };

        if body_pb.msgs.is_empty() {
            return Err(TxError::EmptyMsgs);
        }
        if body_pb.msgs.len() as u64 > params.max_msgs_per_tx {
            return Err(TxError::TooManyMsgs {
                got: body_pb.msgs.len(),
                max: params.max_msgs_per_tx,
            });
        }
        if body_pb.memo.len() as u64 > params.max_memo_bytes {
            return Err(TxError::MemoTooLong {
                len: body_pb.memo.len(),
                max: params.max_memo_bytes,
            });
        }
        let msgs = body_pb
            .msgs
            .into_iter()
            .map(|m| {
                let m = Msg::try_from(m)?;
                m.check_stateless(params)?;
                check_sender(m, &signer)
            })
            .collect::<Result<Vec<_>, _>>()?;

        let sign_bytes = sign_doc_bytes(chain_id, &wire.body_bytes, &wire.auth_info_bytes);
        Ok(Tx {
            body: TxBody {
                chain_id: body_pb.chain_id,
                msgs,
                memo: body_pb.memo,
                timeout_height: body_pb.timeout_height,
            },
            auth,
            signatures,
            sign_bytes,
            hash,
            len: raw.len(),
        })
    }

    /// Gas used: a fixed cost per message plus a cost per byte of the encoded tx.
    pub fn gas(&self, p: &Params) -> Result<u64, TxError> {
        let mut gas = (self.len as u64)
            .checked_mul(p.gas_per_tx_byte)
            .ok_or(TxError::Overflow("gas"))?;
        if let SignerKey::Multi(m) = &self.auth.key {
            gas = p
                .gas_per_multisig_key
                .checked_mul(m.keys.len() as u64)
                .and_then(|g| gas.checked_add(g))
                .ok_or(TxError::Overflow("gas"))?;
        }
        for m in &self.body.msgs {
            gas = m
                .gas(p)
                .and_then(|g| gas.checked_add(g))
                .ok_or(TxError::Overflow("gas"))?;
        }
        Ok(gas)
    }

    /// The smallest fee this tx may pay: gas × min gas price.
    pub fn min_fee(&self, p: &Params) -> Result<(u64, u128), TxError> {
        let gas = self.gas(p)?;
        let min = (gas as u128)
            .checked_mul(p.min_gas_price as u128)
            .ok_or(TxError::Overflow("fee"))?;
        Ok((gas, min))
    }
}

/// Refuses `bytes` unless they are exactly the encoding of what was decoded from them: prost skips unknown
/// fields, keeps the last of repeated scalar fields, merges repeated message fields, and accepts non-minimal
/// varints, unpacked repeated scalars and explicitly encoded default values, each of which gives the same tx
/// other bytes (another hash). Prost's encoding (fields in tag order, defaults omitted, minimal varints) is
/// the one canonical form; clients that encode with prost, as `lode` does, produce it.
fn check_canonical<M: Message>(
    bytes: &[u8],
    decoded: &M,
    what: &'static str,
) -> Result<(), TxError> {
    if decoded.encoded_len() == bytes.len() && decoded.encode_to_vec() == bytes {
        Ok(())
    } else {
        Err(TxError::NonCanonical(what))
    }
}

fn check_sender(m: Msg, signer: &Address) -> Result<Msg, TxError> {
    if m.sender() != signer {
        return Err(TxError::SignerMismatch {
            sender: m.sender().to_string(),
            signer: signer.to_string(),
        });
    }
    Ok(m)
}

/// Builds and signs a tx carrying `msgs` from the key's account.
pub fn sign_msgs(
    chain_id: &str,
    key: &SigningKey,
    nonce: u64,
    fee: u128,
    msgs: &[Msg],
    memo: &str,
) -> Vec<u8> {
    let msgs: Vec<pb::Msg> = msgs.iter().map(pb::Msg::from).collect();
    lode_client::tx::sign_msgs(chain_id, key, nonce, fee, &msgs, memo)
}

/// Builds and signs a single transfer.
pub fn sign_send(
    chain_id: &str,
    key: &SigningKey,
    nonce: u64,
    fee: u128,
    to: &Address,
    amount: u128,
) -> Vec<u8> {
    let from = Address::from_public_key(&key.verification_key().to_bytes());
    sign_msgs(
        chain_id,
        key,
        nonce,
        fee,
        &[Msg::Bank(BankMsg::Send {
            from,
            to: *to,
            amount,
        })],
        "",
    )
}

/// Builds and signs a tx with one message of any module (a test helper: feature `test-utils`).
#[cfg(any(test, feature = "test-utils"))]
pub fn sign_msg(chain_id: &str, key: &SigningKey, nonce: u64, fee: u128, msg: Msg) -> Vec<u8> {
    sign_msgs(chain_id, key, nonce, fee, &[msg], "")
}
