//! Domain-separated binary Merkle trees over SHA-256, RFC 6962 style.
//!
//! * leaf hash: `SHA-256(0x00 || tag || leaf bytes)` where `tag` is one byte naming what
//!   the leaf is ([`Domain`]): an A row, a B column or a C tile. The tag keeps a row of A
//!   from ever being accepted as a column of B or a tile of C, even if the bytes match.
//! * node hash: `SHA-256(0x01 || left || right)`.
//! * shape: the RFC 6962 Merkle Tree Hash (split at the largest power of two below n).
//!   It is built level by level: adjacent pairs are hashed and an unpaired last node is
//!   carried up unchanged, which yields exactly the RFC 6962 tree (cross-checked against
//!   the `ct-merkle` crate in the tests).
//!
//! An [`InclusionProof`] carries its leaf index, the tree's leaf count and the audit path
//! (siblings bottom-up). Verification is strict: the index must be below the count and
//! the path length must equal exactly what the index and count imply, so truncated paths
//! and extra siblings are rejected before any hashing.
//!
//! `ct-merkle` was evaluated for the tree itself; it is an append-only, memory-backed log
//! that stores every leaf value and hashes sequentially, while commitments here need
//! parallel hashing of borrowed matrix slices. It is used as an independent oracle instead.

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// What a leaf commits to; the value is the one-byte domain tag in the leaf hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Domain {
    /// A row of A: `k` bytes (i8).
    ARow = 0x41,
    /// A column of B: `k` bytes (i8).
    BCol = 0x42,
    /// A tile of C: `h·w` i32 little-endian, row-major within the tile.
    CTile = 0x43,
}

const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// Hashes one leaf: `SHA-256(0x00 || tag || bytes)`.
pub fn leaf_hash(domain: Domain, bytes: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX, domain as u8]);
    h.update(bytes);
    h.finalize().into()
}

/// Hashes an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Two leaf hashes at once (equal lengths use the interleaved SHA-NI path).
pub fn leaf_hash2(domain: Domain, a: &[u8], b: &[u8]) -> [Hash; 2] {
    crate::sha_x2::hash2(&[LEAF_PREFIX, domain as u8], a, b)
}

/// Leaf hashes of many leaves at once, in order. Equal-length leaves are hashed sixteen at
/// a time in the lanes of AVX-512 where the CPU has it (the rows and columns of a reveal),
/// otherwise two at a time.
pub fn leaf_hashes(leaves: &[(Domain, &[u8])]) -> Vec<Hash> {
    let tags: Vec<[u8; 2]> = leaves
        .iter()
        .map(|(d, _)| [LEAF_PREFIX, *d as u8])
        .collect();
    let msgs: Vec<crate::sha_mb::Message<'_>> = tags
        .iter()
        .zip(leaves)
        .map(|(t, (_, bytes))| (&t[..], *bytes))
        .collect();
    let mut out = Vec::with_capacity(leaves.len());
    crate::sha_mb::hash_many(&msgs, &mut out);
    out
}

/// Two node hashes at once.
pub fn node_hash2(l1: &Hash, r1: &Hash, l2: &Hash, r2: &Hash) -> [Hash; 2] {
    crate::sha_x2::node2([l1, r1], [l2, r2])
}

/// Hashes one level into the next: pairs of nodes become parents, an unpaired last node
/// moves up unchanged (RFC 6962 shape). Four nodes (two parents) are hashed per step.
fn level_up(prev: &[Hash]) -> Vec<Hash> {
    let mut next = vec![[0u8; 32]; prev.len().div_ceil(2)];
    let step = |(dst, src): (&mut [Hash], &[Hash])| match src {
        [a, b, c, d] => dst.copy_from_slice(&node_hash2(a, b, c, d)),
        [a, b, c] => {
            dst[0] = node_hash(a, b);
            dst[1] = *c;
        }
        [a, b] => dst[0] = node_hash(a, b),
        [a] => dst[0] = *a,
        _ => {}
    };
    if prev.len() >= PAR_LEVEL {
        next.par_chunks_mut(2)
            .zip(prev.par_chunks(4))
            .for_each(step);
    } else {
        next.chunks_mut(2).zip(prev.chunks(4)).for_each(step);
    }
    next
}

/// Below this many nodes a level is hashed on the calling thread (rayon overhead).
const PAR_LEVEL: usize = 4096;

/// A complete tree: every level kept so proofs are cheap to produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleTree {
    /// `levels[0]` are leaf hashes, the last level is `[root]`.
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// Builds a tree from leaf hashes (at least one).
    pub fn from_leaf_hashes(leaves: Vec<Hash>) -> Result<Self> {
        if leaves.is_empty() {
            return Err(Error::InvalidParameter(
                "a Merkle tree needs at least one leaf".into(),
            ));
        }
        let mut levels = vec![leaves];
        while let Some(prev) = levels.last().filter(|l| l.len() > 1) {
            let next = level_up(prev);
            levels.push(next);
        }
        Ok(Self { levels })
    }

    /// Builds a tree by hashing `count` leaves produced by `leaf(i)` in parallel.
    pub fn build<F>(domain: Domain, count: usize, leaf: F) -> Result<Self>
    where
        F: Fn(usize, &mut Vec<u8>) + Sync,
    {
        // Leaves are hashed in pairs so equal-length leaves share the two-way SHA path.
        let pairs: Vec<[Hash; 2]> = (0..count.div_ceil(2))
            .into_par_iter()
            .map_init(
                || (Vec::new(), Vec::new()),
                |(b1, b2), p| {
                    b1.clear();
                    b2.clear();
                    leaf(2 * p, b1);
                    if 2 * p + 1 < count {
                        leaf(2 * p + 1, b2);
                        leaf_hash2(domain, b1, b2)
                    } else {
                        [leaf_hash(domain, b1), [0; 32]]
                    }
                },
            )
            .collect();
        let mut hashes: Vec<Hash> = pairs.into_iter().flatten().collect();
        hashes.truncate(count);
        Self::from_leaf_hashes(hashes)
    }

    /// The root hash.
    pub fn root(&self) -> Hash {
        // `levels` is never empty and its last level has exactly one node (constructor).
        self.levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or_default()
    }

    /// Number of leaves.
    pub fn leaf_count(&self) -> u64 {
        self.levels[0].len() as u64
    }

    /// The leaf hashes.
    pub fn leaves(&self) -> &[Hash] {
        &self.levels[0]
    }

    /// Inclusion proof for leaf `index`.
    pub fn prove(&self, index: u64) -> Result<InclusionProof> {
        let count = self.leaf_count();
        if index >= count {
            return Err(Error::IndexOutOfRange {
                what: "leaf",
                index,
                count,
            });
        }
        let mut idx = index as usize;
        let mut siblings = Vec::new();
        for level in &self.levels[..self.levels.len() - 1] {
            let sib = idx ^ 1;
            if sib < level.len() {
                siblings.push(level[sib]);
            }
            idx /= 2;
        }
        Ok(InclusionProof {
            index,
            leaf_count: count,
            siblings,
        })
    }
}

/// Number of siblings on the audit path of `index` in a tree of `count` leaves.
pub fn path_len(index: u64, count: u64) -> Result<usize> {
    if index >= count {
        return Err(Error::IndexOutOfRange {
            what: "leaf",
            index,
            count,
        });
    }
    let (mut idx, mut len, mut n) = (index, 0usize, count);
    while n > 1 {
        if idx ^ 1 < n {
            len += 1;
        }
        idx /= 2;
        n = n.div_ceil(2);
    }
    Ok(len)
}

/// Merkle inclusion proof: leaf index, leaf count and the audit path bottom-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// Index of the proven leaf.
    pub index: u64,
    /// Number of leaves in the tree.
    pub leaf_count: u64,
    /// Sibling hashes from the leaf level upwards.
    pub siblings: Vec<Hash>,
}

/// Largest number of siblings a proof can have (trees have at most 2⁶⁴ leaves).
const MAX_SIBLINGS: usize = 64;

impl InclusionProof {
    /// Root implied by this proof for `leaf`, after strict structural checks.
    pub fn root_for(&self, leaf: &Hash) -> Result<Hash> {
        let expected = path_len(self.index, self.leaf_count)
            .map_err(|e| Error::MalformedProof(e.to_string()))?;
        if self.siblings.len() != expected {
            return Err(Error::MalformedProof(format!(
                "index {} of {} needs {} siblings, proof has {}",
                self.index,
                self.leaf_count,
                expected,
                self.siblings.len()
            )));
        }
        let (mut idx, mut n, mut acc) = (self.index, self.leaf_count, *leaf);
        let mut sib = self.siblings.iter();
        while n > 1 {
            if idx ^ 1 < n {
                let s = sib
                    .next()
                    .ok_or_else(|| Error::MalformedProof("path too short".into()))?;
                acc = if idx & 1 == 0 {
                    node_hash(&acc, s)
                } else {
                    node_hash(s, &acc)
                };
            }
            idx /= 2;
            n = n.div_ceil(2);
        }
        Ok(acc)
    }

    /// Checks that `leaf` sits at `self.index` in the tree with `root`.
    pub fn verify(&self, root: &Hash, leaf: &Hash) -> Result<()> {
        if self.root_for(leaf)? == *root {
            Ok(())
        } else {
            Err(Error::RootMismatch { expected: *root })
        }
    }

    /// Checks index and leaf count against what the verifier expects, then the path.
    pub fn verify_at(&self, root: &Hash, leaf: &Hash, index: u64, leaf_count: u64) -> Result<()> {
        if self.index != index {
            return Err(Error::MalformedProof(format!(
                "proof is for index {}, expected {index}",
                self.index
            )));
        }
        if self.leaf_count != leaf_count {
            return Err(Error::MalformedProof(format!(
                "proof is for a tree of {} leaves, expected {leaf_count}",
                self.leaf_count
            )));
        }
        self.verify(root, leaf)
    }

    /// Encoding: `index u64 LE || leaf_count u64 LE || n u8 || n × 32-byte siblings`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17 + 32 * self.siblings.len());
        out.extend_from_slice(&self.index.to_le_bytes());
        out.extend_from_slice(&self.leaf_count.to_le_bytes());
        out.push(self.siblings.len() as u8);
        for s in &self.siblings {
            out.extend_from_slice(s);
        }
        out
    }

    /// Strict decoding of [`to_bytes`](Self::to_bytes): exact length, sibling count
    /// consistent with index and leaf count.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 17 {
            return Err(Error::MalformedProof(format!(
                "{} bytes is shorter than the 17-byte header",
                bytes.len()
            )));
        }
        let index = u64::from_le_bytes(
            bytes[0..8]
                .try_into()
                .map_err(|_| Error::MalformedProof("index".into()))?,
        );
        let leaf_count = u64::from_le_bytes(
            bytes[8..16]
                .try_into()
                .map_err(|_| Error::MalformedProof("count".into()))?,
        );
        let n = usize::from(bytes[16]);
        if n > MAX_SIBLINGS {
            return Err(Error::MalformedProof(format!(
                "{n} siblings exceeds {MAX_SIBLINGS}"
            )));
        }
        if bytes.len() != 17 + 32 * n {
            return Err(Error::MalformedProof(format!(
                "{} siblings need {} bytes, got {}",
                n,
                17 + 32 * n,
                bytes.len()
            )));
        }
        let expected =
            path_len(index, leaf_count).map_err(|e| Error::MalformedProof(e.to_string()))?;
        if n != expected {
            return Err(Error::MalformedProof(format!(
                "index {index} of {leaf_count} needs {expected} siblings, encoding has {n}"
            )));
        }
        let siblings = bytes[17..]
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        Ok(Self {
            index,
            leaf_count,
            siblings,
        })
    }
}

/// Verifies several inclusion proofs against one tree at once, hashing every distinct
/// internal node only once (the T rows of a tile share most of their paths).
///
/// Accepts exactly when every proof would pass [`InclusionProof::verify_at`] on its own:
/// each proof is checked structurally, every sibling a proof supplies must equal the node
/// computed from the other leaves (or the same sibling supplied by other proofs), and the
/// union of paths must reach `root`, and no index may appear twice. On failure it returns
/// the position of the first item (in input order) whose individual verification fails
/// (or that repeats an index), with that error.
pub fn verify_batch(
    root: &Hash,
    leaf_count: u64,
    items: &[(u64, Hash, &InclusionProof)],
) -> std::result::Result<(), (usize, Error)> {
    if batch_ok(root, leaf_count, items) {
        return Ok(());
    }
    for (i, (index, leaf, proof)) in items.iter().enumerate() {
        proof
            .verify_at(root, leaf, *index, leaf_count)
            .map_err(|e| (i, e))?;
    }
    // Every proof verifies individually but the batch did not: an index was named twice.
    let mut seen = std::collections::BTreeSet::new();
    for (i, (index, _, _)) in items.iter().enumerate() {
        if !seen.insert(*index) {
            return Err((
                i,
                Error::MalformedProof(format!("index {index} appears twice")),
            ));
        }
    }
    // Not reachable when the two checks agree, which the tests assert; stay strict anyway.
    Err((0, Error::MalformedProof("batch verification failed".into())))
}

fn batch_ok(root: &Hash, leaf_count: u64, items: &[(u64, Hash, &InclusionProof)]) -> bool {
    verify_trees(&[TreeBatch {
        root: *root,
        leaf_count,
        items: items.to_vec(),
    }])
}

/// The openings of one tree, for [`verify_trees`].
#[derive(Clone, Debug)]
pub struct TreeBatch<'a> {
    /// Expected root.
    pub root: Hash,
    /// Leaf count of the tree.
    pub leaf_count: u64,
    /// `(index, leaf hash, proof)` per opening.
    pub items: Vec<(u64, Hash, &'a InclusionProof)>,
}

/// Per-tree state of [`verify_trees`].
struct TreeState<'a> {
    root: Hash,
    /// Nodes on the current level.
    n: u64,
    /// `(leaf index, siblings not yet used)` per opening, ascending by index.
    paths: Vec<(u64, &'a [Hash])>,
    /// Nodes known on the current level (computed from the leaves), ascending by position.
    cur: Vec<(u64, Hash)>,
    next: Vec<(u64, Hash)>,
}

/// The sibling that every opening below node `p` of `level` supplies (they must agree),
/// advancing those openings' paths; `Err` when two disagree or a path is too short.
/// `Ok(None)` when no opening lies below `p` or the node has no sibling.
fn take_supplied(
    paths: &mut [(u64, &[Hash])],
    next: &mut usize,
    level: u32,
    p: u64,
    has_sibling: bool,
) -> std::result::Result<Option<Hash>, ()> {
    let mut supplied: Option<Hash> = None;
    while let Some((index, path)) = paths.get_mut(*next) {
        if *index >> level != p {
            break;
        }
        if has_sibling {
            let whole: &[Hash] = path;
            let (s, rest) = whole.split_first().ok_or(())?;
            if supplied.is_some_and(|x| x != *s) {
                return Err(());
            }
            supplied = Some(*s);
            *path = rest;
        }
        *next += 1;
    }
    Ok(supplied)
}

/// Checks the openings of several trees at once, hashing every distinct node once and
/// pairing node hashes across trees for the two-way SHA path. Returns `true` exactly when
/// every proof passes [`InclusionProof::verify_at`] on its own and no index repeats within
/// a tree; callers re-check individually on `false` to name the culprit.
///
/// Level by level, each tree keeps the sorted nodes computed so far; the openings below a
/// node supply its sibling, and all of them must supply the same value, which must also
/// equal the sibling computed from other openings where there is one. So a batch passes
/// exactly when every opening's path, taken alone, hashes to the root.
pub fn verify_trees(trees: &[TreeBatch<'_>]) -> bool {
    let mut states = Vec::with_capacity(trees.len());
    for t in trees.iter().filter(|t| !t.items.is_empty()) {
        let mut leaves: Vec<(u64, Hash, &[Hash])> = Vec::with_capacity(t.items.len());
        for (index, leaf, proof) in &t.items {
            if proof.index != *index || proof.leaf_count != t.leaf_count {
                return false;
            }
            match path_len(*index, t.leaf_count) {
                Ok(l) if l == proof.siblings.len() => {}
                _ => return false,
            }
            leaves.push((*index, *leaf, &proof.siblings));
        }
        leaves.sort_unstable_by_key(|l| l.0);
        if leaves.windows(2).any(|w| w[0].0 == w[1].0) {
            // Each index may be opened once per batch.
            return false;
        }
        states.push(TreeState {
            root: t.root,
            n: t.leaf_count,
            paths: leaves.iter().map(|l| (l.0, l.2)).collect(),
            cur: leaves.iter().map(|l| (l.0, l.1)).collect(),
            next: Vec::with_capacity(leaves.len()),
        });
    }
    let mut level = 0u32;
    // (tree, slot in its `next`, left, right) for every parent to hash on this level.
    let mut jobs: Vec<(usize, usize, Hash, Hash)> = Vec::new();
    loop {
        jobs.clear();
        let mut active = false;
        for (ti, st) in states.iter_mut().enumerate() {
            if st.n <= 1 {
                continue;
            }
            active = true;
            st.next.clear();
            let (mut i, mut path) = (0, 0);
            while let Some(&(p, node)) = st.cur.get(i) {
                let has_sibling = p ^ 1 < st.n;
                let Ok(supplied) = take_supplied(&mut st.paths, &mut path, level, p, has_sibling)
                else {
                    return false;
                };
                if !has_sibling {
                    // Unpaired last node: carried up unchanged.
                    st.next.push((p / 2, node));
                    i += 1;
                    continue;
                }
                let (left, right) = match st.cur.get(i + 1) {
                    Some(&(q, right)) if p & 1 == 0 && q == p + 1 => {
                        // Both children computed: what each side's openings supply must
                        // match the other side.
                        let Ok(other) = take_supplied(&mut st.paths, &mut path, level, q, true)
                        else {
                            return false;
                        };
                        if supplied.is_some_and(|s| s != right) || other.is_some_and(|s| s != node)
                        {
                            return false;
                        }
                        i += 2;
                        (node, right)
                    }
                    _ => {
                        let Some(s) = supplied else { return false };
                        i += 1;
                        if p & 1 == 0 {
                            (node, s)
                        } else {
                            (s, node)
                        }
                    }
                };
                jobs.push((ti, st.next.len(), left, right));
                st.next.push((p / 2, [0; 32]));
            }
        }
        if !active {
            break;
        }
        for pair in jobs.chunks(2) {
            match pair {
                [x, y] => {
                    let [hx, hy] = node_hash2(&x.2, &x.3, &y.2, &y.3);
                    states[x.0].next[x.1].1 = hx;
                    states[y.0].next[y.1].1 = hy;
                }
                [x] => states[x.0].next[x.1].1 = node_hash(&x.2, &x.3),
                _ => {}
            }
        }
        level += 1;
        for st in states.iter_mut().filter(|st| st.n > 1) {
            std::mem::swap(&mut st.cur, &mut st.next);
            st.n = st.n.div_ceil(2);
        }
    }
    states.iter().all(|st| st.cur.as_slice() == [(0, st.root)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(Domain::ARow, &(i as u32).to_le_bytes()))
            .collect()
    }

    /// RFC 6962 MTH written recursively, as in the RFC text.
    fn mth(l: &[Hash]) -> Hash {
        if l.len() == 1 {
            return l[0];
        }
        let k = l.len().next_power_of_two() / 2;
        node_hash(&mth(&l[..k]), &mth(&l[k..]))
    }

    #[test]
    fn level_construction_equals_recursive_rfc6962_hash() {
        for n in 1..40 {
            let l = leaves(n);
            let t = MerkleTree::from_leaf_hashes(l.clone()).expect("tree");
            assert_eq!(t.root(), mth(&l), "n = {n}");
        }
    }

    #[test]
    fn every_proof_verifies_and_has_the_predicted_length() {
        for n in 1..34u64 {
            let l = leaves(n as usize);
            let t = MerkleTree::from_leaf_hashes(l.clone()).expect("tree");
            for i in 0..n {
                let p = t.prove(i).expect("prove");
                assert_eq!(p.siblings.len(), path_len(i, n).expect("len"));
                p.verify(&t.root(), &l[i as usize]).expect("verify");
                assert_eq!(
                    InclusionProof::from_bytes(&p.to_bytes()).expect("decode"),
                    p
                );
            }
        }
    }

    #[test]
    fn batch_verification_agrees_with_individual_verification() {
        let l = leaves(37);
        let t = MerkleTree::from_leaf_hashes(l.clone()).expect("tree");
        let proofs: Vec<_> = (0..37).map(|i| t.prove(i).expect("p")).collect();
        let items: Vec<_> = (8..13u64)
            .map(|i| (i, l[i as usize], &proofs[i as usize]))
            .collect();
        assert!(verify_batch(&t.root(), 37, &items).is_ok());
        let mut bad = proofs[10].clone();
        bad.siblings[2] = [9; 32];
        let mut items2 = items.clone();
        items2[2].2 = &bad;
        assert_eq!(
            verify_batch(&t.root(), 37, &items2).map_err(|e| e.0),
            Err(2)
        );
        let mut items3 = items.clone();
        items3[4].1 = l[0];
        assert_eq!(
            verify_batch(&t.root(), 37, &items3).map_err(|e| e.0),
            Err(4)
        );
        let all: Vec<_> = (0..37u64)
            .map(|i| (i, l[i as usize], &proofs[i as usize]))
            .collect();
        assert!(verify_batch(&t.root(), 37, &all).is_ok());
    }

    #[test]
    fn multi_tree_verification_matches_individual_verification() {
        for (na, nb) in [(1usize, 1usize), (2, 7), (13, 5), (64, 33)] {
            let (la, lb) = (leaves(na), leaves(nb + 100)[100..].to_vec());
            let ta = MerkleTree::from_leaf_hashes(la.clone()).expect("a");
            let tb = MerkleTree::from_leaf_hashes(lb.clone()).expect("b");
            let pa: Vec<_> = (0..na as u64).map(|i| ta.prove(i).expect("p")).collect();
            let pb: Vec<_> = (0..nb as u64).map(|i| tb.prove(i).expect("p")).collect();
            let batch = |ia: &[usize], ib: &[usize]| {
                vec![
                    TreeBatch {
                        root: ta.root(),
                        leaf_count: na as u64,
                        items: ia.iter().map(|&i| (i as u64, la[i], &pa[i])).collect(),
                    },
                    TreeBatch {
                        root: tb.root(),
                        leaf_count: nb as u64,
                        items: ib.iter().map(|&i| (i as u64, lb[i], &pb[i])).collect(),
                    },
                ]
            };
            let all_a: Vec<usize> = (0..na).collect();
            let all_b: Vec<usize> = (0..nb).collect();
            assert!(verify_trees(&batch(&all_a, &all_b)), "{na} {nb}");
            assert!(verify_trees(&batch(&[na - 1], &[0])), "{na} {nb}");
            let mut bad = batch(&all_a, &all_b);
            bad[1].items[nb - 1].1 = [7; 32];
            assert!(!verify_trees(&bad));
            let mut swapped = batch(&all_a, &all_b);
            swapped[0].root = tb.root();
            assert!(na == nb && la == lb || !verify_trees(&swapped));
        }
    }

    #[test]
    fn empty_tree_and_out_of_range_index_are_errors() {
        assert!(MerkleTree::from_leaf_hashes(vec![]).is_err());
        let t = MerkleTree::from_leaf_hashes(leaves(3)).expect("tree");
        assert!(t.prove(3).is_err());
        assert!(path_len(5, 5).is_err());
    }
}
