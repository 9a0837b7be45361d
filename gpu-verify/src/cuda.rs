//! CUDA int8 GEMM through cudarc (dynamic loading): cuBLAS `gemm_ex` with int8 inputs and
//! int32 compute/output, and an NVRTC-compiled `dp4a` kernel for batches of small products
//! (the tile recomputations of verification).
//!
//! cudarc opens `libcuda`, `libcublas` and `libnvrtc` lazily and *panics* if a library is
//! missing, so [`probe`] checks for each library and for a device before anything else is
//! touched; callers get a reason string instead of a panic on machines without a GPU.
//! Integer arithmetic is exact on the GPU as on the CPU, so results are bit-identical.

#![allow(unsafe_code)] // cudarc's library probes, raw cuBLAS calls and kernel launches.

use std::sync::Arc;

use cudarc::cublas::{sys as blas_sys, CudaBlas};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, LaunchConfig,
    PushKernelArg,
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
"#;

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

/// A CUDA device with a cuBLAS handle and the compiled dp4a kernel.
pub struct CudaGemm {
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    kernel: CudaFunction,
    name: String,
}

impl std::fmt::Debug for CudaGemm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaGemm")
            .field("device", &self.name)
            .finish()
    }
}

/// Pads rows of `len` i8 to a multiple of 4 bytes (zeros contribute nothing to products).
fn pad_rows(data: &[i8], rows: usize, len: usize, padded: usize) -> Vec<i8> {
    if len == padded {
        return data.to_vec();
    }
    let mut out = vec![0i8; rows * padded];
    for r in 0..rows {
        out[r * padded..r * padded + len].copy_from_slice(&data[r * len..(r + 1) * len]);
    }
    out
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
        Ok(Self {
            stream,
            blas,
            kernel,
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
        // cuBLAS' integer path wants the "TN" form and leading dimensions that are
        // multiples of 4, so k, m and n are zero padded to multiples of 4.
        let (kp, mp, np) = (
            k.next_multiple_of(4),
            m.next_multiple_of(4),
            n.next_multiple_of(4),
        );
        let mut ap = vec![0i8; mp * kp];
        ap[..m * kp].copy_from_slice(&pad_rows(a.data(), m, k, kp));
        let bt = b.transpose();
        let mut bp = vec![0i8; np * kp];
        bp[..n * kp].copy_from_slice(&pad_rows(bt.data(), n, k, kp));
        let da = self.stream.clone_htod(&ap).map_err(cu("upload A"))?;
        let db = self.stream.clone_htod(&bp).map_err(cu("upload B"))?;
        let mut dc = self
            .stream
            .alloc_zeros::<i32>(mp * np)
            .map_err(cu("alloc C"))?;
        self.gemm_ex_device(&da, &db, &mut dc, mp, np, kp)?;
        let c = self.stream.clone_dtoh(&dc).map_err(cu("download C"))?;
        let mut out = Vec::with_capacity(m * n);
        for r in 0..m {
            out.extend_from_slice(&c[r * np..r * np + n]);
        }
        MatrixI32::new(m, n, out)
    }

    /// Raw cuBLAS call on device buffers: `c (m×n row-major) = a (m×k row-major) ·
    /// bt (n×k row-major)ᵀ`; m, n, k multiples of 4. Public for the GPU benchmark.
    pub fn gemm_ex_device(
        &self,
        a: &CudaSlice<i8>,
        bt: &CudaSlice<i8>,
        c: &mut CudaSlice<i32>,
        m: usize,
        n: usize,
        k: usize,
    ) -> Result<()> {
        if !m.is_multiple_of(4) || !n.is_multiple_of(4) || !k.is_multiple_of(4) {
            return Err(Error::InvalidParameter(
                "cuBLAS int8 dimensions must be multiples of 4".into(),
            ));
        }
        if a.len() < m * k || bt.len() < n * k || c.len() < m * n {
            return Err(Error::InvalidParameter("device buffers too small".into()));
        }
        let dim = |v: usize| {
            i32::try_from(v).map_err(|_| Error::InvalidParameter(format!("{v} exceeds i32")))
        };
        let (mi, ni, ki) = (dim(m)?, dim(n)?, dim(k)?);
        let alpha: i32 = 1;
        let beta: i32 = 0;
        let (pa, _ra) = a.device_ptr(&self.stream);
        let (pb, _rb) = bt.device_ptr(&self.stream);
        let (pc, _rc) = c.device_ptr_mut(&self.stream);
        // Column-major view: Cᵀ (n×m, ld n) = op(X)·Y with X = bt seen as k×n (ld k, so
        // op = T gives n×k = Bᵀ) and Y = a seen as k×m (ld k, = Aᵀ).
        // SAFETY: the pointers come from live device allocations of at least the sizes
        // checked above; alpha/beta point to host i32 as CUBLAS_COMPUTE_32I requires; the
        // `_r*` guards keep the buffers' stream ordering alive until the call is queued.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *self.blas.handle(),
                blas_sys::cublasOperation_t::CUBLAS_OP_T,
                blas_sys::cublasOperation_t::CUBLAS_OP_N,
                ni,
                mi,
                ki,
                (&alpha as *const i32).cast(),
                pb as *const std::ffi::c_void,
                blas_sys::cudaDataType::CUDA_R_8I,
                ki,
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

    /// Launches the dp4a kernel on device buffers: `batch` problems, each
    /// `c (m×n) = a (m×kw words) · bt (n×kw words)ᵀ`, with the given strides in bytes
    /// (`sa`, `sb`, multiples of 4) and elements (`sc`).
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
        if !k_padded.is_multiple_of(4) || batch == 0 {
            return Err(Error::InvalidParameter(
                "k must be padded to a multiple of 4".into(),
            ));
        }
        if a.len() < batch * m * k_padded
            || bt.len() < batch * n * k_padded
            || c.len() < batch * m * n
        {
            return Err(Error::InvalidParameter("device buffers too small".into()));
        }
        let as_i32 = |v: usize| {
            i32::try_from(v).map_err(|_| Error::InvalidParameter(format!("{v} exceeds i32")))
        };
        let as_u32 = |v: usize| {
            u32::try_from(v).map_err(|_| Error::InvalidParameter(format!("{v} exceeds u32")))
        };
        let (mi, ni, kw) = (as_i32(m)?, as_i32(n)?, as_i32(k_padded / 4)?);
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
            .arg(&mi)
            .arg(&ni)
            .arg(&kw)
            .arg(&sa)
            .arg(&sb)
            .arg(&sc);
        // SAFETY: the argument list matches the kernel signature (two int8 buffers read as
        // int words, an int32 output, three ints, three 64-bit strides); buffer sizes were
        // checked above against every index the kernel computes (guarded by m, n, kw).
        unsafe { args.launch(cfg) }.map_err(cu("launch gemm_i8_dp4a"))?;
        Ok(())
    }

    /// `C = A × B` with the NVRTC dp4a kernel, including transfers.
    pub fn gemm_dp4a(&self, a: &MatrixI8, b: &MatrixI8) -> Result<MatrixI32> {
        check_shape(a.rows(), a.cols(), b.rows(), b.cols())?;
        let (m, k, n) = (a.rows(), a.cols(), b.cols());
        let kp = k.next_multiple_of(4);
        let bt = b.transpose();
        let out = self.batched(
            &pad_rows(a.data(), m, k, kp),
            &pad_rows(bt.data(), n, k, kp),
            m,
            n,
            kp,
            1,
        )?;
        MatrixI32::new(m, n, out)
    }

    /// Batch of `batch` products, host in / host out: `a` holds `batch` blocks of m×kp,
    /// `bt` holds `batch` blocks of n×kp (columns of B), result `batch` blocks of m×n.
    pub fn batched(
        &self,
        a: &[i8],
        bt: &[i8],
        m: usize,
        n: usize,
        kp: usize,
        batch: usize,
    ) -> Result<Vec<i32>> {
        if a.len() != batch * m * kp || bt.len() != batch * n * kp {
            return Err(Error::InvalidParameter("batched operand lengths".into()));
        }
        let da = self.stream.clone_htod(a).map_err(cu("upload A"))?;
        let db = self.stream.clone_htod(bt).map_err(cu("upload B"))?;
        let mut dc = self
            .stream
            .alloc_zeros::<i32>(batch * m * n)
            .map_err(cu("alloc C"))?;
        self.dp4a_device(&da, &db, &mut dc, m, n, kp, batch)?;
        self.stream.clone_dtoh(&dc).map_err(cu("download C"))
    }
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
