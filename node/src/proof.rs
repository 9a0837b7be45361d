//! Verifying a proven state query (`QueryService.Query` with `prove`, docs/proofs.md): every entry's ICS-23
//! proof against the answer's app hash, then the answer against its entries (the path's handler re-run
//! over exactly the proven entries must give the answer's bytes). No CLI, network or runtime here, so a
//! client crate can take this module whole; the caller decides which app hash to trust (the CLI compares it
//! with the block's).

use crate::services::grpc::pb;

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
    #[error("the answer does not follow from its proven entries: {0}")]
    Replay(String),
}

/// The ICS-23 proof spec of Lode's state tree: jmt 0.12's (SHA-256; leaf `SHA-256("JMT::LeafNode" ‖
/// SHA-256(key) ‖ SHA-256(value))`; inner `SHA-256("JMT::IntrnalNode" ‖ left ‖ right)`; keys compared by
/// their SHA-256), with the leaf value carried as its SHA-256 (`lode_state::query::proof_spec`).
pub fn spec() -> ics23::ProofSpec {
    lode_state::query::proof_spec()
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

/// Checks every entry of an answer against its app hash (each key once).
pub fn verify_entries(answer: &pb::StateQueryResponse) -> Result<(), ProofError> {
    let mut seen = std::collections::BTreeSet::new();
    for e in &answer.proofs {
        if !seen.insert(e.key.as_slice()) {
            return Err(ProofError::Duplicate(hex::encode(&e.key)));
        }
        let value = e.exists.then_some(e.value.as_slice());
        if !e.exists && !e.value.is_empty() {
            return Err(ProofError::Kind {
                key: hex::encode(&e.key),
                want: "absence",
                value: " (an absent key carries a value)",
            });
        }
        verify_entry(&answer.app_hash, &e.key, value, &e.proof)?;
    }
    Ok(())
}

/// Checks a whole proven answer to `path` with request `data`: every entry against the app hash, then the
/// answer's value against the entries (the path's handler, re-run over them, gives it byte for byte).
/// The app hash itself is the caller's to trust.
pub fn verify_answer(
    path: &str,
    data: &[u8],
    answer: &pb::StateQueryResponse,
) -> Result<(), ProofError> {
    verify_entries(answer)?;
    let entries = answer
        .proofs
        .iter()
        .map(|e| (e.key.clone(), e.exists.then(|| e.value.clone())));
    let replayed = lode_state::query::replay(path, data, entries)
        .map_err(|(code, log)| ProofError::Replay(format!("code {code}: {log}")))?;
    if replayed != answer.value {
        return Err(ProofError::Replay(
            "the entries give a different answer than the one sent".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_state::store::{CommitBatch, CommitRecord, Store, Writes};
    use prost013::Message;

    /// A store with `keys` committed at version 0 and `more` at version 1.
    fn store(
        dir: &std::path::Path,
        keys: &[(&[u8], &[u8])],
        more: &[(&[u8], Option<&[u8]>)],
    ) -> Store {
        let store = Store::open(dir).expect("open");
        for (version, set) in [
            keys.iter()
                .map(|(k, v)| (k.to_vec(), Some(v.to_vec())))
                .collect::<Writes>(),
            more.iter()
                .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                .collect::<Writes>(),
        ]
        .into_iter()
        .enumerate()
        {
            let version = version as u64;
            let (root, tree) = store.compute_root(&set, version).expect("root");
            store
                .commit(CommitBatch {
                    record: CommitRecord {
                        chain_id: "t".into(),
                        initial_height: 1,
                        height: version,
                        app_hash: root.0,
                    },
                    writes: set,
                    tree,
                    block: None,
                    tx_hashes: vec![],
                    tx_ok: vec![],
                    tx_accounts: vec![],
                })
                .expect("commit");
        }
        store
    }

    #[test]
    fn the_spec_is_the_trees() {
        let s = spec();
        let leaf = s.leaf_spec.expect("leaf");
        assert_eq!(leaf.prefix, b"JMT::LeafNode");
        assert_eq!(leaf.prehash_key, ics23::HashOp::Sha256 as i32);
        assert_eq!(leaf.prehash_value, ics23::HashOp::NoHash as i32);
        assert_eq!(
            s.inner_spec.expect("inner").empty_child,
            b"SPARSE_MERKLE_PLACEHOLDER_HASH__"
        );
    }

    #[test]
    fn present_and_absent_keys_verify_and_tampered_proofs_do_not() {
        let dir = tempfile::tempdir().expect("tmp");
        let keys: Vec<(Vec<u8>, Vec<u8>)> = (0u32..40)
            .map(|i| (format!("k/{i}").into_bytes(), format!("v{i}").into_bytes()))
            .collect();
        let refs: Vec<(&[u8], &[u8])> = keys.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        // Index entries hold empty values (ICS-23 verifiers refuse an empty value: Lode's proofs carry its
        // hash).
        let s = store(
            dir.path(),
            &refs,
            &[
                (b"k/3", None),
                (b"k/4", Some(b"new")),
                (b"index/1", Some(b"")),
            ],
        );
        for version in [0u64, 1] {
            let root = s.root_at(version).expect("root");
            for key in [
                &b"k/3"[..],
                b"k/4",
                b"k/17",
                b"absent",
                b"k/999",
                b"index/1",
            ] {
                let (value, proof) = s.get_with_ics23_proof(key, version).expect("proof");
                let proof = Message::encode_to_vec(&proof);
                verify_entry(&root, key, value.as_deref(), &proof).unwrap_or_else(|e| {
                    panic!("{} at {version}: {e}", String::from_utf8_lossy(key))
                });
                // Another root.
                let mut other = root;
                other[0] ^= 1;
                assert!(matches!(
                    verify_entry(&other, key, value.as_deref(), &proof),
                    Err(ProofError::Invalid { .. })
                ));
                // Another key.
                assert!(verify_entry(&root, b"k/18", value.as_deref(), &proof).is_err());
                // Another value: a present key claimed absent, an absent one claimed present, a changed value.
                match &value {
                    Some(v) => {
                        let mut w = v.clone();
                        w.push(b'!');
                        // The value's hash (what the proof carries) is not the value.
                        assert!(verify_entry(&root, key, Some(&sha256(v)), &proof).is_err());
                        assert!(verify_entry(&root, key, Some(&w), &proof).is_err());
                        assert!(verify_entry(&root, key, None, &proof).is_err());
                    }
                    None => assert!(verify_entry(&root, key, Some(b"v1"), &proof).is_err()),
                }
                // Garbage bytes, and a short app hash.
                assert!(matches!(
                    verify_entry(&root, key, value.as_deref(), &[0xff, 0x01]),
                    Err(ProofError::Decode { .. })
                ));
                assert_eq!(
                    verify_entry(&root[..31], key, value.as_deref(), &proof),
                    Err(ProofError::AppHash(31))
                );
            }
        }
        // The old value under the new root, and the new one under the old root.
        let (old, p0) = s.get_with_ics23_proof(b"k/4", 0).expect("proof");
        let (new, p1) = s.get_with_ics23_proof(b"k/4", 1).expect("proof");
        assert_eq!(
            (old.as_deref(), new.as_deref()),
            (Some(&b"v4"[..]), Some(&b"new"[..]))
        );
        let (r0, r1) = (s.root_at(0).expect("r0"), s.root_at(1).expect("r1"));
        assert!(verify_entry(&r1, b"k/4", Some(b"v4"), &Message::encode_to_vec(&p0)).is_err());
        assert!(verify_entry(&r0, b"k/4", Some(b"new"), &Message::encode_to_vec(&p1)).is_err());
    }

    #[test]
    fn an_answer_must_follow_from_its_entries() {
        let dir = tempfile::tempdir().expect("tmp");
        let addr = lode_state::address::Address::from_public_key(&[7; 32]);
        let key = lode_state::modules::ante::account_key(&addr);
        let acct = lode_state::modules::ante::Account {
            balance: 500,
            nonce: 2,
        };
        let s = store(dir.path(), &[(&key, &acct.encode())], &[]);
        let bech32 = addr.to_string();
        let req = lode_state::query::QueryRequest {
            path: "/account",
            data: bech32.as_bytes(),
            height: 0,
            prove: true,
        };
        let a = lode_state::query::answer(&s, &req, Default::default()).expect("answer");
        let resp = pb::StateQueryResponse {
            value: a.value.clone(),
            height: a.height,
            app_hash: a.app_hash.to_vec(),
            proofs: a
                .proofs
                .iter()
                .map(|p| pb::ProvenEntry {
                    key: p.key.clone(),
                    exists: p.value.is_some(),
                    value: p.value.clone().unwrap_or_default(),
                    proof: p.proof.clone(),
                })
                .collect(),
        };
        verify_answer("/account", req.data, &resp).expect("verifies");
        // The answer's bytes changed (another balance), with valid proofs: the replay refuses it.
        let mut lie = resp.clone();
        lie.value = prost::Message::encode_to_vec(&lode_proto::query::v1::Account {
            address: addr.to_string(),
            balance: "501".into(),
            nonce: 2,
        });
        assert!(matches!(
            verify_answer("/account", req.data, &lie),
            Err(ProofError::Replay(_))
        ));
        // An entry dropped: the replay reads a key the answer does not prove.
        let mut short = resp.clone();
        short.proofs.clear();
        assert!(matches!(
            verify_answer("/account", req.data, &short),
            Err(ProofError::Replay(_))
        ));
        // An entry's value changed: its proof fails.
        let mut changed = resp.clone();
        changed.proofs[0].value[0] ^= 1;
        assert!(matches!(
            verify_answer("/account", req.data, &changed),
            Err(ProofError::Kind { .. })
        ));
        // The same entry twice.
        let mut twice = resp;
        twice.proofs.push(twice.proofs[0].clone());
        assert!(matches!(
            verify_answer("/account", req.data, &twice),
            Err(ProofError::Duplicate(_))
        ));
    }
}
