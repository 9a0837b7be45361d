use lode_gpu_verify::freivalds::{check, find_wrong_element};
use lode_gpu_verify::{CpuGemm, MatrixI32};
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
