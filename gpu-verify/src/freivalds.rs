//! Freivalds' check of a full output: is `C = A·B`?
//!
//! For a random vector `r ∈ F_pⁿ` with `p = 2⁶¹ − 1`, compare `A·(B·r)` with `C·r` modulo
//! `p`: `O(mk + kn + mn)` work instead of `O(mkn)`. Entries of `D = C − A·B` are below
//! 2³³ in magnitude, so any wrong entry is non-zero mod `p`; a non-zero row `d` of `D`
//! gives `d·r ≡ 0` for at most a `1/p` fraction of vectors (Schwartz–Zippel), so each
//! trial accepts a wrong `C` with probability at most `1/p ≈ 4.3·10⁻¹⁹`.
//!
//! All arithmetic is integer (i128 accumulation, reduced mod p), and the vector is drawn
//! from SHA-256 in counter mode over the caller's seed, so results are reproducible.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::gemm::check_shape;
use crate::matrix::{MatrixI32, MatrixI8};

/// The Mersenne prime `2⁶¹ − 1`.
pub const P: u64 = (1 << 61) - 1;

const TAG: &[u8] = b"lode/gpu-verify/freivalds/v1";

/// `n` field elements uniform in `[0, p)` from `seed` and `trial`.
pub fn random_vector(seed: &[u8; 32], trial: u32, n: usize) -> Vec<u64> {
    let mut out = Vec::with_capacity(n);
    let mut counter = 0u64;
    while out.len() < n {
        let mut h = Sha256::new();
        h.update(TAG);
        h.update(seed);
        h.update(trial.to_le_bytes());
        h.update(counter.to_le_bytes());
        counter += 1;
        let d: [u8; 32] = h.finalize().into();
        for c in d.chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            // 61 uniform bits; the single value p itself is rejected, leaving [0, p).
            let x = u64::from_le_bytes(b) >> 3;
            if x < P && out.len() < n {
                out.push(x);
            }
        }
    }
    out
}

fn reduce(x: i128) -> u64 {
    x.rem_euclid(i128::from(P)) as u64
}

/// Outcome of [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreivaldsReport {
    /// Trials run.
    pub trials: u32,
    /// Rows of C whose check failed in any trial, ascending (empty when accepted).
    pub suspect_rows: Vec<usize>,
}

impl FreivaldsReport {
    /// Whether C was accepted.
    pub fn accepted(&self) -> bool {
        self.suspect_rows.is_empty()
    }
}

/// Runs `trials` independent Freivalds trials of `c == a·b`.
pub fn check(
    a: &MatrixI8,
    b: &MatrixI8,
    c: &MatrixI32,
    seed: &[u8; 32],
    trials: u32,
) -> Result<FreivaldsReport> {
    check_shape(a.rows(), a.cols(), b.rows(), b.cols())?;
    if (c.rows(), c.cols()) != (a.rows(), b.cols()) {
        return Err(Error::ShapeMismatch {
            a_rows: c.rows(),
            a_cols: c.cols(),
            b_rows: a.rows(),
            b_cols: b.cols(),
        });
    }
    if trials == 0 {
        return Err(Error::InvalidParameter(
            "at least one Freivalds trial is needed".into(),
        ));
    }
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let mut suspect = std::collections::BTreeSet::new();
    for t in 0..trials {
        let r = random_vector(seed, t, n);
        // |B·r| terms < 2^68, sums of n <= 2^32 terms < 2^100: i128 is exact.
        let br: Vec<u64> = b
            .data()
            .chunks_exact(n)
            .map(|row| {
                reduce(
                    row.iter()
                        .zip(&r)
                        .map(|(&x, &y)| i128::from(x) * i128::from(y))
                        .sum(),
                )
            })
            .collect();
        for i in 0..m {
            let arow = &a.data()[i * k..(i + 1) * k];
            let abr = reduce(
                arow.iter()
                    .zip(&br)
                    .map(|(&x, &y)| i128::from(x) * i128::from(y))
                    .sum(),
            );
            let crow = &c.data()[i * n..(i + 1) * n];
            let cr = reduce(
                crow.iter()
                    .zip(&r)
                    .map(|(&x, &y)| i128::from(x) * i128::from(y))
                    .sum(),
            );
            if abr != cr {
                suspect.insert(i);
            }
        }
    }
    Ok(FreivaldsReport {
        trials,
        suspect_rows: suspect.into_iter().collect(),
    })
}

/// Finds the first wrong element `(row, col, claimed, correct)` of `c`, using Freivalds to
/// locate suspect rows and exact recomputation of those rows only.
pub fn find_wrong_element(
    a: &MatrixI8,
    b: &MatrixI8,
    c: &MatrixI32,
    seed: &[u8; 32],
    trials: u32,
) -> Result<Option<(usize, usize, i32, i32)>> {
    let report = check(a, b, c, seed, trials)?;
    let (k, n) = (a.cols(), b.cols());
    for &i in &report.suspect_rows {
        let arow = &a.data()[i * k..(i + 1) * k];
        for j in 0..n {
            let exact: i64 = arow
                .iter()
                .enumerate()
                .map(|(kk, &x)| i64::from(x) * i64::from(b.data()[kk * n + j]))
                .sum();
            let claimed = c.data()[i * n + j];
            if i64::from(claimed) != exact {
                // `exact` fits in i32 because k <= MAX_K (checked above).
                return Ok(Some((i, j, claimed, exact as i32)));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_is_in_field_and_reproducible() {
        let v = random_vector(&[3; 32], 0, 100);
        assert!(v.iter().all(|&x| x < P));
        assert_eq!(v, random_vector(&[3; 32], 0, 100));
        assert_ne!(v, random_vector(&[3; 32], 1, 100));
    }

    #[test]
    fn reduce_handles_negative_values() {
        assert_eq!(reduce(-1), P - 1);
        assert_eq!(reduce(i128::from(P)), 0);
    }
}
