//! Sampled verification: the provider's [`Prover`] answers a challenge with a [`Reveal`];
//! validators check it with [`verify_reveal`] or, for many jobs at once, [`BatchVerifier`].
//!
//! For each challenged tile the reveal carries the tile with its proof against the output
//! root, and the `h` rows of A and `w` columns of B the tile depends on, each with its
//! proof against the consumer's input roots. The validator checks, in this order, for
//! each tile in ascending index order:
//!
//! 1. the reveal answers exactly the challenged set (no missing, extra or duplicate tile);
//! 2. the tile has `h·w` elements and its proof opens leaf `index` of a tree of
//!    `tile_count` leaves under `c_root`;
//! 3. there are `h` rows, each of `k` bytes, whose proofs open rows `row0..row0+h` of a tree
//!    of `m` leaves under `a_root`; likewise `w` columns under `b_root`;
//! 4. the product of those rows and columns equals the tile, element by element.
//!
//! The first failure is the verdict ([`Rejection`]). Recomputation may run on the GPU in
//! batches, but it is integer-exact and failures are ordered as above, so the verdict is
//! identical on every backend.

use rayon::prelude::*;

use crate::backend::{cpu_small_product, Engine, SmallProduct};
use crate::challenge::{challenge_indices, JobId};
use crate::commit::{
    c_tile_leaf, commit_a, commit_b_transposed, commit_c, extract_tile, i8_bytes, TileGrid,
};
use crate::error::{Error, Result};
use crate::gemm::{check_shape, CpuGemm};
use crate::matrix::{MatrixI32, MatrixI8};
use crate::merkle::{
    leaf_hashes, verify_batch, verify_trees, Domain, Hash, InclusionProof, MerkleTree, TreeBatch,
};

/// Default tile size `T` (see the crate docs for the cost/detection trade-off).
pub const DEFAULT_TILE: usize = 4;
/// Default number of sampled tiles `s`.
pub const DEFAULT_SAMPLES: usize = 2;

/// Everything a validator knows about a job before the reveal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Chain-assigned job id (also mixed into the challenge).
    pub id: JobId,
    /// Rows of A and C.
    pub m: usize,
    /// Columns of A, rows of B.
    pub k: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Tile size `T`.
    pub tile: usize,
    /// Number of sampled tiles `s`.
    pub samples: usize,
    /// Root of A's row commitment (posted by the consumer).
    pub a_root: Hash,
    /// Root of B's column commitment (posted by the consumer).
    pub b_root: Hash,
    /// Root of C's tile commitment (posted by the provider).
    pub c_root: Hash,
}

impl Job {
    /// The tile grid, after validating the shape.
    pub fn grid(&self) -> Result<TileGrid> {
        check_shape(self.m, self.k, self.k, self.n)?;
        if self.k == 0 {
            return Err(Error::ZeroDimension { what: "k" });
        }
        if self.samples == 0 {
            return Err(Error::InvalidParameter(
                "sample count must be positive".into(),
            ));
        }
        TileGrid::new(self.m, self.n, self.tile)
    }

    /// The challenged tile indices for `seed`.
    pub fn challenge(&self, seed: &Hash) -> Result<Vec<u64>> {
        challenge_indices(seed, &self.id, self.grid()?.count(), self.samples)
    }
}

/// A row of A or a column of B with its inclusion proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opening {
    /// The `k` values.
    pub data: Vec<i8>,
    /// Proof against the input root; `proof.index` is the row or column index.
    pub proof: InclusionProof,
}

/// The answer for one challenged tile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileReveal {
    /// Tile index.
    pub index: u64,
    /// The tile's `h·w` values, row-major.
    pub tile: Vec<i32>,
    /// Proof of the tile against the output root.
    pub proof: InclusionProof,
    /// Rows `row0..row0+h` of A.
    pub a_rows: Vec<Opening>,
    /// Columns `col0..col0+w` of B.
    pub b_cols: Vec<Opening>,
}

/// A provider's answer to a challenge.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Reveal {
    /// One entry per challenged tile, in ascending index order.
    pub tiles: Vec<TileReveal>,
}

/// Why a reveal was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The job parameters themselves are invalid.
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// A challenged tile is not in the reveal.
    #[error("challenged tile {index} is missing")]
    MissingSample {
        /// The missing tile.
        index: u64,
    },
    /// The reveal contains a tile that was not challenged.
    #[error("tile {index} was not challenged")]
    UnexpectedTile {
        /// The extra tile.
        index: u64,
    },
    /// The same tile appears twice.
    #[error("tile {index} revealed twice")]
    DuplicateTile {
        /// The repeated tile.
        index: u64,
    },
    /// The tile has the wrong number of elements.
    #[error("tile {index}: expected {expected} elements, got {actual}")]
    TileShape {
        /// Tile index.
        index: u64,
        /// `h·w`.
        expected: usize,
        /// Elements revealed.
        actual: usize,
    },
    /// The tile's proof does not open `index` under the output root.
    #[error("tile {index}: proof rejected: {reason}")]
    TileProof {
        /// Tile index.
        index: u64,
        /// Details.
        reason: String,
    },
    /// Wrong number of A rows or B columns.
    #[error("tile {index}: expected {expected} {what}, got {actual}")]
    OpeningCount {
        /// Tile index.
        index: u64,
        /// "rows of A" or "columns of B".
        what: &'static str,
        /// Expected count.
        expected: usize,
        /// Revealed count.
        actual: usize,
    },
    /// A row of A failed its length or proof check.
    #[error("tile {index}: row {row} of A rejected: {reason}")]
    RowProof {
        /// Tile index.
        index: u64,
        /// Row of A.
        row: usize,
        /// Details.
        reason: String,
    },
    /// A column of B failed its length or proof check.
    #[error("tile {index}: column {col} of B rejected: {reason}")]
    ColumnProof {
        /// Tile index.
        index: u64,
        /// Column of B.
        col: usize,
        /// Details.
        reason: String,
    },
    /// The recomputed tile differs from the committed one.
    #[error("tile {index}: C[{row}][{col}] is {claimed}, recomputed {computed}")]
    WrongResult {
        /// Tile index.
        index: u64,
        /// Row in C.
        row: usize,
        /// Column in C.
        col: usize,
        /// Committed value.
        claimed: i32,
        /// Correct value.
        computed: i32,
    },
}

/// The result of verifying one reveal.
pub type Verdict = std::result::Result<(), Rejection>;

/// Provider side: holds the matrices and their trees and answers challenges.
#[derive(Debug)]
pub struct Prover {
    a: MatrixI8,
    bt: MatrixI8,
    c: MatrixI32,
    grid: TileGrid,
    a_tree: MerkleTree,
    b_tree: MerkleTree,
    c_tree: MerkleTree,
}

impl Prover {
    /// Commits to `a`, `b` and a claimed product `c` (not checked: a dishonest provider
    /// can be simulated by passing a wrong `c`).
    pub fn new(a: MatrixI8, b: &MatrixI8, c: MatrixI32, tile: usize) -> Result<Self> {
        check_shape(a.rows(), a.cols(), b.rows(), b.cols())?;
        if (c.rows(), c.cols()) != (a.rows(), b.cols()) {
            return Err(Error::InvalidParameter("C does not have shape m×n".into()));
        }
        let grid = TileGrid::new(c.rows(), c.cols(), tile)?;
        let bt = b.transpose();
        let a_tree = commit_a(&a)?;
        let b_tree = commit_b_transposed(&bt)?;
        let c_tree = commit_c(&c, tile)?;
        Ok(Self {
            a,
            bt,
            c,
            grid,
            a_tree,
            b_tree,
            c_tree,
        })
    }

    /// Computes `C = A × B` on `engine` and commits to everything.
    pub fn compute(engine: &Engine, a: MatrixI8, b: &MatrixI8, tile: usize) -> Result<Self> {
        let c = engine.gemm(&a, b)?;
        Self::new(a, b, c, tile)
    }

    /// The job description a validator would hold (with the given id and sample count).
    pub fn job(&self, id: JobId, samples: usize) -> Job {
        Job {
            id,
            m: self.a.rows(),
            k: self.a.cols(),
            n: self.bt.rows(),
            tile: self.grid.tile(),
            samples,
            a_root: self.a_tree.root(),
            b_root: self.b_tree.root(),
            c_root: self.c_tree.root(),
        }
    }

    /// The committed output.
    pub fn output(&self) -> &MatrixI32 {
        &self.c
    }

    /// The tile grid.
    pub fn grid(&self) -> TileGrid {
        self.grid
    }

    /// Tree over A's rows.
    pub fn a_tree(&self) -> &MerkleTree {
        &self.a_tree
    }

    /// Tree over B's columns.
    pub fn b_tree(&self) -> &MerkleTree {
        &self.b_tree
    }

    /// Tree over C's tiles.
    pub fn c_tree(&self) -> &MerkleTree {
        &self.c_tree
    }

    /// Opening of row `i` of A.
    pub fn open_a_row(&self, i: usize) -> Result<Opening> {
        Ok(Opening {
            data: self.a.row(i)?.to_vec(),
            proof: self.a_tree.prove(i as u64)?,
        })
    }

    /// Opening of column `j` of B.
    pub fn open_b_col(&self, j: usize) -> Result<Opening> {
        Ok(Opening {
            data: self.bt.row(j)?.to_vec(),
            proof: self.b_tree.prove(j as u64)?,
        })
    }

    /// Reveal of one tile.
    pub fn reveal_tile(&self, index: u64) -> Result<TileReveal> {
        let r = self.grid.rect(index)?;
        Ok(TileReveal {
            index,
            tile: extract_tile(&self.c, &self.grid, index)?,
            proof: self.c_tree.prove(index)?,
            a_rows: (r.row0..r.row0 + r.rows)
                .map(|i| self.open_a_row(i))
                .collect::<Result<_>>()?,
            b_cols: (r.col0..r.col0 + r.cols)
                .map(|j| self.open_b_col(j))
                .collect::<Result<_>>()?,
        })
    }

    /// Reveal for a list of tile indices (normally `job.challenge(seed)`).
    pub fn reveal(&self, indices: &[u64]) -> Result<Reveal> {
        Ok(Reveal {
            tiles: indices
                .iter()
                .map(|&i| self.reveal_tile(i))
                .collect::<Result<_>>()?,
        })
    }
}

/// A reveal that passed all structural and proof checks up to `failure` (if any).
struct Checked<'a> {
    /// Tiles in ascending index order whose proofs all passed, before the first failure;
    /// each one's product is recomputed straight from its openings.
    tiles: Vec<&'a TileReveal>,
    /// The first structural failure, which ends the walk.
    failure: Option<Rejection>,
}

fn check_structure<'a>(
    job: &Job,
    seed: &Hash,
    reveal: &'a Reveal,
) -> std::result::Result<Checked<'a>, Rejection> {
    let expected = job
        .challenge(seed)
        .map_err(|e| Rejection::InvalidJob(e.to_string()))?;
    check_against(job, &expected, true, reveal)
}

/// Checks `reveal` against an explicit set of tiles: every revealed tile must be in `expected`, none twice;
/// with `require_all`, every tile of `expected` must be there.
fn check_against<'a>(
    job: &Job,
    expected: &[u64],
    require_all: bool,
    reveal: &'a Reveal,
) -> std::result::Result<Checked<'a>, Rejection> {
    let bad_job = |e: Error| Rejection::InvalidJob(e.to_string());
    let grid = job.grid().map_err(bad_job)?;
    // Set checks (BTreeMap/BTreeSet: deterministic, no hash iteration).
    let expected_set: std::collections::BTreeSet<u64> = expected.iter().copied().collect();
    let mut by_index = std::collections::BTreeMap::new();
    for t in &reveal.tiles {
        if !expected_set.contains(&t.index) {
            return Err(Rejection::UnexpectedTile { index: t.index });
        }
        if by_index.insert(t.index, t).is_some() {
            return Err(Rejection::DuplicateTile { index: t.index });
        }
    }
    if let Some(&index) = expected
        .iter()
        .find(|i| require_all && !by_index.contains_key(i))
    {
        return Err(Rejection::MissingSample { index });
    }
    let tiles: Vec<&TileReveal> = by_index.into_values().collect();
    if check_all_fast(job, &grid, &tiles) {
        return Ok(Checked {
            tiles,
            failure: None,
        });
    }
    let mut out = Checked {
        tiles: Vec::new(),
        failure: None,
    };
    for t in tiles {
        match check_tile(job, &grid, t.index, t) {
            Ok(()) => out.tiles.push(t),
            Err(r) => {
                out.failure = Some(r);
                break;
            }
        }
    }
    Ok(out)
}

/// The common, honest case in one pass over every sampled tile: all lengths right, then
/// all leaves hashed together (the rows and columns of all tiles share the sixteen-lane
/// SHA-256 path) and the tile, row and column proofs of all tiles verified together by
/// [`verify_trees`], which accepts exactly when each proof would pass alone. A row of A
/// (column of B) that two sampled tiles share is checked once. `false` sends the reveal
/// to the tile-by-tile walk, which finds the first failing check in the documented order.
fn check_all_fast(job: &Job, grid: &TileGrid, tiles: &[&TileReveal]) -> bool {
    let k = job.k;
    let mut rects = Vec::with_capacity(tiles.len());
    let mut leaves: Vec<(Domain, &[u8])> = Vec::new();
    for t in tiles {
        let Ok(rect) = grid.rect(t.index) else {
            return false;
        };
        if t.tile.len() != rect.rows * rect.cols
            || t.a_rows.len() != rect.rows
            || t.b_cols.len() != rect.cols
            || t.a_rows.iter().chain(&t.b_cols).any(|o| o.data.len() != k)
        {
            return false;
        }
        leaves.extend(t.a_rows.iter().map(|o| (Domain::ARow, i8_bytes(&o.data))));
        leaves.extend(t.b_cols.iter().map(|o| (Domain::BCol, i8_bytes(&o.data))));
        rects.push(rect);
    }
    let hashes = leaf_hashes(&leaves);
    let mut hashes = hashes.iter();
    let (mut c_items, mut a_items, mut b_items) = (Vec::new(), Vec::new(), Vec::new());
    for (t, rect) in tiles.iter().zip(&rects) {
        c_items.push((t.index, c_tile_leaf(&t.tile), &t.proof));
        for (first, openings, items) in [
            (rect.row0, &t.a_rows, &mut a_items),
            (rect.col0, &t.b_cols, &mut b_items),
        ] {
            for (i, o) in openings.iter().enumerate() {
                let Some(h) = hashes.next() else {
                    return false;
                };
                items.push(((first + i) as u64, *h, &o.proof));
            }
        }
    }
    if !dedup_openings(&mut a_items) || !dedup_openings(&mut b_items) {
        return false;
    }
    verify_trees(&[
        TreeBatch {
            root: job.c_root,
            leaf_count: grid.count(),
            items: c_items,
        },
        TreeBatch {
            root: job.a_root,
            leaf_count: job.m as u64,
            items: a_items,
        },
        TreeBatch {
            root: job.b_root,
            leaf_count: job.n as u64,
            items: b_items,
        },
    ])
}

/// Sorts openings by index and keeps one of each index that several tiles open; `false`
/// if two openings of one index differ (then at least one of them is wrong, and the
/// tile-by-tile walk names it).
fn dedup_openings(items: &mut Vec<(u64, Hash, &InclusionProof)>) -> bool {
    items.sort_by_key(|it| it.0);
    let mut consistent = true;
    items.dedup_by(|b, a| {
        let same_index = a.0 == b.0;
        consistent &= !same_index || (a.1 == b.1 && a.2 == b.2);
        same_index
    });
    consistent
}

/// Checks one tile's shape and every proof.
fn check_tile(
    job: &Job,
    grid: &TileGrid,
    index: u64,
    t: &TileReveal,
) -> std::result::Result<(), Rejection> {
    if check_all_fast(job, grid, &[t]) {
        return Ok(());
    }
    check_tile_strict(job, grid, index, t)
}

/// Checks one tile step by step in the documented order (the verdict on failure).
fn check_tile_strict(
    job: &Job,
    grid: &TileGrid,
    index: u64,
    t: &TileReveal,
) -> std::result::Result<(), Rejection> {
    let rect = grid
        .rect(index)
        .map_err(|e| Rejection::InvalidJob(e.to_string()))?;
    let expected = rect.rows * rect.cols;
    if t.tile.len() != expected {
        return Err(Rejection::TileShape {
            index,
            expected,
            actual: t.tile.len(),
        });
    }
    t.proof
        .verify_at(&job.c_root, &c_tile_leaf(&t.tile), index, grid.count())
        .map_err(|e| Rejection::TileProof {
            index,
            reason: e.to_string(),
        })?;
    for (what, got, want) in [
        ("rows of A", t.a_rows.len(), rect.rows),
        ("columns of B", t.b_cols.len(), rect.cols),
    ] {
        if got != want {
            return Err(Rejection::OpeningCount {
                index,
                what,
                expected: want,
                actual: got,
            });
        }
    }
    check_openings(
        &t.a_rows,
        rect.row0,
        job.k,
        &job.a_root,
        job.m,
        Domain::ARow,
    )
    .map_err(|(row, reason)| Rejection::RowProof { index, row, reason })?;
    check_openings(
        &t.b_cols,
        rect.col0,
        job.k,
        &job.b_root,
        job.n,
        Domain::BCol,
    )
    .map_err(|(col, reason)| Rejection::ColumnProof { index, col, reason })
}

/// Checks consecutive openings `first..first+len` (lengths, then all proofs as one
/// batch); on failure, the first bad index and why.
fn check_openings(
    openings: &[Opening],
    first: usize,
    k: usize,
    root: &Hash,
    count: usize,
    domain: Domain,
) -> std::result::Result<(), (usize, String)> {
    for (i, o) in openings.iter().enumerate() {
        if o.data.len() != k {
            return Err((
                first + i,
                format!("expected {k} values, got {}", o.data.len()),
            ));
        }
    }
    let leaves: Vec<(Domain, &[u8])> = openings
        .iter()
        .map(|o| (domain, i8_bytes(&o.data)))
        .collect();
    let items: Vec<_> = openings
        .iter()
        .zip(leaf_hashes(&leaves))
        .enumerate()
        .map(|(i, (o, h))| ((first + i) as u64, h, &o.proof))
        .collect();
    verify_batch(root, count as u64, &items).map_err(|(i, e)| (first + i, e.to_string()))
}

/// Compares recomputed tiles in order; the first mismatch wins, then the structural failure.
fn finish(job: &Job, checked: &Checked<'_>, computed: &[Vec<i32>]) -> Verdict {
    let grid = job
        .grid()
        .map_err(|e| Rejection::InvalidJob(e.to_string()))?;
    for (t, got) in checked.tiles.iter().zip(computed) {
        let rect = grid
            .rect(t.index)
            .map_err(|e| Rejection::InvalidJob(e.to_string()))?;
        if let Some(p) = t.tile.iter().zip(got).position(|(a, b)| a != b) {
            return Err(Rejection::WrongResult {
                index: t.index,
                row: rect.row0 + p / rect.cols,
                col: rect.col0 + p % rect.cols,
                claimed: t.tile[p],
                computed: got[p],
            });
        }
    }
    match &checked.failure {
        Some(r) => Err(r.clone()),
        None => Ok(()),
    }
}

fn products<'a>(
    job: &Job,
    grid: &TileGrid,
    checked: &Checked<'a>,
) -> std::result::Result<Vec<SmallProduct<'a>>, Rejection> {
    checked
        .tiles
        .iter()
        .map(|t| {
            let rect = grid
                .rect(t.index)
                .map_err(|e| Rejection::InvalidJob(e.to_string()))?;
            Ok(SmallProduct {
                rows: t.a_rows.iter().map(|o| o.data.as_slice()).collect(),
                cols: t.b_cols.iter().map(|o| o.data.as_slice()).collect(),
                h: rect.rows,
                w: rect.cols,
                k: job.k,
            })
        })
        .collect()
}

/// Verifies one reveal on the CPU (single-threaded kernel, fastest SIMD path).
pub fn verify_reveal(job: &Job, seed: &Hash, reveal: &Reveal) -> Verdict {
    verify_reveal_with(&CpuGemm::new(), job, seed, reveal)
}

/// Verifies one reveal with a specific CPU GEMM configuration (kernel forced by tests).
pub fn verify_reveal_with(cpu: &CpuGemm, job: &Job, seed: &Hash, reveal: &Reveal) -> Verdict {
    let single = cpu
        .with_threads(1)
        .map_err(|e| Rejection::InvalidJob(e.to_string()))?;
    let checked = check_structure(job, seed, reveal)?;
    let grid = job
        .grid()
        .map_err(|e| Rejection::InvalidJob(e.to_string()))?;
    let computed = products(job, &grid, &checked)?
        .iter()
        .map(|p| cpu_small_product(&single, p))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| Rejection::InvalidJob(e.to_string()))?;
    finish(job, &checked, &computed)
}

/// Verifies the reveals of many jobs in one call. Proofs are checked in parallel on the
/// CPU; tile recomputations of all jobs are gathered and run on the engine's backend (one
/// batched GPU launch per tile shape on CUDA, rayon-parallel on the CPU).
#[derive(Debug)]
pub struct BatchVerifier {
    engine: Engine,
}

/// One job to verify in a batch.
#[derive(Clone, Copy, Debug)]
pub struct BatchItem<'a> {
    /// The job.
    pub job: &'a Job,
    /// Its challenge seed.
    pub seed: &'a Hash,
    /// The provider's reveal.
    pub reveal: &'a Reveal,
}

/// One partial answer to verify in a batch (see [`BatchVerifier::verify_parts`]).
#[derive(Clone, Copy, Debug)]
pub struct PartItem<'a> {
    /// The job.
    pub job: &'a Job,
    /// The tiles that were asked for.
    pub tiles: &'a [u64],
    /// The tiles answered now (a subset of `tiles`).
    pub reveal: &'a Reveal,
}

impl BatchVerifier {
    /// A verifier computing on `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    /// The engine in use.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// One verdict per item, in order. An `Err` means the backend itself failed (never
    /// a property of the reveals); if the GPU fails the CPU result is used instead.
    pub fn verify(&self, items: &[BatchItem<'_>]) -> Result<Vec<Verdict>> {
        let checked: Vec<std::result::Result<Checked<'_>, Rejection>> = items
            .par_iter()
            .map(|it| check_structure(it.job, it.seed, it.reveal))
            .collect();
        let jobs: Vec<&Job> = items.iter().map(|it| it.job).collect();
        self.recompute(&jobs, checked)
    }

    /// Like [`verify`](Self::verify) for answers that may cover only part of a set of tiles: each item's
    /// reveal must hold only tiles of its `tiles` (ascending or not), none twice, but may leave some out.
    /// A chain that lets a provider answer a large challenge over several transactions, or answer a
    /// consumer's request for chosen tiles, checks each part with this; which tiles are still owed is
    /// the caller's bookkeeping.
    pub fn verify_parts(&self, items: &[PartItem<'_>]) -> Result<Vec<Verdict>> {
        let checked: Vec<std::result::Result<Checked<'_>, Rejection>> = items
            .par_iter()
            .map(|it| check_against(it.job, it.tiles, false, it.reveal))
            .collect();
        let jobs: Vec<&Job> = items.iter().map(|it| it.job).collect();
        self.recompute(&jobs, checked)
    }

    /// Recomputes the tiles that passed their checks on the engine and compares them.
    fn recompute(
        &self,
        jobs: &[&Job],
        checked: Vec<std::result::Result<Checked<'_>, Rejection>>,
    ) -> Result<Vec<Verdict>> {
        let mut all = Vec::new();
        let mut spans = Vec::with_capacity(jobs.len());
        for (job, c) in jobs.iter().zip(&checked) {
            let start = all.len();
            if let (Ok(c), Ok(grid)) = (c, job.grid()) {
                if let Ok(ps) = products(job, &grid, c) {
                    all.extend(ps);
                }
            }
            spans.push(start..all.len());
        }
        let computed = match self.engine.small_products(&all) {
            Ok(v) => v,
            Err(_) if self.engine.is_cuda() => {
                Engine::cpu(*self.engine.cpu_gemm()).small_products(&all)?
            }
            Err(e) => return Err(e),
        };
        Ok(jobs
            .iter()
            .zip(checked)
            .zip(spans)
            .map(|((job, c), span)| match c {
                Err(r) => Err(r),
                Ok(c) => finish(job, &c, &computed[span]),
            })
            .collect())
    }
}
