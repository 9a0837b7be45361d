//! CUDA int8 GEMM through cudarc (dynamic loading): cuBLAS `gemm_ex` with int8 inputs and
//! int32 compute/output, and an NVRTC-compiled `dp4a` kernel for batches of small products
//! (the tile recomputations of verification).
//!
//! cudarc opens `libcuda`, `libcublas` and `libnvrtc` lazily and *panics* if a library is
//! missing, so [`probe`] checks for each library and for a device before anything else is
//! touched; callers get a reason string instead of a panic on machines without a GPU.
//! Integer arithmetic is exact on the GPU as on the CPU, so results are bit-identical.

#![allow(unsafe_code)] // cudarc's library probes, raw cuBLAS calls and kernel launches.

use std::sync::{Arc, Mutex, MutexGuard};

use rayon::prelude::*;

use cudarc::cublas::{sys as blas_sys, CudaBlas};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr,
    LaunchConfig, PinnedHostSlice, PushKernelArg, ValidAsZeroBits,
};

use crate::error::{Error, Result};
use crate::gemm::check_shape;
use crate::matrix::{MatrixI32, MatrixI8};

/// Checks that the CUDA driver, cuBLAS and NVRTC libraries load and a device exists.
/// Returns the device count, or a human-readable reason why CUDA cannot be used.
pub fn probe() -> std::result::Result<usize, String> {
    // SAFETY: `is_culib_present` only tries `dlopen` on the candidate library names and
    // closes them again; it has no preconditions.
    let driver = unsafe { cudarc::driver::sys::is_culib_present() };
    if !driver {
        return Err("CUDA driver library (libcuda) not found".into());
    }
    // SAFETY: as above.
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        return Err("cuBLAS library (libcublas) not found".into());
    }
    // SAFETY: as above.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err("NVRTC library (libnvrtc) not found".into());
    }
    // The driver library is present, so cuInit can be called without panicking.
    match CudaContext::device_count() {
        Ok(n) if n > 0 => Ok(n as usize),
        Ok(_) => Err("CUDA driver loaded but no device is present".into()),
        Err(e) => Err(format!("cuInit/cuDeviceGetCount failed: {e}")),
    }
}

/// Name and total memory (bytes) of CUDA device `ordinal`, after [`probe`] succeeded; cheaper than
/// [`CudaGemm::new`] (no cuBLAS handle, no kernel compile), for listing devices.
pub fn device_info(ordinal: usize) -> Result<(String, usize)> {
    let count = probe().map_err(Error::CudaUnavailable)?;
    if ordinal >= count {
        return Err(Error::CudaUnavailable(format!(
            "device {ordinal} requested, {count} present"
        )));
    }
    let ctx = CudaContext::new(ordinal).map_err(cu("create context"))?;
    let name = ctx.name().map_err(cu("device name"))?;
    let bytes = ctx.total_mem().map_err(cu("total memory"))?;
    Ok((name, bytes))
}

const KERNEL_SRC: &str = r#"
// C (m x n, row-major) = A (m x kw words) * Bt (n x kw words)^T; each word packs 4 int8.
// Rows of A and columns of B are zero padded to a multiple of 4 bytes. blockIdx.z selects
// one problem of a batch (strides in words / elements).
#define BM 64
#define BN 64
#define BK 8
extern "C" __global__ void gemm_i8_dp4a(const int* __restrict__ A, const int* __restrict__ Bt,
                                        int* __restrict__ C, int m, int n, int kw,
                                        long long sa, long long sb, long long sc) {
    A += blockIdx.z * sa;
    Bt += blockIdx.z * sb;
    C += blockIdx.z * sc;
    __shared__ int As[BK][BM + 1];
    __shared__ int Bs[BK][BN + 1];
    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
    int acc[4][4];
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] = 0;
    for (int kb = 0; kb < kw; kb += BK) {
        for (int l = tid; l < BM * BK; l += 256) {
            const int r = l / BK, c = l % BK, gc = kb + c;
            const int gr = row0 + r, gn = col0 + r;
            As[c][r] = (gr < m && gc < kw) ? A[(long long)gr * kw + gc] : 0;
            Bs[c][r] = (gn < n && gc < kw) ? Bt[(long long)gn * kw + gc] : 0;
        }
        __syncthreads();
        for (int c = 0; c < BK; ++c) {
            int a[4], b[4];
            for (int i = 0; i < 4; ++i) a[i] = As[c][ty + 16 * i];
            for (int j = 0; j < 4; ++j) b[j] = Bs[c][tx + 16 * j];
            for (int i = 0; i < 4; ++i)
                for (int j = 0; j < 4; ++j) acc[i][j] = __dp4a(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
            const int r = row0 + ty + 16 * i, c = col0 + tx + 16 * j;
            if (r < m && c < n) C[(long long)r * n + c] = acc[i][j];
        }
}

// Same contract as gemm_i8_dp4a, for small outputs with a long k (the tiles of
// verification): one warp per output element, lanes stride over k, then a warp reduction.
// `total` = batch * m * n; output element w of the whole batch is C[w].
extern "C" __global__ void gemm_i8_small(const int* __restrict__ A, const int* __restrict__ Bt,
                                         int* __restrict__ C, int m, int n, int kw,
                                         long long total) {
    const long long w = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (w >= total) return;  // uniform per warp: the whole warp leaves together
    const long long mn = (long long)m * n;
    const long long prob = w / mn;
    const int e = (int)(w - prob * mn), i = e / n, j = e - (e / n) * n;
    const int* a = A + (prob * m + i) * kw;
    const int* b = Bt + (prob * n + j) * kw;
    int acc = 0;
    for (int c = lane; c < kw; c += 32) acc = __dp4a(a[c], b[c], acc);
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
    if (lane == 0) C[w] = acc;
}

// Bt (np x kp) = B (k x n, row-major) transposed, zero where r >= n or c >= k.
// Block 32 x 8 threads moves a 32 x 32 tile through shared memory.
extern "C" __global__ void transpose_pad_i8(const signed char* __restrict__ B,
                                            signed char* __restrict__ Bt,
                                            int k, int n, int kp, int np) {
    __shared__ signed char t[32][33];
    const int x = blockIdx.x * 32 + threadIdx.x;  // column of B
    const int y0 = blockIdx.y * 32;               // first row of B in this tile
    for (int dy = threadIdx.y; dy < 32; dy += 8) {
        const int y = y0 + dy;
        t[dy][threadIdx.x] = (y < k && x < n) ? B[(long long)y * n + x] : 0;
    }
    __syncthreads();
    const int ox = y0 + threadIdx.x;              // column of Bt = row of B
    for (int dy = threadIdx.y; dy < 32; dy += 8) {
        const int oy = blockIdx.x * 32 + dy;      // row of Bt = column of B
        if (oy < np && ox < kp) Bt[(long long)oy * kp + ox] = t[threadIdx.x][dy];
    }
}
"#;

/// Products with at most this many output elements use the warp-per-element kernel
/// (`gemm_i8_small`); larger ones the 64×64-tiled kernel.
pub const SMALL_KERNEL_MAX_OUTPUTS: usize = 16 * 16;

/// Maps a compute capability to an NVRTC `--gpu-architecture` value (dp4a needs sm_61+).
fn arch_for(major: i32, minor: i32) -> Option<&'static str> {
    Some(match (major, minor) {
        (6, 1) => "compute_61",
        (6, 2) => "compute_62",
        (7, 0) => "compute_70",
        (7, 2) => "compute_72",
        (7, 5) => "compute_75",
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 7) => "compute_87",
        (8, 9) => "compute_89",
        (9, 0) => "compute_90",
        (m, _) if m >= 10 => "compute_90",
        _ => return None,
    })
}

fn cu<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::Cuda(format!("{what}: {e}"))
}

/// How the B operand of [`CudaGemm::gemm_ex_device`] is stored on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BLayout {
    /// B itself, k×n row-major (cuBLAS "NN" form).
    RowMajor,
    /// Bᵀ, n×k row-major, i.e. the columns of B back to back (cuBLAS "TN" form).
    Transposed,
}

/// A CUDA device with a cuBLAS handle and the compiled dp4a kernel.
pub struct CudaGemm {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    kernel: CudaFunction,
    small: CudaFunction,
    transpose: CudaFunction,
    staging: Mutex<Staging>,
    name: String,
}

impl std::fmt::Debug for CudaGemm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaGemm")
            .field("device", &self.name)
            .finish()
    }
}

impl CudaGemm {
    /// Opens device `ordinal` after [`probe`] succeeded.
    pub fn new(ordinal: usize) -> Result<Self> {
        let count = probe().map_err(Error::CudaUnavailable)?;
        if ordinal >= count {
            return Err(Error::CudaUnavailable(format!(
                "device {ordinal} requested, {count} present"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(cu("create context"))?;
        let name = ctx.name().map_err(cu("device name"))?;
        let (major, minor) = ctx.compute_capability().map_err(cu("compute capability"))?;
        let arch = arch_for(major, minor).ok_or_else(|| {
            Error::CudaUnavailable(format!("compute capability {major}.{minor} lacks dp4a"))
        })?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(cu("cuBLAS handle"))?;
        let opts = cudarc::nvrtc::CompileOptions {
            arch: Some(arch),
            ..Default::default()
        };
        let ptx =
            cudarc::nvrtc::compile_ptx_with_opts(KERNEL_SRC, opts).map_err(cu("NVRTC compile"))?;
        let module = ctx.load_module(ptx).map_err(cu("load module"))?;
        let kernel = module
            .load_function("gemm_i8_dp4a")
            .map_err(cu("load function"))?;
        let small = module
            .load_function("gemm_i8_small")
            .map_err(cu("load function"))?;
        let transpose = module
            .load_function("transpose_pad_i8")
            .map_err(cu("load function"))?;
        Ok(Self {
            ctx,
            stream,
            blas,
            kernel,
            small,
            transpose,
            staging: Mutex::new(Staging::default()),
            name: format!("{name} (sm_{major}{minor})"),
        })
    }

    /// Device name and compute capability.
    pub fn device_name(&self) -> &str {
        &self.name
    }

    /// The stream all work is queued on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// `C = A × B` with cuBLAS `gemm_ex` (int8 in, int32 compute and out), including the
    /// host↔device transfers.
    pub fn gemm(&self, a: &MatrixI8, b: &MatrixI8) -> Result<MatrixI32> {
        check_shape(a.rows(), a.cols(), b.rows(), b.cols())?;
        let (m, k, n) = (a.rows(), a.cols(), b.cols());
        // cuBLAS runs int8 on its fast (IMMA) kernels only in the "TN" form, with leading
        // dimensions that are multiples of 4 (the "NN" form measured 10x slower on an H100).
        // So A goes up row-major with k padded to kp, B goes up as it is, and B is
        // transposed and padded on the device. Both pass through pinned staging memory.
        let (kp, mp, np) = (
            k.next_multiple_of(4),
            m.next_multiple_of(4),
            n.next_multiple_of(4),
        );
        let mut staging = self.staging()?;
        let (da, db) = self.upload_staged(&mut staging, mp * kp, k * n, |ua, ub| {
            let (rows, pad) = ua.split_at_mut(m * kp);
            fill_padded(rows, a.data(), k);
            pad.fill(0);
            par_copy(ub, b.data());
        })?;
        let mut dbt = self
            .stream
            .alloc_zeros::<i8>(np * kp)
            .map_err(cu("alloc Bt"))?;
        self.transpose_pad_device(&db, &mut dbt, k, n, kp, np)?;
        let mut dc = self
            .stream
            .alloc_zeros::<i32>(mp * np)
            .map_err(cu("alloc C"))?;
        self.gemm_ex_device(&da, &dbt, BLayout::Transposed, &mut dc, mp, np, kp)?;
        let down = self.download_staged(&mut staging, &dc)?;
        let mut out = vec![0i32; m * n];
        out.par_chunks_mut(n)
            .enumerate()
            .for_each(|(r, row)| row.copy_from_slice(&down[r * np..r * np + n]));
        MatrixI32::new(m, n, out)
    }

    /// The staging buffers, once no copy queued by an earlier call (one that failed half
    /// way, say) can still be reading or writing them.
    fn staging(&self) -> Result<MutexGuard<'_, Staging>> {
        let guard = self
            .staging
            .lock()
            .map_err(|_| Error::Cuda("staging buffers poisoned by an earlier panic".into()))?;
        self.stream.synchronize().map_err(cu("synchronize"))?;
        Ok(guard)
    }

    /// Lets `fill` write `la` then `lb` bytes into the upload staging buffer (every byte:
    /// the buffer is reused) and copies both parts to new device buffers.
    fn upload_staged(
        &self,
        staging: &mut Staging,
        la: usize,
        lb: usize,
        fill: impl FnOnce(&mut [i8], &mut [i8]),
    ) -> Result<(CudaSlice<i8>, CudaSlice<i8>)> {
        let up = staging.up(&self.ctx, la + lb)?;
        let (ua, ub) = up.split_at_mut(la);
        fill(ua, ub);
        let da = self.stream.clone_htod(&*ua).map_err(cu("upload A"))?;
        let db = self.stream.clone_htod(&*ub).map_err(cu("upload B"))?;
        Ok((da, db))
    }

    /// Copies `dc` into the download staging buffer and returns it once the copy landed.
    fn download_staged<'s>(
        &self,
        staging: &'s mut Staging,
        dc: &CudaSlice<i32>,
    ) -> Result<&'s [i32]> {
        let down = staging.down(&self.ctx, dc.len())?;
        self.stream
            .memcpy_dtoh(dc, down)
            .map_err(cu("download C"))?;
        // Copies to and from pinned memory are truly asynchronous: wait before reading.
        self.stream.synchronize().map_err(cu("synchronize"))?;
        Ok(down)
    }

    /// Transposes `b` (k×n row-major) into `bt` (np×kp row-major) on the device, with
    /// zeros in the padding rows and columns. Public for the GPU benchmark.
    pub fn transpose_pad_device(
        &self,
        b: &CudaSlice<i8>,
        bt: &mut CudaSlice<i8>,
        k: usize,
        n: usize,
        kp: usize,
        np: usize,
    ) -> Result<()> {
        if kp < k || np < n || b.len() < k * n || bt.len() < np * kp {
            return Err(Error::InvalidParameter("transpose buffer sizes".into()));
        }
        let cfg = LaunchConfig {
            grid_dim: (as_u32(np.div_ceil(32))?, as_u32(kp.div_ceil(32))?, 1),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        };
        let (ki, ni, kpi, npi) = (as_i32(k)?, as_i32(n)?, as_i32(kp)?, as_i32(np)?);
        let mut args = self.stream.launch_builder(&self.transpose);
        args.arg(b).arg(bt).arg(&ki).arg(&ni).arg(&kpi).arg(&npi);
        // SAFETY: the arguments match `transpose_pad_i8` (two int8 buffers, four ints);
        // reads are guarded by k and n, writes by np and kp, all within the sizes checked
        // above.
        unsafe { args.launch(cfg) }.map_err(cu("launch transpose_pad_i8"))?;
        Ok(())
    }

    /// Raw cuBLAS call on device buffers: `c (m×n row-major) = a (m×k row-major) · B`,
    /// where `b` holds B (k×n) in `layout`; n and k multiples of 4. Public for the GPU
    /// benchmark.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_ex_device(
        &self,
        a: &CudaSlice<i8>,
        b: &CudaSlice<i8>,
        layout: BLayout,
        c: &mut CudaSlice<i32>,
        m: usize,
        n: usize,
        k: usize,
    ) -> Result<()> {
        if !n.is_multiple_of(4) || !k.is_multiple_of(4) || m == 0 || n == 0 || k == 0 {
            return Err(Error::InvalidParameter(
                "cuBLAS int8 needs n and k non-zero multiples of 4".into(),
            ));
        }
        let need = |x: usize, y: usize| x.saturating_mul(y);
        if a.len() < need(m, k) || b.len() < need(n, k) || c.len() < need(m, n) {
            return Err(Error::InvalidParameter("device buffers too small".into()));
        }
        let (mi, ni, ki) = (as_i32(m)?, as_i32(n)?, as_i32(k)?);
        // Column-major view: Cᵀ (n×m, ld n) = op(X)·Aᵀ, with A seen as k×m (ld k). X is
        // `b`: row-major B seen column-major is Bᵀ (n×k, ld n, op N); a row-major Bᵀ
        // (n×k) seen column-major is B (k×n, ld k), so op T gives Bᵀ.
        let (op_b, ldb) = match layout {
            BLayout::RowMajor => (blas_sys::cublasOperation_t::CUBLAS_OP_N, ni),
            BLayout::Transposed => (blas_sys::cublasOperation_t::CUBLAS_OP_T, ki),
        };
        let alpha: i32 = 1;
        let beta: i32 = 0;
        let (pa, _ra) = a.device_ptr(&self.stream);
        let (pb, _rb) = b.device_ptr(&self.stream);
        let (pc, _rc) = c.device_ptr_mut(&self.stream);
        // SAFETY: the pointers come from live device allocations of at least the sizes
        // checked above; alpha/beta point to host i32 as CUBLAS_COMPUTE_32I requires; the
        // `_r*` guards keep the buffers' stream ordering alive until the call is queued.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *self.blas.handle(),
                op_b,
                blas_sys::cublasOperation_t::CUBLAS_OP_N,
                ni,
                mi,
                ki,
                (&alpha as *const i32).cast(),
                pb as *const std::ffi::c_void,
                blas_sys::cudaDataType::CUDA_R_8I,
                ldb,
                pa as *const std::ffi::c_void,
                blas_sys::cudaDataType::CUDA_R_8I,
                ki,
                (&beta as *const i32).cast(),
                pc as *mut std::ffi::c_void,
                blas_sys::cudaDataType::CUDA_R_32I,
                ni,
                blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32I,
                blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(cu("cublasGemmEx"))
    }

    /// Launches the 64×64-tiled dp4a kernel on device buffers: `batch` problems, each
    /// `c (m×n) = a (m×k_padded) · bt (n×k_padded)ᵀ`, stored back to back.
    #[allow(clippy::too_many_arguments)]
    pub fn dp4a_device(
        &self,
        a: &CudaSlice<i8>,
        bt: &CudaSlice<i8>,
        c: &mut CudaSlice<i32>,
        m: usize,
        n: usize,
        k_padded: usize,
        batch: usize,
    ) -> Result<()> {
        let d = LaunchDims::new(a, bt, c, m, n, k_padded, batch)?;
        let (sa, sb, sc) = (
            (m * k_padded / 4) as i64,
            (n * k_padded / 4) as i64,
            (m * n) as i64,
        );
        let cfg = LaunchConfig {
            grid_dim: (
                as_u32(n.div_ceil(64))?,
                as_u32(m.div_ceil(64))?,
                as_u32(batch)?,
            ),
            block_dim: (16, 16, 1),
            shared_mem_bytes: 0,
        };
        let mut args = self.stream.launch_builder(&self.kernel);
        args.arg(a)
            .arg(bt)
            .arg(c)
            .arg(&d.m)
            .arg(&d.n)
            .arg(&d.kw)
            .arg(&sa)
            .arg(&sb)
            .arg(&sc);
        // SAFETY: the argument list matches the kernel signature (two int8 buffers read as
        // int words, an int32 output, three ints, three 64-bit strides); buffer sizes were
        // checked by `LaunchDims::new` against every index the kernel computes (guarded by
        // m, n, kw).
        unsafe { args.launch(cfg) }.map_err(cu("launch gemm_i8_dp4a"))?;
        Ok(())
    }

    /// Launches the warp-per-element dp4a kernel (same contract as [`Self::dp4a_device`]),
    /// meant for outputs of at most [`SMALL_KERNEL_MAX_OUTPUTS`] elements and a long k.
    #[allow(clippy::too_many_arguments)]
    pub fn dp4a_small_device(
        &self,
        a: &CudaSlice<i8>,
        bt: &CudaSlice<i8>,
        c: &mut CudaSlice<i32>,
        m: usize,
        n: usize,
        k_padded: usize,
        batch: usize,
    ) -> Result<()> {
        let d = LaunchDims::new(a, bt, c, m, n, k_padded, batch)?;
        const WARPS_PER_BLOCK: usize = 8;
        let outputs = batch * m * n;
        let total = i64::try_from(outputs)
            .map_err(|_| Error::InvalidParameter(format!("{outputs} exceeds i64")))?;
        let cfg = LaunchConfig {
            grid_dim: (as_u32(outputs.div_ceil(WARPS_PER_BLOCK))?, 1, 1),
            block_dim: (as_u32(32 * WARPS_PER_BLOCK)?, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut args = self.stream.launch_builder(&self.small);
        args.arg(a)
            .arg(bt)
            .arg(c)
            .arg(&d.m)
            .arg(&d.n)
            .arg(&d.kw)
            .arg(&total);
        // SAFETY: the argument list matches `gemm_i8_small` (two int8 buffers read as int
        // words, an int32 output, three ints, one 64-bit count); warps with an index at or
        // past `total` return before touching memory, and the others index within the
        // sizes checked by `LaunchDims::new`.
        unsafe { args.launch(cfg) }.map_err(cu("launch gemm_i8_small"))?;
        Ok(())
    }

    /// `C = A × B` with the NVRTC dp4a kernels, including transfers.
    pub fn gemm_dp4a(&self, a: &MatrixI8, b: &MatrixI8) -> Result<MatrixI32> {
        check_shape(a.rows(), a.cols(), b.rows(), b.cols())?;
        let (m, k, n) = (a.rows(), a.cols(), b.cols());
        let kp = k.next_multiple_of(4);
        let bt = b.transpose();
        let out = self.batched_with(
            m,
            n,
            kp,
            1,
            |ua, ub| {
                fill_padded(ua, a.data(), k);
                fill_padded(ub, bt.data(), k);
            },
            <[i32]>::to_vec,
        )?;
        MatrixI32::new(m, n, out)
    }

    /// Batch of `batch` products whose operands `fill` writes straight into pinned staging
    /// memory: it gets `batch` blocks of m×kp (rows of A) and `batch` blocks of n×kp
    /// (columns of B), and must write every byte (the buffers are reused, so padding must
    /// be written as zeros). `read` gets the `batch` blocks of m×n results.
    pub fn batched_with<R>(
        &self,
        m: usize,
        n: usize,
        kp: usize,
        batch: usize,
        fill: impl FnOnce(&mut [i8], &mut [i8]),
        read: impl FnOnce(&[i32]) -> R,
    ) -> Result<R> {
        let len = |x: usize, y: usize| {
            batch
                .checked_mul(x)
                .and_then(|v| v.checked_mul(y))
                .ok_or_else(|| Error::InvalidParameter("batch too large".into()))
        };
        let (la, lb, lc) = (len(m, kp)?, len(n, kp)?, len(m, n)?);
        let mut staging = self.staging()?;
        let (da, db) = self.upload_staged(&mut staging, la, lb, fill)?;
        let mut dc = self.stream.alloc_zeros::<i32>(lc).map_err(cu("alloc C"))?;
        if m * n <= SMALL_KERNEL_MAX_OUTPUTS {
            self.dp4a_small_device(&da, &db, &mut dc, m, n, kp, batch)?;
        } else {
            self.dp4a_device(&da, &db, &mut dc, m, n, kp, batch)?;
        }
        let down = self.download_staged(&mut staging, &dc)?;
        Ok(read(down))
    }
}

/// `dst.copy_from_slice(src)` in 1 MiB pieces on the rayon pool (one core's memcpy into
/// write-combined pinned memory is far below PCIe speed).
fn par_copy<T: Copy + Send + Sync>(dst: &mut [T], src: &[T]) {
    let piece = (1 << 20) / std::mem::size_of::<T>().max(1);
    dst.par_chunks_mut(piece)
        .zip(src.par_chunks(piece))
        .for_each(|(d, s)| d.copy_from_slice(s));
}

/// Copies rows of `k` bytes from `src` into rows of `dst` (row length `dst.len() / rows`),
/// zero filling each row's tail.
fn fill_padded(dst: &mut [i8], src: &[i8], k: usize) {
    let rows = src.len() / k;
    let kp = dst.len() / rows;
    dst.par_chunks_mut(kp)
        .zip(src.par_chunks(k))
        .for_each(|(d, s)| copy_padded(d, s));
}

/// `dst` = `src` followed by zeros (one zero-padded operand row in staging memory).
pub(crate) fn copy_padded(dst: &mut [i8], src: &[i8]) {
    let (head, tail) = dst.split_at_mut(src.len());
    head.copy_from_slice(src);
    tail.fill(0);
}

/// Page-locked host buffers, reused across calls, through which operands and results
/// cross PCIe: on the H100 host, copies from pageable memory ran at 4.4-15 GB/s, from
/// pinned memory at 50-55 GB/s.
/// Each grows to the largest request up to [`MAX_PINNED_BYTES`]; a larger request is
/// served from ordinary heap memory instead.
#[derive(Default)]
struct Staging {
    up: HostBuf<i8>,
    down: HostBuf<i32>,
}

/// Upper bound on each staging buffer's pinned size.
const MAX_PINNED_BYTES: usize = 1 << 30;

#[derive(Default)]
enum HostBuf<T> {
    #[default]
    Empty,
    Pinned(PinnedHostSlice<T>),
    Heap(Vec<T>),
}

impl<T: DeviceRepr + ValidAsZeroBits + Copy + Default> HostBuf<T> {
    /// A slice of exactly `len` elements (contents unspecified), growing the buffer if
    /// needed.
    fn get(&mut self, ctx: &Arc<CudaContext>, len: usize, flags: u32) -> Result<&mut [T]> {
        let have = match self {
            Self::Empty => 0,
            Self::Pinned(p) => p.len(),
            Self::Heap(v) => v.len(),
        };
        if have < len {
            *self = Self::Empty; // free the old buffer first
            let bytes = len.saturating_mul(std::mem::size_of::<T>());
            *self = if bytes <= MAX_PINNED_BYTES {
                let cap = len
                    .next_power_of_two()
                    .min(MAX_PINNED_BYTES / std::mem::size_of::<T>())
                    .max(len);
                // SAFETY: the memory is uninitialised, but `T` is a plain integer type
                // (`ValidAsZeroBits`), for which every bit pattern is a valid value.
                Self::Pinned(
                    unsafe { ctx.alloc_pinned_with_flags::<T>(cap, flags) }
                        .map_err(cu("alloc pinned host memory"))?,
                )
            } else {
                Self::Heap(vec![T::default(); len])
            };
        }
        Ok(match self {
            Self::Empty => &mut [],
            Self::Pinned(p) => &mut p.as_mut_slice().map_err(cu("pinned memory"))?[..len],
            Self::Heap(v) => &mut v[..len],
        })
    }
}

impl Staging {
    /// Upload staging: write-combined, since the host only writes it.
    fn up(&mut self, ctx: &Arc<CudaContext>, len: usize) -> Result<&mut [i8]> {
        self.up
            .get(ctx, len, cudarc::driver::sys::CU_MEMHOSTALLOC_WRITECOMBINED)
    }

    /// Download staging: ordinary cached pinned memory, since the host reads it.
    fn down(&mut self, ctx: &Arc<CudaContext>, len: usize) -> Result<&mut [i32]> {
        self.down.get(ctx, len, 0)
    }
}

/// Checked launch dimensions of a batched dp4a product.
struct LaunchDims {
    m: i32,
    n: i32,
    kw: i32,
}

impl LaunchDims {
    fn new(
        a: &CudaSlice<i8>,
        bt: &CudaSlice<i8>,
        c: &CudaSlice<i32>,
        m: usize,
        n: usize,
        k_padded: usize,
        batch: usize,
    ) -> Result<Self> {
        if !k_padded.is_multiple_of(4) || batch == 0 || m == 0 || n == 0 {
            return Err(Error::InvalidParameter(
                "k must be padded to a multiple of 4 and every dimension non-zero".into(),
            ));
        }
        let prod = |x: usize, y: usize, z: usize| {
            x.checked_mul(y)
                .and_then(|v| v.checked_mul(z))
                .unwrap_or(usize::MAX)
        };
        let sizes = [
            prod(batch, m, k_padded),
            prod(batch, n, k_padded),
            prod(batch, m, n),
        ];
        if a.len() < sizes[0] || bt.len() < sizes[1] || c.len() < sizes[2] {
            return Err(Error::InvalidParameter("device buffers too small".into()));
        }
        Ok(Self {
            m: as_i32(m)?,
            n: as_i32(n)?,
            kw: as_i32(k_padded / 4)?,
        })
    }
}

fn as_i32(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::InvalidParameter(format!("{v} exceeds i32")))
}

fn as_u32(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::InvalidParameter(format!("{v} exceeds u32")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_never_panics_and_explains_absence() {
        match probe() {
            Ok(n) => assert!(n > 0),
            Err(reason) => {
                assert!(!reason.is_empty());
                eprintln!("skip: no CUDA ({reason})");
            }
        }
    }

    #[test]
    fn arch_mapping_requires_dp4a() {
        assert_eq!(arch_for(5, 2), None);
        assert_eq!(arch_for(9, 0), Some("compute_90"));
        assert_eq!(arch_for(12, 0), Some("compute_90"));
    }
}
