//! Fraud proofs: a compact, self-contained proof that one element of a committed output is
//! wrong, for the outputs that sampling did not catch.
//!
//! A proof carries the element's row of A and column of B with proofs against the
//! consumer's input roots, and the tile containing the element with its proof against the
//! provider's output root. Anyone holding the job's roots can check it by recomputing one
//! dot product (`k` multiply-adds) exactly.

use crate::challenge::JobId;
use crate::commit::{a_row_leaf, b_col_leaf, c_tile_leaf};
use crate::error::{Error, Result};
use crate::merkle::InclusionProof;
use crate::verify::{Job, Opening, Prover};

/// Proof that `C[row][col]` as committed differs from `A[row]·B[:,col]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FraudProof {
    /// Job the proof is about.
    pub job_id: JobId,
    /// Row of the wrong element.
    pub row: usize,
    /// Column of the wrong element.
    pub col: usize,
    /// The committed tile containing the element.
    pub tile: Vec<i32>,
    /// Proof of the tile against the output root.
    pub tile_proof: InclusionProof,
    /// Row `row` of A.
    pub a_row: Opening,
    /// Column `col` of B.
    pub b_col: Opening,
}

/// What a valid fraud proof establishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProvenFraud {
    /// Row of the wrong element.
    pub row: usize,
    /// Column of the wrong element.
    pub col: usize,
    /// Value the provider committed.
    pub claimed: i32,
    /// Correct value.
    pub correct: i32,
}

impl Prover {
    /// Builds a fraud proof for element `(row, col)` of the committed output. The
    /// consumer uses this after rebuilding the provider's commitment from the delivered C
    /// (checking its root) and locating a wrong element, e.g. with
    /// [`find_wrong_element`](crate::freivalds::find_wrong_element).
    pub fn fraud_proof(&self, job_id: JobId, row: usize, col: usize) -> Result<FraudProof> {
        let grid = self.grid();
        let index = grid.tile_of(row, col)?;
        let tr = self.reveal_tile(index)?;
        Ok(FraudProof {
            job_id,
            row,
            col,
            tile: tr.tile,
            tile_proof: tr.proof,
            a_row: self.open_a_row(row)?,
            b_col: self.open_b_col(col)?,
        })
    }
}

/// Checks a fraud proof against a job; `Ok` only if the element is provably wrong.
pub fn verify_fraud_proof(job: &Job, proof: &FraudProof) -> Result<ProvenFraud> {
    let invalid = |s: String| Error::FraudProofInvalid(s);
    if proof.job_id != job.id {
        return Err(invalid("proof is for another job".into()));
    }
    let grid = job.grid()?;
    let index = grid.tile_of(proof.row, proof.col)?;
    let rect = grid.rect(index)?;
    if proof.tile.len() != rect.rows * rect.cols {
        return Err(invalid(format!(
            "tile {index} needs {} values, proof has {}",
            rect.rows * rect.cols,
            proof.tile.len()
        )));
    }
    proof
        .tile_proof
        .verify_at(&job.c_root, &c_tile_leaf(&proof.tile), index, grid.count())
        .map_err(|e| invalid(format!("tile proof: {e}")))?;
    for (what, o, root, idx, count, leaf) in [
        (
            "row of A",
            &proof.a_row,
            &job.a_root,
            proof.row,
            job.m,
            a_row_leaf as fn(&[i8]) -> _,
        ),
        (
            "column of B",
            &proof.b_col,
            &job.b_root,
            proof.col,
            job.n,
            b_col_leaf,
        ),
    ] {
        if o.data.len() != job.k {
            return Err(invalid(format!(
                "{what} has {} values, expected {}",
                o.data.len(),
                job.k
            )));
        }
        o.proof
            .verify_at(root, &leaf(&o.data), idx as u64, count as u64)
            .map_err(|e| invalid(format!("{what} proof: {e}")))?;
    }
    let correct: i64 = proof
        .a_row
        .data
        .iter()
        .zip(&proof.b_col.data)
        .map(|(&x, &y)| i64::from(x) * i64::from(y))
        .sum();
    let claimed = proof.tile[(proof.row - rect.row0) * rect.cols + (proof.col - rect.col0)];
    if i64::from(claimed) == correct {
        return Err(invalid(format!(
            "C[{}][{}] = {claimed} is correct",
            proof.row, proof.col
        )));
    }
    Ok(ProvenFraud {
        row: proof.row,
        col: proof.col,
        claimed,
        // Fits in i32: k <= MAX_K is enforced by `job.grid()`.
        correct: correct as i32,
    })
}
