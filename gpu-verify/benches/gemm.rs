//! CPU int8 GEMM throughput (GOPS = 2·m·n·k / time) at n = 512, 1024, 2048, per kernel
//! and thread count. Compare with `scripts/bench/onnx_matmulinteger.py` run in the same
//! session (see README.md).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lode_gpu_verify::gemm::{CpuGemm, CpuKernel};

mod common;
use common::random;

fn bench_gemm(c: &mut Criterion) {
    let sizes: Vec<usize> = std::env::var("GEMM_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![512, 1024, 2048]);
    let kernels: Vec<CpuKernel> = match std::env::var("GEMM_KERNELS") {
        Ok(list) => CpuKernel::supported()
            .into_iter()
            .filter(|k| list.split(',').any(|n| n.trim() == k.name()))
            .collect(),
        Err(_) => vec![CpuKernel::best()],
    };
    let mut group = c.benchmark_group("gemm_i8");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500));
    for &n in &sizes {
        let a = random(n, n, 1);
        let b = random(n, n, 2);
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        group.measurement_time(Duration::from_secs(if n >= 2048 { 4 } else { 2 }));
        for &kern in &kernels {
            for threads in [1usize, 2] {
                let g = CpuGemm::new()
                    .with_kernel(kern)
                    .and_then(|g| g.with_threads(threads))
                    .expect("kernel");
                let id = BenchmarkId::new(format!("{}/t{threads}", kern.name()), n);
                group.bench_with_input(id, &n, |bch, _| bch.iter(|| g.gemm(&a, &b).expect("gemm")));
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_gemm);
criterion_main!(benches);
