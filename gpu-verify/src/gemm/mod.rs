//! Exact int8 GEMM on the CPU: `C (m×n, i32) = A (m×k, i8) × B (k×n, i8)`.
//!
//! Four kernels, chosen at run time (fastest supported first):
//!
//! * [`CpuKernel::AmxInt8`]: Intel AMX `tdpbssd` on tile registers (s8×s8 → i32, exact), with
//!   its own packing and blocking in `amx.rs` because the tiles want whole 64-byte rows of A
//!   and B in quad-interleaved ("VNNI") order. Needs the OS to grant the tile state.
//!
//! The other three share one cache-blocked, multithreaded driver:
//!
//! * [`CpuKernel::Avx512Vnni`]: `vpdpbusd` (u8×s8, 64 MACs per instruction). B is shifted
//!   to unsigned (`B + 128`) while packing, and the exact correction `128 · rowsum(A)` is
//!   subtracted at the end. Accumulation wraps modulo 2³², which is exact because the true
//!   result fits in i32 whenever `k <= MAX_K`.
//! * [`CpuKernel::Avx2`]: operands widened to i16 and multiplied with `vpmaddwd` (exact;
//!   `vpmaddubsw` is avoided because it saturates).
//! * [`CpuKernel::Portable`]: plain Rust, auto-vectorised by the compiler.
//!
//! All paths compute the same integer function, so results are bit-identical; the tests
//! force each path and compare against a naive i64 reference.
//!
//! Blocking: B is packed once into panels of `NR` columns (k grouped by the kernel's
//! `KG`), A is packed per block of `MC` rows by the worker that owns the block, and k is
//! walked in slices of `KC` so the active B micro-panel stays in L1 and the A block in L2.
//! With more than one thread, B panels and row blocks of C are distributed over a cached
//! rayon pool of that size (`CpuGemm::with_threads`); each job writes only its own rows
//! of C, so the result does not depend on scheduling, and a helper thread that is slow to
//! start never stalls the product (its unstarted jobs run on the other worker).

#[cfg(target_arch = "x86_64")]
mod amx;
mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Whether AVX-512F and BW are available (cached by `is_x86_feature_detected!`).
#[cfg(target_arch = "x86_64")]
pub(crate) fn x86_has_avx512bw() -> bool {
    x86::has_avx512bw()
}

/// Whether AVX-512F, BW and VNNI are available (cached by `is_x86_feature_detected!`).
#[cfg(target_arch = "x86_64")]
pub(crate) fn x86_has_vnni() -> bool {
    x86::has_vnni()
}

/// Whether AVX2 is available (cached by `is_x86_feature_detected!`).
#[cfg(target_arch = "x86_64")]
pub(crate) fn x86_has_avx2() -> bool {
    x86::has_avx2()
}

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::matrix::{MatrixI32, MatrixI8};

/// Largest shared dimension: `128 · 128 · 131071 = 2147467264 <= i32::MAX`, while
/// `k = 131072` could produce `2³¹`, which does not fit.
pub const MAX_K: usize = 131_071;

/// Rows per work item (a multiple of every kernel's `MR`).
const MC: usize = 96;
/// Depth of one k slice.
const KC: usize = 512;

/// A CPU micro-kernel choice. Every variant computes the same exact result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CpuKernel {
    /// Intel AMX (`tdpbssd` on 16 × 16 tiles of 64 k values: s8×s8 → i32).
    AmxInt8,
    /// AVX-512 VNNI (`vpdpbusd` on zmm registers).
    Avx512Vnni,
    /// AVX2 (`vpmaddwd` on i16-widened operands).
    Avx2,
    /// Portable Rust.
    Portable,
}

impl CpuKernel {
    /// All kernels, fastest first.
    pub const ALL: [CpuKernel; 4] = [
        CpuKernel::AmxInt8,
        CpuKernel::Avx512Vnni,
        CpuKernel::Avx2,
        CpuKernel::Portable,
    ];

    /// Whether this CPU can run the kernel (run-time detection).
    pub fn is_supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            CpuKernel::AmxInt8 => amx::has_amx(),
            #[cfg(target_arch = "x86_64")]
            CpuKernel::Avx512Vnni => x86::has_vnni(),
            #[cfg(target_arch = "x86_64")]
            CpuKernel::Avx2 => x86::has_avx2(),
            #[cfg(not(target_arch = "x86_64"))]
            CpuKernel::AmxInt8 | CpuKernel::Avx512Vnni | CpuKernel::Avx2 => false,
            CpuKernel::Portable => true,
        }
    }

    /// The kernels this CPU supports, fastest first.
    pub fn supported() -> Vec<CpuKernel> {
        Self::ALL.into_iter().filter(|k| k.is_supported()).collect()
    }

    /// The fastest supported kernel.
    pub fn best() -> CpuKernel {
        Self::ALL
            .into_iter()
            .find(|k| k.is_supported())
            .unwrap_or(CpuKernel::Portable)
    }

    /// Short name for logs and benchmark labels.
    pub fn name(self) -> &'static str {
        match self {
            CpuKernel::AmxInt8 => "amx-int8",
            CpuKernel::Avx512Vnni => "avx512-vnni",
            CpuKernel::Avx2 => "avx2",
            CpuKernel::Portable => "portable",
        }
    }
}

/// Storage order of the B operand given to the internal driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `b[kk * n + j]`: an ordinary row-major k×n matrix.
    RowMajor,
    /// `b[j * k + kk]`: columns stored contiguously (how B columns are revealed).
    ColMajor,
}

/// A borrowed B operand.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BView<'a> {
    pub data: &'a [i8],
    pub k: usize,
    pub n: usize,
    pub layout: Layout,
}

/// Validates the GEMM shape `m×k · k×n`.
pub fn check_shape(a_rows: usize, a_cols: usize, b_rows: usize, b_cols: usize) -> Result<()> {
    if a_cols != b_rows {
        return Err(Error::ShapeMismatch {
            a_rows,
            a_cols,
            b_rows,
            b_cols,
        });
    }
    if a_cols > MAX_K {
        return Err(Error::KTooLarge {
            k: a_cols,
            max: MAX_K,
        });
    }
    crate::matrix::checked_len(a_rows, b_cols)?;
    Ok(())
}

/// Core count, read once: `available_parallelism` parses cgroup files on every call, which
/// costs more than verifying a small reveal.
fn default_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// A configured CPU GEMM: kernel choice plus thread count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuGemm {
    kernel: CpuKernel,
    threads: usize,
}

impl Default for CpuGemm {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuGemm {
    /// Fastest kernel, one thread per available core.
    pub fn new() -> Self {
        Self {
            kernel: CpuKernel::best(),
            threads: default_threads(),
        }
    }

    /// Forces a kernel; errors if this CPU cannot run it.
    pub fn with_kernel(mut self, kernel: CpuKernel) -> Result<Self> {
        if !kernel.is_supported() {
            return Err(Error::KernelUnsupported(kernel.name()));
        }
        self.kernel = kernel;
        Ok(self)
    }

    /// Sets the number of worker threads (at least 1).
    pub fn with_threads(mut self, threads: usize) -> Result<Self> {
        if threads == 0 {
            return Err(Error::InvalidParameter(
                "thread count must be at least 1".into(),
            ));
        }
        self.threads = threads;
        Ok(self)
    }

    /// The kernel in use.
    pub fn kernel(&self) -> CpuKernel {
        self.kernel
    }

    /// The thread count in use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// `C = A × B`.
    pub fn gemm(&self, a: &MatrixI8, b: &MatrixI8) -> Result<MatrixI32> {
        check_shape(a.rows(), a.cols(), b.rows(), b.cols())?;
        let (m, n) = (a.rows(), b.cols());
        let mut out = vec![0i32; m * n];
        let bv = BView {
            data: b.data(),
            k: b.rows(),
            n,
            layout: Layout::RowMajor,
        };
        self.gemm_raw(a.data(), m, bv, &mut out)?;
        MatrixI32::new(m, n, out)
    }

    /// Internal entry: `out (m×n) = a (m×k, row-major) × b`. Shapes must already be valid.
    pub(crate) fn gemm_raw(&self, a: &[i8], m: usize, b: BView<'_>, out: &mut [i32]) -> Result<()> {
        let expect = |what, e: usize, a: usize| {
            if e == a {
                Ok(())
            } else {
                Err(Error::Length {
                    what,
                    expected: e as u64,
                    actual: a as u64,
                })
            }
        };
        expect("A data", m * b.k, a.len())?;
        expect("B data", b.k * b.n, b.data.len())?;
        expect("C data", m * b.n, out.len())?;
        if b.k > MAX_K {
            return Err(Error::KTooLarge { k: b.k, max: MAX_K });
        }
        if !self.kernel.is_supported() {
            return Err(Error::KernelUnsupported(self.kernel.name()));
        }
        match self.kernel {
            #[cfg(target_arch = "x86_64")]
            CpuKernel::AmxInt8 => amx::run(a, b, out, self.threads),
            #[cfg(target_arch = "x86_64")]
            CpuKernel::Avx512Vnni => run::<x86::Vnni>(a, b, out, self.threads),
            #[cfg(target_arch = "x86_64")]
            CpuKernel::Avx2 => run::<x86::Avx2>(a, b, out, self.threads),
            _ => run::<portable::Portable>(a, b, out, self.threads),
        }
        Ok(())
    }
}

/// Dot product of two i8 vectors, exact for `len <= MAX_K`. Used for the small products
/// of verification (T rows × T columns), where packing for the blocked kernel would cost
/// more than the arithmetic. Widening to i32 lets the compiler vectorise with `pmaddwd`.
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if x86::has_avx2() {
        return x86::dot_i8_avx2(a, b);
    }
    dot_i8_portable(a, b)
}

#[inline(always)]
pub(crate) fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).fold(0i32, |acc, (&x, &y)| {
        acc.wrapping_add(i32::from(x) * i32::from(y))
    })
}

/// `out (h×w) = rows (h×k, row-major) × cols (w columns of length k)ᵀ` by dot products
/// (the contiguous form of [`small_gemm_slices`], kept for the tests).
#[cfg(test)]
pub(crate) fn small_gemm_colmajor(
    rows: &[i8],
    cols: &[i8],
    h: usize,
    w: usize,
    k: usize,
    out: &mut [i32],
) -> Result<()> {
    if k > MAX_K {
        return Err(Error::KTooLarge { k, max: MAX_K });
    }
    if rows.len() != h * k || cols.len() != w * k || out.len() != h * w {
        return Err(Error::Length {
            what: "small product operands",
            expected: (h * k + w * k + h * w) as u64,
            actual: (rows.len() + cols.len() + out.len()) as u64,
        });
    }
    if k == 0 {
        out.fill(0);
        return Ok(());
    }
    let rows: Vec<&[i8]> = rows.chunks_exact(k).collect();
    let cols: Vec<&[i8]> = cols.chunks_exact(k).collect();
    small_gemm_slices(&rows, &cols, k, out)
}

/// `out[r·w + c] = rows[r] · cols[c]` with `w = cols.len()`, every slice `k` long: the
/// tile recomputation of verification, straight from the revealed rows and columns.
/// Blocks of 4×4 dot products with AVX-512 VNNI where available, else [`dot_i8`] per pair.
pub(crate) fn small_gemm_slices(
    rows: &[&[i8]],
    cols: &[&[i8]],
    k: usize,
    out: &mut [i32],
) -> Result<()> {
    if k > MAX_K {
        return Err(Error::KTooLarge { k, max: MAX_K });
    }
    let w = cols.len();
    if out.len() != rows.len() * w || rows.iter().chain(cols).any(|v| v.len() != k) {
        return Err(Error::Length {
            what: "small product operands",
            expected: ((rows.len() + w) * k + rows.len() * w) as u64,
            actual: (rows.iter().chain(cols).map(|v| v.len()).sum::<usize>() + out.len()) as u64,
        });
    }
    if w == 0 {
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if x86::has_vnni() {
        for (rb, rows4) in rows.chunks(4).enumerate() {
            for (cb, cols4) in cols.chunks(4).enumerate() {
                let block = x86::dot_block_vnni(rows4, cols4, k).unwrap_or_else(|| {
                    let mut b = [[0; 4]; 4];
                    for (br, r) in b.iter_mut().zip(rows4) {
                        for (v, c) in br.iter_mut().zip(cols4) {
                            *v = dot_i8(r, c);
                        }
                    }
                    b
                });
                for (i, brow) in block.iter().take(rows4.len()).enumerate() {
                    let start = (rb * 4 + i) * w + cb * 4;
                    out[start..start + cols4.len()].copy_from_slice(&brow[..cols4.len()]);
                }
            }
        }
        return Ok(());
    }
    for (r, orow) in rows.iter().zip(out.chunks_exact_mut(w)) {
        for (c, o) in cols.iter().zip(orow.iter_mut()) {
            *o = dot_i8(r, c);
        }
    }
    Ok(())
}

/// The naive reference: `C[i][j] = Σ A[i][kk]·B[kk][j]` in i64, row-major m×n.
pub fn reference_i64(a: &MatrixI8, b: &MatrixI8) -> Result<Vec<i64>> {
    if a.cols() != b.rows() {
        return Err(Error::ShapeMismatch {
            a_rows: a.rows(),
            a_cols: a.cols(),
            b_rows: b.rows(),
            b_cols: b.cols(),
        });
    }
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let mut c = vec![0i64; m * n];
    for i in 0..m {
        for kk in 0..k {
            let av = i64::from(a.data()[i * k + kk]);
            for j in 0..n {
                c[i * n + j] += av * i64::from(b.data()[kk * n + j]);
            }
        }
    }
    Ok(c)
}

/// One micro-kernel family: packing formats plus the register-blocked inner product.
pub(crate) trait MicroKernel {
    /// Rows of C per micro-tile.
    const MR: usize;
    /// Columns of C per micro-tile.
    const NR: usize;
    /// Consecutive k values consumed per lane per step.
    const KG: usize;
    /// Packed element type of A.
    type A: Copy + Default + Send + Sync;
    /// Packed element type of B.
    type B: Copy + Default + Send + Sync;
    /// Encodes an A element for packing.
    fn enc_a(v: i8) -> Self::A;
    /// Encodes a B element for packing (padding uses `enc_b(0)`).
    fn enc_b(v: i8) -> Self::B;
    /// Whether the result must be corrected by `-128 · rowsum(A)` (B was shifted by 128).
    const SHIFTED_B: bool;
    /// `out[ii*ldc + jj] (+)= Σ_g Σ_t a[g][ii][t] · b[g][jj][t]` over `groups` k-groups,
    /// adding to `out` when `accumulate` (wrapping), storing otherwise.
    /// `a.len() >= groups*MR*KG`, `b.len() >= groups*NR*KG`, `out.len() >= (MR-1)*ldc + NR`.
    fn kernel(
        a: &[Self::A],
        b: &[Self::B],
        groups: usize,
        out: &mut [i32],
        ldc: usize,
        accumulate: bool,
    );
}

fn run<K: MicroKernel>(a: &[i8], b: BView<'_>, out: &mut [i32], threads: usize) {
    let (k, n) = (b.k, b.n);
    let groups = k.div_ceil(K::KG);
    let panels = n.div_ceil(K::NR);
    let panel_len = groups * K::NR * K::KG;
    let mut bpack = vec![K::B::default(); panels * panel_len];
    let threads = threads.max(1);
    // Pack B panels, in parallel when worthwhile (packing is memory bound).
    let pack_panel = |p: usize, dst: &mut [K::B]| {
        let j0 = p * K::NR;
        let nr = K::NR.min(n - j0);
        if nr < K::NR || !k.is_multiple_of(K::KG) {
            dst.fill(K::enc_b(0));
        }
        match b.layout {
            Layout::RowMajor => {
                // One k-group at a time so the strided writes stay inside a
                // NR·KG-element window (L1 resident).
                for (g, out) in dst.chunks_exact_mut(K::NR * K::KG).enumerate() {
                    for t in 0..K::KG {
                        let kk = g * K::KG + t;
                        if kk >= k {
                            break;
                        }
                        let src = &b.data[kk * n + j0..kk * n + j0 + nr];
                        for (o, &v) in out.chunks_exact_mut(K::KG).zip(src) {
                            o[t] = K::enc_b(v);
                        }
                    }
                }
            }
            Layout::ColMajor => {
                for jj in 0..nr {
                    let col = &b.data[(j0 + jj) * k..(j0 + jj + 1) * k];
                    for (g, chunk) in col.chunks(K::KG).enumerate() {
                        let base = (g * K::NR + jj) * K::KG;
                        for (d, &v) in dst[base..base + chunk.len()].iter_mut().zip(chunk) {
                            *d = K::enc_b(v);
                        }
                    }
                }
            }
        }
    };
    let apack_len = MC.div_ceil(K::MR) * K::MR * groups * K::KG;
    let scratch = || (vec![K::A::default(); apack_len], vec![0i32; K::MR * K::NR]);
    let single = threads <= 1 || (panels <= 1 && m_blocks(out.len(), n) <= 1);
    let Some(pool) = pool(threads).filter(|_| !single) else {
        for (p, dst) in bpack.chunks_mut(panel_len).enumerate() {
            pack_panel(p, dst);
        }
        let (mut apack, mut tmp) = scratch();
        for (bi, cblock) in out.chunks_mut(MC * n).enumerate() {
            let (i0, mc) = (bi * MC, cblock.len() / n);
            block::<K>(
                &a[i0 * k..(i0 + mc) * k],
                mc,
                k,
                n,
                &bpack,
                &mut apack,
                &mut tmp,
                cblock,
            );
        }
        return;
    };
    // A persistent rayon pool per thread count: the calling thread blocks (freeing its
    // core) while the pool works, and work not yet picked up by a late worker is run by the
    // worker that owns it, so a descheduled helper never stalls the product. Each row
    // block of C is written by exactly one job, so the result is schedule-independent.
    pool.install(|| {
        bpack
            .par_chunks_mut(panel_len)
            .enumerate()
            .for_each(|(p, dst)| pack_panel(p, dst));
        let bpack = &bpack;
        out.par_chunks_mut(MC * n).enumerate().for_each_init(
            scratch,
            |(apack, tmp), (bi, cblock)| {
                let (i0, mc) = (bi * MC, cblock.len() / n);
                block::<K>(
                    &a[i0 * k..(i0 + mc) * k],
                    mc,
                    k,
                    n,
                    bpack,
                    apack,
                    tmp,
                    cblock,
                );
            },
        );
    });
}

fn m_blocks(len: usize, n: usize) -> usize {
    len.div_ceil(MC * n.max(1))
}

/// The cached rayon pool with `threads` workers (`None` if threads cannot be spawned,
/// in which case the caller computes on its own thread).
fn pool(threads: usize) -> Option<std::sync::Arc<rayon::ThreadPool>> {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static POOLS: OnceLock<Mutex<BTreeMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    if threads <= 1 {
        return None;
    }
    let pools = POOLS.get_or_init(|| Mutex::new(BTreeMap::new()));
    // A panic while holding the lock cannot leave the map inconsistent.
    let mut guard = pools
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(p) = guard.get(&threads) {
        return Some(p.clone());
    }
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("lode-gemm-{i}"))
        .build()
        .ok()?;
    let built = Arc::new(built);
    guard.insert(threads, built.clone());
    Some(built)
}

#[allow(clippy::too_many_arguments)]
fn block<K: MicroKernel>(
    a: &[i8],
    mc: usize,
    k: usize,
    n: usize,
    bpack: &[K::B],
    apack: &mut [K::A],
    tmp: &mut [i32],
    c: &mut [i32],
) {
    let groups = k.div_ceil(K::KG);
    let micro = mc.div_ceil(K::MR);
    let mpanel_len = groups * K::MR * K::KG;
    // Pack A: micro-panel r, group g, row ii, lane t. Each source row is read
    // contiguously; destinations advance by KG within a group.
    let zero_a = K::enc_a(0);
    for r in 0..micro {
        let dst = &mut apack[r * mpanel_len..(r + 1) * mpanel_len];
        if (r + 1) * K::MR > mc || !k.is_multiple_of(K::KG) {
            dst.fill(zero_a);
        }
        for ii in 0..K::MR.min(mc - r * K::MR) {
            let i = r * K::MR + ii;
            let src = &a[i * k..(i + 1) * k];
            // Fixed-size inner copies (KG is a constant) compile to plain moves.
            let full = k / K::KG;
            for (g, chunk) in src.chunks_exact(K::KG).enumerate() {
                let base = (g * K::MR + ii) * K::KG;
                for t in 0..K::KG {
                    dst[base + t] = K::enc_a(chunk[t]);
                }
            }
            let base = (full * K::MR + ii) * K::KG;
            for (t, &v) in src[full * K::KG..].iter().enumerate() {
                dst[base + t] = K::enc_a(v);
            }
        }
    }
    let panels = n.div_ceil(K::NR);
    let panel_len = groups * K::NR * K::KG;
    let gc = (KC / K::KG).max(1);
    // No zero fill: the first k slice stores, later slices accumulate.
    let mut g0 = 0;
    while g0 < groups {
        let g1 = (g0 + gc).min(groups);
        for p in 0..panels {
            let bp = &bpack[p * panel_len + g0 * K::NR * K::KG..p * panel_len + g1 * K::NR * K::KG];
            let j0 = p * K::NR;
            let nr = K::NR.min(n - j0);
            for r in 0..micro {
                let ap = &apack
                    [r * mpanel_len + g0 * K::MR * K::KG..r * mpanel_len + g1 * K::MR * K::KG];
                let mr = K::MR.min(mc - r * K::MR);
                let first = g0 == 0;
                if mr == K::MR && nr == K::NR {
                    // Full micro-tile: the kernel reads and writes C directly.
                    let off = r * K::MR * n + j0;
                    K::kernel(ap, bp, g1 - g0, &mut c[off..], n, !first);
                    continue;
                }
                // Edge micro-tile: compute into `tmp`, then copy the valid part.
                K::kernel(ap, bp, g1 - g0, tmp, K::NR, false);
                for ii in 0..mr {
                    let crow = &mut c[(r * K::MR + ii) * n + j0..(r * K::MR + ii) * n + j0 + nr];
                    let trow = &tmp[ii * K::NR..ii * K::NR + nr];
                    if first {
                        crow.copy_from_slice(trow);
                    } else {
                        for (cv, tv) in crow.iter_mut().zip(trow) {
                            *cv = cv.wrapping_add(*tv);
                        }
                    }
                }
            }
        }
        g0 = g1;
    }
    if K::SHIFTED_B {
        for i in 0..mc {
            let rowsum: i32 = a[i * k..(i + 1) * k].iter().map(|&v| i32::from(v)).sum();
            let corr = rowsum.wrapping_mul(128);
            for cv in &mut c[i * n..(i + 1) * n] {
                *cv = cv.wrapping_sub(corr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic i8 stream for the kernel tests (also used by `amx`'s).
    pub(super) fn lcg(seed: &mut u64) -> i8 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 56) as i8
    }

    #[test]
    fn every_kernel_matches_reference_on_odd_shapes() {
        let mut s = 7u64;
        for &(m, k, n) in &[
            (1, 1, 1),
            (7, 5, 3),
            (13, 67, 70),
            (100, 130, 129),
            (97, 513, 65),
        ] {
            let a = MatrixI8::from_fn(m, k, |_, _| lcg(&mut s)).expect("a");
            let b = MatrixI8::from_fn(k, n, |_, _| lcg(&mut s)).expect("b");
            let r = reference_i64(&a, &b).expect("ref");
            for kern in CpuKernel::supported() {
                for t in [1, 3] {
                    let g = CpuGemm::new()
                        .with_kernel(kern)
                        .and_then(|g| g.with_threads(t))
                        .expect("cfg");
                    let c = g.gemm(&a, &b).expect("gemm");
                    let c64: Vec<i64> = c.data().iter().map(|&v| i64::from(v)).collect();
                    assert_eq!(c64, r, "kernel {kern:?} threads {t} shape {m}x{k}x{n}");
                }
            }
        }
    }

    #[test]
    fn dot_product_path_matches_the_blocked_kernels() {
        let mut s = 11u64;
        for &(h, k, w) in &[(1, 1, 1), (4, 2048, 4), (3, 131, 5)] {
            let a = MatrixI8::from_fn(h, k, |_, _| lcg(&mut s)).expect("a");
            let b = MatrixI8::from_fn(k, w, |_, _| lcg(&mut s)).expect("b");
            let want = CpuGemm::new().gemm(&a, &b).expect("gemm");
            let mut out = vec![0; h * w];
            small_gemm_colmajor(a.data(), b.transpose().data(), h, w, k, &mut out).expect("small");
            assert_eq!(out, want.data());
            assert!(small_gemm_colmajor(a.data(), b.data(), h, w + 1, k, &mut out).is_err());
        }
    }

    #[test]
    fn tile_recompute_from_slices_matches_the_reference_for_every_tail() {
        let mut s = 5u64;
        for k in [1usize, 3, 63, 64, 65, 127, 200, 2051] {
            for (h, w) in [
                (1usize, 1usize),
                (4, 4),
                (3, 5),
                (5, 3),
                (7, 9),
                (16, 16),
                (16, 13),
            ] {
                let a = MatrixI8::from_fn(h, k, |_, _| lcg(&mut s)).expect("a");
                let b = MatrixI8::from_fn(k, w, |_, _| lcg(&mut s)).expect("b");
                let bt = b.transpose();
                let rows: Vec<&[i8]> = a.data().chunks_exact(k).collect();
                let cols: Vec<&[i8]> = bt.data().chunks_exact(k).collect();
                let mut out = vec![0; h * w];
                small_gemm_slices(&rows, &cols, k, &mut out).expect("small");
                let want: Vec<i32> = reference_i64(&a, &b)
                    .expect("reference")
                    .into_iter()
                    .map(|v| v as i32)
                    .collect();
                assert_eq!(out, want, "h {h} w {w} k {k}");
                assert!(small_gemm_slices(&rows, &cols[1..], k, &mut out).is_err());
                assert!(small_gemm_slices(&rows[1..], &cols, k, &mut out[w..]).is_ok());
            }
        }
        // Extremes: all -128 against all -128 and against all 127, at the largest k.
        let k = MAX_K;
        let (lo, hi) = (vec![i8::MIN; k], vec![i8::MAX; k]);
        let mut out = [0; 4];
        small_gemm_slices(&[&lo, &hi], &[&lo, &hi], k, &mut out).expect("extremes");
        let k = k as i64;
        assert_eq!(
            out.map(i64::from),
            [128 * 128 * k, -128 * 127 * k, -128 * 127 * k, 127 * 127 * k]
        );
        // Ragged operands are an error, not a panic.
        assert!(small_gemm_slices(&[&lo[..5]], &[&hi[..4]], 5, &mut out[..1]).is_err());
    }

    #[test]
    fn col_major_b_gives_the_same_product() {
        let mut s = 9u64;
        let a = MatrixI8::from_fn(10, 37, |_, _| lcg(&mut s)).expect("a");
        let b = MatrixI8::from_fn(37, 19, |_, _| lcg(&mut s)).expect("b");
        let bt = b.transpose();
        for kern in CpuKernel::supported() {
            let g = CpuGemm::new().with_kernel(kern).expect("cfg");
            let want = g.gemm(&a, &b).expect("gemm");
            let mut out = vec![0; 10 * 19];
            let bv = BView {
                data: bt.data(),
                k: 37,
                n: 19,
                layout: Layout::ColMajor,
            };
            g.gemm_raw(a.data(), 10, bv, &mut out).expect("raw");
            assert_eq!(out, want.data());
        }
    }
}
