//! The single choice point for where products are computed: [`Backend`] → [`Engine`].
//!
//! `Auto` uses CUDA when [`crate::cuda::probe`] finds a usable device and otherwise the
//! CPU, recording why CUDA was not used. Because every path computes the same exact
//! integer function, the choice affects speed only, never results or verdicts.

use crate::cuda::CudaGemm;
use crate::error::{Error, Result};
use crate::gemm::{BView, CpuGemm, Layout};
use crate::matrix::{MatrixI32, MatrixI8};

/// Where to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// CUDA if available, else CPU.
    #[default]
    Auto,
    /// CPU only.
    Cpu,
    /// CUDA only; constructing the engine fails without a usable GPU.
    Cuda,
}

/// A resolved backend.
#[derive(Debug)]
pub struct Engine {
    cpu: CpuGemm,
    cuda: Option<CudaGemm>,
    cuda_unavailable: Option<String>,
}

/// One small product `rows (h×k, row-major) × cols (w columns of length k)` → h×w.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SmallProduct<'a> {
    pub rows: &'a [i8],
    pub cols: &'a [i8],
    pub h: usize,
    pub w: usize,
    pub k: usize,
}

impl Engine {
    /// Resolves `backend`; only `Backend::Cuda` can fail.
    pub fn new(backend: Backend) -> Result<Self> {
        let cpu = CpuGemm::new();
        match backend {
            Backend::Cpu => Ok(Self {
                cpu,
                cuda: None,
                cuda_unavailable: Some("CPU backend requested".into()),
            }),
            Backend::Cuda => Ok(Self {
                cpu,
                cuda: Some(CudaGemm::new(0)?),
                cuda_unavailable: None,
            }),
            Backend::Auto => match CudaGemm::new(0) {
                Ok(g) => Ok(Self {
                    cpu,
                    cuda: Some(g),
                    cuda_unavailable: None,
                }),
                Err(e) => Ok(Self {
                    cpu,
                    cuda: None,
                    cuda_unavailable: Some(e.to_string()),
                }),
            },
        }
    }

    /// A CPU engine with a specific configuration (kernel, threads).
    pub fn cpu(cpu: CpuGemm) -> Self {
        Self {
            cpu,
            cuda: None,
            cuda_unavailable: Some("CPU backend requested".into()),
        }
    }

    /// Whether products run on CUDA.
    pub fn is_cuda(&self) -> bool {
        self.cuda.is_some()
    }

    /// Why CUDA is not in use (`None` when it is).
    pub fn cuda_unavailable_reason(&self) -> Option<&str> {
        self.cuda_unavailable.as_deref()
    }

    /// The CPU configuration used for CPU work.
    pub fn cpu_gemm(&self) -> &CpuGemm {
        &self.cpu
    }

    /// The CUDA device, when in use.
    pub fn cuda_gemm(&self) -> Option<&CudaGemm> {
        self.cuda.as_ref()
    }

    /// Human-readable description.
    pub fn describe(&self) -> String {
        match (&self.cuda, &self.cuda_unavailable) {
            (Some(g), _) => format!("cuda: {}", g.device_name()),
            (None, reason) => format!(
                "cpu: {} x{} ({})",
                self.cpu.kernel().name(),
                self.cpu.threads(),
                reason.as_deref().unwrap_or("")
            ),
        }
    }

    /// `C = A × B` on the selected backend.
    pub fn gemm(&self, a: &MatrixI8, b: &MatrixI8) -> Result<MatrixI32> {
        match &self.cuda {
            Some(g) => g.gemm(a, b),
            None => self.cpu.gemm(a, b),
        }
    }

    /// Computes many small products; on CUDA, products of equal shape go to the GPU in
    /// one batched launch each. Results are in input order.
    pub(crate) fn small_products(&self, items: &[SmallProduct<'_>]) -> Result<Vec<Vec<i32>>> {
        match &self.cuda {
            Some(g) => cuda_small_products(g, items),
            None => {
                use rayon::prelude::*;
                let single = self.cpu.with_threads(1)?;
                items
                    .par_iter()
                    .map(|p| cpu_small_product(&single, p))
                    .collect()
            }
        }
    }
}

/// Tiles up to this many elements are recomputed with dot products instead of the
/// blocked kernel, whose packing costs more than the arithmetic at this size.
const SMALL_TILE: usize = 16 * 16;

pub(crate) fn cpu_small_product(cpu: &CpuGemm, p: &SmallProduct<'_>) -> Result<Vec<i32>> {
    let mut out = vec![0i32; p.h * p.w];
    if p.h * p.w <= SMALL_TILE {
        crate::gemm::small_gemm_colmajor(p.rows, p.cols, p.h, p.w, p.k, &mut out)?;
        return Ok(out);
    }
    let b = BView {
        data: p.cols,
        k: p.k,
        n: p.w,
        layout: Layout::ColMajor,
    };
    cpu.gemm_raw(p.rows, p.h, b, &mut out)?;
    Ok(out)
}

fn cuda_small_products(g: &CudaGemm, items: &[SmallProduct<'_>]) -> Result<Vec<Vec<i32>>> {
    use std::collections::BTreeMap;
    // Group by shape (BTreeMap: deterministic order); each group is one batched launch.
    let mut groups: BTreeMap<(usize, usize, usize), Vec<usize>> = BTreeMap::new();
    for (i, p) in items.iter().enumerate() {
        if p.rows.len() != p.h * p.k || p.cols.len() != p.w * p.k {
            return Err(Error::InvalidParameter(
                "small product operand lengths".into(),
            ));
        }
        groups.entry((p.h, p.w, p.k)).or_default().push(i);
    }
    let mut out = vec![Vec::new(); items.len()];
    for ((h, w, k), idx) in groups {
        let kp = k.next_multiple_of(4);
        let mut a = vec![0i8; idx.len() * h * kp];
        let mut bt = vec![0i8; idx.len() * w * kp];
        for (slot, &i) in idx.iter().enumerate() {
            let p = &items[i];
            for r in 0..h {
                a[(slot * h + r) * kp..(slot * h + r) * kp + k]
                    .copy_from_slice(&p.rows[r * k..(r + 1) * k]);
            }
            for c in 0..w {
                bt[(slot * w + c) * kp..(slot * w + c) * kp + k]
                    .copy_from_slice(&p.cols[c * k..(c + 1) * k]);
            }
        }
        let res = g.batched(&a, &bt, h, w, kp, idx.len())?;
        for (slot, &i) in idx.iter().enumerate() {
            out[i] = res[slot * h * w..(slot + 1) * h * w].to_vec();
        }
    }
    Ok(out)
}
