//! Test-only faults of the real provider daemon (cargo feature `provider-faults`, enabled only by the tests
//! and `scripts/test.sh`; a release build has neither this module nor the `--cheat` flag). The daemon
//! computes C correctly, then:
//!
//! - `corrupt-tiles=F`: changes one element of each tile in a deterministic fraction F (0 < F <= 1) of C's
//!   tiles (at least one), before committing: the sample catches it with probability about 1 − (1 − F)^s;
//! - `one-element`: changes one element of C (position derived from the job id): the sample almost always
//!   misses it, the consumer's Freivalds check finds it;
//! - `withhold`: commits and reveals honestly but never stores C in the blob service and ignores
//!   availability challenges.
//!
//! The choice of tiles and element depends only on the job id, so a restarted cheater commits the same root.

use std::str::FromStr;

use lode_gpu_verify::{commit::TileGrid, MatrixI32};
use sha2::{Digest, Sha256};

/// A fault the daemon injects.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cheat {
    /// Corrupt this fraction of the tiles.
    CorruptTiles(f64),
    /// Corrupt one element.
    OneElement,
    /// Never store C; ignore availability challenges.
    Withhold,
}

impl FromStr for Cheat {
    type Err = String;

    fn from_str(s: &str) -> Result<Cheat, String> {
        if let Some(f) = s.strip_prefix("corrupt-tiles=") {
            let f: f64 = f.parse().map_err(|e| format!("corrupt-tiles={f}: {e}"))?;
            if !(f > 0.0 && f <= 1.0) {
                return Err(format!("corrupt-tiles={f}: the fraction must be in (0, 1]"));
            }
            return Ok(Cheat::CorruptTiles(f));
        }
        match s {
            "one-element" => Ok(Cheat::OneElement),
            "withhold" => Ok(Cheat::Withhold),
            other => Err(format!(
                "--cheat {other:?}: expected corrupt-tiles=F, one-element or withhold"
            )),
        }
    }
}

fn digest(job: &[u8; 32], tag: &[u8], i: u64) -> u64 {
    let mut h = Sha256::new();
    h.update(b"lode/provider-faults/v1");
    h.update(tag);
    h.update(job);
    h.update(i.to_le_bytes());
    let d: [u8; 32] = h.finalize().into();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

impl Cheat {
    /// Whether C is kept out of the blob service and challenges go unanswered.
    pub fn withholds(self) -> bool {
        self == Cheat::Withhold
    }

    /// Corrupts the honest `c` of `job` (tile side `tile`); returns the corrupted elements as (row, col).
    pub fn corrupt(self, job: &[u8; 32], c: &mut MatrixI32, tile: usize) -> Vec<(usize, usize)> {
        let (m, n) = (c.rows(), c.cols());
        let mut cells = Vec::new();
        match self {
            Cheat::Withhold => {}
            Cheat::OneElement => {
                if m > 0 && n > 0 {
                    let r = (digest(job, b"row", 0) % m as u64) as usize;
                    let col = (digest(job, b"col", 0) % n as u64) as usize;
                    cells.push((r, col));
                }
            }
            Cheat::CorruptTiles(f) => {
                let Ok(grid) = TileGrid::new(m, n, tile) else {
                    return cells;
                };
                // f · 2^64, saturating at 1.0.
                let bound = (f * 18_446_744_073_709_551_616.0).min(u64::MAX as f64) as u64;
                let mut chosen: Vec<u64> = (0..grid.count())
                    .filter(|i| f >= 1.0 || digest(job, b"tile", *i) < bound)
                    .collect();
                if chosen.is_empty() {
                    // At least one tile: the one with the smallest digest.
                    if let Some(i) = (0..grid.count()).min_by_key(|i| digest(job, b"tile", *i)) {
                        chosen.push(i);
                    }
                }
                for i in chosen {
                    if let Ok(r) = grid.rect(i) {
                        cells.push((r.row0, r.col0));
                    }
                }
            }
        }
        let data = c.data_mut();
        for &(r, col) in &cells {
            if let Some(v) = data.get_mut(r * n + col) {
                *v = v.wrapping_add(1);
            }
        }
        cells
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c() -> MatrixI32 {
        MatrixI32::from_fn(16, 16, |i, j| (i * 16 + j) as i32).expect("c")
    }

    #[test]
    fn cheats_parse_and_bad_fractions_are_refused() {
        assert_eq!(
            "corrupt-tiles=0.5".parse::<Cheat>(),
            Ok(Cheat::CorruptTiles(0.5))
        );
        assert_eq!("one-element".parse::<Cheat>(), Ok(Cheat::OneElement));
        assert_eq!("withhold".parse::<Cheat>(), Ok(Cheat::Withhold));
        for bad in [
            "corrupt-tiles=0",
            "corrupt-tiles=1.5",
            "corrupt-tiles=x",
            "lie",
        ] {
            assert!(bad.parse::<Cheat>().is_err(), "{bad}");
        }
    }

    #[test]
    fn corruption_is_deterministic_per_job_and_hits_the_asked_fraction() {
        let job = [7u8; 32];
        let honest = c();
        let mut all = honest.clone();
        assert_eq!(
            Cheat::CorruptTiles(1.0).corrupt(&job, &mut all, 4).len(),
            16
        );
        let (mut x, mut y) = (honest.clone(), honest.clone());
        let cx = Cheat::CorruptTiles(0.5).corrupt(&job, &mut x, 4);
        let cy = Cheat::CorruptTiles(0.5).corrupt(&job, &mut y, 4);
        assert_eq!(cx, cy);
        assert_eq!(x, y);
        assert!((1..16).contains(&cx.len()), "{cx:?}");
        let diff = |a: &MatrixI32| {
            a.data()
                .iter()
                .zip(honest.data())
                .filter(|(p, q)| p != q)
                .count()
        };
        assert_eq!(diff(&x), cx.len());
        let mut one = honest.clone();
        assert_eq!(Cheat::OneElement.corrupt(&job, &mut one, 4).len(), 1);
        assert_eq!(diff(&one), 1);
        let mut w = honest.clone();
        assert!(Cheat::Withhold.corrupt(&job, &mut w, 4).is_empty());
        assert_eq!(diff(&w), 0);
        // A tiny fraction still corrupts one tile.
        let mut tiny = honest.clone();
        assert_eq!(
            Cheat::CorruptTiles(1e-9).corrupt(&job, &mut tiny, 4).len(),
            1
        );
    }
}
