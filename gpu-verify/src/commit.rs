//! Commitments to a job's matrices: A by rows, B by columns, C by T×T tiles.
//!
//! Tile geometry: with tile size `T`, C (m×n) is cut into `⌈m/T⌉ × ⌈n/T⌉` tiles numbered
//! row-major over the tile grid: tile `i` covers rows `[r·T, min(r·T+T, m))` and columns
//! `[c·T, min(c·T+T, n))` where `r = i / ⌈n/T⌉` and `c = i % ⌈n/T⌉`. Edge tiles in the
//! last tile row / column are therefore smaller (`h = m - r·T` or `w = n - c·T`).
//! A tile's leaf bytes are its `h·w` elements, row-major within the tile, each i32
//! little-endian (`4·h·w` bytes). A row of A or a column of B is its `k` i8 values as bytes.

use crate::error::{Error, Result};
use rayon::prelude::*;

use crate::matrix::{MatrixI32, MatrixI8, TRANSPOSE_BAND};
use crate::merkle::{leaf_hash, leaf_hash2, Domain, Hash, MerkleTree};

/// The tile grid of an m×n output with tile size `t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileGrid {
    m: usize,
    n: usize,
    t: usize,
}

/// The rows and columns of C covered by one tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileRect {
    /// First row.
    pub row0: usize,
    /// Number of rows (`h`).
    pub rows: usize,
    /// First column.
    pub col0: usize,
    /// Number of columns (`w`).
    pub cols: usize,
}

impl TileGrid {
    /// A grid for an m×n matrix with tile size `t` (all non-zero).
    pub fn new(m: usize, n: usize, t: usize) -> Result<Self> {
        crate::matrix::checked_len(m, n)?;
        if t == 0 {
            return Err(Error::InvalidParameter(
                "tile size must be at least 1".into(),
            ));
        }
        Ok(Self { m, n, t })
    }

    /// Tile size `T`.
    pub fn tile(&self) -> usize {
        self.t
    }

    /// Tiles per column of the grid (`⌈m/T⌉`).
    pub fn tiles_m(&self) -> usize {
        self.m.div_ceil(self.t)
    }

    /// Tiles per row of the grid (`⌈n/T⌉`).
    pub fn tiles_n(&self) -> usize {
        self.n.div_ceil(self.t)
    }

    /// Total number of tiles.
    pub fn count(&self) -> u64 {
        self.tiles_m() as u64 * self.tiles_n() as u64
    }

    /// The rectangle of tile `index`.
    pub fn rect(&self, index: u64) -> Result<TileRect> {
        if index >= self.count() {
            return Err(Error::IndexOutOfRange {
                what: "tile",
                index,
                count: self.count(),
            });
        }
        let tn = self.tiles_n() as u64;
        let (r, c) = ((index / tn) as usize, (index % tn) as usize);
        let (row0, col0) = (r * self.t, c * self.t);
        Ok(TileRect {
            row0,
            rows: self.t.min(self.m - row0),
            col0,
            cols: self.t.min(self.n - col0),
        })
    }

    /// Index of the tile containing element `(row, col)`.
    pub fn tile_of(&self, row: usize, col: usize) -> Result<u64> {
        if row >= self.m || col >= self.n {
            return Err(Error::IndexOutOfRange {
                what: "element",
                // Row and column come from proofs anyone may send: the flat index saturates, never wraps.
                index: (row as u64)
                    .saturating_mul(self.n as u64)
                    .saturating_add(col as u64),
                count: self.m as u64 * self.n as u64,
            });
        }
        Ok((row / self.t) as u64 * self.tiles_n() as u64 + (col / self.t) as u64)
    }
}

/// Canonical leaf bytes of a tile's elements (i32 little-endian).
pub fn encode_tile(values: &[i32], out: &mut Vec<u8>) {
    // Resize once and fill fixed-size chunks: this compiles to a straight copy on
    // little-endian targets, which matters because commitments encode all of C.
    let start = out.len();
    out.resize(start + values.len() * 4, 0);
    for (dst, v) in out[start..].chunks_exact_mut(4).zip(values) {
        dst.copy_from_slice(&v.to_le_bytes());
    }
}

/// Copies tile `index` of `c` out (row-major within the tile).
pub fn extract_tile(c: &MatrixI32, grid: &TileGrid, index: u64) -> Result<Vec<i32>> {
    if (c.rows(), c.cols()) != (grid.m, grid.n) {
        return Err(Error::InvalidParameter(
            "matrix shape does not match tile grid".into(),
        ));
    }
    let r = grid.rect(index)?;
    let mut out = Vec::with_capacity(r.rows * r.cols);
    for i in r.row0..r.row0 + r.rows {
        out.extend_from_slice(&c.data()[i * grid.n + r.col0..i * grid.n + r.col0 + r.cols]);
    }
    Ok(out)
}

/// Leaf hash of a row of A.
pub fn a_row_leaf(row: &[i8]) -> Hash {
    crate::merkle::leaf_hash(Domain::ARow, i8_bytes(row))
}

/// Leaf hash of a column of B.
pub fn b_col_leaf(col: &[i8]) -> Hash {
    crate::merkle::leaf_hash(Domain::BCol, i8_bytes(col))
}

/// Leaf hash of a tile of C.
pub fn c_tile_leaf(tile: &[i32]) -> Hash {
    let mut buf = Vec::new();
    encode_tile(tile, &mut buf);
    crate::merkle::leaf_hash(Domain::CTile, &buf)
}

/// Reinterprets i8 as bytes (two's complement, which is the canonical encoding).
/// (std has no safe slice cast, and hashing must not copy every row.)
#[allow(unsafe_code)]
pub(crate) fn i8_bytes(v: &[i8]) -> &[u8] {
    // SAFETY: i8 and u8 have the same size, alignment and validity (every bit pattern is
    // valid for both), so viewing the same memory as u8 is sound; the lifetime is kept.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), v.len()) }
}

/// Commits A by rows.
pub fn commit_a(a: &MatrixI8) -> Result<MerkleTree> {
    // One parallel pass over all rows: with no hook there is no reason to wait between bands.
    let mut leaves = Vec::with_capacity(a.rows());
    row_leaves(Domain::ARow, a.data(), a.cols(), &mut leaves);
    MerkleTree::from_leaf_hashes(leaves)
}

/// Commits A by rows, calling `each(row0, rows)` on every band of [`TRANSPOSE_BAND`] rows (whole rows,
/// row-major) right after their leaves were hashed, while the band is in cache. Stops at the first
/// error `each` returns.
pub fn commit_a_with(
    a: &MatrixI8,
    mut each: impl FnMut(usize, &[i8]) -> Result<()>,
) -> Result<MerkleTree> {
    let k = a.cols();
    let mut leaves = Vec::with_capacity(a.rows());
    for (band, rows) in a.data().chunks(TRANSPOSE_BAND * k).enumerate() {
        row_leaves(Domain::ARow, rows, k, &mut leaves);
        each(band * TRANSPOSE_BAND, rows)?;
    }
    MerkleTree::from_leaf_hashes(leaves)
}

/// Commits B by columns; `bt` is B transposed (row `j` of `bt` is column `j` of B).
pub fn commit_b_transposed(bt: &MatrixI8) -> Result<MerkleTree> {
    let mut leaves = Vec::with_capacity(bt.rows());
    row_leaves(Domain::BCol, bt.data(), bt.cols(), &mut leaves);
    MerkleTree::from_leaf_hashes(leaves)
}

/// Commits B by columns.
pub fn commit_b(b: &MatrixI8) -> Result<MerkleTree> {
    commit_b_with(b, |_, _| Ok(()))
}

/// Commits B by columns, calling `each(row0, rows)` on every band of [`TRANSPOSE_BAND`] rows of B
/// (whole rows, row-major) as the transpose reads it ([`MatrixI8::transpose_with`]). Stops at the
/// first error `each` returns.
pub fn commit_b_with(
    b: &MatrixI8,
    each: impl FnMut(usize, &[i8]) -> Result<()>,
) -> Result<MerkleTree> {
    commit_b_transposed(&b.transpose_with(each)?)
}

/// Appends the leaf hashes of the rows of `data` (rows of `width > 0` elements) to `out`, in order,
/// two rows at a time through the two-way SHA path, pairs spread over rayon's pool.
fn row_leaves(domain: Domain, data: &[i8], width: usize, out: &mut Vec<Hash>) {
    let pairs: Vec<[Hash; 2]> = data
        .par_chunks(2 * width)
        .map(|pair| match pair.split_at_checked(width) {
            Some((x, y)) if !y.is_empty() => leaf_hash2(domain, i8_bytes(x), i8_bytes(y)),
            _ => [leaf_hash(domain, i8_bytes(pair)), [0; 32]],
        })
        .collect();
    let rows = data.len() / width;
    let start = out.len();
    out.extend(pairs.into_iter().flatten());
    out.truncate(start + rows);
}

/// Commits C by T×T tiles.
pub fn commit_c(c: &MatrixI32, tile: usize) -> Result<MerkleTree> {
    let grid = TileGrid::new(c.rows(), c.cols(), tile)?;
    let count = usize::try_from(grid.count()).map_err(|_| Error::TooLarge {
        rows: c.rows() as u64,
        cols: c.cols() as u64,
    })?;
    let n = c.cols();
    MerkleTree::build(Domain::CTile, count, |i, buf| {
        if let Ok(r) = grid.rect(i as u64) {
            for row in r.row0..r.row0 + r.rows {
                encode_tile(&c.data()[row * n + r.col0..row * n + r.col0 + r.cols], buf);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_tiles_are_clipped_to_the_matrix() {
        let g = TileGrid::new(5, 7, 3).expect("grid");
        assert_eq!((g.tiles_m(), g.tiles_n(), g.count()), (2, 3, 6));
        assert_eq!(
            g.rect(0).expect("r"),
            TileRect {
                row0: 0,
                rows: 3,
                col0: 0,
                cols: 3
            }
        );
        assert_eq!(
            g.rect(5).expect("r"),
            TileRect {
                row0: 3,
                rows: 2,
                col0: 6,
                cols: 1
            }
        );
        assert!(g.rect(6).is_err());
        assert_eq!(g.tile_of(4, 6).expect("t"), 5);
        for (row, col) in [
            (5, 0),
            (0, 7),
            (usize::MAX, usize::MAX),
            (usize::MAX, 0),
            (0, usize::MAX),
        ] {
            assert!(
                matches!(
                    g.tile_of(row, col),
                    Err(Error::IndexOutOfRange {
                        what: "element",
                        ..
                    })
                ),
                "({row}, {col})"
            );
        }
        assert!(g.tile_of(5, 0).is_err());
        assert!(TileGrid::new(5, 7, 0).is_err());
    }

    #[test]
    fn tile_commitment_hashes_extracted_tiles() {
        let c = MatrixI32::from_fn(5, 7, |r, c| (r * 10 + c) as i32 - 20).expect("c");
        let tree = commit_c(&c, 3).expect("tree");
        let g = TileGrid::new(5, 7, 3).expect("grid");
        for i in 0..g.count() {
            let t = extract_tile(&c, &g, i).expect("tile");
            assert_eq!(tree.leaves()[i as usize], c_tile_leaf(&t));
        }
    }

    #[test]
    fn b_columns_and_a_rows_use_different_domains() {
        let m = MatrixI8::from_fn(3, 3, |_, _| 1).expect("m");
        assert_ne!(
            commit_a(&m).expect("a").root(),
            commit_b(&m).expect("b").root()
        );
    }
}
