use lode_gpu_verify::freivalds::{
    check, find_wrong_element, random_vector, DEFAULT_TRIALS, MAX_TRIALS,
};
use lode_gpu_verify::{CpuGemm, MatrixI32, MatrixI8, MAX_K};
use proptest::prelude::*;

use crate::common::random_matrix;

#[test]
fn freivalds_accepts_the_true_product() {
    let (a, b) = (random_matrix(40, 70, 1), random_matrix(70, 33, 2));
    let c = CpuGemm::new().gemm(&a, &b).expect("gemm");
    let r = check(&a, &b, &c, &[1; 32], 3).expect("check");
    assert!(r.accepted());
    assert_eq!(
        find_wrong_element(&a, &b, &c, &[1; 32], 2).expect("find"),
        None
    );
}

#[test]
fn freivalds_rejects_a_product_with_one_wrong_element_and_locates_it() {
    let (a, b) = (random_matrix(40, 70, 3), random_matrix(70, 33, 4));
    let mut c = CpuGemm::new().gemm(&a, &b).expect("gemm");
    let truth = c.data()[17 * 33 + 5];
    c.data_mut()[17 * 33 + 5] = truth.wrapping_add(1);
    let seed = [7; 32];
    let r = check(&a, &b, &c, &seed, 1).expect("check");
    assert_eq!(r.suspect_rows, vec![17]);
    // Seeded: the same seed gives the same report.
    assert_eq!(check(&a, &b, &c, &seed, 1).expect("again"), r);
    assert_eq!(
        find_wrong_element(&a, &b, &c, &seed, 1).expect("find"),
        Some((17, 5, truth + 1, truth))
    );
}

#[test]
fn freivalds_rejects_bad_shapes_and_zero_trials() {
    let (a, b) = (random_matrix(4, 5, 1), random_matrix(5, 6, 2));
    assert!(check(&a, &b, &MatrixI32::zeros(4, 5).expect("c"), &[0; 32], 1).is_err());
    assert!(check(&a, &b, &MatrixI32::zeros(4, 6).expect("c"), &[0; 32], 0).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn freivalds_catches_any_single_wrong_element(
        r in 0usize..12, c in 0usize..9, delta in prop::num::i32::ANY.prop_filter("non-zero", |d| *d != 0), seed in any::<[u8; 32]>()
    ) {
        let (a, b) = (random_matrix(12, 20, 5), random_matrix(20, 9, 6));
        let mut prod = CpuGemm::new().gemm(&a, &b).expect("gemm");
        prod.data_mut()[r * 9 + c] = prod.data()[r * 9 + c].wrapping_add(delta);
        prop_assert_eq!(check(&a, &b, &prod, &seed, 1).expect("check").suspect_rows, vec![r]);
    }
}

/// Plain `Σ x·r mod 2⁶⁴` per row: what every trial of `check` must compute, however it
/// is vectorized or split over threads.
fn naive_suspect_rows(
    a: &MatrixI8,
    b: &MatrixI8,
    c: &MatrixI32,
    seed: &[u8; 32],
    trials: u32,
) -> Vec<usize> {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let w = |x: i64, r: u64| (x as u64).wrapping_mul(r);
    let mut suspect = Vec::new();
    let rs: Vec<Vec<u64>> = (0..trials).map(|t| random_vector(seed, t, n)).collect();
    let brs: Vec<Vec<u64>> = rs
        .iter()
        .map(|r| {
            (0..k)
                .map(|kk| {
                    (0..n).fold(0u64, |s, j| {
                        s.wrapping_add(w(b.data()[kk * n + j].into(), r[j]))
                    })
                })
                .collect()
        })
        .collect();
    for i in 0..m {
        let bad = rs.iter().zip(&brs).any(|(r, br)| {
            let abr = (0..k).fold(0u64, |s, kk| {
                s.wrapping_add(w(a.data()[i * k + kk].into(), br[kk]))
            });
            let cr = (0..n).fold(0u64, |s, j| {
                s.wrapping_add(w(c.data()[i * n + j].into(), r[j]))
            });
            abr != cr
        });
        if bad {
            suspect.push(i);
        }
    }
    suspect
}

#[test]
fn the_fast_check_computes_the_plain_wrapping_products() {
    // Odd lengths exercise the vector loops' remainders; several rows are wrong.
    let (a, b) = (random_matrix(37, 53, 21), random_matrix(53, 29, 22));
    let mut c = CpuGemm::new().gemm(&a, &b).expect("gemm");
    for (i, d) in [(0usize, 1i32), (5, -1), (17, i32::MIN), (36, 1 << 20)] {
        let e = i * 29 + (i * 7) % 29;
        c.data_mut()[e] = c.data()[e].wrapping_add(d);
    }
    for t in 1..=3 {
        let seed = [t as u8; 32];
        let got = check(&a, &b, &c, &seed, t).expect("check").suspect_rows;
        assert_eq!(got, naive_suspect_rows(&a, &b, &c, &seed, t));
        assert_eq!(got, vec![0, 5, 17, 36]);
    }
    // Rows longer than the check's blocks of 2048 elements, with a wrong element in the last block.
    let (a, b) = (random_matrix(3, 4100, 23), random_matrix(4100, 4099, 24));
    let mut c = CpuGemm::new().gemm(&a, &b).expect("gemm");
    c.data_mut()[4099 + 4098] ^= 1 << 31;
    let got = check(&a, &b, &c, &[9; 32], 2).expect("check").suspect_rows;
    assert_eq!(got, naive_suspect_rows(&a, &b, &c, &[9; 32], 2));
    assert_eq!(got, vec![1]);
}

/// Errors that are multiples of large powers of two, where arithmetic mod 2⁶⁴ leaves the
/// fewest values of r to tell them apart (the bound, 2⁻³² a trial, holds for them too): every
/// element of C, each with such an error, is caught and located.
#[test]
fn a_wrong_element_anywhere_is_caught_even_with_an_error_of_a_large_power_of_two() {
    let (m, k, n) = (9, 31, 11);
    let (a, b) = (random_matrix(m, k, 31), random_matrix(k, n, 32));
    let truth = CpuGemm::new().gemm(&a, &b).expect("gemm");
    let deltas = [
        i32::MIN,
        1 << 30,
        3 << 29,
        1 << 24,
        -(1 << 16),
        1,
        -1,
        0x5555_5555,
    ];
    for e in 0..m * n {
        let d = deltas[e % deltas.len()];
        let mut c = truth.clone();
        c.data_mut()[e] = truth.data()[e].wrapping_add(d);
        let seed = [e as u8; 32];
        let r = check(&a, &b, &c, &seed, DEFAULT_TRIALS).expect("check");
        assert_eq!(r.suspect_rows, vec![e / n], "element {e}, error {d}");
        assert_eq!(
            find_wrong_element(&a, &b, &c, &seed, DEFAULT_TRIALS).expect("find"),
            Some((e / n, e % n, c.data()[e], truth.data()[e]))
        );
    }
}

/// k at its maximum with every input at an extreme (-128 or 127): the largest |A·B| the
/// chain allows. The true product is accepted; a wrong element anywhere is caught,
/// including claims at i32's ends and an error of exactly 2³¹.
#[test]
fn extreme_entries_at_the_largest_k_are_checked_exactly() {
    let (m, k, n) = (3, MAX_K, 4);
    let a =
        MatrixI8::from_fn(m, k, |i, kk| if i == 1 && kk % 3 == 0 { 127 } else { -128 }).expect("A");
    let b =
        MatrixI8::from_fn(k, n, |kk, j| if j == 2 && kk % 2 == 1 { 127 } else { -128 }).expect("B");
    let truth = CpuGemm::new().gemm(&a, &b).expect("gemm");
    assert_eq!(truth.data()[0], 128 * 128 * MAX_K as i32);
    let seed = [0xee; 32];
    assert!(check(&a, &b, &truth, &seed, DEFAULT_TRIALS)
        .expect("check")
        .accepted());
    assert_eq!(
        find_wrong_element(&a, &b, &truth, &seed, DEFAULT_TRIALS).expect("find"),
        None
    );
    for e in 0..m * n {
        for claim in [
            truth.data()[e].wrapping_add(i32::MIN),
            truth.data()[e] - 1,
            i32::MIN,
            i32::MAX,
            -truth.data()[e],
        ] {
            if claim == truth.data()[e] {
                continue;
            }
            let mut c = truth.clone();
            c.data_mut()[e] = claim;
            assert_eq!(
                find_wrong_element(&a, &b, &c, &seed, DEFAULT_TRIALS).expect("find"),
                Some((e / n, e % n, claim, truth.data()[e])),
                "element {e}, claim {claim}"
            );
        }
    }
    // k beyond the maximum is refused, not wrapped.
    let wide = MatrixI8::zeros(1, MAX_K + 1).expect("A");
    let tall = MatrixI8::zeros(MAX_K + 1, 1).expect("B");
    assert!(check(&wide, &tall, &MatrixI32::zeros(1, 1).expect("C"), &seed, 1).is_err());
}

#[test]
fn the_true_product_is_accepted_for_any_seed_and_the_check_is_seeded() {
    let (a, b) = (random_matrix(64, 100, 41), random_matrix(100, 70, 42));
    let c = CpuGemm::new().gemm(&a, &b).expect("gemm");
    for s in 0..16u8 {
        assert!(check(&a, &b, &c, &[s; 32], DEFAULT_TRIALS)
            .expect("check")
            .accepted());
    }
    let mut bad = c.clone();
    bad.data_mut()[3] ^= 1 << 31;
    bad.data_mut()[64 * 70 - 1] ^= 1 << 31;
    let r = check(&a, &b, &bad, &[5; 32], DEFAULT_TRIALS).expect("check");
    assert_eq!(r.suspect_rows, vec![0, 63]);
    assert_eq!(
        check(&a, &b, &bad, &[5; 32], DEFAULT_TRIALS).expect("again"),
        r
    );
    assert_eq!(random_vector(&[5; 32], 0, 9), random_vector(&[5; 32], 0, 9));
    assert!(check(&a, &b, &c, &[5; 32], MAX_TRIALS + 1).is_err());
}

/// The consumer's path: `B·r` and `A·(B·r)` taken from the bands of rows A and B's commitments read,
/// `C·r` from C's rows, give `check`'s report; the products refuse to be fed out of order, in part, A
/// before B, or compared across seeds or trial counts.
#[test]
fn products_taken_while_the_inputs_are_committed_give_the_checks_report() {
    use lode_gpu_verify::commit::{commit_a, commit_a_with, commit_b, commit_b_with};
    use lode_gpu_verify::freivalds::{check_all, CProducts, InputProducts};
    let (m, k, n) = (70, 130, 67);
    let (a, b) = (random_matrix(m, k, 11), random_matrix(k, n, 12));
    let mut c = CpuGemm::new().gemm(&a, &b).expect("gemm");
    c.data_mut()[65 * n + 3] ^= i32::MIN;
    c.data_mut()[2 * n + 66] -= 1;
    let seed = [9; 32];
    for trials in [1, 2, 3] {
        let want = check(&a, &b, &c, &seed, trials).expect("check");
        assert_eq!(want.suspect_rows, vec![2, 65]);
        let mut inputs = InputProducts::new(m, k, n, &seed, trials).expect("inputs");
        let rb = commit_b_with(&b, |r0, rows| inputs.add_b_rows(r0, rows)).expect("B");
        let ra = commit_a_with(&a, |r0, rows| inputs.add_a_rows(r0, rows)).expect("A");
        assert_eq!(rb.root(), commit_b(&b).expect("B").root());
        assert_eq!(ra.root(), commit_a(&a).expect("A").root());
        let mut cs = CProducts::new(m, n, &seed, trials).expect("C");
        for (i, row) in c.data().chunks_exact(n).enumerate() {
            cs.add(i, 0, row).expect("C row");
        }
        assert_eq!(check_all(&inputs, &cs).expect("check_all"), want);
        // Another seed's or trial count's C·r is not compared.
        let mut other = CProducts::new(m, n, &[8; 32], trials).expect("C");
        let mut fewer = CProducts::new(m, n, &seed, trials + 1).expect("C");
        for (i, row) in c.data().chunks_exact(n).enumerate() {
            other.add(i, 0, row).expect("C row");
            fewer.add(i, 0, row).expect("C row");
        }
        assert!(check_all(&inputs, &other).is_err());
        assert!(check_all(&inputs, &fewer).is_err());
    }
    let fresh = || InputProducts::new(m, k, n, &seed, 2).expect("inputs");
    let (arow, brow) = (&a.data()[..k], &b.data()[..n]);
    // A before B, B out of order or in part, more rows than B has.
    assert!(fresh().add_a_rows(0, arow).is_err());
    assert!(fresh().add_b_rows(1, brow).is_err());
    assert!(fresh().add_b_rows(0, &brow[1..]).is_err());
    let mut too_many = b.data().to_vec();
    too_many.extend_from_slice(brow);
    assert!(fresh().add_b_rows(0, &too_many).is_err());
    // A row added twice, and a check before every row of A is in.
    let mut p = fresh();
    p.add_b_rows(0, b.data()).expect("B");
    p.add_a_rows(0, arow).expect("A row 0");
    assert!(p.add_a_rows(0, arow).is_err());
    let mut cs = CProducts::new(m, n, &seed, 2).expect("C");
    for (i, row) in c.data().chunks_exact(n).enumerate() {
        cs.add(i, 0, row).expect("C row");
    }
    assert!(check_all(&p, &cs).is_err());
    // Shapes that do not multiply, and trials out of range.
    assert!(InputProducts::new(m, 0, n, &seed, 2).is_err());
    assert!(InputProducts::new(m, k, n, &seed, 0).is_err());
    assert!(InputProducts::new(m, k, n, &seed, MAX_TRIALS + 1).is_err());
}
