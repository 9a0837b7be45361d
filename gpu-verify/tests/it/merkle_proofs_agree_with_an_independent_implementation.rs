use ct_merkle::{InclusionProof as CtProof, RootHash};
use lode_gpu_verify::commit::{
    a_row_leaf, b_col_leaf, c_tile_leaf, commit_a, commit_b, commit_c, extract_tile, TileGrid,
};
use lode_gpu_verify::merkle::{
    leaf_hash, leaf_hashes, path_len, verify_batch, verify_trees, Domain, InclusionProof,
    MerkleTree, TreeBatch,
};
use lode_gpu_verify::{Error, MatrixI32};
use proptest::prelude::*;

use crate::common::random_matrix;

#[test]
fn roots_and_proofs_agree_with_the_independent_ct_merkle_implementation() {
    for n in 1..=33usize {
        // ct-merkle hashes a leaf as SHA-256(0x00 || bytes); with bytes = tag || data that is
        // exactly our domain-separated leaf preimage.
        let data: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; i % 5 + 1]).collect();
        let leaves: Vec<Vec<u8>> = data
            .iter()
            .map(|d| [&[Domain::ARow as u8][..], d].concat())
            .collect();
        let ours =
            MerkleTree::from_leaf_hashes(data.iter().map(|d| leaf_hash(Domain::ARow, d)).collect())
                .expect("tree");
        let mut ct =
            ct_merkle::mem_backed_tree::MemoryBackedTree::<sha2_011::Sha256, Vec<u8>>::new();
        for l in &leaves {
            ct.push(l.clone());
        }
        let ct_root = ct.root();
        assert_eq!(
            ct_root.as_bytes().as_slice(),
            ours.root().as_slice(),
            "root, n = {n}"
        );
        for (i, l) in leaves.iter().enumerate() {
            let p = ours.prove(i as u64).expect("prove");
            let bytes: Vec<u8> = p.siblings.iter().flatten().copied().collect();
            let ct_proof = CtProof::<sha2_011::Sha256>::try_from_bytes(bytes).expect("ct proof");
            let root = RootHash::<sha2_011::Sha256>::new(*ct_root.as_bytes(), n as u64);
            root.verify_inclusion(l, i as u64, &ct_proof)
                .expect("ct-merkle accepts our proof");
        }
    }
}

fn tree(n: usize) -> (MerkleTree, Vec<[u8; 32]>) {
    let leaves: Vec<_> = (0..n)
        .map(|i| leaf_hash(Domain::CTile, &(i as u64).to_le_bytes()))
        .collect();
    (
        MerkleTree::from_leaf_hashes(leaves.clone()).expect("tree"),
        leaves,
    )
}

#[test]
fn a_proof_presented_for_a_different_index_is_rejected() {
    let (t, leaves) = tree(13);
    let mut p = t.prove(5).expect("prove");
    p.verify(&t.root(), &leaves[5]).expect("honest proof");
    p.index = 4; // same path length, wrong position
    assert!(p.verify(&t.root(), &leaves[5]).is_err());
    assert!(t
        .prove(5)
        .expect("p")
        .verify_at(&t.root(), &leaves[5], 6, 13)
        .is_err());
}

#[test]
fn a_path_with_a_duplicated_sibling_is_rejected() {
    let (t, leaves) = tree(16);
    let mut p = t.prove(3).expect("prove");
    p.siblings[1] = p.siblings[0];
    assert!(matches!(
        p.verify(&t.root(), &leaves[3]),
        Err(Error::RootMismatch { .. })
    ));
}

#[test]
fn a_batch_naming_the_same_index_twice_is_rejected() {
    let (t, leaves) = tree(9);
    let p4 = t.prove(4).expect("prove");
    let p5 = t.prove(5).expect("prove");
    let ok = [(4, leaves[4], &p4), (5, leaves[5], &p5)];
    assert!(verify_batch(&t.root(), 9, &ok).is_ok());
    let dup = [
        (4, leaves[4], &p4),
        (5, leaves[5], &p5),
        (4, leaves[4], &p4),
    ];
    match verify_batch(&t.root(), 9, &dup) {
        Err((2, Error::MalformedProof(m))) => assert!(m.contains("twice"), "{m}"),
        other => panic!("expected a duplicate-index error, got {other:?}"),
    }
    let forged = [(4, leaves[4], &p4), (4, leaves[3], &p4)];
    assert_eq!(verify_batch(&t.root(), 9, &forged).map_err(|e| e.0), Err(1));
}

#[test]
fn truncated_paths_and_extra_siblings_are_rejected_structurally() {
    let (t, leaves) = tree(11);
    let honest = t.prove(7).expect("prove");
    let mut short = honest.clone();
    short.siblings.pop();
    assert!(matches!(
        short.verify(&t.root(), &leaves[7]),
        Err(Error::MalformedProof(_))
    ));
    let mut long = honest.clone();
    long.siblings.push([0; 32]);
    assert!(matches!(
        long.verify(&t.root(), &leaves[7]),
        Err(Error::MalformedProof(_))
    ));
    let mut bad_count = honest;
    bad_count.leaf_count = 12;
    assert!(bad_count.verify_at(&t.root(), &leaves[7], 7, 11).is_err());
    let out_of_range = InclusionProof {
        index: 11,
        leaf_count: 11,
        siblings: vec![],
    };
    assert!(matches!(
        out_of_range.verify(&t.root(), &leaves[0]),
        Err(Error::MalformedProof(_))
    ));
}

#[test]
fn a_leaf_from_another_tree_or_domain_is_rejected() {
    let a = random_matrix(8, 16, 1);
    let other = random_matrix(8, 16, 2);
    let ta = commit_a(&a).expect("a");
    let to = commit_a(&other).expect("other");
    let p = to.prove(2).expect("prove");
    assert!(p
        .verify(&ta.root(), &a_row_leaf(other.row(2).expect("row")))
        .is_err());
    // The same bytes under the B-column domain do not open the A-row tree.
    let row = a.row(2).expect("row");
    let pa = ta.prove(2).expect("prove");
    pa.verify(&ta.root(), &a_row_leaf(row)).expect("A row");
    assert!(pa.verify(&ta.root(), &b_col_leaf(row)).is_err());
    // And B's column tree is a different tree over the same matrix.
    assert_ne!(commit_b(&a.transpose()).expect("b").root(), ta.root());
}

#[test]
fn tile_bytes_of_the_wrong_length_do_not_verify() {
    let c = MatrixI32::from_fn(10, 9, |r, c| (r * 9 + c) as i32 * 1000 - 7).expect("c");
    let tree = commit_c(&c, 4).expect("tree");
    let grid = TileGrid::new(10, 9, 4).expect("grid");
    let last = grid.count() - 1;
    let tile = extract_tile(&c, &grid, last).expect("tile");
    assert_eq!(tile.len(), 2); // edge tile: 2 rows x 1 column
    let p = tree.prove(last).expect("prove");
    p.verify(&tree.root(), &c_tile_leaf(&tile)).expect("honest");
    let mut longer = tile.clone();
    longer.push(0);
    assert!(p.verify(&tree.root(), &c_tile_leaf(&longer)).is_err());
    assert!(p.verify(&tree.root(), &c_tile_leaf(&tile[..1])).is_err());
}

proptest! {
    #[test]
    fn proof_decoding_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(p) = InclusionProof::from_bytes(&bytes) {
            prop_assert_eq!(p.to_bytes(), bytes);
            prop_assert_eq!(p.siblings.len(), path_len(p.index, p.leaf_count).expect("valid"));
        }
    }

    #[test]
    fn proofs_round_trip_and_verify_for_any_tree_size(n in 1usize..300, pick in any::<u64>()) {
        let (t, leaves) = tree(n);
        let i = pick % n as u64;
        let p = t.prove(i).expect("prove");
        let decoded = InclusionProof::from_bytes(&p.to_bytes()).expect("decode");
        prop_assert!(decoded.verify_at(&t.root(), &leaves[i as usize], i, n as u64).is_ok());
        let mut truncated = p.to_bytes();
        truncated.pop();
        prop_assert!(InclusionProof::from_bytes(&truncated).is_err());
    }

    #[test]
    fn multi_tree_verification_accepts_exactly_when_every_proof_does(
        n in 1usize..80,
        m in 1usize..40,
        picks in proptest::collection::vec(any::<u64>(), 1..12),
        tamper in 0u8..6,
        at in any::<u64>(),
    ) {
        let (ta, la) = tree(n);
        let (tb, lb) = tree(m);
        let proofs_a: Vec<_> = (0..n as u64).map(|i| ta.prove(i).expect("prove")).collect();
        let proofs_b: Vec<_> = (0..m as u64).map(|i| tb.prove(i).expect("prove")).collect();
        let mut ia: Vec<u64> = picks.iter().map(|p| p % n as u64).collect();
        ia.sort_unstable();
        ia.dedup();
        let ib: Vec<u64> = picks.iter().rev().take(3).map(|p| p % m as u64).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let mut items_a: Vec<(u64, [u8; 32], InclusionProof)> =
            ia.iter().map(|&i| (i, la[i as usize], proofs_a[i as usize].clone())).collect();
        let j = (at % items_a.len() as u64) as usize;
        // Tamper with one opening of A in one of several ways (0 = leave it honest).
        match tamper {
            1 => items_a[j].1[0] ^= 1,
            2 if !items_a[j].2.siblings.is_empty() => {
                let s = (at >> 8) as usize % items_a[j].2.siblings.len();
                items_a[j].2.siblings[s][31] ^= 0x80;
            }
            3 => items_a[j].0 = (items_a[j].0 + 1) % n as u64,
            4 => { let dup = items_a[j].clone(); items_a.push(dup); }
            5 => items_a.reverse(),
            _ => {}
        }
        let individually = items_a.iter().all(|(i, l, p)| p.verify_at(&ta.root(), l, *i, n as u64).is_ok())
            && items_a.iter().map(|it| it.0).collect::<std::collections::BTreeSet<_>>().len() == items_a.len();
        let batches = [
            TreeBatch {
                root: ta.root(),
                leaf_count: n as u64,
                items: items_a.iter().map(|(i, l, p)| (*i, *l, p)).collect(),
            },
            TreeBatch {
                root: tb.root(),
                leaf_count: m as u64,
                items: ib.iter().map(|&i| (i, lb[i as usize], &proofs_b[i as usize])).collect(),
            },
        ];
        prop_assert_eq!(verify_trees(&batches), individually);
    }
}

#[test]
fn batched_leaf_hashes_equal_one_by_one_hashes() {
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 37 + 11) as u8).collect();
    for (count, len) in [
        (16usize, 2048usize),
        (10, 63),
        (26, 130),
        (9, 2048),
        (17, 0),
    ] {
        let leaves: Vec<(Domain, &[u8])> = (0..count)
            .map(|i| {
                let d = if i % 2 == 0 {
                    Domain::ARow
                } else {
                    Domain::BCol
                };
                (d, &data[i * 3..i * 3 + len])
            })
            .collect();
        let one_by_one: Vec<_> = leaves.iter().map(|(d, b)| leaf_hash(*d, b)).collect();
        assert_eq!(
            leaf_hashes(&leaves),
            one_by_one,
            "{count} leaves of {len} bytes"
        );
    }
}

/// A and B's commitments hash every row of A and every column of B as its own leaf, whatever the shape
/// (bands of rows and squares of the transpose, full and partial), and the band hooks see every row once,
/// in order, with its bytes.
#[test]
fn input_commitments_are_the_trees_of_their_row_and_column_leaves() {
    use lode_gpu_verify::commit::{commit_a_with, commit_b_with};
    for (rows, cols) in [(1, 1), (2, 3), (63, 65), (64, 64), (130, 67), (200, 9)] {
        let m = random_matrix(rows, cols, (rows * 1000 + cols) as u64);
        let row_leaves = (0..rows)
            .map(|i| a_row_leaf(m.row(i).expect("row")))
            .collect();
        let col_leaves = (0..cols)
            .map(|j| b_col_leaf(&m.column(j).expect("col")))
            .collect();
        let want_a = MerkleTree::from_leaf_hashes(row_leaves).expect("A").root();
        let want_b = MerkleTree::from_leaf_hashes(col_leaves).expect("B").root();
        assert_eq!(commit_a(&m).expect("A").root(), want_a, "{rows}x{cols}");
        assert_eq!(commit_b(&m).expect("B").root(), want_b, "{rows}x{cols}");
        for which in ["A", "B"] {
            let mut seen = Vec::new();
            let each = |r0: usize, band: &[i8]| {
                assert_eq!(r0 * cols, seen.len(), "{which}: bands in order");
                seen.extend_from_slice(band);
                Ok(())
            };
            let root = match which {
                "A" => commit_a_with(&m, each).expect("A").root(),
                _ => commit_b_with(&m, each).expect("B").root(),
            };
            assert_eq!(root, if which == "A" { want_a } else { want_b });
            assert_eq!(seen, m.data(), "{which}: every row once, {rows}x{cols}");
        }
        let t = m.transpose();
        assert_eq!((t.rows(), t.cols()), (cols, rows));
        for j in 0..cols {
            assert_eq!(t.row(j).expect("row"), m.column(j).expect("col").as_slice());
        }
    }
    // A hook's error stops the commitment and comes back.
    let m = random_matrix(130, 5, 1);
    let mut calls = 0;
    let err = commit_a_with(&m, |_, _| {
        calls += 1;
        Err(Error::InvalidParameter("stop".into()))
    });
    assert!(matches!(err, Err(Error::InvalidParameter(_))));
    assert_eq!(calls, 1);
}
