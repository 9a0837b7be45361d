//! The store's JMT: the batch insertion path and the per-key path agree on every root and proof.

use jmt::KeyHash;
use lode_state::store::{CommitBatch, CommitRecord, Store, Writes};
use proptest::prelude::*;
use sha2::Sha256;

fn commit(store: &Store, writes: Writes, version: u64, batch_path: bool) -> [u8; 32] {
    let (root, tree) = if batch_path {
        store.compute_root(&writes, version).expect("root")
    } else {
        store.compute_root_per_key(&writes, version).expect("root")
    };
    store
        .commit(CommitBatch {
            record: CommitRecord {
                chain_id: "t".into(),
                initial_height: 1,
                height: version,
                app_hash: root.0,
            },
            writes,
            tree,
            block: None,
            tx_hashes: Vec::new(),
            tx_ok: Vec::new(),
            tx_accounts: Vec::new(),
        })
        .expect("commit");
    root.0
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn batch_and_per_key_tree_updates_give_the_same_roots_and_proofs(
        versions in prop::collection::vec(
            prop::collection::btree_map(0u16..400, prop::option::weighted(0.9, prop::collection::vec(any::<u8>(), 1..24)), 0..60),
            1..6,
        )
    ) {
        let (da, db) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
        let (a, b) = (Store::open(da.path()).expect("open"), Store::open(db.path()).expect("open"));
        for (version, set) in versions.iter().enumerate() {
            let writes: Writes = set.iter().map(|(k, v)| (k.to_be_bytes().to_vec(), v.clone())).collect();
            let ra = commit(&a, writes.clone(), version as u64, true);
            let rb = commit(&b, writes, version as u64, false);
            prop_assert_eq!(ra, rb);
            for k in set.keys() {
                let key = k.to_be_bytes();
                let (va, pa) = a.get_with_proof(&key, version as u64).expect("proof");
                let (vb, _) = b.get_with_proof(&key, version as u64).expect("proof");
                prop_assert_eq!(&va, &vb);
                let root = jmt::RootHash(ra);
                prop_assert!(pa.verify(root, KeyHash::with::<Sha256>(key), va.as_ref()).is_ok());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Reads through values fetched ahead equal reads of the store, for fetched, unfetched, present and
    /// absent keys alike.
    #[test]
    fn prefetched_reads_equal_store_reads(
        state in prop::collection::btree_map(0u16..200, prop::collection::vec(any::<u8>(), 1..16), 0..50),
        fetched in prop::collection::vec(0u16..300, 0..80),
    ) {
        use lode_state::store::{Prefetched, StateRead};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let key = |k: u16| format!("k/{k}").into_bytes();
        let writes: Writes = state.iter().map(|(k, v)| (key(*k), Some(v.clone()))).collect();
        commit(&store, writes, 0, true);
        let ahead = Prefetched::new(&store);
        ahead.fetch(fetched.iter().map(|k| key(*k)).collect());
        for k in 0u16..300 {
            prop_assert_eq!(ahead.get(&key(k)).expect("read"), store.get(&key(k)).expect("read"));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// The tree update after some commits is the same whether the last commit's nodes are still in memory
    /// or the store was just reopened (every node read from disk), and proofs agree.
    #[test]
    fn tree_updates_and_proofs_do_not_depend_on_the_in_memory_nodes(
        versions in prop::collection::vec(
            prop::collection::btree_map(0u16..300, prop::option::weighted(0.9, prop::collection::vec(any::<u8>(), 1..24)), 1..60),
            2..6,
        )
    ) {
        let dir = tempfile::tempdir().expect("dir");
        let (last, earlier) = versions.split_last().expect("two or more");
        let to_writes = |set: &std::collections::BTreeMap<u16, Option<Vec<u8>>>| -> Writes {
            set.iter().map(|(k, v)| (k.to_be_bytes().to_vec(), v.clone())).collect()
        };
        let next = earlier.len() as u64;
        let (warm, warm_proofs) = {
            let store = Store::open(dir.path()).expect("open");
            for (version, set) in earlier.iter().enumerate() {
                commit(&store, to_writes(set), version as u64, true);
            }
            let update = store.compute_root(&to_writes(last), next).expect("root");
            let proofs: Vec<_> = (0u16..300).step_by(7)
                .map(|k| store.get_with_proof(&k.to_be_bytes(), next - 1).expect("proof"))
                .collect();
            (update, proofs)
        };
        let store = Store::open(dir.path()).expect("reopen");
        let cold = store.compute_root(&to_writes(last), next).expect("root");
        prop_assert_eq!(&warm.0, &cold.0);
        prop_assert_eq!(&warm.1, &cold.1);
        for (i, k) in (0u16..300).step_by(7).enumerate() {
            let (v, p) = store.get_with_proof(&k.to_be_bytes(), next - 1).expect("proof");
            prop_assert_eq!(&warm_proofs[i].0, &v);
            prop_assert_eq!(
                borsh::to_vec(&warm_proofs[i].1).expect("borsh"),
                borsh::to_vec(&p).expect("borsh")
            );
        }
    }
}
