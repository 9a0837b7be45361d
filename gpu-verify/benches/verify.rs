//! Verification cost over computation cost for a 2048³ job with the default T and s.
//!
//! "Computation" is the provider's product `C = A·B` on one CPU thread with the fastest
//! kernel; "verification" is `verify_reveal` of an honest reveal on one thread (proof
//! checks, which hash every revealed row and column, plus tile recomputation). The ratio
//! printed at the end uses medians of repeated runs. Set `VERIFY_N` to change the size.

use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use lode_gpu_verify::challenge::challenge_seed;
use lode_gpu_verify::commit::commit_c;
use lode_gpu_verify::verify::{verify_reveal, Prover, DEFAULT_SAMPLES, DEFAULT_TILE};
use lode_gpu_verify::{CpuGemm, MatrixI8};

fn random(rows: usize, cols: usize, seed: u64) -> MatrixI8 {
    let mut s = seed;
    MatrixI8::from_fn(rows, cols, |_, _| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 56) as i8
    })
    .expect("shape")
}

fn size() -> usize {
    std::env::var("VERIFY_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048)
}

struct Setup {
    a: MatrixI8,
    b: MatrixI8,
    prover: Prover,
    gemm: CpuGemm,
}

fn setup() -> Setup {
    let n = size();
    let (a, b) = (random(n, n, 1), random(n, n, 2));
    let gemm = CpuGemm::new().with_threads(1).expect("threads");
    let c = gemm.gemm(&a, &b).expect("gemm");
    let prover = Prover::new(a.clone(), &b, c, DEFAULT_TILE).expect("prover");
    Setup { a, b, prover, gemm }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn bench_verify(c: &mut Criterion) {
    let s = setup();
    let n = size();
    let job = s.prover.job([1; 32], DEFAULT_SAMPLES);
    let seed = challenge_seed(&[2; 32], &job.id);
    let reveal = s
        .prover
        .reveal(&job.challenge(&seed).expect("challenge"))
        .expect("reveal");
    assert_eq!(verify_reveal(&job, &seed, &reveal), Ok(()));

    let mut group = c.benchmark_group(format!("verify_{n}"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("compute_c_1thread", |b| {
        b.iter(|| s.gemm.gemm(&s.a, &s.b).expect("gemm"))
    });
    group.bench_function(
        format!("verify_reveal_T{DEFAULT_TILE}_s{DEFAULT_SAMPLES}"),
        |b| b.iter(|| verify_reveal(&job, &seed, &reveal)),
    );
    group.finish();

    // The ratio, from medians measured here so it is printed in one place.
    let compute = median(
        (0..7)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(s.gemm.gemm(&s.a, &s.b).expect("gemm"));
                t.elapsed()
            })
            .collect(),
    );
    let verify = median(
        (0..301)
            .map(|_| {
                let t = Instant::now();
                let v = verify_reveal(&job, &seed, std::hint::black_box(&reveal));
                let e = t.elapsed();
                assert!(v.is_ok());
                e
            })
            .collect(),
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let commit = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                pool.install(|| {
                    std::hint::black_box(commit_c(s.prover.output(), DEFAULT_TILE).expect("commit"))
                });
                t.elapsed()
            })
            .collect(),
    );
    println!(
        "RATIO n={n} T={DEFAULT_TILE} s={DEFAULT_SAMPLES}: compute (1 thread, {}) median {:.3} ms; \
         verify median {:.1} us; verify/compute = {:.6} (1/{:.0}); \
         provider's commit of C (1 thread) {:.3} ms; verify/(compute+commit) = {:.6}",
        s.gemm.kernel().name(),
        compute.as_secs_f64() * 1e3,
        verify.as_secs_f64() * 1e6,
        verify.as_secs_f64() / compute.as_secs_f64(),
        compute.as_secs_f64() / verify.as_secs_f64(),
        commit.as_secs_f64() * 1e3,
        verify.as_secs_f64() / (compute + commit).as_secs_f64(),
    );
}

criterion_group!(benches, bench_verify);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
