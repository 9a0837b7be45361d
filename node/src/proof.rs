//! Verifying a whole proven state query (`QueryService.Query` with `prove`, docs/proofs.md): every entry's
//! ICS-23 proof against the answer's app hash (`lode_client::proof`), then the answer against its entries:
//! the path's handler, re-run over exactly the proven entries, must give the answer's bytes.
//!
//! The replay stays here rather than in the client crate: it runs the state machine's query handlers, and
//! `lode-state` depends on `lode-client` (the address type, sign bytes and proof spec are defined once, in
//! the client crate, and the chain uses them), so the client cannot depend on the handlers without a cycle,
//! nor without bringing RocksDB into every wallet. Clients that read values from proven entries themselves
//! (`Client::account_proved`) need no replay.

use crate::services::grpc::pb;
pub use lode_client::proof::{spec, verify_entry, ProofError};

/// Why a proven answer was refused: a proof, or the replay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("the answer does not follow from its proven entries: {0}")]
    Replay(String),
}

/// Checks every entry of an answer against its app hash (each key once).
pub fn verify_entries(answer: &pb::StateQueryResponse) -> Result<(), ProofError> {
    lode_client::proof::verify_entries(
        &answer.app_hash,
        answer.proofs.iter().map(lode_client::proof::Entry::from),
    )
}

/// Checks a whole proven answer to `path` with request `data`: every entry against the app hash, then the
/// answer's value against the entries (the path's handler, re-run over them, gives it byte for byte).
/// The app hash itself is the caller's to trust.
pub fn verify_answer(
    path: &str,
    data: &[u8],
    answer: &pb::StateQueryResponse,
) -> Result<(), AnswerError> {
    verify_entries(answer)?;
    let entries = answer
        .proofs
        .iter()
        .map(|e| (e.key.clone(), e.exists.then(|| e.value.clone())));
    let replayed = lode_state::query::replay(path, data, entries)
        .map_err(|(code, log)| AnswerError::Replay(format!("code {code}: {log}")))?;
    if replayed != answer.value {
        return Err(AnswerError::Replay(
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
                        let hashed = <sha2::Sha256 as sha2::Digest>::digest(v);
                        assert!(verify_entry(&root, key, Some(&hashed), &proof).is_err());
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
            Err(AnswerError::Replay(_))
        ));
        // An entry dropped: the replay reads a key the answer does not prove.
        let mut short = resp.clone();
        short.proofs.clear();
        assert!(matches!(
            verify_answer("/account", req.data, &short),
            Err(AnswerError::Replay(_))
        ));
        // An entry's value changed: its proof fails.
        let mut changed = resp.clone();
        changed.proofs[0].value[0] ^= 1;
        assert!(matches!(
            verify_answer("/account", req.data, &changed),
            Err(AnswerError::Proof(ProofError::Kind { .. }))
        ));
        // The same entry twice.
        let mut twice = resp;
        twice.proofs.push(twice.proofs[0].clone());
        assert!(matches!(
            verify_answer("/account", req.data, &twice),
            Err(AnswerError::Proof(ProofError::Duplicate(_)))
        ));
    }
}
