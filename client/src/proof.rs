//! Verifying proven state (`QueryService.Query` with `prove`, docs/proofs.md): each entry's ICS-23 proof
//! against an app hash, with light dependencies (no state machine, no RocksDB). The caller decides which app
//! hash to trust: [`crate::Client::query_proved`] compares it with the block's `result_app_hash`.
//!
//! What this does not do: check that a query's decoded answer (`value`) follows from its proven entries. That
//! needs the query's handler, which lives in the state machine; the `lode` CLI re-runs it
//! (`lode_node::proof::verify_answer`). A client that reads the values it needs from the proven entries
//! itself, as [`account_entry`] does for an account, needs no replay.

use crate::address::Address;

/// Why a proven answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("app hash is {0} bytes, not 32")]
    AppHash(usize),
    #[error("the proof of key {key} does not decode: {reason}")]
    Decode { key: String, reason: String },
    #[error("the proof of key {key} is not an {want} proof of that key{value}")]
    Kind {
        key: String,
        want: &'static str,
        value: &'static str,
    },
    #[error("the proof of key {key} does not verify against app hash {root}")]
    Invalid { key: String, root: String },
    #[error("key {0} is proven twice")]
    Duplicate(String),
    #[error("key {0} is not among the proven entries")]
    Missing(String),
    #[error("the value of key {key} is not {want}")]
    Value { key: String, want: &'static str },
}

/// The ICS-23 proof spec of Lode's state tree: jmt 0.12's (SHA-256; leaf `SHA-256("JMT::LeafNode" ‖
/// SHA-256(key) ‖ SHA-256(value))`; inner `SHA-256("JMT::IntrnalNode" ‖ left ‖ right)`; keys compared by
/// their SHA-256), with the leaf value carried as its SHA-256, so `prehash_value` is `NO_HASH`. The state
/// crate builds its proofs against this spec (`lode_state::query::proof_spec`, tested equal to jmt's).
pub fn spec() -> ics23::ProofSpec {
    use ics23::{HashOp, InnerSpec, LeafOp, LengthOp, ProofSpec};
    const INTERNAL: &[u8] = b"JMT::IntrnalNode";
    ProofSpec {
        leaf_spec: Some(LeafOp {
            hash: HashOp::Sha256.into(),
            prehash_key: HashOp::Sha256.into(),
            prehash_value: HashOp::NoHash.into(),
            length: LengthOp::NoPrefix.into(),
            prefix: b"JMT::LeafNode".to_vec(),
        }),
        inner_spec: Some(InnerSpec {
            hash: HashOp::Sha256.into(),
            child_order: vec![0, 1],
            min_prefix_length: INTERNAL.len() as i32,
            max_prefix_length: INTERNAL.len() as i32,
            child_size: 32,
            empty_child: b"SPARSE_MERKLE_PLACEHOLDER_HASH__".to_vec(),
        }),
        min_depth: 0,
        max_depth: 64,
        prehash_key_before_comparison: true,
    }
}

fn sha256(b: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(b).to_vec()
}

/// Checks one entry: `proof` (an encoded `ics23.CommitmentProof`) proves that `key` holds `value` (None:
/// holds nothing) in the tree whose root is `app_hash`.
pub fn verify_entry(
    app_hash: &[u8],
    key: &[u8],
    value: Option<&[u8]>,
    proof: &[u8],
) -> Result<(), ProofError> {
    use ics23::commitment_proof::Proof;
    use prost013::Message;
    if app_hash.len() != 32 {
        return Err(ProofError::AppHash(app_hash.len()));
    }
    let hex_key = || hex::encode(key);
    let p = ics23::CommitmentProof::decode(proof).map_err(|e| ProofError::Decode {
        key: hex_key(),
        reason: e.to_string(),
    })?;
    let root = app_hash.to_vec();
    let ok = match (value, &p.proof) {
        (Some(v), Some(Proof::Exist(e))) if e.key == key && e.value == sha256(v) => {
            ics23::verify_membership::<ics23::HostFunctionsManager>(
                &p,
                &spec(),
                &root,
                key,
                &e.value,
            )
        }
        (Some(_), _) => {
            return Err(ProofError::Kind {
                key: hex_key(),
                want: "existence",
                value: " and value",
            })
        }
        (None, Some(Proof::Nonexist(n))) if n.key == key => {
            ics23::verify_non_membership::<ics23::HostFunctionsManager>(&p, &spec(), &root, key)
        }
        (None, _) => {
            return Err(ProofError::Kind {
                key: hex_key(),
                want: "absence",
                value: "",
            })
        }
    };
    if ok {
        Ok(())
    } else {
        Err(ProofError::Invalid {
            key: hex_key(),
            root: hex::encode(app_hash),
        })
    }
}

/// One proven entry as the wire carries it: the key, whether it exists, its value (empty when absent) and
/// its encoded proof.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub key: &'a [u8],
    pub exists: bool,
    pub value: &'a [u8],
    pub proof: &'a [u8],
}

/// Checks every entry against `app_hash` (each key once; an absent key carries no value).
pub fn verify_entries<'a>(
    app_hash: &[u8],
    entries: impl IntoIterator<Item = Entry<'a>>,
) -> Result<(), ProofError> {
    let mut seen = std::collections::BTreeSet::new();
    for e in entries {
        if !seen.insert(e.key) {
            return Err(ProofError::Duplicate(hex::encode(e.key)));
        }
        if !e.exists && !e.value.is_empty() {
            return Err(ProofError::Kind {
                key: hex::encode(e.key),
                want: "absence",
                value: " (an absent key carries a value)",
            });
        }
        verify_entry(app_hash, e.key, e.exists.then_some(e.value), e.proof)?;
    }
    Ok(())
}

/// The state key of an account: `bank/account/` ‖ the address's 20 bytes (docs/proofs.md).
pub fn account_key(address: &Address) -> Vec<u8> {
    [&b"bank/account/"[..], address.as_bytes()].concat()
}

/// An account's balance and next nonce as stored: `balance (u128 LE) ‖ nonce (u64 LE)`; an absent account
/// has both 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountState {
    pub balance: u128,
    pub nonce: u64,
}

/// Decodes an account's proven entry (`value`: None when proven absent).
pub fn account_entry(key: &[u8], value: Option<&[u8]>) -> Result<AccountState, ProofError> {
    let Some(v) = value else {
        return Ok(AccountState::default());
    };
    let bad = || ProofError::Value {
        key: hex::encode(key),
        want: "an account (24 bytes: balance u128 LE, nonce u64 LE)",
    };
    let (balance, nonce) = v.split_at_checked(16).ok_or_else(bad)?;
    Ok(AccountState {
        balance: u128::from_le_bytes(balance.try_into().map_err(|_| bad())?),
        nonce: u64::from_le_bytes(nonce.try_into().map_err(|_| bad())?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_values_decode_and_malformed_ones_are_refused() {
        let mut v = 500u128.to_le_bytes().to_vec();
        v.extend_from_slice(&7u64.to_le_bytes());
        assert_eq!(
            account_entry(b"k", Some(&v)),
            Ok(AccountState {
                balance: 500,
                nonce: 7
            })
        );
        assert_eq!(account_entry(b"k", None), Ok(AccountState::default()));
        for bad in [&v[..23], &[][..], &[0u8; 25][..]] {
            assert!(matches!(
                account_entry(b"k", Some(bad)),
                Err(ProofError::Value { .. })
            ));
        }
    }

    #[test]
    fn garbage_proofs_and_short_roots_are_refused() {
        assert!(matches!(
            verify_entry(&[0; 32], b"k", Some(b"v"), &[0xff, 0x01]),
            Err(ProofError::Decode { .. })
        ));
        assert_eq!(
            verify_entry(&[0; 31], b"k", None, &[]),
            Err(ProofError::AppHash(31))
        );
        // An empty proof decodes as a proof of nothing: the wrong kind for either claim.
        assert!(matches!(
            verify_entry(&[0; 32], b"k", None, &[]),
            Err(ProofError::Kind { .. })
        ));
        let twice = [Entry {
            key: b"k",
            exists: false,
            value: b"",
            proof: b"",
        }; 2];
        assert!(matches!(
            verify_entries(&[0; 32], twice),
            Err(ProofError::Kind { .. })
        ));
    }
}
