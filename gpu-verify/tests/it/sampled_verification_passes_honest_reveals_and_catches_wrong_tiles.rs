use lode_gpu_verify::backend::{Backend, Engine};
use lode_gpu_verify::challenge::challenge_seed;
use lode_gpu_verify::verify::{
    verify_reveal, verify_reveal_with, BatchItem, BatchVerifier, Prover, Rejection,
    DEFAULT_SAMPLES, DEFAULT_TILE,
};
use lode_gpu_verify::{CpuGemm, CpuKernel};

use crate::common::{honest, job_of, random_matrix, JOB_ID};

const SEED: [u8; 32] = [0x5e; 32];

#[test]
fn an_honest_reveal_passes_on_every_cpu_path() {
    // 13x11 with T = 4 has clipped edge tiles; s = 6 of 12 tiles.
    let (p, _, _) = honest(13, 37, 11, 4, 1);
    let job = job_of(&p, 6);
    let reveal = p
        .reveal(&job.challenge(&SEED).expect("challenge"))
        .expect("reveal");
    assert_eq!(verify_reveal(&job, &SEED, &reveal), Ok(()));
    for k in CpuKernel::supported() {
        let g = CpuGemm::new().with_kernel(k).expect("kernel");
        assert_eq!(
            verify_reveal_with(&g, &job, &SEED, &reveal),
            Ok(()),
            "{k:?}"
        );
    }
}

#[test]
fn an_honest_reveal_with_large_tiles_passes_on_every_cpu_path() {
    // T = 20 is above the dot-product cutoff, so the blocked SIMD kernels recompute tiles.
    let (p, _, _) = honest(45, 70, 41, 20, 11);
    let job = job_of(&p, 4);
    let reveal = p
        .reveal(&job.challenge(&SEED).expect("challenge"))
        .expect("reveal");
    for k in CpuKernel::supported() {
        let g = CpuGemm::new().with_kernel(k).expect("kernel");
        assert_eq!(
            verify_reveal_with(&g, &job, &SEED, &reveal),
            Ok(()),
            "{k:?}"
        );
    }
    let mut bad = reveal;
    bad.tiles[0].tile[7] ^= 2;
    assert!(verify_reveal(&job, &SEED, &bad).is_err());
}

#[test]
fn an_honest_reveal_of_every_tile_passes_with_the_default_parameters() {
    let (p, _, _) = honest(9, 20, 10, DEFAULT_TILE, 2);
    let job = job_of(&p, 1000 * DEFAULT_SAMPLES);
    let reveal = p
        .reveal(&job.challenge(&SEED).expect("challenge"))
        .expect("reveal");
    assert_eq!(reveal.tiles.len() as u64, p.grid().count());
    assert_eq!(verify_reveal(&job, &SEED, &reveal), Ok(()));
}

#[test]
fn a_committed_wrong_element_in_a_sampled_tile_is_caught_with_its_position() {
    let (a, b) = (random_matrix(16, 30, 3), random_matrix(30, 16, 4));
    let mut c = CpuGemm::new().gemm(&a, &b).expect("gemm");
    let honest_job = Prover::new(a.clone(), &b, c.clone(), 4)
        .expect("p")
        .job(JOB_ID, 3);
    let first = honest_job.challenge(&SEED).expect("challenge")[0];
    let rect = lode_gpu_verify::commit::TileGrid::new(16, 16, 4)
        .expect("grid")
        .rect(first)
        .expect("rect");
    let (row, col) = (rect.row0 + 1, rect.col0 + 2);
    c.data_mut()[row * 16 + col] ^= 1;
    let cheat = Prover::new(a, &b, c, 4).expect("prover");
    let job = job_of(&cheat, 3);
    assert_eq!(
        job.challenge(&SEED).expect("c"),
        honest_job.challenge(&SEED).expect("c")
    );
    let reveal = cheat
        .reveal(&job.challenge(&SEED).expect("challenge"))
        .expect("reveal");
    match verify_reveal(&job, &SEED, &reveal) {
        Err(Rejection::WrongResult {
            index,
            row: r,
            col: cc,
            ..
        }) => {
            assert_eq!((index, r, cc), (first, row, col));
        }
        other => panic!("expected WrongResult, got {other:?}"),
    }
}

#[test]
fn one_flipped_element_in_a_revealed_tile_breaks_its_proof() {
    let (p, _, _) = honest(12, 25, 12, 4, 5);
    let job = job_of(&p, 4);
    let mut reveal = p
        .reveal(&job.challenge(&SEED).expect("challenge"))
        .expect("reveal");
    reveal.tiles[1].tile[3] = reveal.tiles[1].tile[3].wrapping_add(1);
    let index = reveal.tiles[1].index;
    assert!(
        matches!(verify_reveal(&job, &SEED, &reveal), Err(Rejection::TileProof { index: i, .. }) if i == index)
    );
}

#[test]
fn a_tile_from_the_wrong_index_is_rejected() {
    let (p, _, _) = honest(12, 25, 12, 4, 6);
    let job = job_of(&p, 2);
    let idx = job.challenge(&SEED).expect("challenge");
    let other = (0..p.grid().count())
        .find(|i| !idx.contains(i))
        .expect("an unchallenged tile");
    // Claim a challenged index but supply another tile with its (valid) proof.
    let mut reveal = p.reveal(&idx).expect("reveal");
    let wrong = p.reveal_tile(other).expect("tile");
    reveal.tiles[0].tile = wrong.tile;
    reveal.tiles[0].proof = wrong.proof;
    assert!(matches!(
        verify_reveal(&job, &SEED, &reveal),
        Err(Rejection::TileProof { .. })
    ));
    // Answer with the unchallenged tile outright.
    let mut reveal = p.reveal(&idx).expect("reveal");
    reveal.tiles[0] = p.reveal_tile(other).expect("tile");
    assert_eq!(
        verify_reveal(&job, &SEED, &reveal),
        Err(Rejection::UnexpectedTile { index: other })
    );
}

#[test]
fn a_tampered_input_row_or_column_is_rejected() {
    let (p, _, _) = honest(12, 25, 12, 4, 7);
    let job = job_of(&p, 3);
    let idx = job.challenge(&SEED).expect("challenge");
    let mut reveal = p.reveal(&idx).expect("reveal");
    reveal.tiles[0].a_rows[2].data[5] ^= 0x10;
    let row = p.grid().rect(idx[0]).expect("rect").row0 + 2;
    assert!(
        matches!(verify_reveal(&job, &SEED, &reveal), Err(Rejection::RowProof { row: r, .. }) if r == row)
    );
    let mut reveal = p.reveal(&idx).expect("reveal");
    reveal.tiles[2].b_cols[0].data.pop();
    assert!(matches!(
        verify_reveal(&job, &SEED, &reveal),
        Err(Rejection::ColumnProof { .. })
    ));
    // A genuine row, but the wrong one for this tile.
    let mut reveal = p.reveal(&idx).expect("reveal");
    let r0 = p.grid().rect(idx[1]).expect("rect").row0;
    reveal.tiles[1].a_rows[0] = p.open_a_row((r0 + 4) % 12).expect("row");
    assert!(matches!(
        verify_reveal(&job, &SEED, &reveal),
        Err(Rejection::RowProof { .. })
    ));
    let mut reveal = p.reveal(&idx).expect("reveal");
    reveal.tiles[1].b_cols.pop();
    assert!(matches!(
        verify_reveal(&job, &SEED, &reveal),
        Err(Rejection::OpeningCount { .. })
    ));
}

#[test]
fn a_row_shared_by_two_sampled_tiles_is_judged_for_each_tile() {
    // Every tile sampled: tiles 0, 1 and 2 open the same rows 0..4 of A.
    let (p, _, _) = honest(12, 25, 12, 4, 9);
    let job = job_of(&p, 9);
    let idx = job.challenge(&SEED).expect("challenge");
    assert_eq!(idx, (0..9).collect::<Vec<u64>>());
    let honest_reveal = p.reveal(&idx).expect("reveal");
    assert_eq!(verify_reveal(&job, &SEED, &honest_reveal), Ok(()));
    // Tile 1's copy of row 2 is wrong, tile 0's is right: tile 1 is the verdict.
    let mut reveal = honest_reveal.clone();
    reveal.tiles[1].a_rows[2].data[0] ^= 1;
    assert!(matches!(
        verify_reveal(&job, &SEED, &reveal),
        Err(Rejection::RowProof {
            index: 1,
            row: 2,
            ..
        })
    ));
    // Same data, but tile 2 carries a forged proof for the shared row.
    let mut reveal = honest_reveal.clone();
    reveal.tiles[2].a_rows[1].proof.siblings[0] = [7; 32];
    assert!(matches!(
        verify_reveal(&job, &SEED, &reveal),
        Err(Rejection::RowProof {
            index: 2,
            row: 1,
            ..
        })
    ));
}

#[test]
fn long_rows_take_the_wide_hashing_path_and_tampering_is_caught() {
    // k = 2100: rows span many SHA-256 blocks; 3 samples × (4 + 4) leaves use 16 lanes.
    let (p, _, _) = honest(16, 2100, 16, 4, 10);
    let job = job_of(&p, 3);
    let idx = job.challenge(&SEED).expect("challenge");
    let reveal = p.reveal(&idx).expect("reveal");
    assert_eq!(verify_reveal(&job, &SEED, &reveal), Ok(()));
    let mut bad = reveal.clone();
    bad.tiles[2].b_cols[3].data[2099] ^= 0x40;
    let col = p.grid().rect(idx[2]).expect("rect").col0 + 3;
    assert!(
        matches!(verify_reveal(&job, &SEED, &bad), Err(Rejection::ColumnProof { col: c, .. }) if c == col)
    );
    let mut bad = reveal;
    bad.tiles[0].tile[5] = bad.tiles[0].tile[5].wrapping_add(1);
    assert!(verify_reveal(&job, &SEED, &bad).is_err());
}

#[test]
fn a_missing_or_duplicated_sample_is_rejected() {
    let (p, _, _) = honest(12, 25, 12, 4, 8);
    let job = job_of(&p, 3);
    let idx = job.challenge(&SEED).expect("challenge");
    let mut reveal = p.reveal(&idx).expect("reveal");
    let dropped = reveal.tiles.remove(1).index;
    assert_eq!(
        verify_reveal(&job, &SEED, &reveal),
        Err(Rejection::MissingSample { index: dropped })
    );
    let mut reveal = p.reveal(&idx).expect("reveal");
    reveal.tiles[2] = reveal.tiles[0].clone();
    assert_eq!(
        verify_reveal(&job, &SEED, &reveal),
        Err(Rejection::DuplicateTile { index: idx[0] })
    );
    let mut reveal = p.reveal(&idx).expect("reveal");
    reveal.tiles[0].tile.push(0);
    assert!(matches!(
        verify_reveal(&job, &SEED, &reveal),
        Err(Rejection::TileShape { .. })
    ));
}

#[test]
fn a_reveal_for_another_seed_is_rejected() {
    let (p, _, _) = honest(40, 8, 40, 4, 9);
    let job = job_of(&p, 4);
    let other_seed = challenge_seed(&[1; 32], &JOB_ID);
    let reveal = p
        .reveal(&job.challenge(&other_seed).expect("challenge"))
        .expect("reveal");
    assert!(matches!(
        verify_reveal(&job, &SEED, &reveal),
        Err(Rejection::UnexpectedTile { .. } | Rejection::MissingSample { .. })
    ));
}

#[test]
fn the_batch_verifier_gives_the_same_verdicts_as_single_verification() {
    let mut jobs = Vec::new();
    let mut reveals = Vec::new();
    for i in 0..6u64 {
        let (p, _, _) = honest(10 + i as usize, 16 + i as usize, 9, 4, 100 + i);
        let job = job_of(&p, 3);
        let mut reveal = p
            .reveal(&job.challenge(&SEED).expect("challenge"))
            .expect("reveal");
        match i {
            1 => reveal.tiles[0].tile[0] ^= 4,
            3 => {
                reveal.tiles.pop();
            }
            4 => reveal.tiles[1].b_cols[0].data[0] ^= 1,
            _ => {}
        }
        jobs.push(job);
        reveals.push(reveal);
    }
    let items: Vec<BatchItem<'_>> = jobs
        .iter()
        .zip(&reveals)
        .map(|(job, reveal)| BatchItem {
            job,
            seed: &SEED,
            reveal,
        })
        .collect();
    let single: Vec<_> = items
        .iter()
        .map(|it| verify_reveal(it.job, it.seed, it.reveal))
        .collect();
    assert_eq!(single.iter().filter(|v| v.is_ok()).count(), 3);
    for engine in [
        Engine::new(Backend::Cpu).expect("cpu"),
        Engine::new(Backend::Auto).expect("auto"),
    ] {
        eprintln!("batch verifier on {}", engine.describe());
        let got = BatchVerifier::new(engine).verify(&items).expect("batch");
        assert_eq!(got, single);
    }
}
