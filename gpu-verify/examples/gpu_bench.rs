//! GPU int8 GEMM throughput: our paths next to raw cuBLAS `gemm_ex`.
//!
//! Run through `scripts/gpu/bench.sh` on a machine with an NVIDIA GPU. Prints, for each
//! n (default 4096 and 8192, or the sizes given as arguments), device-only TOPS of
//! raw cuBLAS `gemm_ex` (int8 in, int32 compute/out), of our NVRTC dp4a kernel, and the
//! end-to-end time of `Engine::gemm` (padding + transfers + cuBLAS). It checks that all
//! paths agree bit for bit on the full output and with the CPU on sampled rows. Without a
//! GPU it prints why and exits successfully.

use std::time::Instant;

use lode_gpu_verify::backend::{Backend, Engine};
use lode_gpu_verify::cuda::{probe, CudaGemm};
use lode_gpu_verify::gemm::reference_i64;
use lode_gpu_verify::{MatrixI8, Result};

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

fn time_device(g: &CudaGemm, iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?; // warm-up (and cuBLAS heuristics)
    g.stream()
        .synchronize()
        .map_err(|e| lode_gpu_verify::Error::Cuda(e.to_string()))?;
    let t = Instant::now();
    for _ in 0..iters {
        f()?;
    }
    g.stream()
        .synchronize()
        .map_err(|e| lode_gpu_verify::Error::Cuda(e.to_string()))?;
    Ok(t.elapsed().as_secs_f64() / iters as f64)
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
        .ok_or_else(|| lode_gpu_verify::Error::CudaUnavailable("no device".into()))?;
    println!("device: {}", g.device_name());
    for n in sizes {
        let (a, b) = (random(n, n, 1), random(n, n, 2));
        let bt = b.transpose();
        let s = g.stream();
        let cuda = |e: cudarc::driver::DriverError| lode_gpu_verify::Error::Cuda(e.to_string());
        let da = s.clone_htod(a.data()).map_err(cuda)?;
        let db = s.clone_htod(bt.data()).map_err(cuda)?;
        let mut dc1 = s.alloc_zeros::<i32>(n * n).map_err(cuda)?;
        let mut dc2 = s.alloc_zeros::<i32>(n * n).map_err(cuda)?;
        let ops = 2.0 * (n as f64).powi(3);
        let t_blas = time_device(g, 20, || g.gemm_ex_device(&da, &db, &mut dc1, n, n, n))?;
        let t_dp4a = time_device(g, 5, || g.dp4a_device(&da, &db, &mut dc2, n, n, n, 1))?;
        let c1 = s.clone_dtoh(&dc1).map_err(cuda)?;
        let c2 = s.clone_dtoh(&dc2).map_err(cuda)?;
        let t0 = Instant::now();
        let ce = engine.gemm(&a, &b)?;
        let t_engine = t0.elapsed().as_secs_f64();
        assert_eq!(c1, c2, "cuBLAS and dp4a disagree");
        assert_eq!(ce.data(), &c1[..], "engine and raw cuBLAS disagree");
        // Exact CPU reference on a few rows.
        let rows = MatrixI8::new(4, n, a.data()[..4 * n].to_vec())?;
        let want = reference_i64(&rows, &b)?;
        assert!(
            want.iter().zip(&c1).all(|(&w, &g)| w == i64::from(g)),
            "GPU differs from the CPU reference"
        );
        println!(
            "n={n}: cuBLAS gemm_ex {:.1} TOPS ({:.3} ms) | our dp4a kernel {:.1} TOPS ({:.3} ms) | \
             Engine::gemm end-to-end incl. transfers {:.1} TOPS ({:.3} ms) | outputs identical",
            ops / t_blas / 1e12,
            t_blas * 1e3,
            ops / t_dp4a / 1e12,
            t_dp4a * 1e3,
            ops / t_engine / 1e12,
            t_engine * 1e3
        );
    }
    Ok(())
}
