//! Shared helpers: deterministic random matrices and a small honest job.

use lode_gpu_verify::verify::{Job, Prover};
use lode_gpu_verify::{CpuGemm, MatrixI8};

/// SplitMix64: tiny deterministic generator for test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn i8(&mut self) -> i8 {
        (self.next_u64() >> 56) as i8
    }
}

pub fn random_matrix(rows: usize, cols: usize, seed: u64) -> MatrixI8 {
    let mut r = Rng(seed);
    MatrixI8::from_fn(rows, cols, |_, _| r.i8()).expect("valid shape")
}

pub const JOB_ID: [u8; 32] = [0x4a; 32];

/// An honest provider for an m×k×n job with tile size t.
pub fn honest(m: usize, k: usize, n: usize, t: usize, seed: u64) -> (Prover, MatrixI8, MatrixI8) {
    let a = random_matrix(m, k, seed);
    let b = random_matrix(k, n, seed + 1);
    let c = CpuGemm::new().gemm(&a, &b).expect("gemm");
    (Prover::new(a.clone(), &b, c, t).expect("prover"), a, b)
}

pub fn job_of(p: &Prover, samples: usize) -> Job {
    p.job(JOB_ID, samples)
}
