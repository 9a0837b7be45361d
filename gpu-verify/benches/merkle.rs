//! Merkle commitment throughput (MB/s of committed data) next to raw SHA-256 of the same
//! bytes in one stream. Commitments run on a rayon pool of 1 and of 2 threads.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lode_gpu_verify::commit::{commit_a, commit_c, encode_tile};
use lode_gpu_verify::{MatrixI32, MatrixI8};
use sha2::{Digest, Sha256};

fn bench_merkle(c: &mut Criterion) {
    let n = 2048;
    let mut s = 1u64;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s
    };
    let cm = MatrixI32::from_fn(n, n, |_, _| (next() >> 32) as i32).expect("c");
    let am = MatrixI8::from_fn(n, n, |_, _| (next() >> 56) as i8).expect("a");
    let mut c_bytes = Vec::new();
    encode_tile(cm.data(), &mut c_bytes);
    let a_bytes: Vec<u8> = am.data().iter().map(|&v| v as u8).collect();

    let mut group = c.benchmark_group("merkle");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Bytes(c_bytes.len() as u64));
    group.bench_function("sha256_raw/C_16MiB", |b| {
        b.iter(|| Sha256::digest(&c_bytes))
    });
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        for t in [4usize, 16, 64] {
            group.bench_with_input(
                BenchmarkId::new(format!("commit_c_T{t}/C_16MiB"), threads),
                &t,
                |b, &t| b.iter(|| pool.install(|| commit_c(&cm, t).expect("commit"))),
            );
        }
    }
    group.throughput(Throughput::Bytes(a_bytes.len() as u64));
    group.bench_function("sha256_raw/A_4MiB", |b| b.iter(|| Sha256::digest(&a_bytes)));
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        group.bench_with_input(
            BenchmarkId::new("commit_a_rows/A_4MiB", threads),
            &threads,
            |b, _| b.iter(|| pool.install(|| commit_a(&am).expect("commit"))),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_merkle);
criterion_main!(benches);
