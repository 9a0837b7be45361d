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
