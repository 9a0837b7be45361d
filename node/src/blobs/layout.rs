//! A blob's bytes: the Merkle leaves of one job matrix, in leaf order, back to back, exactly as
//! `lode-gpu-verify` hashes them, so a blob's root is the root the chain records for that matrix.
//!
//! - A (m×k int8, committed by rows, [`commit::commit_a`]): m rows of k bytes;
//! - B (k×n int8, committed by columns, [`commit::commit_b`]): n columns of k bytes (B transposed);
//! - C (m×n int32, committed by T×T tiles, [`commit::commit_c`]): the tiles in index order, each row-major
//!   inside the tile, every element 4 bytes little-endian. Edge tiles (when T does not divide m or n) are
//!   clipped to the matrix, as in `commit::TileGrid`.
//!
//! [`LeafVerifier`] hashes a blob as its bytes arrive, in any chunking, and keeps only the compact range of
//! the tree (one hash per level) and at most one partial leaf, so checking a blob's root costs one pass of
//! SHA-256 and O(log n) memory whatever its size.

use lode_gpu_verify::{
    commit::{self, TileGrid},
    merkle::{self, Domain, Hash},
    MatrixI32, MatrixI8, MAX_K,
};

/// The largest tile side a C blob may have: a tile (one leaf) is then at most 4 MiB, one chunk.
pub const MAX_TILE: u32 = 1024;
/// The largest blob any header may describe (1 TiB), whatever `[blobs] max_blob_bytes` says: it keeps every
/// size and offset computed from a header inside u64.
pub const MAX_BLOB_BYTES: u64 = 1 << 40;

/// The largest leaf, in bytes (an A row or B column of `MAX_K` bytes, or a `MAX_TILE`² tile of i32).
pub const MAX_LEAF_BYTES: u64 = 4 * (MAX_TILE as u64) * (MAX_TILE as u64);

/// A block (the unit a node downloads from a peer and checks on its own) is the largest power-of-two
/// number of leaves whose bytes fit in this, and at least one leaf: so a block is at most
/// `max(BLOCK_TARGET_BYTES, MAX_LEAF_BYTES)` = 4 MiB, one chunk.
pub const BLOCK_TARGET_BYTES: u64 = 2 << 20;

/// Which matrix a blob holds, and so how its bytes are laid out and hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlobKind {
    /// A, by rows.
    A,
    /// B, by columns.
    B,
    /// C, by tiles.
    C,
}

impl BlobKind {
    /// The Merkle domain of this kind's leaves.
    pub fn domain(self) -> Domain {
        match self {
            Self::A => Domain::ARow,
            Self::B => Domain::BCol,
            Self::C => Domain::CTile,
        }
    }

    /// `a`, `b` or `c`.
    pub fn name(self) -> &'static str {
        match self {
            Self::A => "a",
            Self::B => "b",
            Self::C => "c",
        }
    }
}

impl std::str::FromStr for BlobKind {
    type Err = LayoutError;

    fn from_str(s: &str) -> Result<Self, LayoutError> {
        match s {
            "a" | "A" => Ok(Self::A),
            "b" | "B" => Ok(Self::B),
            "c" | "C" => Ok(Self::C),
            _ => Err(LayoutError::Header(format!(
                "unknown blob kind {s:?} (a, b or c)"
            ))),
        }
    }
}

/// Why a header or a blob's bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The header is malformed (kind, dimensions, tile, root).
    #[error("bad blob header: {0}")]
    Header(String),
    /// More bytes than the header announces.
    #[error("overlong blob: more than the header's {expected} bytes")]
    Overlong {
        /// The header's size.
        expected: u64,
    },
    /// Fewer bytes than the header announces.
    #[error("truncated blob: {actual} of {expected} bytes")]
    Truncated {
        /// The header's size.
        expected: u64,
        /// Bytes received.
        actual: u64,
    },
    /// The bytes hash to another root.
    #[error("wrong root: the data hashes to {actual}, the header claims {claimed}")]
    WrongRoot {
        /// The header's root, hex.
        claimed: String,
        /// The data's root, hex.
        actual: String,
    },
    /// A leaf range outside the blob.
    #[error("leaf range {first}+{count} is past the blob's {leaves} leaves")]
    OutOfRange {
        /// First leaf asked for.
        first: u64,
        /// Leaves asked for.
        count: u64,
        /// Leaves in the blob.
        leaves: u64,
    },
    /// Bytes that do not make the matrix the header describes.
    #[error("{0}")]
    Matrix(String),
}

/// What a blob is: its kind, the matrix's shape, C's tile side and the Merkle root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlobHeader {
    /// The matrix.
    pub kind: BlobKind,
    /// The matrix's rows (A: m, B: k, C: m).
    pub rows: u64,
    /// The matrix's columns (A: k, B: n, C: n).
    pub cols: u64,
    /// C's tile side; 0 for A and B.
    pub tile: u32,
    /// The Merkle root.
    pub root: Hash,
}

impl BlobHeader {
    /// Checks the kind, dimensions and tile: non-zero sides of at most `u32::MAX`, a leaf of at most
    /// [`MAX_LEAF_BYTES`] (`k <= MAX_K` for A and B, `1 <= tile <= MAX_TILE` for C, 0 for A and B).
    pub fn validate(&self) -> Result<(), LayoutError> {
        let bad = |m: String| Err(LayoutError::Header(m));
        if self.rows == 0 || self.cols == 0 {
            return bad(format!("zero dimension {}x{}", self.rows, self.cols));
        }
        if self.rows > u64::from(u32::MAX) || self.cols > u64::from(u32::MAX) {
            return bad(format!("dimension too large {}x{}", self.rows, self.cols));
        }
        // Two sides of up to 2^32 and 4-byte elements overflow u64: bound the product first, so every size
        // and offset computed from a validated header fits.
        let elem: u64 = if self.kind == BlobKind::C { 4 } else { 1 };
        match self
            .rows
            .checked_mul(self.cols)
            .and_then(|n| n.checked_mul(elem))
        {
            Some(size) if size <= MAX_BLOB_BYTES => {}
            _ => {
                return bad(format!(
                    "{}x{} is more than {MAX_BLOB_BYTES} bytes",
                    self.rows, self.cols
                ))
            }
        }
        match self.kind {
            BlobKind::A | BlobKind::B => {
                let k = if self.kind == BlobKind::A {
                    self.cols
                } else {
                    self.rows
                };
                if k > MAX_K as u64 {
                    return bad(format!("k = {k} exceeds {MAX_K}"));
                }
                if self.tile != 0 {
                    return bad("tile must be 0 for A and B".into());
                }
            }
            BlobKind::C => {
                if self.tile == 0 || self.tile > MAX_TILE {
                    return bad(format!("tile {} not in 1..={MAX_TILE}", self.tile));
                }
            }
        }
        Ok(())
    }

    /// Number of leaves: A rows, B columns or C tiles.
    pub fn leaf_count(&self) -> u64 {
        match self.kind {
            BlobKind::A => self.rows,
            BlobKind::B => self.cols,
            BlobKind::C => {
                let t = u64::from(self.tile.max(1));
                self.rows.div_ceil(t) * self.cols.div_ceil(t)
            }
        }
    }

    /// Size of the whole blob in bytes (exact for a validated header; saturates at `u64::MAX` for one that
    /// is not, which every size limit then refuses).
    pub fn size_bytes(&self) -> u64 {
        let elem = if self.kind == BlobKind::C { 4 } else { 1 };
        self.rows.saturating_mul(self.cols).saturating_mul(elem)
    }

    /// Byte offset of leaf `index` (`index == leaf_count()` gives the size).
    pub fn leaf_offset(&self, index: u64) -> u64 {
        match self.kind {
            BlobKind::A | BlobKind::B => {
                let k = if self.kind == BlobKind::A {
                    self.cols
                } else {
                    self.rows
                };
                index.min(self.leaf_count()) * k
            }
            BlobKind::C => {
                if index >= self.leaf_count() {
                    return self.size_bytes();
                }
                let t = u64::from(self.tile.max(1));
                let tn = self.cols.div_ceil(t);
                let (r, c) = (index / tn, index % tn);
                // Every tile row above covers T full rows of C; every tile left of this one in its row is T wide.
                let h = t.min(self.rows - r * t);
                4 * (r * t * self.cols + c * h * t)
            }
        }
    }

    /// Length in bytes of leaf `index` (0 past the end).
    pub fn leaf_len(&self, index: u64) -> u64 {
        if index >= self.leaf_count() {
            return 0;
        }
        self.leaf_offset(index + 1) - self.leaf_offset(index)
    }

    /// log2 of the leaves per block (see [`BLOCK_TARGET_BYTES`]): aligned power-of-two runs of leaves are
    /// whole subtrees of the blob's Merkle tree, and the last (shorter) block is the subtree over the rest,
    /// so the tree over the blocks' subtree roots has the blob's root.
    pub fn block_leaves_log2(&self) -> u32 {
        // Leaf 0 is the longest (A and B leaves are all k bytes; C's first tile is never clipped more than
        // the others).
        let leaf = self.leaf_len(0).max(1);
        let mut j = 0;
        while j < 40 && (leaf << (j + 1)) <= BLOCK_TARGET_BYTES {
            j += 1;
        }
        j
    }

    /// Number of blocks.
    pub fn block_count(&self) -> u64 {
        self.leaf_count().div_ceil(1 << self.block_leaves_log2())
    }

    /// The leaves `[first, end)` of block `index` (clipped to the blob).
    pub fn block_leaves(&self, index: u64) -> (u64, u64) {
        let j = self.block_leaves_log2();
        let n = self.leaf_count();
        let first = index.saturating_mul(1 << j).min(n);
        (first, first.saturating_add(1 << j).min(n))
    }

    /// The byte range `[start, end)` of block `index`.
    pub fn block_range(&self, index: u64) -> (u64, u64) {
        let (first, end) = self.block_leaves(index);
        (self.leaf_offset(first), self.leaf_offset(end))
    }

    /// The byte range of leaves `[first, first + count)`; `count == 0` means to the end.
    pub fn leaf_range(&self, first: u64, count: u64) -> Result<(u64, u64), LayoutError> {
        let leaves = self.leaf_count();
        let end = if count == 0 {
            leaves
        } else {
            first.saturating_add(count)
        };
        if first >= leaves || end > leaves {
            return Err(LayoutError::OutOfRange {
                first,
                count,
                leaves,
            });
        }
        Ok((self.leaf_offset(first), self.leaf_offset(end)))
    }
}

fn gv(e: lode_gpu_verify::Error) -> LayoutError {
    LayoutError::Matrix(e.to_string())
}

/// The bytes of i8 values (two's complement: the encoding the commitments hash), one memcpy.
fn i8_as_bytes(v: &[i8]) -> Vec<u8> {
    #[allow(unsafe_code)]
    // SAFETY: i8 and u8 have the same size, alignment and validity (every bit pattern is valid for both), so
    // the same memory viewed as u8 is sound for the borrow's lifetime. (An element-wise map costs ~20x more
    // in unoptimised builds, and blobs are hundreds of MiB.)
    let bytes = unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), v.len()) };
    bytes.to_vec()
}

/// i8 values from their bytes, one memcpy.
fn bytes_as_i8(v: &[u8]) -> Vec<i8> {
    #[allow(unsafe_code)]
    // SAFETY: as in `i8_as_bytes`, u8 and i8 share size, alignment and validity.
    let values = unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<i8>(), v.len()) };
    values.to_vec()
}

/// A's blob bytes: its rows, back to back (row-major).
pub fn a_bytes(a: &MatrixI8) -> Vec<u8> {
    i8_as_bytes(a.data())
}

/// B's blob bytes: its columns, back to back (column-major, i.e. Bᵀ row-major).
pub fn b_bytes(b: &MatrixI8) -> Vec<u8> {
    i8_as_bytes(b.transpose().data())
}

/// C's blob bytes: its T×T tiles in index order, each row-major, i32 little-endian.
pub fn c_bytes(c: &MatrixI32, tile: usize) -> Result<Vec<u8>, LayoutError> {
    let grid = TileGrid::new(c.rows(), c.cols(), tile).map_err(gv)?;
    let mut out = Vec::with_capacity(c.data().len() * 4);
    let n = c.cols();
    for i in 0..grid.count() {
        let r = grid.rect(i).map_err(gv)?;
        for row in r.row0..r.row0 + r.rows {
            commit::encode_tile(
                &c.data()[row * n + r.col0..row * n + r.col0 + r.cols],
                &mut out,
            );
        }
    }
    Ok(out)
}

fn check_len(what: &str, expected: u64, bytes: &[u8]) -> Result<(), LayoutError> {
    let actual = bytes.len() as u64;
    if actual < expected {
        return Err(LayoutError::Truncated { expected, actual });
    }
    if actual > expected {
        return Err(LayoutError::Overlong { expected });
    }
    let _ = what;
    Ok(())
}

fn dims(rows: usize, cols: usize, elem: u64) -> Result<u64, LayoutError> {
    if rows == 0 || cols == 0 || rows > u32::MAX as usize || cols > u32::MAX as usize {
        return Err(LayoutError::Matrix(format!("bad shape {rows}x{cols}")));
    }
    (rows as u64)
        .checked_mul(cols as u64)
        .and_then(|n| n.checked_mul(elem))
        .ok_or_else(|| LayoutError::Matrix(format!("shape {rows}x{cols} overflows 64 bits")))
}

/// A (rows×cols) from its blob bytes.
pub fn a_from_bytes(rows: usize, cols: usize, bytes: &[u8]) -> Result<MatrixI8, LayoutError> {
    check_len("A", dims(rows, cols, 1)?, bytes)?;
    MatrixI8::new(rows, cols, bytes_as_i8(bytes)).map_err(gv)
}

/// B (rows = k, cols = n, normal orientation) from its blob bytes (its n columns of k bytes).
pub fn b_from_bytes(rows: usize, cols: usize, bytes: &[u8]) -> Result<MatrixI8, LayoutError> {
    check_len("B", dims(rows, cols, 1)?, bytes)?;
    Ok(MatrixI8::new(cols, rows, bytes_as_i8(bytes))
        .map_err(gv)?
        .transpose())
}

/// C (rows×cols, tile side `tile`) from its blob bytes.
pub fn c_from_bytes(
    rows: usize,
    cols: usize,
    tile: usize,
    bytes: &[u8],
) -> Result<MatrixI32, LayoutError> {
    c_from_bytes_with(rows, cols, tile, bytes, |_, _| Ok(()))
}

/// [`c_from_bytes`], calling `each(row0, rows)` on every band of C's rows once it is complete (after
/// each band of tiles, while the band is still in cache; `rows` is whole rows, row-major, from row
/// `row0`): how `lode job result` takes `C·r` for Freivalds without reading C from memory once more.
pub fn c_from_bytes_with(
    rows: usize,
    cols: usize,
    tile: usize,
    bytes: &[u8],
    mut each: impl FnMut(usize, &[i32]) -> Result<(), LayoutError>,
) -> Result<MatrixI32, LayoutError> {
    check_len("C", dims(rows, cols, 4)?, bytes)?;
    let grid = TileGrid::new(rows, cols, tile).map_err(gv)?;
    let mut data = vec![0i32; rows * cols];
    let mut words = bytes
        .chunks_exact(4)
        .map(|w| i32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    // Rows handed to `each` so far: tiles come band by band (row-major over the grid of tiles), so when a
    // band starts, every row above it is complete.
    let mut done = 0;
    for i in 0..grid.count() {
        let r = grid.rect(i).map_err(gv)?;
        if r.col0 == 0 && r.row0 > done {
            each(done, &data[done * cols..r.row0 * cols])?;
            done = r.row0;
        }
        for row in r.row0..r.row0 + r.rows {
            for dst in &mut data[row * cols + r.col0..row * cols + r.col0 + r.cols] {
                *dst = words
                    .next()
                    .ok_or_else(|| LayoutError::Matrix("C bytes end early".into()))?;
            }
        }
    }
    if rows > done {
        each(done, &data[done * cols..rows * cols])?;
    }
    MatrixI32::new(rows, cols, data).map_err(gv)
}

/// Tiles `[first, first + count)` of a C blob from the bytes of that leaf range (each row-major in the tile).
pub fn c_tiles_from_bytes(
    header: &BlobHeader,
    first: u64,
    count: u64,
    bytes: &[u8],
) -> Result<Vec<Vec<i32>>, LayoutError> {
    if header.kind != BlobKind::C {
        return Err(LayoutError::Header("not a C blob".into()));
    }
    let (start, end) = header.leaf_range(first, count)?;
    check_len("C tiles", end - start, bytes)?;
    let last = if count == 0 {
        header.leaf_count()
    } else {
        first + count
    };
    let mut out = Vec::new();
    let mut at = 0usize;
    for i in first..last {
        let len = usize::try_from(header.leaf_len(i))
            .map_err(|_| LayoutError::Matrix("tile too large".into()))?;
        let tile = bytes[at..at + len]
            .chunks_exact(4)
            .map(|w| i32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        out.push(tile);
        at += len;
    }
    Ok(out)
}

fn usize_of(v: usize) -> Result<u64, LayoutError> {
    u64::try_from(v).map_err(|_| LayoutError::Matrix("dimension too large".into()))
}

/// A's header: its shape and row root ([`commit::commit_a`]).
pub fn a_header(a: &MatrixI8) -> Result<BlobHeader, LayoutError> {
    Ok(BlobHeader {
        kind: BlobKind::A,
        rows: usize_of(a.rows())?,
        cols: usize_of(a.cols())?,
        tile: 0,
        root: commit::commit_a(a).map_err(gv)?.root(),
    })
}

/// B's header: its shape (k×n) and column root ([`commit::commit_b`]).
pub fn b_header(b: &MatrixI8) -> Result<BlobHeader, LayoutError> {
    Ok(BlobHeader {
        kind: BlobKind::B,
        rows: usize_of(b.rows())?,
        cols: usize_of(b.cols())?,
        tile: 0,
        root: commit::commit_b(b).map_err(gv)?.root(),
    })
}

/// C's header: its shape, tile side and tile root ([`commit::commit_c`]).
pub fn c_header(c: &MatrixI32, tile: usize) -> Result<BlobHeader, LayoutError> {
    c_header_with_root(c, tile, commit::commit_c(c, tile).map_err(gv)?.root())
}

/// C's header with a tile root the caller already holds (a provider's commitment to the same C and tile):
/// saves hashing C again. A root that is not C's is refused by the node that checks the upload.
pub fn c_header_with_root(
    c: &MatrixI32,
    tile: usize,
    root: [u8; 32],
) -> Result<BlobHeader, LayoutError> {
    let t = u32::try_from(tile).map_err(|_| LayoutError::Header("tile too large".into()))?;
    Ok(BlobHeader {
        kind: BlobKind::C,
        rows: usize_of(c.rows())?,
        cols: usize_of(c.cols())?,
        tile: t,
        root,
    })
}

/// Leaves hashed per batch: equal-length leaves go through the multi-lane SHA-256 path together.
const HASH_BATCH: usize = 64;

/// Checks a blob's bytes against its header as they arrive: leaves are hashed as soon as they are whole,
/// the tree is kept as its compact range (one subtree root per set bit of the leaf count), and
/// [`LeafVerifier::finish`] refuses truncated or overlong data and a root other than the header's.
#[derive(Debug, Clone)]
pub struct LeafVerifier {
    header: BlobHeader,
    /// Complete leaves hashed so far.
    leaves_done: u64,
    /// Bytes received so far.
    received: u64,
    /// The start of the next leaf, when a chunk ended inside it (at most one leaf, [`MAX_LEAF_BYTES`]).
    partial: Vec<u8>,
    /// Perfect subtrees (height, root), heights strictly decreasing.
    stack: Vec<(u32, Hash)>,
    /// Set once overlong data arrived; every later call fails.
    overlong: bool,
    /// log2 of the leaves per block ([`BlobHeader::block_leaves_log2`]).
    block_log2: u32,
    /// The roots of the blocks completed so far.
    blocks: Vec<Hash>,
}

impl LeafVerifier {
    /// A verifier for `header`, after [`BlobHeader::validate`].
    pub fn new(header: &BlobHeader) -> Result<Self, LayoutError> {
        header.validate()?;
        Ok(Self {
            header: *header,
            leaves_done: 0,
            received: 0,
            partial: Vec::new(),
            stack: Vec::with_capacity(64),
            overlong: false,
            block_log2: header.block_leaves_log2(),
            blocks: Vec::new(),
        })
    }

    /// The header being checked.
    pub fn header(&self) -> &BlobHeader {
        &self.header
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    fn push_leaf_hash(&mut self, h: Hash) {
        let mut node = (0u32, h);
        if self.block_log2 == 0 {
            self.blocks.push(h);
        }
        while let Some(&(height, left)) = self.stack.last() {
            if height != node.0 {
                break;
            }
            self.stack.pop();
            node = (height + 1, merkle::node_hash(&left, &node.1));
            if node.0 == self.block_log2 {
                // An aligned subtree of a block's height is exactly a block, just completed.
                self.blocks.push(node.1);
            }
        }
        self.stack.push(node);
        self.leaves_done += 1;
    }

    fn hash_leaves(&mut self, leaves: &[&[u8]]) {
        let domain = self.header.kind.domain();
        let batch: Vec<(Domain, &[u8])> = leaves.iter().map(|l| (domain, *l)).collect();
        for h in merkle::leaf_hashes(&batch) {
            self.push_leaf_hash(h);
        }
    }

    /// Takes the next bytes of the blob. Fails (and keeps failing) once more bytes than the header's size
    /// have arrived.
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), LayoutError> {
        let size = self.header.size_bytes();
        if self.overlong || (data.len() as u64) > size - self.received {
            self.overlong = true;
            return Err(LayoutError::Overlong { expected: size });
        }
        self.received += data.len() as u64;
        // Complete a partial leaf first.
        if !self.partial.is_empty() {
            let need = (self.header.leaf_len(self.leaves_done) as usize) - self.partial.len();
            let take = need.min(data.len());
            self.partial.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.partial.len() as u64 == self.header.leaf_len(self.leaves_done) {
                let leaf = std::mem::take(&mut self.partial);
                self.hash_leaves(&[&leaf]);
            } else {
                return Ok(());
            }
        }
        // Whole leaves straight from `data`, in batches.
        let mut batch: Vec<&[u8]> = Vec::with_capacity(HASH_BATCH);
        let mut next = self.leaves_done;
        loop {
            let len = self.header.leaf_len(next) as usize;
            if len == 0 || data.len() < len {
                break;
            }
            let (leaf, rest) = data.split_at(len);
            batch.push(leaf);
            data = rest;
            next += 1;
            if batch.len() == HASH_BATCH {
                self.hash_leaves(&batch);
                batch.clear();
            }
        }
        self.hash_leaves(&batch);
        self.partial.extend_from_slice(data);
        Ok(())
    }

    /// The root of what arrived, after checking it is exactly the header's size and the header's root.
    pub fn finish(self) -> Result<Hash, LayoutError> {
        self.finish_with_blocks().map(|(root, _)| root)
    }

    /// [`LeafVerifier::finish`], and the roots of the blob's blocks (what a node serves to peers so they
    /// can check each block as it arrives).
    pub fn finish_with_blocks(mut self) -> Result<(Hash, Vec<Hash>), LayoutError> {
        if self.leaves_done & ((1u64 << self.block_log2) - 1) != 0 {
            // The last block is short: its root folds the stack entries below a block's height.
            let mut partial = self
                .stack
                .iter()
                .rev()
                .take_while(|(height, _)| *height < self.block_log2);
            if let Some(&(_, top)) = partial.next() {
                let mut acc = top;
                for (_, left) in partial {
                    acc = merkle::node_hash(left, &acc);
                }
                self.blocks.push(acc);
            }
        }
        let blocks = std::mem::take(&mut self.blocks);
        self.finish_root().map(|root| (root, blocks))
    }

    fn finish_root(self) -> Result<Hash, LayoutError> {
        let size = self.header.size_bytes();
        if self.overlong {
            return Err(LayoutError::Overlong { expected: size });
        }
        if self.received != size || self.leaves_done != self.header.leaf_count() {
            return Err(LayoutError::Truncated {
                expected: size,
                actual: self.received,
            });
        }
        let mut it = self.stack.iter().rev();
        let mut acc = it.next().map(|&(_, h)| h).unwrap_or_default();
        for (_, left) in it {
            acc = merkle::node_hash(left, &acc);
        }
        if acc != self.header.root {
            return Err(LayoutError::WrongRoot {
                claimed: hex::encode(self.header.root),
                actual: hex::encode(acc),
            });
        }
        Ok(acc)
    }
}

/// The root of block `index` of the blob `header` from its bytes `data` (exactly the block's length).
pub fn block_root(header: &BlobHeader, index: u64, data: &[u8]) -> Result<Hash, LayoutError> {
    let (first, end) = header.block_leaves(index);
    let (start, stop) = (header.leaf_offset(first), header.leaf_offset(end));
    if first >= end || data.len() as u64 != stop - start {
        return Err(LayoutError::Truncated {
            expected: stop - start,
            actual: data.len() as u64,
        });
    }
    let domain = header.kind.domain();
    let mut stack: Vec<(u32, Hash)> = Vec::with_capacity(64);
    let mut rest = data;
    let mut leaf = first;
    let mut batch: Vec<(Domain, &[u8])> = Vec::with_capacity(HASH_BATCH);
    while leaf < end {
        batch.clear();
        while leaf < end && batch.len() < HASH_BATCH {
            let (l, r) = rest.split_at(header.leaf_len(leaf) as usize);
            batch.push((domain, l));
            rest = r;
            leaf += 1;
        }
        for h in merkle::leaf_hashes(&batch) {
            let mut node = (0u32, h);
            while let Some(&(height, left)) = stack.last() {
                if height != node.0 {
                    break;
                }
                stack.pop();
                node = (height + 1, merkle::node_hash(&left, &node.1));
            }
            stack.push(node);
        }
    }
    let mut it = stack.iter().rev();
    let mut acc = it.next().map(|&(_, h)| h).unwrap_or_default();
    for (_, left) in it {
        acc = merkle::node_hash(left, &acc);
    }
    Ok(acc)
}

/// The root of the tree over `blocks` (each a block's subtree root, in order): the blob's root when they
/// are its blocks' roots.
pub fn root_of_blocks(blocks: &[Hash]) -> Option<Hash> {
    let mut stack: Vec<(u32, Hash)> = Vec::with_capacity(64);
    for b in blocks {
        let mut node = (0u32, *b);
        while let Some(&(height, left)) = stack.last() {
            if height != node.0 {
                break;
            }
            stack.pop();
            node = (height + 1, merkle::node_hash(&left, &node.1));
        }
        stack.push(node);
    }
    let mut it = stack.iter().rev();
    let mut acc = it.next().map(|&(_, h)| h)?;
    for (_, left) in it {
        acc = merkle::node_hash(left, &acc);
    }
    Some(acc)
}

/// Checks whole-blob `bytes` against `header` (one [`LeafVerifier`] pass).
pub fn verify(header: &BlobHeader, bytes: &[u8]) -> Result<Hash, LayoutError> {
    let mut v = LeafVerifier::new(header)?;
    v.push(bytes)?;
    v.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(m: usize, k: usize) -> MatrixI8 {
        MatrixI8::from_fn(m, k, |r, c| ((r * 31 + c * 7) % 251) as i8).expect("a")
    }

    fn c(m: usize, n: usize) -> MatrixI32 {
        MatrixI32::from_fn(m, n, |r, c| (r as i32 * 1000 - c as i32 * 77) ^ 0x5a5a).expect("c")
    }

    #[test]
    fn a_shape_whose_size_overflows_64_bits_is_an_error() {
        let side = u32::MAX as usize;
        assert!(matches!(
            c_from_bytes(side, side, 2, &[]),
            Err(LayoutError::Matrix(_))
        ));
        // One byte an element still fits: only short.
        assert!(matches!(
            a_from_bytes(side, side, &[]),
            Err(LayoutError::Truncated { actual: 0, .. })
        ));
    }

    /// Pushes `bytes` in chunks of `step`.
    fn verify_chunked(h: &BlobHeader, bytes: &[u8], step: usize) -> Result<Hash, LayoutError> {
        let mut v = LeafVerifier::new(h)?;
        for ch in bytes.chunks(step) {
            v.push(ch)?;
        }
        v.finish()
    }

    #[test]
    fn roots_equal_gpu_verify_commitments_for_every_leaf_count_and_chunking() {
        for m in [1usize, 2, 3, 5, 8, 13, 33] {
            let mat = a(m, 7);
            let h = a_header(&mat).expect("h");
            assert_eq!(h.root, commit::commit_a(&mat).expect("c").root());
            let bytes = a_bytes(&mat);
            for step in [1, 3, 7, 8, 50, 4096] {
                assert_eq!(verify_chunked(&h, &bytes, step).expect("ok"), h.root);
            }
            assert_eq!(a_from_bytes(m, 7, &bytes).expect("back"), mat);

            let b = a(7, m);
            let hb = b_header(&b).expect("h");
            assert_eq!(hb.root, commit::commit_b(&b).expect("c").root());
            let bb = b_bytes(&b);
            assert_eq!(bb[..7], i8_as_bytes(&b.column(0).expect("col"))[..]);
            for step in [1, 5, 64] {
                assert_eq!(verify_chunked(&hb, &bb, step).expect("ok"), hb.root);
            }
            assert_eq!(b_from_bytes(7, m, &bb).expect("back"), b);
        }
    }

    #[test]
    fn c_tiles_with_clipped_edges_hash_and_decode_like_gpu_verify() {
        for (m, n, t) in [(5, 7, 3), (8, 8, 4), (1, 1, 1), (9, 4, 4), (4, 9, 16)] {
            let mat = c(m, n);
            let h = c_header(&mat, t).expect("h");
            assert_eq!(h.root, commit::commit_c(&mat, t).expect("c").root());
            let bytes = c_bytes(&mat, t).expect("bytes");
            assert_eq!(bytes.len() as u64, h.size_bytes());
            assert_eq!(h.leaf_offset(h.leaf_count()), h.size_bytes());
            for step in [1, 4, 13, 1000] {
                assert_eq!(verify_chunked(&h, &bytes, step).expect("ok"), h.root);
            }
            assert_eq!(c_from_bytes(m, n, t, &bytes).expect("back"), mat);
            let mut seen = Vec::new();
            let back = c_from_bytes_with(m, n, t, &bytes, |row0, band| {
                assert_eq!(band.len() % n, 0, "whole rows");
                let end = row0 + band.len() / n;
                assert!(end - row0 <= t, "one band of tiles at a time");
                assert_eq!(band, &mat.data()[row0 * n..end * n], "rows {row0}..{end}");
                seen.extend(row0..end);
                Ok(())
            })
            .expect("back");
            assert_eq!(back, mat);
            assert_eq!(seen, (0..m).collect::<Vec<_>>(), "every row once, in order");
            // Every tile range decodes to gpu-verify's extracted tile.
            let grid = TileGrid::new(m, n, t).expect("grid");
            for i in 0..grid.count() {
                let (s, e) = h.leaf_range(i, 1).expect("range");
                let tiles =
                    c_tiles_from_bytes(&h, i, 1, &bytes[s as usize..e as usize]).expect("tile");
                assert_eq!(
                    tiles,
                    vec![commit::extract_tile(&mat, &grid, i).expect("t")]
                );
            }
        }
    }

    #[test]
    fn blocks_are_subtrees_whose_tree_has_the_blob_root() {
        // Leaf lengths that give one leaf per block, a few per block, and a short last block.
        let cases = [
            a_header(&a(37, 50_000)).expect("h"),
            a_header(&a(300, 9_000)).expect("h"),
            a_header(&a(1_000, 4_096)).expect("h"),
            c_header(&c(40, 24), 16).expect("h"),
        ];
        let datas = [
            a_bytes(&a(37, 50_000)),
            a_bytes(&a(300, 9_000)),
            a_bytes(&a(1_000, 4_096)),
            c_bytes(&c(40, 24), 16).expect("c"),
        ];
        for (h, data) in cases.iter().zip(&datas) {
            let mut v = LeafVerifier::new(h).expect("v");
            for piece in data.chunks(777_777) {
                v.push(piece).expect("push");
            }
            let (root, blocks) = v.finish_with_blocks().expect("finish");
            assert_eq!(blocks.len() as u64, h.block_count(), "{h:?}");
            for (i, b) in blocks.iter().enumerate() {
                let (s, e) = h.block_range(i as u64);
                assert!(e - s <= MAX_LEAF_BYTES.max(BLOCK_TARGET_BYTES));
                let got = block_root(h, i as u64, &data[s as usize..e as usize]).expect("block");
                assert_eq!(&got, b, "block {i} of {h:?}");
            }
            assert_eq!(root_of_blocks(&blocks), Some(root));
            let mut bad = data[..h.block_range(0).1 as usize].to_vec();
            bad[0] ^= 1;
            assert_ne!(block_root(h, 0, &bad).expect("block"), blocks[0]);
        }
    }

    #[test]
    fn truncated_overlong_and_altered_data_are_refused() {
        let mat = a(9, 5);
        let h = a_header(&mat).expect("h");
        let bytes = a_bytes(&mat);
        assert!(matches!(
            verify(&h, &bytes[..bytes.len() - 1]),
            Err(LayoutError::Truncated { .. })
        ));
        assert!(matches!(
            verify(&h, &bytes[..40]),
            Err(LayoutError::Truncated { .. })
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            verify(&h, &long),
            Err(LayoutError::Overlong { .. })
        ));
        let mut v = LeafVerifier::new(&h).expect("v");
        v.push(&bytes).expect("all");
        assert!(v.push(&[1]).is_err());
        assert!(matches!(v.finish(), Err(LayoutError::Overlong { .. })));
        let mut bad = bytes.clone();
        bad[17] ^= 1;
        assert!(matches!(
            verify(&h, &bad),
            Err(LayoutError::WrongRoot { .. })
        ));
        // The same bytes as another kind hash to another root (domain separation).
        let as_b = BlobHeader {
            kind: BlobKind::B,
            rows: 5,
            cols: 9,
            ..h
        };
        assert!(matches!(
            verify(&as_b, &bytes),
            Err(LayoutError::WrongRoot { .. })
        ));
    }

    #[test]
    fn headers_outside_the_limits_are_refused() {
        let ok = BlobHeader {
            kind: BlobKind::C,
            rows: 8,
            cols: 8,
            tile: 4,
            root: [0; 32],
        };
        assert!(ok.validate().is_ok());
        for bad in [
            BlobHeader { rows: 0, ..ok },
            BlobHeader { cols: 0, ..ok },
            BlobHeader {
                rows: u64::from(u32::MAX) + 1,
                ..ok
            },
            // 2^31 x 2^31 i32 is 2^64 bytes: the size overflowed u64 (to 0) before it was bounded.
            BlobHeader {
                rows: 1 << 31,
                cols: 1 << 31,
                ..ok
            },
            BlobHeader {
                rows: 1 << 20,
                cols: 1 << 19,
                ..ok
            },
            BlobHeader { tile: 0, ..ok },
            BlobHeader {
                tile: MAX_TILE + 1,
                ..ok
            },
            BlobHeader {
                kind: BlobKind::A,
                ..ok
            },
            BlobHeader {
                kind: BlobKind::A,
                tile: 0,
                cols: MAX_K as u64 + 1,
                ..ok
            },
            BlobHeader {
                kind: BlobKind::B,
                tile: 0,
                rows: MAX_K as u64 + 1,
                ..ok
            },
        ] {
            assert!(LeafVerifier::new(&bad).is_err(), "{bad:?}");
        }
        let huge = BlobHeader {
            rows: 1 << 31,
            cols: 1 << 31,
            ..ok
        };
        assert_eq!(huge.size_bytes(), u64::MAX, "an unvalidated size saturates");
    }

    #[test]
    fn leaf_ranges_past_the_end_are_refused() {
        let h = c_header(&c(5, 7), 3).expect("h");
        assert_eq!(h.leaf_count(), 6);
        assert_eq!(h.leaf_range(0, 0).expect("all"), (0, h.size_bytes()));
        assert!(h.leaf_range(5, 1).is_ok());
        assert!(h.leaf_range(6, 0).is_err());
        assert!(h.leaf_range(5, 2).is_err());
        assert!(h.leaf_range(u64::MAX, u64::MAX).is_err());
        assert!(a_from_bytes(2, 2, &[0; 3]).is_err());
        assert!(c_from_bytes(2, 2, 1, &[0; 17]).is_err());
    }
}
