//! The consumer's full check of C (Freivalds, `DEFAULT_TRIALS` trials, all cores) against
//! computing the product (`CpuGemm`, all cores, fastest kernel), and localizing one wrong
//! element. Sizes: `FREIVALDS_N` (comma-separated, default `1024,4096`); the product is
//! measured only up to `FREIVALDS_GEMM_MAX_N` (default 1024: a 4096³ product takes about
//! 13 s here, so its figure comes from the ignored `freivalds_against_the_product` test
//! of `lode-node`, or set `FREIVALDS_GEMM_MAX_N=4096`).
//!
//! Then `RATIO` lines in thread CPU time (see [`ratio`]), which a busy machine does not skew: the check
//! as a pass of its own, with `C·r` taken while C is converted, with every product taken on the way (while
//! A and B are checked against their roots, too), and that with `C·r` bounded by a pass of its own.
//!
//! `cargo bench -p lode-gpu-verify --bench freivalds`

use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion};
use lode_gpu_verify::commit::{commit_a, commit_a_with, commit_b, commit_b_with};
use lode_gpu_verify::{freivalds, CpuGemm};

mod common;
use common::{median, random, thread_cpu_time};

fn sizes() -> Vec<usize> {
    std::env::var("FREIVALDS_N")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1024, 4096])
}

fn gemm_max() -> usize {
    std::env::var("FREIVALDS_GEMM_MAX_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

const TRIALS: u32 = 2;

fn bench(c: &mut Criterion) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let gemm = CpuGemm::new().with_threads(threads).expect("threads");
    let mut g = c.benchmark_group("freivalds_vs_gemm");
    g.sample_size(10).warm_up_time(Duration::from_millis(500));
    for n in sizes() {
        let (a, b) = (random(n, n, 1), random(n, n, 2));
        let prod = gemm.gemm(&a, &b).expect("gemm");
        g.bench_with_input(BenchmarkId::new("freivalds", n), &n, |bench, _| {
            bench.iter(|| {
                let r = freivalds::check(&a, &b, &prod, &[7; 32], TRIALS).expect("check");
                assert!(r.accepted());
            })
        });
        let mut wrong = prod.clone();
        wrong.data_mut()[n * n / 2 + n / 3] ^= 1 << 20;
        g.bench_with_input(BenchmarkId::new("find_wrong_element", n), &n, |bench, _| {
            bench.iter(|| {
                let w =
                    freivalds::find_wrong_element(&a, &b, &wrong, &[7; 32], TRIALS).expect("find");
                assert_eq!(w.map(|(r, c, _, _)| (r, c)), Some((n / 2, n / 3)));
            })
        });
        if n <= gemm_max() {
            g.bench_with_input(BenchmarkId::new("gemm", n), &n, |bench, _| {
                bench.iter(|| gemm.gemm(&a, &b).expect("gemm"))
            });
        }
    }
    g.finish();
}

/// `RATIO` line: one thread each (a one-thread rayon pool for the check, `with_threads(1)`
/// for the product), thread CPU time, medians of `FREIVALDS_RATIO_ROUNDS` (default 3)
/// products and 5 checks per round, at `FREIVALDS_RATIO_N` (default 4096; 0 skips it).
fn ratio() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (n, rounds) = (
        env("FREIVALDS_RATIO_N", 4096),
        env("FREIVALDS_RATIO_ROUNDS", 3),
    );
    if n == 0 {
        return;
    }
    let (a, b) = (random(n, n, 1), random(n, n, 2));
    let gemm = CpuGemm::new().with_threads(1).expect("threads");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let (mut prods, mut checks) = (Vec::new(), Vec::new());
    let (mut plain, mut with, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    let (mut roots, mut roots_with, mut compare) = (Vec::new(), Vec::new(), Vec::new());
    let mut c_rows = Vec::new();
    // Wall time inside the products' own calls (`p.add`, the commitments' hooks): what they add to
    // the passes that call them, measured without the difference of two passes' medians.
    let (mut cr_calls, mut input_calls) = (Vec::new(), Vec::new());
    let cpu = |f: &mut (dyn FnMut() + Send)| {
        let c0 = pool.install(thread_cpu_time);
        pool.install(&mut *f);
        c0.zip(pool.install(thread_cpu_time)).map(|(x, y)| y - x)
    };
    for _ in 0..rounds {
        let c0 = thread_cpu_time();
        let prod = gemm.gemm(&a, &b).expect("gemm");
        prods.extend(c0.zip(thread_cpu_time()).map(|(x, y)| y - x));
        let c = &prod;
        // C as `lode job result` receives it: tiles of TILE, converted to rows (`c_from_bytes`).
        let blob = tiles(c, TILE);
        for _ in 0..5 {
            checks.extend(cpu(&mut || {
                let r = freivalds::check(&a, &b, c, &[7; 32], TRIALS).expect("check");
                assert!(r.accepted());
            }));
            // The consumer's path: C·r taken while each band of rows is converted, then A·(B·r).
            plain.extend(cpu(&mut || {
                assert_eq!(&detile(&blob, n, n, TILE, |_, _| {}), c.data());
            }));
            let mut p = freivalds::CProducts::new(n, n, &[7; 32], TRIALS).expect("products");
            let mut inside = Duration::ZERO;
            with.extend(cpu(&mut || {
                let back = detile(&blob, n, n, TILE, |row0, rows| {
                    let t = Instant::now();
                    p.add_rows(row0, rows).expect("add");
                    inside += t.elapsed();
                });
                assert_eq!(&back, c.data());
            }));
            cr_calls.push(inside);
            rest.extend(cpu(&mut || {
                let r = freivalds::check_products(&a, &b, &p).expect("check");
                assert!(r.accepted());
            }));
            // `lode job result` as it is: A and B checked against the job's roots, with B·r and A·(B·r)
            // taken from each band of rows as it is read, then the comparison.
            let want = (
                commit_a(&a).expect("A").root(),
                commit_b(&b).expect("B").root(),
            );
            roots.extend(cpu(&mut || {
                let got = (
                    commit_a(&a).expect("A").root(),
                    commit_b(&b).expect("B").root(),
                );
                assert_eq!(got, want);
            }));
            let mut inputs = freivalds::InputProducts::new(n, n, n, &[7; 32], TRIALS).expect("new");
            let mut inside = Duration::ZERO;
            roots_with.extend(cpu(&mut || {
                let mut timed = |f: &mut dyn FnMut() -> lode_gpu_verify::Result<()>| {
                    let t = Instant::now();
                    let r = f();
                    inside += t.elapsed();
                    r
                };
                let rb = commit_b_with(&b, |r0, rows| timed(&mut || inputs.add_b_rows(r0, rows)))
                    .expect("B");
                let ra = commit_a_with(&a, |r0, rows| timed(&mut || inputs.add_a_rows(r0, rows)))
                    .expect("A");
                assert_eq!((ra.root(), rb.root()), want);
            }));
            input_calls.push(inside);
            // C·r over C's rows as a pass of its own, C read from memory: a bound on what it adds to the
            // conversion that is steadier than the difference of two conversions.
            c_rows.extend(cpu(&mut || {
                let mut q = freivalds::CProducts::new(n, n, &[7; 32], TRIALS).expect("products");
                for (i, row) in c.data().chunks_exact(n).enumerate() {
                    q.add(i, 0, row).expect("add");
                }
            }));
            compare.extend(cpu(&mut || {
                let r = freivalds::check_all(&inputs, &p).expect("check");
                assert!(r.accepted());
            }));
        }
    }
    if prods.is_empty() || plain.is_empty() {
        println!("RATIO n={n}: thread CPU time not available");
        return;
    }
    let (p, c) = (median(prods), median(checks));
    let (plain, with, rest) = (median(plain), median(with), median(rest));
    let extra = with.saturating_sub(plain);
    let total = extra + rest;
    let (roots, roots_with, compare) = (median(roots), median(roots_with), median(compare));
    let inputs_extra = roots_with.saturating_sub(roots);
    let fused = inputs_extra + extra + compare;
    let c_rows = median(c_rows);
    let bound = inputs_extra + c_rows + compare;
    let (cr_calls, input_calls) = (median(cr_calls), median(input_calls));
    let timed = input_calls + cr_calls + compare;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "RATIO n={n}: thread CPU time, one thread each: product ({}) {:.3} s, Freivalds ({TRIALS} trials) \
         {:.1} ms: 1/{:.0}",
        gemm.kernel().name(),
        p.as_secs_f64(),
        ms(c),
        p.as_secs_f64() / c.as_secs_f64()
    );
    println!(
        "RATIO n={n}, the consumer's path (C·r while C is converted from tiles of {TILE}): conversion \
         {:.1} ms alone, {:.1} ms with C·r (+{:.1} ms), then A·(B·r) {:.1} ms: Freivalds {:.1} ms, 1/{:.0} \
         of the product",
        ms(plain),
        ms(with),
        ms(extra),
        ms(rest),
        ms(total),
        p.as_secs_f64() / total.as_secs_f64()
    );
    println!(
        "RATIO n={n}, every product taken on the way (B·r and A·(B·r) while A and B are checked against \
         their roots, C·r while C is converted): roots {:.1} ms alone, {:.1} ms with B·r and A·(B·r) \
         (+{:.1} ms), C·r +{:.1} ms, comparison {:.2} ms: Freivalds {:.1} ms, 1/{:.0} of the product",
        ms(roots),
        ms(roots_with),
        ms(inputs_extra),
        ms(extra),
        ms(compare),
        ms(fused),
        p.as_secs_f64() / fused.as_secs_f64()
    );
    println!(
        "RATIO n={n}, every product taken on the way, timed inside its calls (wall): B·r and A·(B·r) \
         {:.1} ms, C·r {:.1} ms, comparison {:.2} ms: Freivalds {:.1} ms, 1/{:.0} of the product",
        ms(input_calls),
        ms(cr_calls),
        ms(compare),
        ms(timed),
        p.as_secs_f64() / timed.as_secs_f64()
    );
    println!(
        "RATIO n={n}, the same with C·r as a pass of its own over C in memory ({:.1} ms) instead of its \
         share of the conversion: Freivalds at most {:.1} ms, 1/{:.0} of the product",
        ms(c_rows),
        ms(bound),
        p.as_secs_f64() / bound.as_secs_f64()
    );
}

/// The tile side of the consumer's path (the chain's default `max_tile`).
const TILE: usize = 4;

/// C's blob bytes: `t`×`t` tiles in index order, each row-major, elements little-endian (as the node
/// stores C).
fn tiles(c: &lode_gpu_verify::MatrixI32, t: usize) -> Vec<u8> {
    let (m, n) = (c.rows(), c.cols());
    let mut out = Vec::with_capacity(m * n * 4);
    for r0 in (0..m).step_by(t) {
        for c0 in (0..n).step_by(t) {
            for row in r0..(r0 + t).min(m) {
                for x in &c.data()[row * n + c0..row * n + (c0 + t).min(n)] {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
    }
    out
}

/// Rows from tile bytes, as `lode_node::blobs::layout::c_from_bytes_with` does: `each(row0, rows)` on
/// every band of rows once its tiles are complete.
fn detile(
    bytes: &[u8],
    m: usize,
    n: usize,
    t: usize,
    mut each: impl FnMut(usize, &[i32]),
) -> Vec<i32> {
    let mut data = vec![0i32; m * n];
    let mut words = bytes
        .chunks_exact(4)
        .map(|w| i32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    for r0 in (0..m).step_by(t) {
        for c0 in (0..n).step_by(t) {
            for row in r0..(r0 + t).min(m) {
                for dst in &mut data[row * n + c0..row * n + (c0 + t).min(n)] {
                    *dst = words.next().expect("bytes");
                }
            }
        }
        let end = (r0 + t).min(m);
        each(r0, &data[r0 * n..end * n]);
    }
    data
}

criterion_group!(benches, bench);

fn main() {
    benches();
    ratio();
    Criterion::default().configure_from_args().final_summary();
}
