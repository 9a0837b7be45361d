//! Freivalds' check of a full output: is `C = A·B`?
//!
//! For a random vector `r`, compare `A·(B·r)` with `C·r`: `O(mk + kn + mn)` work instead
//! of `O(mkn)`. All arithmetic is in the ring `Z/2⁶⁴` (wrapping `u64` operations, inputs
//! sign-extended), with each element of `r` uniform in `[−2³¹, 2³¹)`.
//!
//! # Soundness
//!
//! Reduction mod 2⁶⁴ is a ring homomorphism, so `A·(B·r) ≡ (A·B)·r` and a trial accepts
//! row `i` exactly when `dᵢ·r ≡ 0 (mod 2⁶⁴)` for the row `dᵢ` of `D = C − A·B`. Entry
//! bounds: C is i32, so `|Cᵢⱼ| ≤ 2³¹`; `|(A·B)ᵢⱼ| ≤ 128·128·k ≤ 2¹⁴·MAX_K < 2³¹`
//! (`check_shape` refuses `k > MAX_K`, and a compile-time assertion below keeps that
//! bound true). Hence every entry of D satisfies `0 < |dᵢⱼ| < 2³²` when wrong, so its
//! 2-adic valuation `v` is at most 31: `dᵢⱼ = 2ᵛ·u` with `u` odd.
//!
//! Fix a wrong entry `j` of row `i` and every coordinate of `r` but `rⱼ`; the trial
//! accepts iff `2ᵛ·u·rⱼ ≡ −s (mod 2⁶⁴)` for some fixed `s`. As `u` is invertible mod
//! 2⁶⁴⁻ᵛ, the solutions `rⱼ` are one residue class mod `2⁶⁴⁻ᵛ ≥ 2³³`, so at most one of the
//! 2³² consecutive values `rⱼ` is drawn from solves it: one trial accepts a wrong row with
//! probability at most `2⁻³²` ([`TRIAL_ESCAPE_LOG2`]), whatever the error, the other entries,
//! `k` and `n` are. Trials draw independent vectors (SHA-256 in counter mode, modelled as a
//! random function), so `t` trials accept a wrong C with probability at most `2⁻³²ᵗ`:
//! [`DEFAULT_TRIALS`] = 2 gives `2⁻⁶⁴`. (Drawing `rⱼ` from all of `Z/2⁶⁴` would give `2ᵛ⁻⁶⁴ ≤ 2⁻³³`
//! per trial, but `B·r` would need twice the digits and `C·r` a `vpmulld` more; see below.)
//!
//! The argument needs `r` unknown to whoever produced C: the caller's seed must be secret
//! and fresh (the consumer draws it from the OS after C is committed).
//!
//! # Speed
//!
//! Every dot product is exact in `Z/2⁶⁴` without 64-bit multiplies (AVX2 has none):
//! * i8 rows (B and A): r in balanced base-2¹⁶ digits, `r ≡ Σ_q 2¹⁶ᑫ·d_q` with
//!   `d_q ∈ [−2¹⁵, 2¹⁵)`; `Σ x·d_q` with `vpmaddwd` (sixteen i16 products per instruction),
//!   lanes widened to i64 before they could overflow where the digit's sum must be exact.
//!   A trial's own vector (for `B·r`) needs two digits: digits 2 and 3 are zero but for its
//!   elements in `[2³¹ − 2¹⁵, 2³¹)` (one in 2¹⁷), which are added one by one. `B·r` (for
//!   `A·(B·r)`) is a full element of `Z/2⁶⁴` and takes all four.
//! * i32 rows (C): `r = 2³²·h + l` with `l` signed: `x·r ≡ x·l + 2³²·(x·h mod 2³²)`, the
//!   first an exact signed 32×32→64 product (`vpmuldq`), the second a `vpmulld`, which a trial's
//!   own vector (`h = 0`) skips.
//!
//! Trials run in pairs through two-trial kernels (each vector of a row loaded and widened once for
//! both). Where AVX-512BW is available, the i8 rows (B for `B·r`, A for `A·(B·r)`) go four at a time
//! through a 512-bit kernel instead, one trial per pass: a trial's digits are eight bytes per element
//! against the row's one, and each load of them then serves four rows (`A·(B·r)` at 4096³ on one
//! thread: 7.7-8.2 ms before, 5.9-6.3 ms after); with AVX-512 VNNI, `vpdpwssd` does each multiply-add
//! and its add in one. C's rows, given a band at a time ([`CProducts::add_rows`]), go four at a time
//! through a two-trial `vpmuldq` kernel for the same reason (eight bytes of vectors per element
//! against the row's four). No matrix need be read by the check at all:
//! [`CProducts`] takes `C·r` from parts of its rows as they arrive (a download being converted), and
//! [`InputProducts`] takes `B·r` and `A·(B·r)` from bands of their rows while A and B are checked
//! against their roots ([`crate::commit::commit_b_with`], [`crate::commit::commit_a_with`]); then
//! [`check_all`] compares. [`check_products`] finishes a check from `C·r` alone, reading A and B.
//!
//! Without AVX2 the plain wrapping `u64` sum is used; tests hold every path to it. Rows are
//! spread over rayon's pool; every row's result is exact, so the report does not depend on
//! scheduling.
//!
//! The vector is drawn from SHA-256 in counter mode over the caller's seed, so results are
//! reproducible from the seed.

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::gemm::{check_shape, MAX_K};
use crate::matrix::{MatrixI32, MatrixI8};

/// `log2` of the probability bound with which one trial accepts a wrong C: `2⁻³²`.
pub const TRIAL_ESCAPE_LOG2: u32 = 32;

/// Trials for a false-accept probability of at most `2⁻⁶⁴`.
pub const DEFAULT_TRIALS: u32 = 2;

/// Most trials one call runs (each costs a full pass; 64 trials bound escape by 2⁻²⁰⁴⁸).
pub const MAX_TRIALS: u32 = 64;

// The soundness bound needs |(A·B)ᵢⱼ| < 2³¹ for every k the GEMM accepts.
const _: () = assert!(128 * 128 * (MAX_K as u64) < (1u64 << 31));

const TAG: &[u8] = b"lode/gpu-verify/freivalds/v3";

/// `n` elements uniform in `[−2³¹, 2³¹)` from `seed` and `trial` (eight per SHA-256 block), as elements of
/// `Z/2⁶⁴` (sign-extended).
pub fn random_vector(seed: &[u8; 32], trial: u32, n: usize) -> Vec<u64> {
    let mut out = Vec::with_capacity(n);
    let mut counter = 0u64;
    while out.len() < n {
        let mut h = Sha256::new();
        h.update(TAG);
        h.update(seed);
        h.update(trial.to_le_bytes());
        h.update(counter.to_le_bytes());
        counter += 1;
        let d: [u8; 32] = h.finalize().into();
        for c in d.chunks_exact(4) {
            if out.len() < n {
                let x = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                out.push(i64::from(x) as u64);
            }
        }
    }
    out
}

/// One trial's vector in the forms the dot products use.
#[derive(Clone)]
struct TrialVector {
    /// The elements of `Z/2⁶⁴`.
    r: Vec<u64>,
    /// `r = 2³²·hi + lo` with `lo` signed in `[−2³¹, 2³¹)`, for i32 rows.
    lo: Vec<i32>,
    hi: Vec<i32>,
    /// Balanced base-2¹⁶ digits, `r ≡ Σ_q 2¹⁶ᑫ·digits[q] (mod 2⁶⁴)`, for i8 rows.
    digits: [Vec<i16>; 4],
    /// Every element is a sign-extended i32 (a trial's own vector): then `hi` is zero and the i32
    /// kernels skip it, and the i8 kernels take only the first two digits, adding the few elements
    /// whose upper digits are not zero ([`Self::high`]) one by one.
    narrow: bool,
    /// For a narrow vector, the elements whose digits 2 or 3 are not zero, ascending: those in
    /// `[2³¹ − 2¹⁵, 2³¹)`, whose balanced second digit would be 2¹⁵ (one in 2¹⁷ of a trial's elements).
    high: Vec<usize>,
}

impl TrialVector {
    fn new(r: Vec<u64>) -> Self {
        let lo: Vec<i32> = r.iter().map(|&x| x as u32 as i32).collect();
        let hi = r
            .iter()
            .zip(&lo)
            .map(|(&x, &l)| (x.wrapping_sub(l as i64 as u64) >> 32) as u32 as i32)
            .collect();
        let mut digits: [Vec<i16>; 4] = std::array::from_fn(|_| Vec::with_capacity(r.len()));
        for &x in &r {
            let mut v = x;
            for d in &mut digits {
                let q = v as u16 as i16;
                d.push(q);
                v = v.wrapping_sub(q as i64 as u64) >> 16;
            }
        }
        let narrow = r.iter().all(|&x| i64::from(x as i32) == x as i64);
        let high = if narrow {
            (0..r.len())
                .filter(|&j| digits[2][j] != 0 || digits[3][j] != 0)
                .collect()
        } else {
            Vec::new()
        };
        Self {
            r,
            lo,
            hi,
            digits,
            narrow,
            high,
        }
    }
}

/// Elements `[from, from + len)` of a [`TrialVector`], in every form (what the kernels read).
#[derive(Clone, Copy)]
struct View<'a> {
    r: &'a [u64],
    lo: &'a [i32],
    hi: &'a [i32],
    digits: [&'a [i16]; 4],
    narrow: bool,
    /// [`TrialVector::high`] within the view, as indices into it.
    high: &'a [usize],
    from: usize,
}

impl TrialVector {
    /// The whole vector.
    #[cfg(test)]
    fn all(&self) -> View<'_> {
        self.view(0, self.r.len())
    }

    /// Elements `[from, from + len)`; the caller keeps them in bounds.
    fn view(&self, from: usize, len: usize) -> View<'_> {
        let at = from..from + len;
        View {
            r: &self.r[at.clone()],
            lo: &self.lo[at.clone()],
            hi: &self.hi[at.clone()],
            digits: self.digits.each_ref().map(|d| &d[at.clone()]),
            narrow: self.narrow,
            high: {
                let (a, b) = (
                    self.high.partition_point(|&j| j < from),
                    self.high.partition_point(|&j| j < from + len),
                );
                &self.high[a..b]
            },
            from,
        }
    }
}

/// `Σ xⱼ·rⱼ mod 2⁶⁴`, x sign-extended: the definition every fast path must match.
#[inline(always)]
fn dot_plain<X: Copy + Into<i32>>(x: &[X], r: &[u64]) -> u64 {
    x.iter().zip(r).fold(0u64, |s, (&x, &r)| {
        s.wrapping_add((i64::from(x.into()) as u64).wrapping_mul(r))
    })
}

/// `Σ xⱼ·(2³²·digits[2]ⱼ + 2⁴⁸·digits[3]ⱼ) mod 2⁶⁴` over a narrow view's [`View::high`] elements below
/// `body`: what the i8 kernels leave out when they take only two digits.
fn high_digits(x: &[i8], v: View<'_>, body: usize) -> u64 {
    v.high
        .iter()
        .map(|&j| j - v.from)
        .take_while(|&j| j < body)
        .fold(0u64, |s, j| {
            let d = ((v.digits[2][j] as i64 as u64) << 32)
                .wrapping_add((v.digits[3][j] as i64 as u64) << 48);
            s.wrapping_add((i64::from(x[j]) as u64).wrapping_mul(d))
        })
}

/// `x·r mod 2⁶⁴` for an i8 row.
fn dot_i8(x: &[i8], v: View<'_>) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if crate::gemm::x86_has_avx2() {
        return avx2::dot_i8(x, v);
    }
    dot_plain(x, v.r)
}

/// `x·r mod 2⁶⁴` for an i32 row.
fn dot_i32(x: &[i32], v: View<'_>) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if crate::gemm::x86_has_avx2() {
        return avx2::dot_i32(x, v);
    }
    dot_plain(x, v.r)
}

/// `[x·r₀, x·r₁] mod 2⁶⁴` for an i8 row and two trials: one read of `x` for both.
fn dot_i8_x2(x: &[i8], v: [View<'_>; 2]) -> [u64; 2] {
    #[cfg(target_arch = "x86_64")]
    if crate::gemm::x86_has_avx2() {
        return avx2::dot_i8_x2(x, v);
    }
    [dot_plain(x, v[0].r), dot_plain(x, v[1].r)]
}

/// `[x·r₀, x·r₁] mod 2⁶⁴` for an i32 row and two trials: one read of `x` for both.
fn dot_i32_x2(x: &[i32], v: [View<'_>; 2]) -> [u64; 2] {
    #[cfg(target_arch = "x86_64")]
    if crate::gemm::x86_has_avx2() {
        return avx2::dot_i32_x2(x, v);
    }
    [dot_plain(x, v[0].r), dot_plain(x, v[1].r)]
}

/// `x·r` for elements `[from, from + x.len())` of every trial vector in `vs`, added to `out` (mod 2⁶⁴);
/// trials taken in pairs (one read of `x` per pair).
fn add_dots<X>(
    x: &[X],
    from: usize,
    vs: &[TrialVector],
    out: &mut [u64],
    one: fn(&[X], View<'_>) -> u64,
    two: fn(&[X], [View<'_>; 2]) -> [u64; 2],
) {
    let len = x.len();
    let mut pairs = vs.chunks_exact(2);
    let mut outs = out.chunks_exact_mut(2);
    for (v, o) in (&mut pairs).zip(&mut outs) {
        let d = two(x, [v[0].view(from, len), v[1].view(from, len)]);
        o[0] = o[0].wrapping_add(d[0]);
        o[1] = o[1].wrapping_add(d[1]);
    }
    for (v, o) in pairs.remainder().iter().zip(outs.into_remainder()) {
        *o = o.wrapping_add(one(x, v.view(from, len)));
    }
}

/// Rows of an i8 matrix taken together by the row-blocked kernel: each load of a trial's digits serves
/// this many rows.
const ROW_BLOCK: usize = 4;

/// `x·r` for every row `x` of `data` (rows of `k` elements) and every trial vector in `vs`, into
/// `out[row·t + trial]` (`out` zeroed, `rows·t` long). Where AVX-512BW is available, rows go
/// [`ROW_BLOCK`] at a time through one kernel, so the trial's digits (eight bytes per element against
/// the row's one) are read from cache once per block of rows instead of once per row; elsewhere, and
/// for the rows left over, row by row.
fn i8_rows_dots(data: &[i8], k: usize, vs: &[TrialVector], out: &mut [u64]) {
    let t = vs.len();
    if k == 0 || t == 0 {
        return;
    }
    data.par_chunks(ROW_BLOCK * k)
        .zip(out.par_chunks_mut(ROW_BLOCK * t))
        .with_min_len(4)
        .for_each(|(rows, o)| {
            #[cfg(target_arch = "x86_64")]
            if rows.len() == ROW_BLOCK * k && avx512::available() {
                let x: [&[i8]; ROW_BLOCK] = std::array::from_fn(|r| &rows[r * k..(r + 1) * k]);
                for (tr, v) in vs.iter().enumerate() {
                    let d = avx512::dot_i8_rows(x, v.view(0, k));
                    for (r, d) in d.into_iter().enumerate() {
                        o[r * t + tr] = d;
                    }
                }
                return;
            }
            for (row, o) in rows.chunks_exact(k).zip(o.chunks_exact_mut(t)) {
                add_dots(row, 0, vs, o, dot_i8, dot_i8_x2);
            }
        });
}

/// AVX2 dot products in `Z/2⁶⁴`, exact by construction (see each function).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // Intrinsics on bounds-checked slices; see the SAFETY notes.
mod avx2 {
    use std::arch::x86_64::*;

    use super::{dot_plain, View};

    /// Elements per i32 accumulation block of the i8 kernel: 128 steps of 16, each adding
    /// at most `2·128·2¹⁵ = 2²³` to a lane, so a lane stays below 2³⁰.
    const I8_BLOCK: usize = 2048;

    /// Bytes of a row fetched ahead of the loads (rows of A, B and C stream from memory).
    const PREFETCH: usize = 1024;

    /// `x·r` for i8 x with the balanced digits of r: `S_q = Σ xⱼ·digits[q]ⱼ` with
    /// `vpmaddwd` (sixteen products per instruction), then `Σ_q 2¹⁶ᑫ·S_q`. `S₀` and `S₁`
    /// must be exact (they are needed mod 2⁶⁴ and 2⁴⁸): their i32 lanes are widened to
    /// i64 after every block. `S₂` and `S₃` are needed only mod 2³² and 2¹⁶, which
    /// wrapping i32 lanes give.
    pub(super) fn dot_i8(x: &[i8], v: View<'_>) -> u64 {
        let n = x.len();
        assert!(v.r.len() >= n && v.digits.iter().all(|d| d.len() >= n));
        let body = n - n % 16;
        // SAFETY: AVX2 is available (the caller checked `x86_has_avx2`); the kernel reads
        // `body <= n` elements of `x` and of every digit vector, all at least `n` long.
        let fast = unsafe { dot_i8_body(x, v.digits, body) };
        fast.wrapping_add(dot_plain(&x[body..], &v.r[body..n]))
    }

    #[target_feature(enable = "avx2")]
    unsafe fn dot_i8_body(x: &[i8], d: [&[i16]; 4], body: usize) -> u64 {
        let (xp, d0, d1, d2, d3) = (
            x.as_ptr(),
            d[0].as_ptr(),
            d[1].as_ptr(),
            d[2].as_ptr(),
            d[3].as_ptr(),
        );
        let (mut s0, mut s1) = (0i64, 0i64);
        let (mut a2, mut a3) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        let mut j = 0;
        while j < body {
            let end = (j + I8_BLOCK).min(body);
            let (mut a0, mut a1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            while j < end {
                // SAFETY: j + 16 <= body, so every load is in bounds (a prefetch may point
                // past the end: it never faults).
                unsafe {
                    _mm_prefetch::<_MM_HINT_T0>(xp.wrapping_add(j + PREFETCH).cast());
                    let xv = _mm256_cvtepi8_epi16(_mm_loadu_si128(xp.add(j).cast()));
                    let m0 = _mm256_madd_epi16(xv, _mm256_loadu_si256(d0.add(j).cast()));
                    let m1 = _mm256_madd_epi16(xv, _mm256_loadu_si256(d1.add(j).cast()));
                    let m2 = _mm256_madd_epi16(xv, _mm256_loadu_si256(d2.add(j).cast()));
                    let m3 = _mm256_madd_epi16(xv, _mm256_loadu_si256(d3.add(j).cast()));
                    a0 = _mm256_add_epi32(a0, m0);
                    a1 = _mm256_add_epi32(a1, m1);
                    a2 = _mm256_add_epi32(a2, m2);
                    a3 = _mm256_add_epi32(a3, m3);
                }
                j += 16;
            }
            s0 = s0.wrapping_add(lanes_i64(a0));
            s1 = s1.wrapping_add(lanes_i64(a1));
        }
        let (s2, s3) = (lanes_i64(a2) as u64, lanes_i64(a3) as u64);
        (s0 as u64)
            .wrapping_add((s1 as u64) << 16)
            .wrapping_add(s2 << 32)
            .wrapping_add(s3 << 48)
    }

    /// `x·r` for i32 x with `r = 2³²·hi + lo`: `x·lo` exact by `vpmuldq` (even and odd
    /// elements, i64 lanes), `x·hi` mod 2³² by `vpmulld`.
    pub(super) fn dot_i32(x: &[i32], v: View<'_>) -> u64 {
        let n = x.len();
        assert!(v.r.len() >= n && v.lo.len() >= n && v.hi.len() >= n);
        let body = n - n % 8;
        // SAFETY: AVX2 is available (the caller checked); the kernel reads `body <= n`
        // elements of `x`, `lo` and `hi`, all at least `n` long.
        let fast = unsafe { dot_i32_body(x, v.lo, v.hi, body) };
        fast.wrapping_add(dot_plain(&x[body..], &v.r[body..n]))
    }

    #[target_feature(enable = "avx2")]
    unsafe fn dot_i32_body(x: &[i32], lo: &[i32], hi: &[i32], body: usize) -> u64 {
        let (xp, lp, hp) = (x.as_ptr(), lo.as_ptr(), hi.as_ptr());
        let (mut even, mut odd, mut high) = (
            _mm256_setzero_si256(),
            _mm256_setzero_si256(),
            _mm256_setzero_si256(),
        );
        let mut j = 0;
        while j < body {
            // SAFETY: j + 8 <= body, so every load is in bounds (a prefetch may point past
            // the end: it never faults).
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(xp.wrapping_add(j + PREFETCH / 4).cast());
                let xv = _mm256_loadu_si256(xp.add(j).cast());
                let lv = _mm256_loadu_si256(lp.add(j).cast());
                let hv = _mm256_loadu_si256(hp.add(j).cast());
                even = _mm256_add_epi64(even, _mm256_mul_epi32(xv, lv));
                odd = _mm256_add_epi64(
                    odd,
                    _mm256_mul_epi32(_mm256_srli_epi64(xv, 32), _mm256_srli_epi64(lv, 32)),
                );
                high = _mm256_add_epi32(high, _mm256_mullo_epi32(xv, hv));
            }
            j += 8;
        }
        let mut l = [0u64; 8];
        // SAFETY: two 32-byte stores into a 64-byte array.
        unsafe {
            _mm256_storeu_si256(l.as_mut_ptr().cast(), even);
            _mm256_storeu_si256(l.as_mut_ptr().add(4).cast(), odd);
        }
        let low = l.iter().fold(0u64, |s, &x| s.wrapping_add(x));
        low.wrapping_add((lanes_i64(high) as u64) << 32)
    }

    /// [`dot_i8`] for two trials at once: each 16 elements of `x` loaded and widened once.
    pub(super) fn dot_i8_x2(x: &[i8], v: [View<'_>; 2]) -> [u64; 2] {
        let n = x.len();
        for t in v {
            assert!(t.r.len() >= n && t.digits.iter().all(|d| d.len() >= n));
        }
        let body = n - n % 16;
        // SAFETY: AVX2 is available (the caller checked `x86_has_avx2`); the kernel reads
        // `body <= n` elements of `x` and of every digit vector of both trials, all at least
        // `n` long.
        let d = [v[0].digits, v[1].digits];
        let fast = if v[0].narrow && v[1].narrow {
            let f = unsafe { dot_i8_x2_body::<false>(x, d, body) };
            [0, 1].map(|t| f[t].wrapping_add(super::high_digits(x, v[t], body)))
        } else {
            unsafe { dot_i8_x2_body::<true>(x, d, body) }
        };
        [0, 1].map(|t| fast[t].wrapping_add(dot_plain(&x[body..], &v[t].r[body..n])))
    }

    #[target_feature(enable = "avx2")]
    /// `WIDE`: digits 2 and 3 are read; without it they are skipped (the caller adds them).
    unsafe fn dot_i8_x2_body<const WIDE: bool>(
        x: &[i8],
        d: [[&[i16]; 4]; 2],
        body: usize,
    ) -> [u64; 2] {
        let xp = x.as_ptr();
        let p = d.map(|d| d.map(<[i16]>::as_ptr));
        let mut s01 = [[0i64; 2]; 2];
        let mut hi = [[_mm256_setzero_si256(); 2]; 2];
        let mut j = 0;
        while j < body {
            let end = (j + I8_BLOCK).min(body);
            let mut lo = [[_mm256_setzero_si256(); 2]; 2];
            while j < end {
                // SAFETY: j + 16 <= body, so every load is in bounds (a prefetch may point
                // past the end: it never faults).
                unsafe {
                    _mm_prefetch::<_MM_HINT_T0>(xp.wrapping_add(j + PREFETCH).cast());
                    let xv = _mm256_cvtepi8_epi16(_mm_loadu_si128(xp.add(j).cast()));
                    for t in 0..2 {
                        let m0 = _mm256_madd_epi16(xv, _mm256_loadu_si256(p[t][0].add(j).cast()));
                        let m1 = _mm256_madd_epi16(xv, _mm256_loadu_si256(p[t][1].add(j).cast()));
                        lo[t][0] = _mm256_add_epi32(lo[t][0], m0);
                        lo[t][1] = _mm256_add_epi32(lo[t][1], m1);
                        if WIDE {
                            let m2 =
                                _mm256_madd_epi16(xv, _mm256_loadu_si256(p[t][2].add(j).cast()));
                            let m3 =
                                _mm256_madd_epi16(xv, _mm256_loadu_si256(p[t][3].add(j).cast()));
                            hi[t][0] = _mm256_add_epi32(hi[t][0], m2);
                            hi[t][1] = _mm256_add_epi32(hi[t][1], m3);
                        }
                    }
                }
                j += 16;
            }
            for t in 0..2 {
                s01[t][0] = s01[t][0].wrapping_add(lanes_i64(lo[t][0]));
                s01[t][1] = s01[t][1].wrapping_add(lanes_i64(lo[t][1]));
            }
        }
        let mut out = [0u64; 2];
        for t in 0..2 {
            let (s2, s3) = (lanes_i64(hi[t][0]) as u64, lanes_i64(hi[t][1]) as u64);
            out[t] = (s01[t][0] as u64)
                .wrapping_add((s01[t][1] as u64) << 16)
                .wrapping_add(s2 << 32)
                .wrapping_add(s3 << 48);
        }
        out
    }

    /// [`dot_i32`] for two trials at once: each 8 elements of `x` loaded (and their odd
    /// halves shifted) once.
    pub(super) fn dot_i32_x2(x: &[i32], v: [View<'_>; 2]) -> [u64; 2] {
        let n = x.len();
        for t in v {
            assert!(t.r.len() >= n && t.lo.len() >= n && t.hi.len() >= n);
        }
        let body = n - n % 8;
        // SAFETY: AVX2 is available (the caller checked); the kernel reads `body <= n`
        // elements of `x` and of both trials' `lo` and `hi`, all at least `n` long.
        let (lo, hi) = ([v[0].lo, v[1].lo], [v[0].hi, v[1].hi]);
        let fast = if v[0].narrow && v[1].narrow {
            unsafe { dot_i32_x2_body::<false>(x, lo, hi, body) }
        } else {
            unsafe { dot_i32_x2_body::<true>(x, lo, hi, body) }
        };
        [0, 1].map(|t| fast[t].wrapping_add(dot_plain(&x[body..], &v[t].r[body..n])))
    }

    #[target_feature(enable = "avx2")]
    /// `WIDE`: `x·hi` is taken; without it `hi` must be zero (narrow vectors) and is skipped.
    unsafe fn dot_i32_x2_body<const WIDE: bool>(
        x: &[i32],
        lo: [&[i32]; 2],
        hi: [&[i32]; 2],
        body: usize,
    ) -> [u64; 2] {
        let xp = x.as_ptr();
        let (lp, hp) = (lo.map(<[i32]>::as_ptr), hi.map(<[i32]>::as_ptr));
        let mut even = [_mm256_setzero_si256(); 2];
        let mut odd = [_mm256_setzero_si256(); 2];
        let mut high = [_mm256_setzero_si256(); 2];
        let mut j = 0;
        while j < body {
            // SAFETY: j + 8 <= body, so every load is in bounds (a prefetch may point past
            // the end: it never faults).
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(xp.wrapping_add(j + PREFETCH / 4).cast());
                let xv = _mm256_loadu_si256(xp.add(j).cast());
                let xo = _mm256_srli_epi64(xv, 32);
                for t in 0..2 {
                    let lv = _mm256_loadu_si256(lp[t].add(j).cast());
                    even[t] = _mm256_add_epi64(even[t], _mm256_mul_epi32(xv, lv));
                    odd[t] =
                        _mm256_add_epi64(odd[t], _mm256_mul_epi32(xo, _mm256_srli_epi64(lv, 32)));
                    if WIDE {
                        let hv = _mm256_loadu_si256(hp[t].add(j).cast());
                        high[t] = _mm256_add_epi32(high[t], _mm256_mullo_epi32(xv, hv));
                    }
                }
            }
            j += 8;
        }
        let mut out = [0u64; 2];
        for t in 0..2 {
            let mut l = [0u64; 8];
            // SAFETY: two 32-byte stores into a 64-byte array.
            unsafe {
                _mm256_storeu_si256(l.as_mut_ptr().cast(), even[t]);
                _mm256_storeu_si256(l.as_mut_ptr().add(4).cast(), odd[t]);
            }
            let low = l.iter().fold(0u64, |s, &x| s.wrapping_add(x));
            out[t] = low.wrapping_add((lanes_i64(high[t]) as u64) << 32);
        }
        out
    }

    /// The sum of the eight i32 lanes, as i64.
    #[target_feature(enable = "avx2")]
    fn lanes_i64(v: __m256i) -> i64 {
        let mut l = [0i32; 8];
        // SAFETY: one 32-byte store into a 32-byte array.
        unsafe { _mm256_storeu_si256(l.as_mut_ptr().cast(), v) };
        l.iter().map(|&x| i64::from(x)).sum()
    }
}

/// The i8 dot product of [`avx2`] for [`ROW_BLOCK`] rows against one trial (AVX-512F and BW): the same
/// balanced digits and exactness argument, 32 elements per step, each load of the digits used by every
/// row of the block.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // Intrinsics on bounds-checked slices; see the SAFETY notes.
mod avx512 {
    use std::arch::x86_64::*;

    use super::{dot_plain, View, ROW_BLOCK};

    /// Elements per i32 accumulation block: 128 steps of 32, each adding at most `2·128·2¹⁵ = 2²³` to a
    /// lane (two products per lane per step, as in the AVX2 kernel), so a lane stays below 2³⁰.
    const I8_BLOCK: usize = 4096;

    /// Whether AVX-512F and BW are available.
    pub(super) fn available() -> bool {
        crate::gemm::x86_has_avx512bw()
    }

    /// Whether AVX-512 VNNI is available too (`vpdpwssd`: the multiply-add and the add in one).
    pub(super) fn vnni() -> bool {
        crate::gemm::x86_has_vnni()
    }

    /// `[x₀·r, …, x₃·r] mod 2⁶⁴` for [`ROW_BLOCK`] i8 rows of one length.
    pub(super) fn dot_i8_rows(x: [&[i8]; ROW_BLOCK], v: View<'_>) -> [u64; ROW_BLOCK] {
        dot_i8_rows_on(x, v, vnni())
    }

    /// [`dot_i8_rows`] with `vpdpwssd` (`vnni`, which must be available) or without.
    pub(super) fn dot_i8_rows_on(
        x: [&[i8]; ROW_BLOCK],
        v: View<'_>,
        vnni: bool,
    ) -> [u64; ROW_BLOCK] {
        let n = x[0].len();
        assert!(x.iter().all(|r| r.len() == n), "rows of different lengths");
        assert!(v.r.len() >= n && v.digits.iter().all(|d| d.len() >= n));
        assert!(available(), "AVX-512F/BW kernel called without AVX-512F/BW");
        assert!(
            !vnni || self::vnni(),
            "AVX-512 VNNI kernel called without AVX-512 VNNI"
        );
        let body = n - n % 32;
        // SAFETY: AVX-512F/BW are available, and VNNI where `vnni` asks for it (both asserted); the
        // kernel reads `body <= n` elements of every row and of every digit vector, all at least `n` long.
        let fast = match (v.narrow, vnni) {
            (true, false) => unsafe { dot_i8_rows_body::<false>(x, v.digits, body) },
            (true, true) => unsafe { dot_i8_rows_body_vnni::<false>(x, v.digits, body) },
            (false, false) => unsafe { dot_i8_rows_body::<true>(x, v.digits, body) },
            (false, true) => unsafe { dot_i8_rows_body_vnni::<true>(x, v.digits, body) },
        };
        let fast = if v.narrow {
            std::array::from_fn(|r| fast[r].wrapping_add(super::high_digits(x[r], v, body)))
        } else {
            fast
        };
        std::array::from_fn(|r| fast[r].wrapping_add(dot_plain(&x[r][body..], &v.r[body..n])))
    }

    /// The row-blocked kernel's body, once per instruction set: `$madd_add` takes `(acc, x, d)` to
    /// `acc + vpmaddwd(x, d)` (lanes wrap), one `vpdpwssd` where AVX-512 VNNI has it.
    /// `WIDE`: digits 2 and 3 are read; without it they are skipped (the caller adds them).
    macro_rules! rows_body {
        ($name:ident, $features:literal, $madd_add:path) => {
            #[target_feature(enable = $features)]
            unsafe fn $name<const WIDE: bool>(
                x: [&[i8]; ROW_BLOCK],
                d: [&[i16]; 4],
                body: usize,
            ) -> [u64; ROW_BLOCK] {
                let xp = x.map(<[i8]>::as_ptr);
                let dp = d.map(<[i16]>::as_ptr);
                let mut s01 = [[0i64; 2]; ROW_BLOCK];
                let mut hi = [[_mm512_setzero_si512(); 2]; ROW_BLOCK];
                let mut j = 0;
                while j < body {
                    let end = (j + I8_BLOCK).min(body);
                    let mut lo = [[_mm512_setzero_si512(); 2]; ROW_BLOCK];
                    while j < end {
                        // SAFETY: j + 32 <= body, so every load is in bounds.
                        unsafe {
                            let xs: [__m512i; ROW_BLOCK] = std::array::from_fn(|r| {
                                _mm512_cvtepi8_epi16(_mm256_loadu_si256(xp[r].add(j).cast()))
                            });
                            let d0 = _mm512_loadu_si512(dp[0].add(j).cast());
                            let d1 = _mm512_loadu_si512(dp[1].add(j).cast());
                            for (r, &xv) in xs.iter().enumerate() {
                                lo[r][0] = $madd_add(lo[r][0], xv, d0);
                                lo[r][1] = $madd_add(lo[r][1], xv, d1);
                            }
                            if WIDE {
                                let d2 = _mm512_loadu_si512(dp[2].add(j).cast());
                                let d3 = _mm512_loadu_si512(dp[3].add(j).cast());
                                for (r, &xv) in xs.iter().enumerate() {
                                    hi[r][0] = $madd_add(hi[r][0], xv, d2);
                                    hi[r][1] = $madd_add(hi[r][1], xv, d3);
                                }
                            }
                        }
                        j += 32;
                    }
                    for r in 0..ROW_BLOCK {
                        s01[r][0] = s01[r][0].wrapping_add(lanes_i64(lo[r][0]));
                        s01[r][1] = s01[r][1].wrapping_add(lanes_i64(lo[r][1]));
                    }
                }
                std::array::from_fn(|r| {
                    let (s2, s3) = (lanes_i64(hi[r][0]) as u64, lanes_i64(hi[r][1]) as u64);
                    (s01[r][0] as u64)
                        .wrapping_add((s01[r][1] as u64) << 16)
                        .wrapping_add(s2 << 32)
                        .wrapping_add(s3 << 48)
                })
            }
        };
    }

    rows_body!(dot_i8_rows_body, "avx512f,avx512bw", madd_add);
    rows_body!(
        dot_i8_rows_body_vnni,
        "avx512f,avx512bw,avx512vnni",
        _mm512_dpwssd_epi32
    );

    /// `acc + vpmaddwd(x, d)`, lanes wrapping: what one `vpdpwssd` does.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn madd_add(acc: __m512i, x: __m512i, d: __m512i) -> __m512i {
        _mm512_add_epi32(acc, _mm512_madd_epi16(x, d))
    }

    /// `[[xᵣ·r₀, xᵣ·r₁]]` mod 2⁶⁴ for [`ROW_BLOCK`] i32 rows of one length and two narrow trials (their
    /// high halves zero): `x·lo` exact on `vpmuldq`, even and odd elements, sixteen elements a step, each
    /// load of a trial's vector (and its odd half) used by every row of the block.
    pub(super) fn dot_i32_rows_x2(
        x: [&[i32]; ROW_BLOCK],
        v: [View<'_>; 2],
    ) -> [[u64; 2]; ROW_BLOCK] {
        let n = x[0].len();
        assert!(x.iter().all(|r| r.len() == n), "rows of different lengths");
        assert!(v
            .iter()
            .all(|t| t.narrow && t.r.len() >= n && t.lo.len() >= n));
        assert!(available(), "AVX-512F kernel called without AVX-512F");
        let body = n - n % 16;
        // SAFETY: AVX-512F is available (asserted); the kernel reads `body <= n` elements of every row
        // and of both trials' `lo`, all at least `n` long.
        let fast = unsafe { dot_i32_rows_x2_body(x, [v[0].lo, v[1].lo], body) };
        std::array::from_fn(|r| {
            [0, 1].map(|t| fast[r][t].wrapping_add(dot_plain(&x[r][body..], &v[t].r[body..n])))
        })
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn dot_i32_rows_x2_body(
        x: [&[i32]; ROW_BLOCK],
        lo: [&[i32]; 2],
        body: usize,
    ) -> [[u64; 2]; ROW_BLOCK] {
        let xp = x.map(<[i32]>::as_ptr);
        let lp = lo.map(<[i32]>::as_ptr);
        let mut acc = [[_mm512_setzero_si512(); 2]; ROW_BLOCK];
        let mut j = 0;
        while j < body {
            // SAFETY: j + 16 <= body, so every load is in bounds.
            unsafe {
                let l = lp.map(|p| _mm512_loadu_si512(p.add(j).cast()));
                let lo_odd = l.map(|l| _mm512_srli_epi64::<32>(l));
                for r in 0..ROW_BLOCK {
                    let xv = _mm512_loadu_si512(xp[r].add(j).cast());
                    let xo = _mm512_srli_epi64::<32>(xv);
                    for t in 0..2 {
                        let even = _mm512_mul_epi32(xv, l[t]);
                        let odd = _mm512_mul_epi32(xo, lo_odd[t]);
                        acc[r][t] = _mm512_add_epi64(acc[r][t], _mm512_add_epi64(even, odd));
                    }
                }
            }
            j += 16;
        }
        acc.map(|a| a.map(|v| _mm512_reduce_add_epi64(v) as u64))
    }

    /// The sum of the sixteen i32 lanes, as i64.
    #[target_feature(enable = "avx512f")]
    fn lanes_i64(v: __m512i) -> i64 {
        let mut l = [0i32; 16];
        // SAFETY: one 64-byte store into a 64-byte array.
        unsafe { _mm512_storeu_si512(l.as_mut_ptr().cast(), v) };
        l.iter().map(|&x| i64::from(x)).sum()
    }
}

/// Outcome of [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreivaldsReport {
    /// Trials run.
    pub trials: u32,
    /// Rows of C whose check failed in any trial, ascending (empty when accepted).
    pub suspect_rows: Vec<usize>,
}

impl FreivaldsReport {
    /// Whether C was accepted.
    pub fn accepted(&self) -> bool {
        self.suspect_rows.is_empty()
    }
}

/// Runs `trials` (1 to [`MAX_TRIALS`]) independent Freivalds trials of `c == a·b`; a wrong
/// C passes all of them with probability at most `2^(-32·trials)` (module docs).
pub fn check(
    a: &MatrixI8,
    b: &MatrixI8,
    c: &MatrixI32,
    seed: &[u8; 32],
    trials: u32,
) -> Result<FreivaldsReport> {
    check_dims(a, b, c.rows(), c.cols())?;
    let mut inputs = InputProducts::new(a.rows(), a.cols(), b.cols(), seed, trials)?;
    inputs.add_b_rows(0, b.data())?;
    inputs.add_a_rows(0, a.data())?;
    let (n, t, rs) = (b.cols(), trials as usize, &inputs.rs);
    let suspect_rows: Vec<usize> = inputs
        .ab
        .par_chunks_exact(t)
        .zip(c.data().par_chunks_exact(n))
        .enumerate()
        .with_min_len(16)
        .filter(|(_, (ab, crow))| {
            let mut cr = [0u64; MAX_TRIALS as usize];
            add_dots(crow, 0, rs, &mut cr[..t], dot_i32, dot_i32_x2);
            **ab != cr[..t]
        })
        .map(|(i, _)| i)
        .collect();
    Ok(FreivaldsReport {
        trials,
        suspect_rows,
    })
}

/// `C·r` for every trial of a check, accumulated from parts of C's rows as they arrive (a download
/// being converted, tile by tile), so that C is read once, while those bytes are in cache, instead
/// of once more from memory by [`check`]; then [`check_all`] finishes the check with [`InputProducts`]
/// (or [`check_products`] with `A·(B·r)` over A and B).
///
/// Soundness is [`check`]'s: the vectors come from `seed` the same way, and the argument needs
/// only that `seed` is secret and drawn after C is committed (C's root on chain; the download is
/// checked against that root), not after C is read.
#[derive(Clone)]
pub struct CProducts {
    rows: usize,
    cols: usize,
    trials: u32,
    /// Who the trials' vectors belong to (see [`seed_id`]).
    seed_id: [u8; 32],
    rs: Vec<TrialVector>,
    /// `acc[i·t + trial]`: row `i`'s `C·r` so far.
    acc: Vec<u64>,
    /// Elements of each row added so far.
    filled: Vec<usize>,
}

impl CProducts {
    /// Products for a `rows`×`cols` C, `trials` (1 to [`MAX_TRIALS`]) trials from `seed`.
    pub fn new(rows: usize, cols: usize, seed: &[u8; 32], trials: u32) -> Result<Self> {
        crate::matrix::checked_len(rows, cols)?;
        check_trials(trials)?;
        Ok(Self {
            rows,
            cols,
            trials,
            seed_id: seed_id(seed),
            rs: trial_vectors(seed, trials, cols),
            acc: vec![0; rows * trials as usize],
            filled: vec![0; rows],
        })
    }

    /// Adds `part`, elements `[col0, col0 + part.len())` of row `row` of C. Every element of C must be
    /// added exactly once before [`check_all`] or [`check_products`] (which refuse rows not exactly filled).
    pub fn add(&mut self, row: usize, col0: usize, part: &[i32]) -> Result<()> {
        let end = col0.checked_add(part.len());
        if row >= self.rows || end.is_none_or(|e| e > self.cols) {
            return Err(Error::InvalidParameter(format!(
                "C part at row {row}, columns {col0}..+{} is outside {}x{}",
                part.len(),
                self.rows,
                self.cols
            )));
        }
        let t = self.trials as usize;
        let out = &mut self.acc[row * t..(row + 1) * t];
        add_dots(part, col0, &self.rs, out, dot_i32, dot_i32_x2);
        self.filled[row] += part.len();
        Ok(())
    }

    /// Adds whole rows `[row0, row0 + rows.len() / cols)` of C (row-major), as [`Self::add`] would row
    /// by row. With two trials on AVX-512 the rows go four at a time through one kernel, so
    /// each load of the trials' vectors serves them all (C·r reads eight bytes of vectors per element
    /// against the row's four).
    pub fn add_rows(&mut self, row0: usize, rows: &[i32]) -> Result<()> {
        let cols = self.cols;
        let count = rows.len() / cols;
        if !rows.len().is_multiple_of(cols) || count > self.rows.saturating_sub(row0) {
            return Err(Error::InvalidParameter(format!(
                "C rows: {} elements at row {row0} are not whole rows of {cols} within its {} rows",
                rows.len(),
                self.rows
            )));
        }
        let mut blocks = rows.chunks_exact(ROW_BLOCK * cols);
        let mut row = row0;
        #[cfg(target_arch = "x86_64")]
        if self.trials == 2 && self.rs.iter().all(|v| v.narrow) && avx512::available() {
            let v = [self.rs[0].view(0, cols), self.rs[1].view(0, cols)];
            for block in &mut blocks {
                let x: [&[i32]; ROW_BLOCK] =
                    std::array::from_fn(|r| &block[r * cols..(r + 1) * cols]);
                for (r, d) in avx512::dot_i32_rows_x2(x, v).into_iter().enumerate() {
                    let acc = &mut self.acc[(row + r) * 2..(row + r + 1) * 2];
                    acc[0] = acc[0].wrapping_add(d[0]);
                    acc[1] = acc[1].wrapping_add(d[1]);
                    self.filled[row + r] += cols;
                }
                row += ROW_BLOCK;
            }
        }
        let rest = &rows[(row - row0) * cols..];
        for (i, r) in rest.chunks_exact(cols).enumerate() {
            self.add(row + i, 0, r)?;
        }
        Ok(())
    }

    /// Every row exactly filled.
    fn filled(&self) -> Result<()> {
        match self.filled.iter().position(|&f| f != self.cols) {
            None => Ok(()),
            Some(row) => Err(Error::InvalidParameter(format!(
                "C products: row {row} has {} of its {} elements added",
                self.filled[row], self.cols
            ))),
        }
    }
}

impl std::fmt::Debug for CProducts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CProducts")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("trials", &self.trials)
            .field("filled", &self.filled.iter().sum::<usize>())
            .finish_non_exhaustive()
    }
}

/// `B·r` and `A·(B·r)` for every trial of a check, taken from bands of B's rows and then of A's rows
/// as another pass reads them (the consumer hashes A and B to check them against the job's roots:
/// [`crate::commit::commit_b_with`] and [`crate::commit::commit_a_with`] hand each band over while it is
/// in cache), so that A and B are not read from memory again for the check. With [`CProducts`] taking
/// `C·r` the same way, [`check_all`] finishes the check with no pass of its own over any matrix.
///
/// Soundness is [`check`]'s: the vectors come from `seed` the same way.
#[derive(Clone)]
pub struct InputProducts {
    m: usize,
    k: usize,
    n: usize,
    trials: u32,
    /// Who the trials' vectors belong to (see [`seed_id`]), so that products from two seeds are never compared.
    seed_id: [u8; 32],
    rs: Vec<TrialVector>,
    /// `br[i·t + trial]`: `(B·r)ᵢ`, filled in row order.
    br: Vec<u64>,
    b_rows: usize,
    /// `B·r` in the forms the kernels read, once every row of B was added.
    brs: Vec<TrialVector>,
    /// `ab[i·t + trial]`: `(A·(B·r))ᵢ`, filled in row order.
    ab: Vec<u64>,
    a_rows: usize,
}

impl InputProducts {
    /// Products for an m×k A and a k×n B, `trials` (1 to [`MAX_TRIALS`]) trials from `seed`.
    pub fn new(m: usize, k: usize, n: usize, seed: &[u8; 32], trials: u32) -> Result<Self> {
        check_input_shape(m, k, n)?;
        check_trials(trials)?;
        Ok(Self::with_vectors(
            (m, k, n),
            trials,
            seed_id(seed),
            trial_vectors(seed, trials, n),
        ))
    }

    /// Products for the A and B of `c`'s C (m×k and k×n) with `c`'s vectors.
    fn for_c(k: usize, c: &CProducts) -> Result<Self> {
        check_input_shape(c.rows, k, c.cols)?;
        Ok(Self::with_vectors(
            (c.rows, k, c.cols),
            c.trials,
            c.seed_id,
            c.rs.clone(),
        ))
    }

    fn with_vectors(
        (m, k, n): (usize, usize, usize),
        trials: u32,
        seed_id: [u8; 32],
        rs: Vec<TrialVector>,
    ) -> Self {
        let t = trials as usize;
        Self {
            m,
            k,
            n,
            trials,
            seed_id,
            rs,
            br: vec![0; k * t],
            b_rows: 0,
            brs: Vec::new(),
            ab: vec![0; m * t],
            a_rows: 0,
        }
    }

    /// Adds rows `[row0, row0 + rows.len() / n)` of B (whole rows, row-major). Rows come in order,
    /// each once: `row0` must be the number of rows added so far.
    pub fn add_b_rows(&mut self, row0: usize, rows: &[i8]) -> Result<()> {
        let count = whole_rows("B", row0, self.b_rows, self.k, rows.len(), self.n)?;
        let t = self.trials as usize;
        let out = &mut self.br[row0 * t..(row0 + count) * t];
        i8_rows_dots(rows, self.n, &self.rs, out);
        self.b_rows += count;
        if self.b_rows == self.k {
            self.brs = (0..t)
                .map(|tr| TrialVector::new((0..self.k).map(|i| self.br[i * t + tr]).collect()))
                .collect();
        }
        Ok(())
    }

    /// Adds rows `[row0, row0 + rows.len() / k)` of A (whole rows, row-major), once every row of B
    /// was added. Rows come in order, each once: `row0` must be the number of rows added so far.
    pub fn add_a_rows(&mut self, row0: usize, rows: &[i8]) -> Result<()> {
        if self.b_rows != self.k {
            return Err(Error::InvalidParameter(format!(
                "A's rows need all of B's first: {} of its {} rows added",
                self.b_rows, self.k
            )));
        }
        let count = whole_rows("A", row0, self.a_rows, self.m, rows.len(), self.k)?;
        let t = self.trials as usize;
        let out = &mut self.ab[row0 * t..(row0 + count) * t];
        i8_rows_dots(rows, self.k, &self.brs, out);
        self.a_rows += count;
        Ok(())
    }
}

impl std::fmt::Debug for InputProducts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputProducts")
            .field("shape", &(self.m, self.k, self.n))
            .field("trials", &self.trials)
            .field("b_rows", &self.b_rows)
            .field("a_rows", &self.a_rows)
            .finish_non_exhaustive()
    }
}

/// A and B (m×k and k×n, none of them 0) multiply within the GEMM's limits.
fn check_input_shape(m: usize, k: usize, n: usize) -> Result<()> {
    if m == 0 || k == 0 || n == 0 {
        return Err(Error::InvalidParameter(format!(
            "A·B of {m}x{k} by {k}x{n}: no dimension may be 0"
        )));
    }
    check_shape(m, k, k, n)
}

/// How many whole rows of `width` elements `len` elements are, when they are to start at `row0` of a
/// matrix of `rows` rows whose first `added` rows are in.
fn whole_rows(
    what: &str,
    row0: usize,
    added: usize,
    rows: usize,
    len: usize,
    width: usize,
) -> Result<usize> {
    let count = len / width;
    if row0 != added || !len.is_multiple_of(width) || count > rows - added {
        return Err(Error::InvalidParameter(format!(
            "{what}'s rows: {len} elements at row {row0} are not whole rows of {width} following the \
             {added} of its {rows} rows added so far"
        )));
    }
    Ok(count)
}

/// A digest naming `seed` without revealing it (products record it, so [`check_all`] can refuse to
/// compare products of different seeds).
fn seed_id(seed: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(TAG);
    h.update(b"/seed-id");
    h.update(seed);
    h.finalize().into()
}

/// Finishes a check whose products were all taken on the way: `A·(B·r)` in `inputs`, `C·r` in `c`,
/// from the same seed and trials. The same report as [`check`] over the A, B and C whose elements were
/// added.
pub fn check_all(inputs: &InputProducts, c: &CProducts) -> Result<FreivaldsReport> {
    if (inputs.m, inputs.n) != (c.rows, c.cols) {
        return Err(Error::ShapeMismatch {
            a_rows: c.rows,
            a_cols: c.cols,
            b_rows: inputs.m,
            b_cols: inputs.n,
        });
    }
    if (inputs.trials, inputs.seed_id) != (c.trials, c.seed_id) {
        return Err(Error::InvalidParameter(
            "A·(B·r) and C·r come from different seeds or trials".into(),
        ));
    }
    if inputs.a_rows != inputs.m {
        return Err(Error::InvalidParameter(format!(
            "A·(B·r): {} of A's {} rows added",
            inputs.a_rows, inputs.m
        )));
    }
    c.filled()?;
    let t = c.trials as usize;
    let suspect_rows: Vec<usize> = inputs
        .ab
        .chunks_exact(t)
        .zip(c.acc.chunks_exact(t))
        .enumerate()
        .filter(|(_, (ab, cr))| ab != cr)
        .map(|(i, _)| i)
        .collect();
    Ok(FreivaldsReport {
        trials: c.trials,
        suspect_rows,
    })
}

/// Finishes a check whose `C·r` were accumulated in `c` ([`CProducts`]): the same report as
/// [`check`] over the C whose elements were added, with the same seed and trials.
pub fn check_products(a: &MatrixI8, b: &MatrixI8, c: &CProducts) -> Result<FreivaldsReport> {
    check_dims(a, b, c.rows, c.cols)?;
    c.filled()?;
    let mut inputs = InputProducts::for_c(a.cols(), c)?;
    inputs.add_b_rows(0, b.data())?;
    inputs.add_a_rows(0, a.data())?;
    check_all(&inputs, c)
}

/// A and B multiply, and C has their product's shape.
fn check_dims(a: &MatrixI8, b: &MatrixI8, c_rows: usize, c_cols: usize) -> Result<()> {
    check_shape(a.rows(), a.cols(), b.rows(), b.cols())?;
    if (c_rows, c_cols) != (a.rows(), b.cols()) {
        return Err(Error::ShapeMismatch {
            a_rows: c_rows,
            a_cols: c_cols,
            b_rows: a.rows(),
            b_cols: b.cols(),
        });
    }
    Ok(())
}

fn check_trials(trials: u32) -> Result<()> {
    if trials == 0 || trials > MAX_TRIALS {
        return Err(Error::InvalidParameter(format!(
            "Freivalds needs 1 to {MAX_TRIALS} trials, got {trials}"
        )));
    }
    Ok(())
}

/// The trials' vectors, of length `n`.
fn trial_vectors(seed: &[u8; 32], trials: u32, n: usize) -> Vec<TrialVector> {
    (0..trials)
        .map(|tr| TrialVector::new(random_vector(seed, tr, n)))
        .collect()
}

/// Row `i` of `A·B`, exact: `Σₖ A[i][k]·B[k][·]` as i32 row updates, where every partial
/// sum is a sum of at most `k <= MAX_K` products of magnitude ≤ 2¹⁴, so below 2³¹.
fn exact_row(a: &MatrixI8, b: &MatrixI8, i: usize) -> Vec<i32> {
    let (k, n) = (a.cols(), b.cols());
    let mut acc = vec![0i32; n];
    for (&x, brow) in a.data()[i * k..(i + 1) * k]
        .iter()
        .zip(b.data().chunks_exact(n))
    {
        axpy(&mut acc, i32::from(x), brow);
    }
    acc
}

fn axpy(acc: &mut [i32], x: i32, row: &[i8]) {
    #[inline(always)]
    fn portable(acc: &mut [i32], x: i32, row: &[i8]) {
        for (o, &y) in acc.iter_mut().zip(row) {
            *o = o.wrapping_add(x * i32::from(y));
        }
    }
    if x == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::gemm::x86_has_avx2() {
        #[target_feature(enable = "avx2")]
        fn inner(acc: &mut [i32], x: i32, row: &[i8]) {
            portable(acc, x, row)
        }
        // SAFETY: avx2 is available (checked above); `inner` is safe slice code.
        #[allow(unsafe_code)]
        unsafe {
            inner(acc, x, row)
        };
        return;
    }
    portable(acc, x, row)
}

/// Finds the first wrong element `(row, col, claimed, correct)` of `c`, using Freivalds to
/// locate suspect rows and exact recomputation of those rows only. A row whose entries
/// are all right is never suspect (its `dᵢ` is zero), so the first suspect row holds a
/// wrong element and one `k·n` row product finds it.
pub fn find_wrong_element(
    a: &MatrixI8,
    b: &MatrixI8,
    c: &MatrixI32,
    seed: &[u8; 32],
    trials: u32,
) -> Result<Option<(usize, usize, i32, i32)>> {
    let report = check(a, b, c, seed, trials)?;
    let n = b.cols();
    for &i in &report.suspect_rows {
        let exact = exact_row(a, b, i);
        let claimed = &c.data()[i * n..(i + 1) * n];
        if let Some(j) = claimed.iter().zip(&exact).position(|(x, y)| x != y) {
            return Ok(Some((i, j, claimed[j], exact[j])));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX-512 row kernel with `vpmaddwd` and, where AVX-512 VNNI is available, with `vpdpwssd`:
    /// both results, which must agree.
    #[cfg(target_arch = "x86_64")]
    fn rows_both(x: [&[i8]; ROW_BLOCK], v: View<'_>) -> [u64; ROW_BLOCK] {
        let plain = avx512::dot_i8_rows_on(x, v, false);
        if avx512::vnni() {
            assert_eq!(
                avx512::dot_i8_rows_on(x, v, true),
                plain,
                "vpdpwssd and vpmaddwd"
            );
        }
        plain
    }

    #[test]
    fn vector_is_reproducible_and_spans_its_32_bits() {
        let v = random_vector(&[3; 32], 0, 100);
        assert_eq!(v, random_vector(&[3; 32], 0, 100));
        assert_ne!(v, random_vector(&[3; 32], 1, 100));
        let x: Vec<i64> = v.iter().map(|&x| x as i64).collect();
        assert!(x.iter().all(|&x| (-(1 << 31)..1 << 31).contains(&x)));
        assert!(x.iter().any(|&x| x < -(1 << 30)) && x.iter().any(|&x| x > 1 << 30));
        assert!(x.iter().any(|&x| x & 1 == 1));
        assert!(TrialVector::new(v).narrow);
    }

    /// The fast dot products equal the plain wrapping `Σ x·r mod 2⁶⁴` at the extremes, over
    /// lengths that exercise the vector bodies, their blocks and the scalar tails.
    #[test]
    fn fast_dots_are_the_wrapping_dot_product() {
        let special = [
            u64::MAX,
            0,
            1 << 63,
            (1 << 32) - 1,
            1 << 32,
            1 << 15,
            (1 << 15) - 1,
            0xFFFF_FFFF_8000_0000,
            0x7FFF_FFFF,
        ];
        let lens = [
            1usize, 7, 8, 15, 16, 17, 31, 32, 33, 2047, 2048, 2049, 4095, 4096, 4097, 8200,
        ];
        // Wide vectors (B·r) and narrow ones (a trial's own, whose kernels skip the high parts).
        for (len, narrow) in lens.into_iter().flat_map(|l| [(l, false), (l, true)]) {
            let mut s = 0x9E37_79B9_7F4A_7C15u64;
            let mut next = || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s
            };
            let r: Vec<u64> = (0..len)
                .map(|j| special.get(j % 11).copied().unwrap_or_else(&mut next))
                .map(|x| if narrow { x as i32 as i64 as u64 } else { x })
                .collect();
            let x8: Vec<i8> = (0..len)
                .map(|j| match j % 6 {
                    0 => -128,
                    1 => 127,
                    2 => -1,
                    _ => (next() >> 56) as i8,
                })
                .collect();
            let x32: Vec<i32> = (0..len)
                .map(|j| match j % 5 {
                    0 => i32::MIN,
                    1 => i32::MAX,
                    2 => -1,
                    _ => (next() >> 32) as i32,
                })
                .collect();
            let v = TrialVector::new(r.clone());
            assert_eq!(v.narrow, narrow || len == 1 || len == 2);
            assert_eq!(dot_i8(&x8, v.all()), dot_plain(&x8, &r), "i8, length {len}");
            assert_eq!(
                dot_i32(&x32, v.all()),
                dot_plain(&x32, &r),
                "i32, length {len}"
            );
            // The two-trial kernels, against a second vector (r reversed).
            let r2: Vec<u64> = r.iter().rev().copied().collect();
            let v2 = TrialVector::new(r2.clone());
            let want8 = [dot_plain(&x8, &r), dot_plain(&x8, &r2)];
            let want32 = [dot_plain(&x32, &r), dot_plain(&x32, &r2)];
            assert_eq!(
                dot_i8_x2(&x8, [v.all(), v2.all()]),
                want8,
                "i8 pair, length {len}"
            );
            assert_eq!(
                dot_i32_x2(&x32, [v.all(), v2.all()]),
                want32,
                "i32 pair, length {len}"
            );
            // The row-blocked kernel and its driver: four rows (x8 and variations of it), one trial.
            let rows: Vec<Vec<i8>> = (0..ROW_BLOCK as u8)
                .map(|q| {
                    x8.iter()
                        .map(|&e| e.wrapping_mul(q as i8 * 2 + 1))
                        .collect()
                })
                .collect();
            let want_rows: Vec<u64> = rows.iter().map(|x| dot_plain(x, &r)).collect();
            #[cfg(target_arch = "x86_64")]
            if avx512::available() {
                let x: [&[i8]; ROW_BLOCK] = std::array::from_fn(|q| rows[q].as_slice());
                assert_eq!(rows_both(x, v.all()).to_vec(), want_rows, "rows, {len}");
            }
            // Five rows (a block and one left over), two trials.
            let mut data = rows.concat();
            data.extend_from_slice(&x8);
            let mut got = vec![0u64; (ROW_BLOCK + 1) * 2];
            i8_rows_dots(&data, len, &[v.clone(), v2.clone()], &mut got);
            let mut want = Vec::new();
            for x in rows.iter().chain([&x8]) {
                want.extend([dot_plain(x, &r), dot_plain(x, &r2)]);
            }
            assert_eq!(got, want, "row driver, length {len}");
            // Three trials (a pair and a single), added in two parts at their offsets.
            let three = [v.clone(), v2.clone(), v.clone()];
            let mut out = [0u64; 3];
            let half = len / 2;
            add_dots(&x32[..half], 0, &three, &mut out, dot_i32, dot_i32_x2);
            add_dots(&x32[half..], half, &three, &mut out, dot_i32, dot_i32_x2);
            assert_eq!(
                out,
                [want32[0], want32[1], want32[0]],
                "i32 parts, length {len}"
            );
            // All entries at one extreme, where i32 lanes are closest to overflowing.
            for e in [-128i8, 127] {
                let x = vec![e; len];
                let worst = if narrow {
                    0xFFFF_FFFF_8000_8000
                } else {
                    0x8000_8000_8000_8000
                };
                let worst = TrialVector::new(vec![worst; len]);
                assert_eq!(worst.narrow, narrow);
                let want = dot_plain(&x, &worst.r);
                assert_eq!(dot_i8(&x, worst.all()), want, "{e}, length {len}");
                let pair = dot_i8_x2(&x, [worst.all(), worst.all()]);
                assert_eq!(pair, [want, want], "{e} pair, length {len}");
                #[cfg(target_arch = "x86_64")]
                if avx512::available() {
                    let rows = rows_both([x.as_slice(); ROW_BLOCK], worst.all());
                    assert_eq!(rows, [want; ROW_BLOCK], "{e} rows, length {len}");
                }
            }
        }
    }

    /// A narrow and a wide vector together through the two-trial kernels, and narrow views that
    /// start past 0 (whose high elements are indexed from the view's start).
    #[test]
    fn mixed_and_offset_views_are_exact() {
        let len: usize = 300;
        // 0x7FFF_FFF0 is in [2³¹ − 2¹⁵, 2³¹): a high element every seventh.
        let narrow: Vec<u64> = (0..len)
            .map(|j| {
                if j % 7 == 3 {
                    0x7FFF_FFF0
                } else {
                    (j as i64 * -7919) as u64
                }
            })
            .collect();
        let wide: Vec<u64> = (0..len as u64)
            .map(|j| j.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let (vn, vw) = (
            TrialVector::new(narrow.clone()),
            TrialVector::new(wide.clone()),
        );
        assert!(vn.narrow && vn.high.len() == 43 && !vw.narrow);
        let x8: Vec<i8> = (0..len).map(|j| (j as i8).wrapping_mul(37)).collect();
        let x32: Vec<i32> = (0..len)
            .map(|j| (j as i32).wrapping_mul(-0x0123_4567))
            .collect();
        let want8 = [dot_plain(&x8, &narrow), dot_plain(&x8, &wide)];
        let want32 = [dot_plain(&x32, &narrow), dot_plain(&x32, &wide)];
        assert_eq!(dot_i8_x2(&x8, [vn.all(), vw.all()]), want8);
        assert_eq!(dot_i32_x2(&x32, [vn.all(), vw.all()]), want32);
        for from in [1, 3, 64, 100] {
            let l = len - from - 5;
            let (x, r) = (&x8[..l], &narrow[from..from + l]);
            let v = vn.view(from, l);
            assert_eq!(dot_i8_x2(x, [v, v]), [dot_plain(x, r); 2], "from {from}");
            assert_eq!(dot_i8(x, v), dot_plain(x, r), "from {from}");
            #[cfg(target_arch = "x86_64")]
            if avx512::available() {
                let rows = rows_both([x; ROW_BLOCK], v);
                assert_eq!(rows, [dot_plain(x, r); ROW_BLOCK], "rows from {from}");
            }
        }
    }

    /// Whole rows added in one call (blocks of rows through the row-blocked kernel where it applies,
    /// the rest row by row) give the products of adding them row by row, at the extremes of C and r.
    #[test]
    fn rows_added_together_equal_rows_added_one_by_one() {
        for (m, n) in [(1, 1), (4, 16), (9, 37), (13, 200), (8, 4100)] {
            let mut s = 0x2545_F491_4F6C_DD1Du64 ^ (m * n) as u64;
            let c: Vec<i32> = (0..m * n)
                .map(|j| match j % 9 {
                    0 => i32::MIN,
                    1 => i32::MAX,
                    2 => -1,
                    _ => {
                        s ^= s << 13;
                        s ^= s >> 7;
                        s ^= s << 17;
                        (s >> 32) as i32
                    }
                })
                .collect();
            for trials in [1, 2, 3] {
                let mut one = CProducts::new(m, n, &[4; 32], trials).expect("one");
                for (i, row) in c.chunks_exact(n).enumerate() {
                    one.add(i, 0, row).expect("row");
                }
                let mut all = CProducts::new(m, n, &[4; 32], trials).expect("all");
                // Two calls: the first rows, then the rest.
                let split = (m / 2) * n;
                all.add_rows(0, &c[..split]).expect("first");
                all.add_rows(m / 2, &c[split..]).expect("rest");
                assert_eq!(all.acc, one.acc, "{m}x{n}, {trials} trials");
                assert_eq!(all.filled, one.filled);
                // Not whole rows, or past the last row: refused.
                let mut bad = CProducts::new(m, n, &[4; 32], trials).expect("bad");
                assert!(bad.add_rows(0, &c[..n - 1]).is_err() || n == 1);
                assert!(bad.add_rows(m, &c[..n]).is_err());
                assert!(bad.add_rows(1, &c).is_err());
            }
        }
        // The kernel itself against the plain sum, every r at an extreme of its range.
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            for n in [16, 17, 31, 4096] {
                // Four different rows at the extremes, so a row read for another shows.
                let rows: Vec<Vec<i32>> = (0..ROW_BLOCK)
                    .map(|q| {
                        (0..n)
                            .map(|j| match (j + q) % (q + 2) {
                                0 => i32::MIN,
                                1 => i32::MAX,
                                _ => -1 - q as i32,
                            })
                            .collect()
                    })
                    .collect();
                let ends =
                    [i32::MIN, i32::MAX].map(|e| TrialVector::new(vec![i64::from(e) as u64; n]));
                let x: [&[i32]; ROW_BLOCK] = std::array::from_fn(|q| rows[q].as_slice());
                let got = avx512::dot_i32_rows_x2(x, [ends[0].all(), ends[1].all()]);
                let want: Vec<[u64; 2]> = rows
                    .iter()
                    .map(|x| [dot_plain(x, &ends[0].r), dot_plain(x, &ends[1].r)])
                    .collect();
                assert_eq!(got.to_vec(), want, "length {n}");
            }
        }
    }

    #[test]
    fn digits_and_halves_recompose_the_vector() {
        let r = vec![
            u64::MAX,
            0,
            1 << 63,
            0x8000_8000_8000_8000,
            0x7fff_7fff_7fff_7fff,
            12345,
        ];
        let v = TrialVector::new(r.clone());
        for (j, &x) in r.iter().enumerate() {
            let from_digits = v
                .digits
                .iter()
                .rev()
                .fold(0u64, |s, d| (s << 16).wrapping_add(d[j] as i64 as u64));
            assert_eq!(from_digits, x);
            let from_halves = ((v.hi[j] as u32 as u64) << 32).wrapping_add(v.lo[j] as i64 as u64);
            assert_eq!(from_halves, x);
        }
        // A narrow vector's high half, which its i32 kernels skip, is zero; its upper digits are zero but
        // at the elements listed as high, which its i8 kernels add one by one.
        let narrow: Vec<u64> = [
            i32::MIN,
            i32::MAX,
            -1,
            0,
            1,
            -32768,
            32767,
            0x8000_8000u32 as i32,
        ]
        .iter()
        .map(|&x| i64::from(x) as u64)
        .collect();
        let v = TrialVector::new(narrow);
        assert!(v.narrow);
        assert!(v.hi.iter().all(|&h| h == 0));
        let upper: Vec<usize> = (0..v.r.len())
            .filter(|&j| v.digits[2][j] != 0 || v.digits[3][j] != 0)
            .collect();
        assert_eq!(v.high, upper);
        assert_eq!(v.high, vec![1]); // i32::MAX: 2³¹ − 1 = −1 − 2¹⁶·2¹⁵ + 2³²
        assert!(!TrialVector::new(vec![1 << 31]).narrow);
    }

    /// Products accumulated tile by tile, in any order, give [`check`]'s report; rows not exactly
    /// filled are refused.
    #[test]
    fn products_added_by_tiles_give_the_same_report_as_the_check() {
        let (m, k, n, tile) = (37, 50, 45, 8);
        let mut s = 7u64;
        let mut next = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 56) as i8
        };
        let a = MatrixI8::from_fn(m, k, |_, _| next()).expect("a");
        let b = MatrixI8::from_fn(k, n, |_, _| next()).expect("b");
        let mut c = crate::CpuGemm::new().gemm(&a, &b).expect("c");
        c.data_mut()[20 * n + 44] ^= 1 << 31;
        c.data_mut()[3 * n] += 1;
        for trials in [1, 2, 3] {
            let want = check(&a, &b, &c, &[5; 32], trials).expect("check");
            assert_eq!(want.suspect_rows, vec![3, 20]);
            let mut p = CProducts::new(m, n, &[5; 32], trials).expect("products");
            // Tiles in reverse order, each row of a tile a part.
            for ti in (0..m.div_ceil(tile)).rev() {
                for tj in (0..n.div_ceil(tile)).rev() {
                    for row in ti * tile..((ti + 1) * tile).min(m) {
                        let (c0, c1) = (tj * tile, ((tj + 1) * tile).min(n));
                        p.add(row, c0, &c.data()[row * n + c0..row * n + c1])
                            .expect("add");
                    }
                }
            }
            assert_eq!(check_products(&a, &b, &p).expect("check"), want);
            // A part outside C, and a row added twice, are refused.
            assert!(p.clone().add(m, 0, &[1]).is_err());
            assert!(p.clone().add(0, n - 1, &[1, 2]).is_err());
            p.add(0, 0, &[1]).expect("add");
            assert!(check_products(&a, &b, &p).is_err());
        }
    }
}
