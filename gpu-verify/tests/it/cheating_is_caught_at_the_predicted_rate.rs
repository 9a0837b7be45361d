use std::collections::BTreeSet;

use lode_gpu_verify::challenge::challenge_seed;
use lode_gpu_verify::commit::TileGrid;
use lode_gpu_verify::sim::{corrupted_tiles, simulate_detection};
use lode_gpu_verify::verify::{verify_reveal, Prover, DEFAULT_SAMPLES};
use lode_gpu_verify::CpuGemm;

use crate::common::{random_matrix, JOB_ID};

#[test]
fn the_simulated_catch_rate_matches_one_minus_one_minus_f_to_the_s() {
    // The 2048x2048 output with T = 4 has 512 x 512 tiles.
    let tiles = 512 * 512;
    for (bad_per_mille, s) in [
        (10u64, DEFAULT_SAMPLES),
        (100, DEFAULT_SAMPLES),
        (200, DEFAULT_SAMPLES),
        (500, DEFAULT_SAMPLES),
        (100, 32),
    ] {
        let bad = tiles * bad_per_mille / 1000;
        let r = simulate_detection(tiles, bad, s, 3000, &[bad_per_mille as u8; 32])
            .expect("simulation");
        eprintln!("{r}");
        let p = r.exact();
        let sigma = (p * (1.0 - p) / r.trials as f64).sqrt();
        assert!((r.empirical() - p).abs() <= 5.0 * sigma + 1e-9, "{r}");
        assert!((r.exact() - r.with_replacement()).abs() < 1e-3);
    }
}

#[test]
fn an_end_to_end_cheating_provider_is_caught_at_the_predicted_rate() {
    // 32x32 output, T = 4: 64 tiles, 16 of them corrupted (f = 0.25), s = 4.
    let (a, b) = (random_matrix(32, 24, 1), random_matrix(24, 32, 2));
    let good = CpuGemm::new().gemm(&a, &b).expect("gemm");
    let grid = TileGrid::new(32, 32, 4).expect("grid");
    let bad: BTreeSet<u64> = corrupted_tiles(grid.count(), 16, &[9; 32]).expect("bad");
    let mut c = good;
    for &t in &bad {
        let r = grid.rect(t).expect("rect");
        c.data_mut()[r.row0 * 32 + r.col0] ^= 0x100;
    }
    let p = Prover::new(a, &b, c, 4).expect("prover");
    let job = p.job(JOB_ID, DEFAULT_SAMPLES);
    let trials = 400u64;
    let mut caught = 0;
    for t in 0..trials {
        let seed = challenge_seed(
            &[(t % 256) as u8, (t / 256) as u8]
                .repeat(16)
                .try_into()
                .expect("32"),
            &JOB_ID,
        );
        let reveal = p
            .reveal(&job.challenge(&seed).expect("challenge"))
            .expect("reveal");
        if verify_reveal(&job, &seed, &reveal).is_err() {
            caught += 1;
        }
    }
    let rate = caught as f64 / trials as f64;
    let theory =
        1.0 - lode_gpu_verify::challenge::escape_probability(64, 16, DEFAULT_SAMPLES as u64);
    let bound = 1.0 - 0.75f64.powi(DEFAULT_SAMPLES as i32);
    eprintln!(
        "end-to-end: caught {rate:.3} of {trials}; exact {theory:.3}; 1-(1-f)^s = {bound:.3}"
    );
    let sigma = (theory * (1.0 - theory) / trials as f64).sqrt();
    assert!(
        (rate - theory).abs() <= 5.0 * sigma,
        "rate {rate} vs {theory}"
    );
}
