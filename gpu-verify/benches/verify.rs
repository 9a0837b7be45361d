//! Verification cost over computation cost for a 2048³ job with the default T and s.
//!
//! "Computation" is the provider's product `C = A·B` on one CPU thread with the fastest
//! kernel; "verification" is `verify_reveal` of an honest reveal on one thread (proof
//! checks, which hash every revealed row and column, plus tile recomputation). Both are
//! single-threaded, so the ratio compares core time with core time. The ratio printed at
//! the end (line starting with `RATIO`) uses medians of repeated runs, taken in interleaved
//! rounds (one product, then a batch of verifications) so that both see the same load
//! from other processes; the line ends with the load average read at the start and end.
//! Environment: `VERIFY_N` (size), `VERIFY_T`, `VERIFY_S` (override the defaults),
//! `VERIFY_RATIO_ONLY=1` (skip the criterion measurements, print the ratio only).

use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use lode_gpu_verify::challenge::challenge_seed;
use lode_gpu_verify::commit::commit_c;
use lode_gpu_verify::verify::{verify_reveal, Prover, DEFAULT_SAMPLES, DEFAULT_TILE};
use lode_gpu_verify::CpuGemm;

mod common;
use common::{median, random, thread_cpu_time};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn bench_verify(c: &mut Criterion) {
    let n = env("VERIFY_N", 2048);
    let (tile, samples) = (
        env("VERIFY_T", DEFAULT_TILE),
        env("VERIFY_S", DEFAULT_SAMPLES),
    );
    let (a, b) = (random(n, n, 1), random(n, n, 2));
    let gemm = CpuGemm::new().with_threads(1).expect("threads");
    let prover =
        Prover::new(a.clone(), &b, gemm.gemm(&a, &b).expect("gemm"), tile).expect("prover");
    let job = prover.job([1; 32], samples);
    let seed = challenge_seed(&[2; 32], &job.id);
    let reveal = prover
        .reveal(&job.challenge(&seed).expect("challenge"))
        .expect("reveal");
    assert_eq!(verify_reveal(&job, &seed, &reveal), Ok(()));

    if std::env::var_os("VERIFY_RATIO_ONLY").is_none() {
        let mut group = c.benchmark_group(format!("verify_{n}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(3));
        group.bench_function("compute_c_1thread", |bch| {
            bch.iter(|| gemm.gemm(&a, &b).expect("gemm"))
        });
        group.bench_function(format!("verify_reveal_T{tile}_s{samples}"), |bch| {
            bch.iter(|| verify_reveal(&job, &seed, &reveal))
        });
        group.finish();
    }

    let load_before = load_average();
    let (mut computes, mut verifies) = (Vec::new(), Vec::new());
    let (mut compute_cpu, mut verify_cpu) = (Vec::new(), Vec::new());
    const BATCH: u32 = 41;
    for _ in 0..9 {
        let (t, c) = (Instant::now(), thread_cpu_time());
        std::hint::black_box(gemm.gemm(&a, &b).expect("gemm"));
        computes.push(t.elapsed());
        compute_cpu.extend(c.zip(thread_cpu_time()).map(|(c0, c1)| c1 - c0));
        let c = thread_cpu_time();
        for _ in 0..BATCH {
            let t = Instant::now();
            let v = verify_reveal(&job, &seed, std::hint::black_box(&reveal));
            let e = t.elapsed();
            assert!(v.is_ok());
            verifies.push(e);
        }
        verify_cpu.extend(c.zip(thread_cpu_time()).map(|(c0, c1)| (c1 - c0) / BATCH));
    }
    let (compute, verify) = (median(computes), median(verifies));
    let cpu = if compute_cpu.is_empty() {
        "thread CPU time not available".to_owned()
    } else {
        let (cc, vc) = (median(compute_cpu), median(verify_cpu));
        format!(
            "thread CPU time: compute {:.3} ms, verify {:.1} us, 1/{:.0}",
            cc.as_secs_f64() * 1e3,
            vc.as_secs_f64() * 1e6,
            cc.as_secs_f64() / vc.as_secs_f64()
        )
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let commit = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                pool.install(|| {
                    std::hint::black_box(commit_c(prover.output(), tile).expect("commit"))
                });
                t.elapsed()
            })
            .collect(),
    );
    println!(
        "RATIO n={n} T={tile} s={samples}: compute (1 thread, {}) median {:.3} ms; \
         verify median {:.1} us; verify/compute = {:.6} (1/{:.0}); \
         {cpu}; provider's commit of C (1 thread) {:.3} ms; load average {} -> {}",
        gemm.kernel().name(),
        compute.as_secs_f64() * 1e3,
        verify.as_secs_f64() * 1e6,
        verify.as_secs_f64() / compute.as_secs_f64(),
        compute.as_secs_f64() / verify.as_secs_f64(),
        commit.as_secs_f64() * 1e3,
        load_before,
        load_average(),
    );
}

criterion_group!(benches, bench_verify);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
