//! GPU int8 GEMM and batch-verification throughput: our paths next to raw cuBLAS `gemm_ex`.
//!
//! Run through `scripts/gpu/bench.sh` on a machine with an NVIDIA GPU. Without a GPU it
//! prints why and exits successfully.
//!
//! For each n (default 4096 and 8192, or the sizes given as arguments) it prints the
//! device-only TOPS of raw cuBLAS `gemm_ex` in both operand forms (B row-major "NN", which
//! `Engine::gemm` uses, and Bᵀ "TN"), of our NVRTC dp4a kernel, and the end-to-end time of
//! `Engine::gemm` (host matrices in, host matrix out: padding, transfers, cuBLAS). Device
//! times are CUDA-event medians over repeated runs after a warm-up, rotating over three
//! input sets so that repeated runs do not just measure the L2 cache. Every path's output is
//! compared bit for bit with the others and, on sampled rows, with an exact CPU reference.
//!
//! Then `BatchVerifier` throughput on the CPU (all cores) against CUDA, on a batch of honest
//! reveals of one 2048³ job, for the default tile size and sample count and a larger one.

use std::time::{Duration, Instant};

use cudarc::driver::{CudaSlice, CudaStream, DriverError};
use lode_gpu_verify::backend::{Backend, Engine};
use lode_gpu_verify::challenge::challenge_seed;
use lode_gpu_verify::cuda::{probe, BLayout, CudaGemm};
use lode_gpu_verify::gemm::reference_i64;
use lode_gpu_verify::verify::{BatchItem, BatchVerifier, Prover, DEFAULT_SAMPLES, DEFAULT_TILE};
use lode_gpu_verify::{Error, MatrixI8, Result};

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

fn cuda(e: DriverError) -> Error {
    Error::Cuda(e.to_string())
}

fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

/// Median device time in seconds of `f(i)` over `iters` runs, each between two events.
fn time_device(
    s: &CudaStream,
    iters: usize,
    mut f: impl FnMut(usize) -> Result<()>,
) -> Result<f64> {
    let timing = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
    for i in 0..3 {
        f(i)?; // warm-up: module load, cuBLAS heuristics
    }
    let mut times = Vec::with_capacity(iters);
    for i in 0..iters {
        let start = s.record_event(timing).map_err(cuda)?;
        f(i)?;
        let end = s.record_event(timing).map_err(cuda)?;
        end.synchronize().map_err(cuda)?;
        times.push(f64::from(start.elapsed_ms(&end).map_err(cuda)?) / 1e3);
    }
    Ok(median(times))
}

struct Inputs {
    a: CudaSlice<i8>,
    b: CudaSlice<i8>,
    bt: CudaSlice<i8>,
}

fn gemm_sizes(engine: &Engine, g: &CudaGemm, n: usize) -> Result<()> {
    let s = g.stream();
    let host: Vec<(MatrixI8, MatrixI8)> = (0..3)
        .map(|i| (random(n, n, 2 * i + 1), random(n, n, 2 * i + 2)))
        .collect();
    let dev = host
        .iter()
        .map(|(a, b)| {
            Ok(Inputs {
                a: s.clone_htod(a.data()).map_err(cuda)?,
                b: s.clone_htod(b.data()).map_err(cuda)?,
                bt: s.clone_htod(b.transpose().data()).map_err(cuda)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut outs: Vec<CudaSlice<i32>> = (0..3)
        .map(|_| s.alloc_zeros::<i32>(n * n).map_err(cuda))
        .collect::<Result<_>>()?;
    let ops = 2.0 * (n as f64).powi(3);
    let tops = |t: f64| ops / t / 1e12;

    let t_nn = time_device(s, 30, |i| {
        let d = &dev[i % 3];
        g.gemm_ex_device(&d.a, &d.b, BLayout::RowMajor, &mut outs[i % 3], n, n, n)
    })?;
    let nn = s.clone_dtoh(&outs[0]).map_err(cuda)?;
    let t_tn = time_device(s, 30, |i| {
        let d = &dev[i % 3];
        g.gemm_ex_device(&d.a, &d.bt, BLayout::Transposed, &mut outs[i % 3], n, n, n)
    })?;
    let tn = s.clone_dtoh(&outs[0]).map_err(cuda)?;
    let t_dp4a = time_device(s, 5, |i| {
        let d = &dev[i % 3];
        g.dp4a_device(&d.a, &d.bt, &mut outs[i % 3], n, n, n, 1)
    })?;
    let dp4a = s.clone_dtoh(&outs[0]).map_err(cuda)?;
    assert_eq!(nn, tn, "cuBLAS NN and TN disagree");
    assert_eq!(nn, dp4a, "cuBLAS and the dp4a kernel disagree");

    let (a, b) = &host[0];
    let mut e2e = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let c = engine.gemm(a, b)?;
        e2e.push(t.elapsed().as_secs_f64());
        assert_eq!(c.data(), &nn[..], "Engine::gemm and raw cuBLAS disagree");
    }
    let t_e2e = median(e2e);
    // Exact CPU reference on a few rows.
    let rows = MatrixI8::new(4, n, a.data()[..4 * n].to_vec())?;
    let want = reference_i64(&rows, b)?;
    assert!(
        want.iter().zip(&nn).all(|(&w, &g)| w == i64::from(g)),
        "GPU differs from the CPU reference"
    );
    // Bytes that must cross PCIe for the end-to-end call: A and B up, C down.
    let bytes = (2 * n * n + 4 * n * n) as f64;
    println!(
        "n={n}: cuBLAS NN {:.0} TOPS ({:.3} ms) | cuBLAS TN {:.0} TOPS ({:.3} ms) | \
         dp4a kernel {:.1} TOPS ({:.3} ms) | Engine::gemm end-to-end {:.1} TOPS ({:.1} ms, \
         {:.1} GB/s of operands and result) | all outputs identical",
        tops(t_nn),
        t_nn * 1e3,
        tops(t_tn),
        t_tn * 1e3,
        tops(t_dp4a),
        t_dp4a * 1e3,
        tops(t_e2e),
        t_e2e * 1e3,
        bytes / t_e2e / 1e9,
    );
    Ok(())
}

/// Median wall time of `BatchVerifier::verify` on `items`, checking every verdict.
fn time_batch(v: &BatchVerifier, items: &[BatchItem<'_>]) -> Result<Duration> {
    let mut times = Vec::new();
    for round in 0..6 {
        let t = Instant::now();
        let verdicts = v.verify(items)?;
        if round > 0 {
            times.push(t.elapsed());
        }
        assert!(verdicts.iter().all(Result::is_ok), "honest reveal rejected");
    }
    Ok(median(times))
}

fn batch_verify(engine: Engine, tile: usize, samples: usize, jobs: usize) -> Result<()> {
    let n = 2048;
    let (a, b) = (random(n, n, 11), random(n, n, 12));
    let prover = Prover::compute(&engine, a, &b, tile)?;
    let job = prover.job([7; 32], samples);
    let seed = challenge_seed(&[9; 32], &job.id);
    let reveal = prover.reveal(&job.challenge(&seed)?)?;
    let items = vec![
        BatchItem {
            job: &job,
            seed: &seed,
            reveal: &reveal,
        };
        jobs
    ];
    let cpu = BatchVerifier::new(Engine::new(Backend::Cpu)?);
    let gpu = BatchVerifier::new(engine);
    let t_cpu = time_batch(&cpu, &items)?;
    let t_gpu = time_batch(&gpu, &items)?;
    let per_s = |t: Duration| jobs as f64 / t.as_secs_f64();
    println!(
        "BatchVerifier, {jobs} reveals of a {n}³ job, T={tile} s={samples}: CPU ({} threads) \
         {:.0} reveals/s ({:.1} ms) | CUDA {:.0} reveals/s ({:.1} ms) | CUDA/CPU {:.2}",
        rayon::current_num_threads(),
        per_s(t_cpu),
        t_cpu.as_secs_f64() * 1e3,
        per_s(t_gpu),
        t_gpu.as_secs_f64() * 1e3,
        t_cpu.as_secs_f64() / t_gpu.as_secs_f64(),
    );
    Ok(())
}

/// Host↔device copy bandwidth (GB/s) for 256 MiB, from pageable and from pinned memory:
/// the floor that `Engine::gemm`'s end-to-end time is held against.
#[allow(unsafe_code)] // cudarc's pinned host allocation is an unsafe fn.
fn bandwidth(g: &CudaGemm) -> Result<()> {
    let s = g.stream();
    let len = 256 << 20;
    let pageable = vec![1i8; len];
    // SAFETY: i8 has no invalid bit patterns; the buffer is written before it is read.
    let mut pinned = unsafe { s.context().alloc_pinned_with_flags::<i8>(len, 0) }.map_err(cuda)?;
    pinned.as_mut_slice().map_err(cuda)?.fill(1);
    let mut dev = s.alloc_zeros::<i8>(len).map_err(cuda)?;
    let gbps = |t: f64| len as f64 / t / 1e9;
    let mut row = Vec::new();
    for (name, pinned_src) in [("pageable", false), ("pinned", true)] {
        let up = time_device(s, 5, |_| {
            if pinned_src {
                s.memcpy_htod(&pinned, &mut dev).map_err(cuda)
            } else {
                s.memcpy_htod(&pageable, &mut dev).map_err(cuda)
            }
        })?;
        let mut host = vec![0i8; len];
        let down = time_device(s, 5, |_| {
            if pinned_src {
                s.memcpy_dtoh(&dev, &mut pinned).map_err(cuda)
            } else {
                s.memcpy_dtoh(&dev, &mut host).map_err(cuda)
            }
        })?;
        row.push(format!(
            "{name}: up {:.1} GB/s, down {:.1} GB/s",
            gbps(up),
            gbps(down)
        ));
    }
    println!("PCIe copies of 256 MiB: {}", row.join(" | "));
    Ok(())
}

fn main() -> Result<()> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![4096, 8192]
    } else {
        sizes
    };
    if let Err(reason) = probe() {
        println!("no usable GPU: {reason}; nothing to benchmark");
        return Ok(());
    }
    let engine = Engine::new(Backend::Cuda)?;
    let g = engine
        .cuda_gemm()
        .ok_or_else(|| Error::CudaUnavailable("no device".into()))?;
    println!("device: {}", g.device_name());
    bandwidth(g)?;
    for n in sizes {
        gemm_sizes(&engine, g, n)?;
    }
    for (tile, samples) in [(DEFAULT_TILE, DEFAULT_SAMPLES), (32, 8)] {
        batch_verify(Engine::new(Backend::Cuda)?, tile, samples, 4096)?;
    }
    Ok(())
}
