//! The consumer's full check of a job's C (`lode job result`: Freivalds over the whole product, 2 trials)
//! against computing the product itself, on this machine's CPU, both with all cores (wall time). A benchmark, ignored by default:
//! `cargo nextest run --workspace --run-ignored only -E 'test(freivalds_against_the_product)' --no-capture`
//! (`LODE_FREIVALDS_N=1024` for another size; the figure is 4096³).

use std::time::Instant;

use lode_gpu_verify::{freivalds, Backend, Engine, MatrixI8};

#[test]
#[ignore = "benchmark: prints figures"]
fn freivalds_against_the_product() {
    let n: usize = std::env::var("LODE_FREIVALDS_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 56) as u8 as i8
    };
    let a = MatrixI8::from_fn(n, n, |_, _| next()).expect("A");
    let b = MatrixI8::from_fn(n, n, |_, _| next()).expect("B");
    let engine = Engine::new(Backend::Cpu).expect("cpu");
    let t = Instant::now();
    let mut c = engine.gemm(&a, &b).expect("A·B");
    let gemm = t.elapsed();
    // The median of five checks (each a few tens of ms, so one preemption on a busy machine skews one run).
    let mut checks: Vec<_> = (0..5u8)
        .map(|s| {
            let t = Instant::now();
            let report = freivalds::check(&a, &b, &c, &[s; 32], freivalds::DEFAULT_TRIALS)
                .expect("freivalds");
            assert!(report.accepted());
            t.elapsed()
        })
        .collect();
    checks.sort();
    let check = checks[2];
    // The same check rejects a C with one wrong element (and so cannot pass by accident).
    c.data_mut()[n * n / 2 + 3] += 1;
    let t = Instant::now();
    let wrong = freivalds::find_wrong_element(&a, &b, &c, &[7; 32], freivalds::DEFAULT_TRIALS)
        .expect("find");
    let localize = t.elapsed();
    assert_eq!(wrong.map(|(r, col, _, _)| (r, col)), Some((n / 2, 3)));
    println!(
        "{n}³ on the CPU ({}): product {:.3} s; Freivalds, 2 trials (median of 5) {:.1} ms ({:.4} of the product, 1/{:.0}); \
         localizing one wrong element {:.1} ms",
        engine.describe(),
        gemm.as_secs_f64(),
        check.as_secs_f64() * 1e3,
        check.as_secs_f64() / gemm.as_secs_f64(),
        gemm.as_secs_f64() / check.as_secs_f64().max(1e-9),
        localize.as_secs_f64() * 1e3
    );
}
