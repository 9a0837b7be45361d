//! Many SHA-256 messages at once: sixteen lanes of AVX-512, one message per 32-bit lane.
//!
//! On the reference CPU (Sapphire Rapids) one SHA-NI stream is bound by the throughput of
//! the SHA unit (≈ 1.2 GB/s, and two interleaved streams are no faster), while the vector
//! units are idle. A sample of a verification hashes `2·T` equal-length leaves (T rows of
//! A, T columns of B, each `k` bytes): sixteen of them go through the message schedule
//! and rounds of FIPS 180-4 in the sixteen 32-bit lanes of zmm registers, with rotations
//! (`vprord`) and `vpternlogd` for Ch, Maj and the three-way xors. The output is plain
//! SHA-256, tested against the `sha2` crate; with fewer lanes than [`MIN_LANES`], unequal
//! lengths or without AVX-512 the messages go through [`crate::sha_x2`] instead.

#![allow(unsafe_code)] // AVX-512 intrinsics; see the SAFETY notes.

use crate::sha_x2;

/// A message: `prefix || data` (the prefix is a domain tag of at most 64 bytes).
pub(crate) type Message<'a> = (&'a [u8], &'a [u8]);

/// Below this many equal-length messages the sixteen-lane kernel costs more than SHA-NI:
/// on the reference CPU a sixteen-lane block costs about as much as nine SHA-NI blocks
/// (2050-byte leaves: 14 µs for sixteen against 1.5 µs each on SHA-NI).
pub(crate) const MIN_LANES: usize = 10;

/// SHA-256 of every message, in order, appended to `out`.
pub(crate) fn hash_many(msgs: &[Message<'_>], out: &mut Vec<[u8; 32]>) {
    out.reserve(msgs.len());
    let mut rest = msgs;
    #[cfg(target_arch = "x86_64")]
    if msgs.len() >= MIN_LANES && crate::gemm::x86_has_avx512bw() {
        let total = |m: &Message<'_>| m.0.len() + m.1.len();
        let equal = msgs
            .iter()
            .all(|m| m.0.len() <= 64 && total(m) == total(&msgs[0]));
        while equal && rest.len() >= MIN_LANES {
            let n = rest.len().min(16);
            // Unused lanes repeat the first message; their digests are dropped.
            let lanes: [Message<'_>; 16] = std::array::from_fn(|i| rest[if i < n { i } else { 0 }]);
            // SAFETY: avx512f and avx512bw are available (checked above).
            let digests = unsafe { x86::hash16(&lanes) };
            out.extend_from_slice(&digests[..n]);
            rest = &rest[n..];
        }
    }
    for pair in rest.chunks(2) {
        match pair {
            [(pa, a), (pb, b)] if pa == pb => out.extend(sha_x2::hash2(pa, a, b)),
            _ => out.extend(pair.iter().map(|(p, d)| sha_x2::one(p, d))),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Message;
    use crate::sha_x2::{padded_block, H0, K};

    /// Transposes sixteen rows of sixteen 32-bit words: `out[i]` lane `l` = `rows[l]`
    /// word `i`. Within 128-bit chunks first (32- then 64-bit unpacks), then the chunks.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn transpose(r: [__m512i; 16]) -> [__m512i; 16] {
        let mut t = [_mm512_setzero_si512(); 16];
        for k in 0..8 {
            t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
            t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
        }
        // u[4g + w], chunk c: word 4c + w of rows 4g .. 4g + 3.
        let mut u = [_mm512_setzero_si512(); 16];
        for g in 0..4 {
            let (a, b, c, d) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
            u[4 * g] = _mm512_unpacklo_epi64(a, c);
            u[4 * g + 1] = _mm512_unpackhi_epi64(a, c);
            u[4 * g + 2] = _mm512_unpacklo_epi64(b, d);
            u[4 * g + 3] = _mm512_unpackhi_epi64(b, d);
        }
        let mut out = [_mm512_setzero_si512(); 16];
        for w in 0..4 {
            let v0 = _mm512_shuffle_i32x4::<0x44>(u[w], u[4 + w]);
            let v1 = _mm512_shuffle_i32x4::<0xEE>(u[w], u[4 + w]);
            let v2 = _mm512_shuffle_i32x4::<0x44>(u[8 + w], u[12 + w]);
            let v3 = _mm512_shuffle_i32x4::<0xEE>(u[8 + w], u[12 + w]);
            out[w] = _mm512_shuffle_i32x4::<0x88>(v0, v2);
            out[4 + w] = _mm512_shuffle_i32x4::<0xDD>(v0, v2);
            out[8 + w] = _mm512_shuffle_i32x4::<0x88>(v1, v3);
            out[12 + w] = _mm512_shuffle_i32x4::<0xDD>(v1, v3);
        }
        out
    }

    /// One 64-round compression of sixteen lanes (FIPS 180-4, 6.2.2), unrolled so the
    /// working variables and the sixteen schedule words stay in registers.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn compress(state: &mut [__m512i; 8], w: [__m512i; 16]) {
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
        let [mut w0, mut w1, mut w2, mut w3, mut w4, mut w5, mut w6, mut w7, mut w8, mut w9, mut w10, mut w11, mut w12, mut w13, mut w14, mut w15] =
            w;
        // One round; the caller rotates the names instead of moving eight registers.
        macro_rules! round {
            ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $w:ident, $t:expr) => {{
                let s1 = _mm512_ternarylogic_epi32::<0x96>(
                    _mm512_ror_epi32::<6>($e),
                    _mm512_ror_epi32::<11>($e),
                    _mm512_ror_epi32::<25>($e),
                );
                let ch = _mm512_ternarylogic_epi32::<0xCA>($e, $f, $g);
                let kw = _mm512_add_epi32($w, _mm512_set1_epi32(K[$t] as i32));
                let t1 = _mm512_add_epi32(_mm512_add_epi32($h, s1), _mm512_add_epi32(ch, kw));
                let s0 = _mm512_ternarylogic_epi32::<0x96>(
                    _mm512_ror_epi32::<2>($a),
                    _mm512_ror_epi32::<13>($a),
                    _mm512_ror_epi32::<22>($a),
                );
                let maj = _mm512_ternarylogic_epi32::<0xE8>($a, $b, $c);
                $d = _mm512_add_epi32($d, t1);
                $h = _mm512_add_epi32(t1, _mm512_add_epi32(s0, maj));
            }};
        }
        // W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16], in a ring of sixteen.
        macro_rules! schedule {
            ($w16:ident, $w15:ident, $w7:ident, $w2:ident) => {{
                let s0 = _mm512_ternarylogic_epi32::<0x96>(
                    _mm512_ror_epi32::<7>($w15),
                    _mm512_ror_epi32::<18>($w15),
                    _mm512_srli_epi32::<3>($w15),
                );
                let s1 = _mm512_ternarylogic_epi32::<0x96>(
                    _mm512_ror_epi32::<17>($w2),
                    _mm512_ror_epi32::<19>($w2),
                    _mm512_srli_epi32::<10>($w2),
                );
                $w16 = _mm512_add_epi32(_mm512_add_epi32($w16, s0), _mm512_add_epi32($w7, s1));
            }};
        }
        // Sixteen rounds from round `base`; with `$s` the schedule words are renewed first.
        macro_rules! sixteen {
            ($base:expr, $s:tt) => {{
                sixteen!(@r $s, $base, 0, a, b, c, d, e, f, g, h, w0, w1, w9, w14);
                sixteen!(@r $s, $base, 1, h, a, b, c, d, e, f, g, w1, w2, w10, w15);
                sixteen!(@r $s, $base, 2, g, h, a, b, c, d, e, f, w2, w3, w11, w0);
                sixteen!(@r $s, $base, 3, f, g, h, a, b, c, d, e, w3, w4, w12, w1);
                sixteen!(@r $s, $base, 4, e, f, g, h, a, b, c, d, w4, w5, w13, w2);
                sixteen!(@r $s, $base, 5, d, e, f, g, h, a, b, c, w5, w6, w14, w3);
                sixteen!(@r $s, $base, 6, c, d, e, f, g, h, a, b, w6, w7, w15, w4);
                sixteen!(@r $s, $base, 7, b, c, d, e, f, g, h, a, w7, w8, w0, w5);
                sixteen!(@r $s, $base, 8, a, b, c, d, e, f, g, h, w8, w9, w1, w6);
                sixteen!(@r $s, $base, 9, h, a, b, c, d, e, f, g, w9, w10, w2, w7);
                sixteen!(@r $s, $base, 10, g, h, a, b, c, d, e, f, w10, w11, w3, w8);
                sixteen!(@r $s, $base, 11, f, g, h, a, b, c, d, e, w11, w12, w4, w9);
                sixteen!(@r $s, $base, 12, e, f, g, h, a, b, c, d, w12, w13, w5, w10);
                sixteen!(@r $s, $base, 13, d, e, f, g, h, a, b, c, w13, w14, w6, w11);
                sixteen!(@r $s, $base, 14, c, d, e, f, g, h, a, b, w14, w15, w7, w12);
                sixteen!(@r $s, $base, 15, b, c, d, e, f, g, h, a, w15, w0, w8, w13);
            }};
            (@r schedule, $base:expr, $i:expr, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $w:ident, $w15:ident, $w7:ident, $w2:ident) => {{
                schedule!($w, $w15, $w7, $w2);
                round!($a, $b, $c, $d, $e, $f, $g, $h, $w, $base + $i);
            }};
            (@r plain, $base:expr, $i:expr, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $w:ident, $w15:ident, $w7:ident, $w2:ident) => {{
                round!($a, $b, $c, $d, $e, $f, $g, $h, $w, $base + $i);
            }};
        }
        sixteen!(0, plain);
        sixteen!(16, schedule);
        sixteen!(32, schedule);
        sixteen!(48, schedule);
        for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *s = _mm512_add_epi32(*s, v);
        }
    }

    /// SHA-256 of sixteen messages of equal total length, each prefix at most 64 bytes.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn hash16(lanes: &[Message<'_>; 16]) -> [[u8; 32]; 16] {
        let total = lanes[0].0.len() + lanes[0].1.len();
        let blocks = (total + 9).div_ceil(64);
        // Big-endian words: reverse the bytes of every 32-bit word.
        let bswap = _mm512_set4_epi32(0x0c0d0e0f, 0x08090a0b, 0x04050607, 0x00010203);
        let mut state = H0.map(|v| _mm512_set1_epi32(v as i32));
        let mut buf = [0u8; 64];
        for j in 0..blocks {
            let start = j * 64;
            let rows = std::array::from_fn(|l| {
                let (prefix, data) = lanes[l];
                let pl = prefix.len();
                // Blocks inside the data are read in place; the first and last are padded.
                let inner = if start >= pl && start + 64 <= total {
                    <&[u8; 64]>::try_from(&data[start - pl..start - pl + 64]).ok()
                } else {
                    None
                };
                let block: &[u8; 64] = match inner {
                    Some(b) => b,
                    None => {
                        padded_block(prefix, data, j, &mut buf);
                        &buf
                    }
                };
                // SAFETY: `block` is 64 readable bytes; unaligned loads are allowed.
                let v = unsafe { _mm512_loadu_si512(block.as_ptr().cast()) };
                _mm512_shuffle_epi8(v, bswap)
            });
            compress(&mut state, transpose(rows));
        }
        let mut words = [[0u32; 16]; 8];
        for (dst, s) in words.iter_mut().zip(state) {
            // SAFETY: `dst` is 64 writable bytes; unaligned stores are allowed.
            unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast(), s) };
        }
        std::array::from_fn(|l| {
            let mut d = [0u8; 32];
            for (chunk, w) in d.chunks_exact_mut(4).zip(&words) {
                chunk.copy_from_slice(&w[l].to_be_bytes());
            }
            d
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn reference(prefix: &[u8], data: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(prefix);
        h.update(data);
        h.finalize().into()
    }

    #[test]
    fn matches_sha2_for_every_lane_count_and_length() {
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 131 + i / 7) as u8).collect();
        let prefixes: [&[u8]; 3] = [&[0x00, 0x41], &[0x00, 0x42], &[1u8; 64]];
        for len in (0..140).chain([447, 448, 510, 511, 512, 2048, 2049]) {
            for count in [1usize, 2, 7, 8, 9, 10, 15, 16, 17, 26, 33] {
                for p in prefixes {
                    // Mixed prefixes of equal length, distinct data per lane.
                    let q: &[u8] = if p.len() == 2 && count % 2 == 0 {
                        &[0x00, 0x42]
                    } else {
                        p
                    };
                    let msgs: Vec<Message<'_>> = (0..count)
                        .map(|i| (if i % 3 == 0 { q } else { p }, &data[i..i + len]))
                        .collect();
                    let mut got = Vec::new();
                    hash_many(&msgs, &mut got);
                    let want: Vec<_> = msgs.iter().map(|(p, d)| reference(p, d)).collect();
                    assert_eq!(got, want, "len {len} count {count}");
                }
            }
        }
    }

    #[test]
    fn unequal_lengths_are_hashed_one_by_one() {
        let data = [7u8; 300];
        let msgs: Vec<Message<'_>> = (0..20).map(|i| (&b"ab"[..], &data[..100 + i])).collect();
        let mut got = Vec::new();
        hash_many(&msgs, &mut got);
        let want: Vec<_> = msgs.iter().map(|(p, d)| reference(p, d)).collect();
        assert_eq!(got, want);
    }
}
