use lode_gpu_verify::challenge::{challenge_indices, challenge_seed};

#[test]
fn the_same_seed_gives_the_same_indices() {
    let seed = challenge_seed(&[9; 32], &[1; 32]);
    let a = challenge_indices(&seed, &[1; 32], 65_536, 16).expect("a");
    let b = challenge_indices(&seed, &[1; 32], 65_536, 16).expect("b");
    assert_eq!(a, b);
    assert_eq!(a.len(), 16);
    let other =
        challenge_indices(&challenge_seed(&[8; 32], &[1; 32]), &[1; 32], 65_536, 16).expect("c");
    assert_ne!(a, other);
}

#[test]
fn indices_are_uniform_over_many_seeds_within_tolerance() {
    // 10 tiles (not a power of two, so modulo bias would show), 3 distinct samples per seed.
    let tiles = 10u64;
    let trials = 20_000u64;
    let mut counts = [0u64; 10];
    for t in 0..trials {
        let mut block = [0u8; 32];
        block[..8].copy_from_slice(&t.to_le_bytes());
        let seed = challenge_seed(&block, &[2; 32]);
        for i in challenge_indices(&seed, &[2; 32], tiles, 3).expect("indices") {
            counts[i as usize] += 1;
        }
    }
    let expected = (trials * 3) as f64 / tiles as f64;
    let chi2: f64 = counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum();
    eprintln!("counts {counts:?}, chi2 = {chi2:.2} (df 9, 0.1% critical value 27.88)");
    assert!(chi2 < 27.88, "chi-square {chi2} too large: {counts:?}");
}

#[test]
fn asking_for_at_least_every_tile_samples_all_of_them() {
    assert_eq!(
        challenge_indices(&[0; 32], &[0; 32], 4, 4).expect("all"),
        vec![0, 1, 2, 3]
    );
    assert_eq!(
        challenge_indices(&[0; 32], &[0; 32], 1, 100).expect("one"),
        vec![0]
    );
}
