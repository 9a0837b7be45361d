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

/// One small product: `h` rows and `w` columns, each `k` long (borrowed from a reveal,
/// never concatenated on the CPU path) → h×w, row-major.
#[derive(Clone, Debug)]
pub(crate) struct SmallProduct<'a> {
    pub rows: Vec<&'a [i8]>,
    pub cols: Vec<&'a [i8]>,
    pub h: usize,
    pub w: usize,
    pub k: usize,
}

impl SmallProduct<'_> {
    /// Whether the shape fields agree with the operands.
    fn well_formed(&self) -> bool {
        self.rows.len() == self.h
            && self.cols.len() == self.w
            && self
                .rows
                .iter()
                .chain(&self.cols)
                .all(|v| v.len() == self.k)
    }
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
    if !p.well_formed() {
        return Err(Error::InvalidParameter(
            "small product operand lengths".into(),
        ));
    }
    let mut out = vec![0i32; p.h * p.w];
    if p.h * p.w <= SMALL_TILE {
        crate::gemm::small_gemm_slices(&p.rows, &p.cols, p.k, &mut out)?;
        return Ok(out);
    }
    let (rows, cols) = (p.rows.concat(), p.cols.concat());
    let b = BView {
        data: &cols,
        k: p.k,
        n: p.w,
        layout: Layout::ColMajor,
    };
    cpu.gemm_raw(&rows, p.h, b, &mut out)?;
    Ok(out)
}

/// Operand bytes of one batched launch of tile recomputations at most (one item more
/// when a single item is larger).
const BATCH_STAGING_BYTES: usize = 256 << 20;

fn cuda_small_products(g: &CudaGemm, items: &[SmallProduct<'_>]) -> Result<Vec<Vec<i32>>> {
    use std::collections::BTreeMap;
    // Group by shape (BTreeMap: deterministic order); each group is one batched launch.
    let mut groups: BTreeMap<(usize, usize, usize), Vec<usize>> = BTreeMap::new();
    for (i, p) in items.iter().enumerate() {
        if !p.well_formed() {
            return Err(Error::InvalidParameter(
                "small product operand lengths".into(),
            ));
        }
        groups.entry((p.h, p.w, p.k)).or_default().push(i);
    }
    let mut out = vec![Vec::new(); items.len()];
    for ((h, w, k), all) in groups {
        use rayon::prelude::*;
        let kp = k.next_multiple_of(4);
        // Launches are cut so that each one's operands fit the pinned staging memory.
        let per_item = (h + w) * kp;
        for idx in all.chunks((BATCH_STAGING_BYTES / per_item).max(1)) {
            // Operands are gathered straight into the pinned staging buffers, in parallel.
            let fill = |a: &mut [i8], bt: &mut [i8]| {
                a.par_chunks_mut(h * kp)
                    .zip(bt.par_chunks_mut(w * kp))
                    .zip(idx.par_iter())
                    .for_each(|((a, bt), &i)| {
                        let p = &items[i];
                        let rows = a.chunks_mut(kp).zip(&p.rows);
                        for (dst, src) in rows.chain(bt.chunks_mut(kp).zip(&p.cols)) {
                            crate::cuda::copy_padded(dst, src);
                        }
                    });
            };
            let results = g.batched_with(h, w, kp, idx.len(), fill, |c: &[i32]| {
                c.chunks(h * w).map(<[i32]>::to_vec).collect::<Vec<_>>()
            })?;
            for (&i, r) in idx.iter().zip(results) {
                out[i] = r;
            }
        }
    }
    Ok(out)
}
