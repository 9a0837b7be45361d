//! x86-64 SIMD micro-kernels (AVX-512 VNNI and AVX2), selected at run time.
//!
//! Each kernel is a `#[target_feature]` function reached only through a safe wrapper
//! that (1) re-checks the feature with `is_x86_feature_detected!` (cached; the driver also
//! checks `CpuKernel::is_supported` before dispatching) and falls back to scalar code if it
//! is missing, and (2) asserts the slice lengths the pointer arithmetic relies on.

#![allow(unsafe_code)] // Intrinsics and raw-pointer loads/stores; see the SAFETY notes.

use std::arch::x86_64::*;

use super::MicroKernel;

pub(crate) fn has_vnni() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vnni")
}

/// AVX-512F and BW (512-bit integer lanes of every width), without VNNI.
pub(crate) fn has_avx512bw() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
}

pub(crate) fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
}

/// `dot_i8` compiled for AVX2, so the widening multiply-add is vectorised 16 lanes wide.
pub(crate) fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
    #[target_feature(enable = "avx2")]
    unsafe fn inner(a: &[i8], b: &[i8]) -> i32 {
        super::dot_i8_portable(a, b)
    }
    if !has_avx2() {
        return super::dot_i8_portable(a, b);
    }
    // SAFETY: avx2 is available (checked above); `inner` only uses safe slice code.
    unsafe { inner(a, b) }
}

/// Dot products of up to four rows with up to four columns (every slice `k` long) with
/// AVX-512 VNNI: `out[r][c] = rows[r] · cols[c]`; entries beyond the given rows and
/// columns are unspecified. Each 64-byte chunk of a row is loaded once for four columns
/// and vice versa (16 `vpdpbusd` per 8 loads), where `dot_i8` per pair loads both for
/// every product. Rows are made unsigned by adding 128 (flipping the sign bit) and
/// `128·Σ col` is subtracted at the end; accumulation wraps mod 2³², which is exact since
/// the true value fits in i32 (`k <= MAX_K`). `None` without VNNI or on bad lengths.
pub(crate) fn dot_block_vnni(rows: &[&[i8]], cols: &[&[i8]], k: usize) -> Option<[[i32; 4]; 4]> {
    let (r0, c0) = (rows.first()?, cols.first()?);
    if rows.len() > 4
        || cols.len() > 4
        || k > super::MAX_K
        || rows.iter().chain(cols).any(|v| v.len() != k)
        || !has_vnni()
    {
        return None;
    }
    // Missing rows and columns repeat the first one; their results are not used.
    let r: [&[i8]; 4] = std::array::from_fn(|i| *rows.get(i).unwrap_or(r0));
    let c: [&[i8]; 4] = std::array::from_fn(|i| *cols.get(i).unwrap_or(c0));
    // SAFETY: the CPU supports avx512f/bw/vnni (checked above) and every slice is exactly
    // `k` bytes long, which is all `dot_block_inner` reads.
    Some(unsafe { dot_block_inner(&r, &c, k) })
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn dot_block_inner(r: &[&[i8]; 4], c: &[&[i8]; 4], k: usize) -> [[i32; 4]; 4] {
    let flip = _mm512_set1_epi8(i8::MIN);
    let ones = _mm512_set1_epi8(1);
    let mut acc = [[_mm512_setzero_si512(); 4]; 4];
    let mut csum = [_mm512_setzero_si512(); 4];
    let mut off = 0;
    while off < k {
        let left = k - off;
        let mask: __mmask64 = if left >= 64 { !0 } else { (1u64 << left) - 1 };
        // SAFETY (loads): `off < k` keeps the pointer inside each slice, and the mask
        // limits the bytes read to `off..min(off + 64, k)`; masked-off bytes are neither
        // read nor able to fault.
        let b: [__m512i; 4] = std::array::from_fn(|j| unsafe {
            _mm512_maskz_loadu_epi8(mask, c[j].as_ptr().add(off))
        });
        for (j, bj) in b.iter().enumerate() {
            csum[j] = _mm512_dpbusd_epi32(csum[j], ones, *bj);
        }
        for (i, row) in r.iter().enumerate() {
            // Zeroed tail bytes become 128 here but meet zero bytes of B.
            let a = _mm512_xor_si512(
                unsafe { _mm512_maskz_loadu_epi8(mask, row.as_ptr().add(off)) },
                flip,
            );
            for (j, bj) in b.iter().enumerate() {
                acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], a, *bj);
            }
        }
        off += 64;
    }
    let sums = csum.map(|v| _mm512_reduce_add_epi32(v));
    acc.map(|row| {
        let mut out = [0i32; 4];
        for ((o, v), s) in out.iter_mut().zip(row).zip(sums) {
            *o = _mm512_reduce_add_epi32(v).wrapping_sub(s.wrapping_mul(128));
        }
        out
    })
}

/// AVX-512 VNNI: 6 rows × 64 columns of C in 24 zmm accumulators.
pub(crate) struct Vnni;

const V_MR: usize = 6;
const V_NV: usize = 4;
const V_NR: usize = V_NV * 16;

impl MicroKernel for Vnni {
    const MR: usize = V_MR;
    const NR: usize = V_NR;
    const KG: usize = 4;
    type A = i8;
    type B = u8;
    const SHIFTED_B: bool = true;

    fn enc_a(v: i8) -> i8 {
        v
    }

    fn enc_b(v: i8) -> u8 {
        // B + 128 as an unsigned byte (flipping the sign bit adds 128).
        (v as u8) ^ 0x80
    }

    fn kernel(a: &[i8], b: &[u8], groups: usize, out: &mut [i32], ldc: usize, accumulate: bool) {
        assert!(ldc >= V_NR && a.len() >= groups * V_MR * 4 && b.len() >= groups * V_NR * 4);
        assert!(out.len() >= (V_MR - 1) * ldc + V_NR);
        if !has_vnni() {
            // Unreachable through the public API (dispatch checks support first); falling
            // back keeps the function sound even if called directly.
            return generic_kernel(
                a,
                b,
                groups,
                out,
                (V_MR, V_NR, 4),
                ldc,
                accumulate,
                i32::from,
            );
        }
        // SAFETY: the CPU supports avx512f/bw/vnni (checked above) and the length checks
        // above cover every read of `a` (groups*MR*4 bytes), `b` (groups*NR*4 bytes) and
        // every access to `out` (rows ii*ldc .. ii*ldc+NR for ii < MR).
        unsafe {
            vnni_kernel(
                a.as_ptr(),
                b.as_ptr(),
                groups,
                out.as_mut_ptr(),
                ldc,
                accumulate,
            )
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni_kernel(
    a: *const i8,
    b: *const u8,
    groups: usize,
    out: *mut i32,
    ldc: usize,
    accumulate: bool,
) {
    let mut acc = [[_mm512_setzero_si512(); V_NV]; V_MR];
    for g in 0..groups {
        let bp = b.add(g * V_NR * 4);
        let mut bv = [_mm512_setzero_si512(); V_NV];
        for (v, slot) in bv.iter_mut().enumerate() {
            *slot = _mm512_loadu_si512(bp.add(v * 64).cast());
        }
        let ap = a.add(g * V_MR * 4);
        for (ii, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_epi32(ap.add(ii * 4).cast::<i32>().read_unaligned());
            for (slot, &bvv) in row.iter_mut().zip(&bv) {
                // u8 (B + 128) × s8 (A), four products summed per lane; wraps mod 2³².
                *slot = _mm512_dpbusd_epi32(*slot, bvv, av);
            }
        }
    }
    for (ii, row) in acc.iter().enumerate() {
        for (v, slot) in row.iter().enumerate() {
            let p = out.add(ii * ldc + v * 16);
            let val = if accumulate {
                _mm512_add_epi32(*slot, _mm512_loadu_si512(p.cast()))
            } else {
                *slot
            };
            _mm512_storeu_si512(p.cast(), val);
        }
    }
}

/// AVX2: 6 rows × 16 columns of C in 12 ymm accumulators, operands widened to i16.
pub(crate) struct Avx2;

const A_MR: usize = 6;
const A_NR: usize = 16;

impl MicroKernel for Avx2 {
    const MR: usize = A_MR;
    const NR: usize = A_NR;
    const KG: usize = 2;
    type A = i16;
    type B = i16;
    const SHIFTED_B: bool = false;

    fn enc_a(v: i8) -> i16 {
        i16::from(v)
    }

    fn enc_b(v: i8) -> i16 {
        i16::from(v)
    }

    fn kernel(a: &[i16], b: &[i16], groups: usize, out: &mut [i32], ldc: usize, accumulate: bool) {
        assert!(ldc >= A_NR && a.len() >= groups * A_MR * 2 && b.len() >= groups * A_NR * 2);
        assert!(out.len() >= (A_MR - 1) * ldc + A_NR);
        if !has_avx2() {
            return generic_kernel(
                a,
                b,
                groups,
                out,
                (A_MR, A_NR, 2),
                ldc,
                accumulate,
                i32::from,
            );
        }
        // SAFETY: avx2 is available (checked above); the asserted lengths cover all reads
        // (groups*MR*2 and groups*NR*2 i16) and every access to `out` (MR rows of NR at
        // stride ldc).
        unsafe {
            avx2_kernel(
                a.as_ptr(),
                b.as_ptr(),
                groups,
                out.as_mut_ptr(),
                ldc,
                accumulate,
            )
        }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn avx2_kernel(
    a: *const i16,
    b: *const i16,
    groups: usize,
    out: *mut i32,
    ldc: usize,
    accumulate: bool,
) {
    let mut acc = [[_mm256_setzero_si256(); 2]; A_MR];
    for g in 0..groups {
        let bp = b.add(g * A_NR * 2);
        let b0 = _mm256_loadu_si256(bp.cast());
        let b1 = _mm256_loadu_si256(bp.add(16).cast());
        let ap = a.add(g * A_MR * 2);
        for (ii, row) in acc.iter_mut().enumerate() {
            let av = _mm256_set1_epi32(ap.add(ii * 2).cast::<i32>().read_unaligned());
            // Pairs of i16 products summed into i32 lanes: exact (|sum| <= 2¹⁵).
            row[0] = _mm256_add_epi32(row[0], _mm256_madd_epi16(b0, av));
            row[1] = _mm256_add_epi32(row[1], _mm256_madd_epi16(b1, av));
        }
    }
    for (ii, row) in acc.iter().enumerate() {
        for (h, slot) in row.iter().enumerate() {
            let p = out.add(ii * ldc + h * 8);
            let val = if accumulate {
                _mm256_add_epi32(*slot, _mm256_loadu_si256(p.cast()))
            } else {
                *slot
            };
            _mm256_storeu_si256(p.cast(), val);
        }
    }
}

/// Scalar evaluation of the packed format, used only if a SIMD kernel is reached on a CPU
/// without the feature (never through the public API).
#[allow(clippy::too_many_arguments)]
fn generic_kernel<A: Copy, B: Copy>(
    a: &[A],
    b: &[B],
    groups: usize,
    out: &mut [i32],
    (mr, nr, kg): (usize, usize, usize),
    ldc: usize,
    accumulate: bool,
    eb: impl Fn(B) -> i32,
) where
    i32: From<A>,
{
    for ii in 0..mr {
        for jj in 0..nr {
            let mut s = 0i32;
            for g in 0..groups {
                for t in 0..kg {
                    let av = i32::from(a[(g * mr + ii) * kg + t]);
                    s = s.wrapping_add(av.wrapping_mul(eb(b[(g * nr + jj) * kg + t])));
                }
            }
            let o = &mut out[ii * ldc + jj];
            *o = if accumulate { o.wrapping_add(s) } else { s };
        }
    }
}
