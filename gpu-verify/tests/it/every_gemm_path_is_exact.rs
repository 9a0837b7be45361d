use lode_gpu_verify::backend::{Backend, Engine};
use lode_gpu_verify::gemm::reference_i64;
use lode_gpu_verify::{cuda, CpuGemm, CpuKernel, Error, MatrixI8, MAX_K};
use proptest::prelude::*;

use crate::common::random_matrix;

fn all_paths() -> Vec<CpuGemm> {
    let mut v = Vec::new();
    for k in CpuKernel::supported() {
        for t in [1, 2, 3] {
            v.push(
                CpuGemm::new()
                    .with_kernel(k)
                    .and_then(|g| g.with_threads(t))
                    .expect("config"),
            );
        }
    }
    v
}

fn assert_matches_reference(a: &MatrixI8, b: &MatrixI8) {
    let want = reference_i64(a, b).expect("reference");
    for g in all_paths() {
        let c = g.gemm(a, b).expect("gemm");
        let got: Vec<i64> = c.data().iter().map(|&v| i64::from(v)).collect();
        assert_eq!(
            got,
            want,
            "{:?} on {}x{}x{}",
            g,
            a.rows(),
            a.cols(),
            b.cols()
        );
    }
}

#[test]
fn the_portable_kernel_is_always_available_and_reported() {
    assert!(CpuKernel::Portable.is_supported());
    assert!(CpuKernel::supported().contains(&CpuKernel::best()));
    eprintln!("CPU kernels here: {:?}", CpuKernel::supported());
}

#[test]
fn every_cpu_path_matches_the_i64_reference_on_edge_shapes() {
    let shapes = [
        (1, 1, 1),
        (1, 7, 1),
        (2, 1, 3),
        (5, 3, 1),
        (1, 64, 65),
        (7, 63, 9),
        (13, 65, 17),
        (6, 4, 64),
        (97, 129, 70),
        (100, 515, 33),
    ];
    for (i, &(m, k, n)) in shapes.iter().enumerate() {
        assert_matches_reference(
            &random_matrix(m, k, i as u64 * 2),
            &random_matrix(k, n, i as u64 * 2 + 1),
        );
    }
}

#[test]
fn every_cpu_path_is_exact_at_extreme_values() {
    for (av, bv) in [(-128i8, -128i8), (-128, 127), (127, 127), (127, -128)] {
        let a = MatrixI8::from_fn(9, 70, |_, _| av).expect("a");
        let b = MatrixI8::from_fn(70, 67, |_, _| bv).expect("b");
        assert_matches_reference(&a, &b);
    }
}

#[test]
fn the_largest_allowed_k_is_exact_on_every_path() {
    let a = MatrixI8::from_fn(2, MAX_K, |r, c| {
        if r == 0 {
            -128
        } else if c % 3 == 0 {
            127
        } else {
            -128
        }
    })
    .expect("a");
    let b = MatrixI8::from_fn(
        MAX_K,
        2,
        |r, c| {
            if c == 0 || r % 5 == 0 {
                -128
            } else {
                127
            }
        },
    )
    .expect("b");
    let want = reference_i64(&a, &b).expect("reference");
    assert_eq!(want[0], 128 * 128 * MAX_K as i64);
    assert_eq!(want[0], 2_147_467_264);
    for k in CpuKernel::supported() {
        let c = CpuGemm::new()
            .with_kernel(k)
            .expect("kernel")
            .gemm(&a, &b)
            .expect("gemm");
        let got: Vec<i64> = c.data().iter().map(|&v| i64::from(v)).collect();
        assert_eq!(got, want, "{k:?}");
    }
}

#[test]
fn k_one_past_the_limit_is_an_error_not_a_wrap() {
    let a = MatrixI8::zeros(1, MAX_K + 1).expect("a");
    let b = MatrixI8::zeros(MAX_K + 1, 1).expect("b");
    for k in CpuKernel::supported() {
        let err = CpuGemm::new().with_kernel(k).expect("kernel").gemm(&a, &b);
        assert!(
            matches!(
                err,
                Err(Error::KTooLarge {
                    k: 131_072,
                    max: MAX_K
                })
            ),
            "{err:?}"
        );
    }
}

#[test]
fn mismatched_inner_dimensions_and_zero_threads_are_errors() {
    let a = MatrixI8::zeros(2, 3).expect("a");
    let b = MatrixI8::zeros(4, 2).expect("b");
    assert!(matches!(
        CpuGemm::new().gemm(&a, &b),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(CpuGemm::new().with_threads(0).is_err());
    assert!(MatrixI8::new(2, 2, vec![0; 3]).is_err());
    assert!(MatrixI8::zeros(0, 2).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_cpu_path_matches_the_i64_reference_on_random_shapes(
        m in 1usize..40, k in 1usize..300, n in 1usize..90, seed in any::<u64>()
    ) {
        assert_matches_reference(&random_matrix(m, k, seed), &random_matrix(k, n, seed ^ 0xff));
    }

    #[test]
    #[ignore = "needs a CUDA device (scripts/gpu/check.sh runs it)"]
    fn the_cuda_backend_equals_the_cpu_backend_bit_for_bit(
        m in 1usize..130, k in 1usize..300, n in 1usize..130, seed in any::<u64>()
    ) {
        let engine = cuda_engine();
        let a = random_matrix(m, k, seed);
        let b = random_matrix(k, n, seed ^ 1);
        let cpu = CpuGemm::new().gemm(&a, &b).expect("cpu");
        prop_assert_eq!(engine.gemm(&a, &b).expect("cuda cublas"), cpu.clone());
        let dev = engine.cuda_gemm().expect("cuda engine has a device");
        // Outputs up to SMALL_KERNEL_MAX_OUTPUTS go to the warp-per-element kernel, the
        // rest to the tiled one; the shapes above reach both.
        prop_assert_eq!(dev.gemm_dp4a(&a, &b).expect("cuda dp4a"), cpu);
    }
}

/// One CUDA engine for all GPU tests of this binary (context creation and the NVRTC
/// compile happen once). The GPU tests are `#[ignore]`d, so a plain run (and nextest's
/// output) shows them as skipped, never as passed; run on purpose (`--include-ignored`, as
/// `scripts/gpu/check.sh` does), they fail when CUDA does not start.
fn cuda_engine() -> &'static Engine {
    static ENGINE: std::sync::OnceLock<Result<Engine, String>> = std::sync::OnceLock::new();
    match ENGINE.get_or_init(|| Engine::new(Backend::Cuda).map_err(|e| e.to_string())) {
        Ok(e) => e,
        Err(reason) => panic!("CUDA did not start: {reason}"),
    }
}

/// The first thing `scripts/gpu/check.sh` runs: CUDA starts (driver, a device, the NVRTC
/// compile of the kernels), or the check fails with the reason.
#[test]
#[ignore = "needs a CUDA device (scripts/gpu/check.sh runs it)"]
fn a_cuda_device_starts() {
    eprintln!("CUDA tests run on {}", cuda_engine().describe());
}

#[test]
#[ignore = "needs a CUDA device (scripts/gpu/check.sh runs it)"]
fn the_cuda_paths_are_exact_at_the_largest_k_with_extreme_values() {
    let engine = cuda_engine();
    let dev = engine.cuda_gemm().expect("cuda engine has a device");
    // Every product is (−128)·(−128) = 16384, so each element is 16384·MAX_K, the
    // largest sum that fits in i32; one shape per dp4a kernel.
    for (m, n) in [(2, 3), (17, 65)] {
        let a = MatrixI8::from_fn(m, MAX_K, |_, _| -128).expect("a");
        let b = MatrixI8::from_fn(MAX_K, n, |_, _| -128).expect("b");
        let want = vec![16384 * MAX_K as i32; m * n];
        assert_eq!(engine.gemm(&a, &b).expect("cublas").data(), &want[..]);
        assert_eq!(dev.gemm_dp4a(&a, &b).expect("dp4a").data(), &want[..]);
    }
}

#[test]
fn the_auto_backend_falls_back_to_the_cpu_with_a_reason() {
    let e = Engine::new(Backend::Auto).expect("auto never fails");
    match cuda::probe() {
        Ok(n) => {
            assert!(e.is_cuda(), "{n} CUDA devices but auto chose the CPU");
        }
        Err(reason) => {
            eprintln!("no CUDA here: {reason}");
            assert!(!e.is_cuda());
            assert!(e.cuda_unavailable_reason().is_some_and(|r| !r.is_empty()));
            assert!(Engine::new(Backend::Cuda).is_err());
        }
    }
    let a = random_matrix(5, 9, 3);
    let b = random_matrix(9, 4, 4);
    assert_eq!(
        e.gemm(&a, &b).expect("gemm"),
        CpuGemm::new().gemm(&a, &b).expect("cpu")
    );
}
