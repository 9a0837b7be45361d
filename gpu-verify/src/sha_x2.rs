//! Two-way interleaved SHA-256 with the x86 SHA extensions.
//!
//! One SHA-256 stream on SHA-NI is bound by the latency of `sha256rnds2`; hashing two
//! independent messages in lockstep fills the pipeline, and commitments and reveals are
//! full of independent equal-length messages (rows of A, columns of B, tiles, and sibling
//! node pairs). The output is plain SHA-256 (tested against the `sha2` crate); on CPUs
//! without the extensions the `sha2` crate is used instead.

#![allow(unsafe_code)] // SHA-NI intrinsics; see the SAFETY notes.

use sha2::{Digest, Sha256};

/// SHA-256 of `prefix || a` and `prefix || b`.
pub(crate) fn hash2(prefix: &[u8], a: &[u8], b: &[u8]) -> [[u8; 32]; 2] {
    #[cfg(target_arch = "x86_64")]
    if a.len() == b.len() && prefix.len() <= 64 && has_sha_ni() {
        // SAFETY: the CPU supports sha, sse4.1 and ssse3 (checked just above).
        return unsafe { x86::hash2(prefix, a, b) };
    }
    [one(prefix, a), one(prefix, b)]
}

/// The interior nodes `SHA-256(0x01 || l || r)` of two pairs `[l, r]`.
pub(crate) fn node2(x: [&[u8; 32]; 2], y: [&[u8; 32]; 2]) -> [[u8; 32]; 2] {
    #[cfg(target_arch = "x86_64")]
    if has_sha_ni() {
        // SAFETY: the CPU supports sha, sse4.1 and ssse3 (checked just above).
        return unsafe { x86::node2(x, y) };
    }
    [x, y].map(|[l, r]| {
        let mut h = Sha256::new();
        h.update([0x01]);
        h.update(l);
        h.update(r);
        h.finalize().into()
    })
}

/// SHA-256 of `prefix || data` in one stream (the `sha2` crate).
pub(crate) fn one(prefix: &[u8], data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prefix);
    h.update(data);
    h.finalize().into()
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
/// SHA-256 round constants (FIPS 180-4, 4.2.2).
pub(crate) const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
/// SHA-256 initial hash value (FIPS 180-4, 5.3.3).
pub(crate) const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Copies block `j` of the padded message `prefix || data || pad` into `out`
/// (slice copies: this runs for every first and last block of every message).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn padded_block(prefix: &[u8], data: &[u8], j: usize, out: &mut [u8; 64]) {
    let (start, end) = (j * 64, j * 64 + 64);
    let pl = prefix.len();
    let total = pl + data.len();
    out.fill(0);
    if start < pl {
        let e = pl.min(end);
        out[..e - start].copy_from_slice(&prefix[start..e]);
    }
    let (ds, de) = (start.max(pl), end.min(total));
    if ds < de {
        out[ds - start..de - start].copy_from_slice(&data[ds - pl..de - pl]);
    }
    if (start..end).contains(&total) {
        out[total - start] = 0x80;
    }
    let blocks = (total + 9).div_ceil(64);
    if j + 1 == blocks {
        out[56..].copy_from_slice(&((total as u64) * 8).to_be_bytes());
    }
}

#[cfg(target_arch = "x86_64")]
fn has_sha_ni() -> bool {
    is_x86_feature_detected!("sha")
        && is_x86_feature_detected!("sse4.1")
        && is_x86_feature_detected!("ssse3")
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{H0, K};

    /// Fast path for a block lying entirely inside `data`.
    fn block_fast(prefix: &[u8], data: &[u8], j: usize, buf: &mut [u8; 64]) {
        let start = j * 64;
        if start >= prefix.len() && start + 64 <= prefix.len() + data.len() {
            let off = start - prefix.len();
            buf.copy_from_slice(&data[off..off + 64]);
        } else {
            super::padded_block(prefix, data, j, buf);
        }
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn hash2(prefix: &[u8], a: &[u8], b: &[u8]) -> [[u8; 32]; 2] {
        let total = prefix.len() + a.len();
        let blocks = (total + 9).div_ceil(64);
        hash2_blocks(blocks, |j, ba, bb| {
            block_fast(prefix, a, j, ba);
            block_fast(prefix, b, j, bb);
        })
    }

    /// Two interior nodes `0x01 || left || right` (65 bytes, two blocks), with the blocks
    /// written directly instead of through the general padding code.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn node2(x: [&[u8; 32]; 2], y: [&[u8; 32]; 2]) -> [[u8; 32]; 2] {
        // Second block: the last byte of `right`, the 0x80 terminator, zeros, and the
        // message length (65 bytes = 520 bits) big-endian.
        const TAIL: [u8; 64] = {
            let mut t = [0u8; 64];
            t[1] = 0x80;
            t[62] = 0x02;
            t[63] = 0x08;
            t
        };
        let fill = |[l, r]: [&[u8; 32]; 2], j: usize, out: &mut [u8; 64]| {
            if j == 0 {
                out[0] = 0x01;
                out[1..33].copy_from_slice(l);
                out[33..].copy_from_slice(&r[..31]);
            } else {
                *out = TAIL;
                out[0] = r[31];
            }
        };
        hash2_blocks(2, |j, ba, bb| {
            fill(x, j, ba);
            fill(y, j, bb);
        })
    }

    /// SHA-256 of two messages of `blocks` padded blocks each; `fill(j, a, b)` writes
    /// block `j` of both.
    // The uniform round macro also emits schedule updates whose results the last rounds
    // never read; they are compiled out, but the lint sees them.
    #[allow(unused_assignments)]
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn hash2_blocks(
        blocks: usize,
        mut fill: impl FnMut(usize, &mut [u8; 64], &mut [u8; 64]),
    ) -> [[u8; 32]; 2] {
        let mask = _mm_set_epi64x(0x0c0d0e0f08090a0b, 0x0405060700010203);
        // State in the ABEF / CDGH layout the SHA instructions use.
        let init = |h: &[u32; 8]| {
            let abcd = _mm_set_epi32(h[0] as i32, h[1] as i32, h[4] as i32, h[5] as i32);
            let efgh = _mm_set_epi32(h[2] as i32, h[3] as i32, h[6] as i32, h[7] as i32);
            (abcd, efgh)
        };
        let (mut s0a, mut s1a) = init(&H0);
        let (mut s0b, mut s1b) = init(&H0);
        let mut ba = [0u8; 64];
        let mut bb = [0u8; 64];
        for j in 0..blocks {
            fill(j, &mut ba, &mut bb);
            let (sa0, sa1, sb0, sb1) = (s0a, s1a, s0b, s1b);
            let load = |blk: &[u8; 64], i: usize| {
                _mm_shuffle_epi8(_mm_loadu_si128(blk.as_ptr().add(16 * i).cast()), mask)
            };
            let (mut a0, mut a1, mut a2, mut a3) =
                (load(&ba, 0), load(&ba, 1), load(&ba, 2), load(&ba, 3));
            let (mut b0, mut b1, mut b2, mut b3) =
                (load(&bb, 0), load(&bb, 1), load(&bb, 2), load(&bb, 3));
            // Four rounds of both lanes; `cur`, `nxt`, `prv` are message words i, i+1 and
            // i+3 (mod 4). Fully unrolled by hand so the schedule stays in registers.
            macro_rules! quad {
                ($i:expr, $ac:ident, $an:ident, $ap:ident, $bc:ident, $bn:ident, $bp:ident) => {{
                    let k = _mm_loadu_si128(K.as_ptr().add(4 * $i).cast());
                    let ma = _mm_add_epi32($ac, k);
                    let mb = _mm_add_epi32($bc, k);
                    s1a = _mm_sha256rnds2_epu32(s1a, s0a, ma);
                    s1b = _mm_sha256rnds2_epu32(s1b, s0b, mb);
                    if (3..=14).contains(&$i) {
                        let ta = _mm_alignr_epi8($ac, $ap, 4);
                        let tb = _mm_alignr_epi8($bc, $bp, 4);
                        $an = _mm_sha256msg2_epu32(_mm_add_epi32($an, ta), $ac);
                        $bn = _mm_sha256msg2_epu32(_mm_add_epi32($bn, tb), $bc);
                    }
                    s0a = _mm_sha256rnds2_epu32(s0a, s1a, _mm_shuffle_epi32(ma, 0x0E));
                    s0b = _mm_sha256rnds2_epu32(s0b, s1b, _mm_shuffle_epi32(mb, 0x0E));
                    if (1..=12).contains(&$i) {
                        $ap = _mm_sha256msg1_epu32($ap, $ac);
                        $bp = _mm_sha256msg1_epu32($bp, $bc);
                    }
                }};
            }
            quad!(0, a0, a1, a3, b0, b1, b3);
            quad!(1, a1, a2, a0, b1, b2, b0);
            quad!(2, a2, a3, a1, b2, b3, b1);
            quad!(3, a3, a0, a2, b3, b0, b2);
            quad!(4, a0, a1, a3, b0, b1, b3);
            quad!(5, a1, a2, a0, b1, b2, b0);
            quad!(6, a2, a3, a1, b2, b3, b1);
            quad!(7, a3, a0, a2, b3, b0, b2);
            quad!(8, a0, a1, a3, b0, b1, b3);
            quad!(9, a1, a2, a0, b1, b2, b0);
            quad!(10, a2, a3, a1, b2, b3, b1);
            quad!(11, a3, a0, a2, b3, b0, b2);
            quad!(12, a0, a1, a3, b0, b1, b3);
            quad!(13, a1, a2, a0, b1, b2, b0);
            quad!(14, a2, a3, a1, b2, b3, b1);
            quad!(15, a3, a0, a2, b3, b0, b2);
            s0a = _mm_add_epi32(s0a, sa0);
            s1a = _mm_add_epi32(s1a, sa1);
            s0b = _mm_add_epi32(s0b, sb0);
            s1b = _mm_add_epi32(s1b, sb1);
        }
        let out = |s0: __m128i, s1: __m128i| {
            let mut w0 = [0u32; 4];
            let mut w1 = [0u32; 4];
            _mm_storeu_si128(w0.as_mut_ptr().cast(), s0);
            _mm_storeu_si128(w1.as_mut_ptr().cast(), s1);
            // s0 = [F, E, B, A] and s1 = [H, G, D, C] from low lane to high lane.
            let h = [w0[3], w0[2], w1[3], w1[2], w0[1], w0[0], w1[1], w1[0]];
            let mut d = [0u8; 32];
            for (chunk, v) in d.chunks_exact_mut(4).zip(h) {
                chunk.copy_from_slice(&v.to_be_bytes());
            }
            d
        };
        [out(s0a, s1a), out(s0b, s1b)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_sha2_for_all_lengths_around_block_boundaries() {
        let data: Vec<u8> = (0..600u32).map(|i| (i * 31 + 7) as u8).collect();
        for prefix in [&b""[..], &[0x00, 0x41][..], &[1u8; 33][..]] {
            for len in (0..200).chain([447, 448, 511, 512, 513, 599]) {
                let a = &data[..len];
                let b = &data[1..len + 1];
                assert_eq!(
                    hash2(prefix, a, b),
                    [one(prefix, a), one(prefix, b)],
                    "len {len}"
                );
            }
        }
    }

    #[test]
    fn node_pairs_match_sha2() {
        let (l1, r1, l2, r2) = ([1u8; 32], [2u8; 32], [0xfe; 32], [0x80; 32]);
        let cat = |l: &[u8; 32], r: &[u8; 32]| [&l[..], &r[..]].concat();
        assert_eq!(
            node2([&l1, &r1], [&l2, &r2]),
            [one(&[1], &cat(&l1, &r1)), one(&[1], &cat(&l2, &r2))]
        );
    }

    #[test]
    fn unequal_lengths_fall_back() {
        assert_eq!(
            hash2(b"x", b"abc", b"de"),
            [one(b"x", b"abc"), one(b"x", b"de")]
        );
    }
}
