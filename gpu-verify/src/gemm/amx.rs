//! Intel AMX int8 kernel: `tdpbssd` multiplies signed 8-bit tiles into signed 32-bit
//! accumulators (16 × 16 outputs, 64 k values, 16,384 multiply-adds per instruction), the
//! same arithmetic as every other path, so results are bit-identical.
//!
//! Selected at run time when CPUID reports AMX-TILE and AMX-INT8, the OS enables the tile
//! state in XCR0, and (Linux) the kernel grants this process the tile data state through
//! `arch_prctl(ARCH_REQ_XCOMP_PERM)`; without that grant a tile instruction would fault.
//!
//! Layout. A micro-tile is 32 × 32 outputs held in four tile registers (tmm0-3). Per k
//! chunk of 64 it loads two 16 × 64-byte tiles of A rows (tmm4-5) and two tiles of B in the
//! "VNNI" order the instruction wants (16 rows of k quads, each row 16 columns × 4 bytes;
//! tmm6-7), then issues four `tdpbssd`. B is packed once per product, A per block of rows
//! by the worker that owns the block; k is zero padded to a multiple of 64 and rows and
//! columns to multiples of 32 (zeros add nothing).

#![allow(unsafe_code)] // Tile instructions through inline asm; see the SAFETY notes.

use std::arch::asm;
use std::sync::OnceLock;

use rayon::prelude::*;

use super::{BView, Layout};

/// k values per tile row (64 bytes of i8).
const KT: usize = 64;
/// Rows and columns of C per micro-tile (2 × 2 tiles of 16 × 16).
const R: usize = 32;
/// Bytes of one packed 16 × 64-byte tile.
const TILE: usize = 1024;
/// k chunks per k block: a column pair's B block (32 KiB) stays in L1 while the block's
/// row pairs (32 KiB of A each, in L2) are swept, and C is loaded and stored once per block.
const KB: usize = 16;
/// Rows of C per parallel task (a multiple of `R`).
const MC: usize = 128;

/// Whether this CPU and OS let this process run AMX int8 instructions (checked once).
pub(crate) fn has_amx() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(detect)
}

fn detect() -> bool {
    let leaf1 = std::arch::x86_64::__cpuid_count(1, 0);
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    let amx_tile = leaf7.edx & (1 << 24) != 0;
    let amx_int8 = leaf7.edx & (1 << 25) != 0;
    let osxsave = leaf1.ecx & (1 << 27) != 0;
    if !(amx_tile && amx_int8 && osxsave) {
        return false;
    }
    let (lo, _hi): (u32, u32);
    // SAFETY: XGETBV with ECX = 0 is available because CPUID reported OSXSAVE; it only
    // reads XCR0 into EDX:EAX.
    unsafe {
        asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") _hi,
             options(nomem, nostack, preserves_flags));
    }
    // XCR0 bit 17 = XTILECFG, bit 18 = XTILEDATA.
    if lo & (0b11 << 17) != 0b11 << 17 {
        return false;
    }
    request_tile_permission()
}

#[cfg(target_os = "linux")]
fn request_tile_permission() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) takes two integers and
    // touches no user memory; the syscall instruction clobbers rcx and r11 (declared).
    unsafe {
        asm!("syscall",
             inlateout("rax") SYS_ARCH_PRCTL => ret,
             in("rdi") ARCH_REQ_XCOMP_PERM,
             in("rsi") XFEATURE_XTILEDATA,
             lateout("rcx") _, lateout("r11") _,
             options(nostack));
    }
    ret == 0
}

#[cfg(not(target_os = "linux"))]
fn request_tile_permission() -> bool {
    false
}

/// The 64-byte tile configuration (palette 1): all eight tiles 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

const CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    colsb: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// Configures the tiles for the current thread on creation and releases them on drop.
struct Tiles(());

impl Tiles {
    fn configure() -> Self {
        debug_assert!(has_amx());
        // SAFETY: only reached after `has_amx()` (the driver checks the kernel is supported
        // before dispatching here); LDTILECFG reads the 64-byte config, which is valid
        // (palette 1, eight 16 × 64-byte tiles).
        unsafe { asm!("ldtilecfg [{0}]", in(reg) &CONFIG, options(nostack, readonly)) };
        Tiles(())
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: tiles were configured by `configure` on this thread; TILERELEASE returns
        // them to the init state.
        unsafe { asm!("tilerelease", options(nomem, nostack)) };
    }
}

/// `C (32 × 32 i32 at c, rows ldc bytes apart) (+)= A · B` over `chunks` k chunks of 64,
/// with `a` and `b` packed as 2 tiles per chunk (2048 bytes per chunk each).
///
/// # Safety
/// Tiles configured on this thread (`Tiles`); `chunks >= 1`; `a` and `b` valid for
/// `chunks * 2048` bytes; `c` valid for 32 rows of 128 bytes, `ldc` bytes apart.
unsafe fn tile_2x2(a: *const i8, b: *const i8, chunks: usize, c: *mut i32, ldc: usize, acc: bool) {
    let c0 = c.cast::<u8>();
    // SAFETY: all four addresses lie within the 32 × 32 block the caller vouches for.
    let (c1, c2) = unsafe { (c0.add(64), c0.add(16 * ldc)) };
    let c3 = unsafe { c2.add(64) };
    // SAFETY: per the function's contract; the asm reads `a`, `b` (and C when `acc`) and
    // writes C, and only uses tile registers the caller configured.
    unsafe {
        asm!(
            "test {acc}, {acc}",
            "jz 2f",
            "tileloadd tmm0, [{c0} + {ldc}*1]",
            "tileloadd tmm1, [{c1} + {ldc}*1]",
            "tileloadd tmm2, [{c2} + {ldc}*1]",
            "tileloadd tmm3, [{c3} + {ldc}*1]",
            "jmp 3f",
            "2:",
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "3:",
            "tileloadd tmm4, [{a} + {s}*1]",
            "tileloadd tmm5, [{a} + {s}*1 + 1024]",
            "tileloadd tmm6, [{b} + {s}*1]",
            "tileloadd tmm7, [{b} + {s}*1 + 1024]",
            "tdpbssd tmm0, tmm4, tmm6",
            "tdpbssd tmm1, tmm4, tmm7",
            "tdpbssd tmm2, tmm5, tmm6",
            "tdpbssd tmm3, tmm5, tmm7",
            "add {a}, 2048",
            "add {b}, 2048",
            "dec {n}",
            "jnz 3b",
            "tilestored [{c0} + {ldc}*1], tmm0",
            "tilestored [{c1} + {ldc}*1], tmm1",
            "tilestored [{c2} + {ldc}*1], tmm2",
            "tilestored [{c3} + {ldc}*1], tmm3",
            acc = in(reg) u64::from(acc),
            c0 = in(reg) c0,
            c1 = in(reg) c1,
            c2 = in(reg) c2,
            c3 = in(reg) c3,
            ldc = in(reg) ldc,
            s = in(reg) 64usize,
            a = inout(reg) a => _,
            b = inout(reg) b => _,
            n = inout(reg) chunks => _,
            options(nostack),
        );
    }
}

/// `out (m × n) = a (m × k, row-major) × b` on AMX; `has_amx()` must hold.
pub(crate) fn run(a: &[i8], b: BView<'_>, out: &mut [i32], threads: usize) {
    run_on::<Hardware>(a, b, out, threads);
}

/// What computes a 32 × 32 micro-tile: the tile unit, or (tests) a scalar model of it that
/// checks the packing on machines without AMX.
trait TileUnit {
    /// Held while micro-tiles are computed on this thread.
    type Guard;
    fn enter() -> Self::Guard;
    /// # Safety
    /// As [`tile_2x2`], with `Self::Guard` held.
    unsafe fn tile(a: *const i8, b: *const i8, chunks: usize, c: *mut i32, ldc: usize, acc: bool);
}

struct Hardware;

impl TileUnit for Hardware {
    type Guard = Tiles;
    fn enter() -> Tiles {
        Tiles::configure()
    }
    unsafe fn tile(a: *const i8, b: *const i8, chunks: usize, c: *mut i32, ldc: usize, acc: bool) {
        // SAFETY: forwarded contract.
        unsafe { tile_2x2(a, b, chunks, c, ldc, acc) }
    }
}

fn run_on<U: TileUnit>(a: &[i8], b: BView<'_>, out: &mut [i32], threads: usize) {
    let (k, n) = (b.k, b.n);
    let chunks = k.div_ceil(KT);
    let np = n.next_multiple_of(R);
    let pairs = np / R;
    let pair_len = chunks * 2 * TILE;
    let mut bpack = vec![0i8; pairs * pair_len];
    // B in VNNI order: pair p, chunk c, tile t, quad q, column j, lane l holds
    // B[c·64 + 4q + l][p·32 + 16t + j]. `dst` arrives zeroed, so padding needs no writes.
    let pack_pair = |p: usize, dst: &mut [i8]| {
        let (j0, cols) = (p * R, R.min(n - p * R));
        let at = |kk: usize, j: usize| {
            let (c, q, l) = (kk / KT, (kk % KT) / 4, kk % 4);
            c * 2 * TILE + (j / 16) * TILE + q * 64 + (j % 16) * 4 + l
        };
        match b.layout {
            Layout::RowMajor => {
                for kk in 0..k {
                    let src = &b.data[kk * n + j0..kk * n + j0 + cols];
                    let base = at(kk, 0);
                    for (j, &v) in src.iter().enumerate() {
                        // Within a k row, column j sits at base + (j/16)·TILE + (j%16)·4.
                        dst[base + (j / 16) * TILE + (j % 16) * 4] = v;
                    }
                }
            }
            Layout::ColMajor => {
                for j in 0..cols {
                    let col = &b.data[(j0 + j) * k..(j0 + j + 1) * k];
                    for (g, quad) in col.chunks(4).enumerate() {
                        let start = at(4 * g, j);
                        dst[start..start + quad.len()].copy_from_slice(quad);
                    }
                }
            }
        }
    };
    let pool = super::pool(threads);
    match &pool {
        Some(pool) => pool.install(|| {
            bpack
                .par_chunks_mut(pair_len)
                .enumerate()
                .for_each(|(p, dst)| pack_pair(p, dst));
        }),
        None => {
            for (p, dst) in bpack.chunks_mut(pair_len).enumerate() {
                pack_pair(p, dst);
            }
        }
    }
    let bpack = &bpack;
    let task = |bi: usize, cblock: &mut [i32], apack: &mut Vec<i8>, cbuf: &mut Vec<i32>| {
        let (i0, mc) = (bi * MC, cblock.len() / n);
        block::<U>(
            &a[i0 * k..(i0 + mc) * k],
            mc,
            k,
            n,
            bpack,
            apack,
            cbuf,
            cblock,
        );
    };
    match pool {
        Some(pool) => pool.install(|| {
            out.par_chunks_mut(MC * n).enumerate().for_each_init(
                || (Vec::new(), Vec::new()),
                |(apack, cbuf), (bi, cblock)| task(bi, cblock, apack, cbuf),
            );
        }),
        None => {
            let (mut apack, mut cbuf) = (Vec::new(), Vec::new());
            for (bi, cblock) in out.chunks_mut(MC * n).enumerate() {
                task(bi, cblock, &mut apack, &mut cbuf);
            }
        }
    }
}

/// One block of `mc <= MC` rows: packs its A rows, then sweeps k blocks × column pairs ×
/// row pairs, writing C directly when the block is whole and through `cbuf` otherwise.
#[allow(clippy::too_many_arguments)]
fn block<U: TileUnit>(
    a: &[i8],
    mc: usize,
    k: usize,
    n: usize,
    bpack: &[i8],
    apack: &mut Vec<i8>,
    cbuf: &mut Vec<i32>,
    c: &mut [i32],
) {
    let chunks = k.div_ceil(KT);
    let (mp, np) = (mc.next_multiple_of(R), n.next_multiple_of(R));
    let (rpairs, cpairs) = (mp / R, np / R);
    let pair_len = chunks * 2 * TILE;
    // A: row pair r, chunk c, tile t, row i, byte kk holds A[32r + 16t + i][64c + kk].
    apack.clear();
    apack.resize(rpairs * pair_len, 0);
    for (r, pair) in apack.chunks_exact_mut(pair_len).enumerate() {
        for (c, chunk) in pair.chunks_exact_mut(2 * TILE).enumerate() {
            for (t, tile) in chunk.chunks_exact_mut(TILE).enumerate() {
                for (i, dst) in tile.chunks_exact_mut(KT).enumerate() {
                    let row = r * R + 16 * t + i;
                    if row >= mc {
                        break;
                    }
                    let (k0, k1) = (c * KT, ((c + 1) * KT).min(k));
                    dst[..k1 - k0].copy_from_slice(&a[row * k + k0..row * k + k1]);
                }
            }
        }
    }
    let direct = mp == mc && np == n;
    let (cptr, ldc) = if direct {
        (c.as_mut_ptr(), n)
    } else {
        cbuf.clear();
        cbuf.resize(mp * np, 0);
        (cbuf.as_mut_ptr(), np)
    };
    let _tiles = U::enter();
    let mut c0 = 0;
    while c0 < chunks {
        let nch = KB.min(chunks - c0);
        for cp in 0..cpairs {
            let bp = &bpack[cp * pair_len + c0 * 2 * TILE..cp * pair_len + (c0 + nch) * 2 * TILE];
            for rp in 0..rpairs {
                let ap =
                    &apack[rp * pair_len + c0 * 2 * TILE..rp * pair_len + (c0 + nch) * 2 * TILE];
                // SAFETY: the tile unit is entered on this thread (`_tiles`); `ap` and `bp` hold
                // exactly `nch >= 1` chunks of 2048 bytes; the 32 × 32 block at row 32·rp,
                // column 32·cp lies inside the mp × np (or, when direct, mc × n with
                // mc = mp, n = np) buffer `cptr` points to, whose rows are `ldc` apart.
                unsafe {
                    U::tile(
                        ap.as_ptr(),
                        bp.as_ptr(),
                        nch,
                        cptr.add(rp * R * ldc + cp * R),
                        ldc * 4,
                        c0 > 0,
                    );
                }
            }
        }
        c0 += nch;
    }
    if !direct {
        for (dst, src) in c.chunks_exact_mut(n).zip(cbuf.chunks_exact(np)) {
            dst.copy_from_slice(&src[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::lcg;
    use super::*;

    /// Scalar model of `tile_2x2`: the same packed inputs, the same C addressing.
    struct Model;

    impl TileUnit for Model {
        type Guard = ();
        fn enter() {}
        unsafe fn tile(
            a: *const i8,
            b: *const i8,
            chunks: usize,
            c: *mut i32,
            ldc: usize,
            acc: bool,
        ) {
            // SAFETY: the contract of `tile_2x2` makes these ranges valid.
            let (a, b) = unsafe {
                (
                    std::slice::from_raw_parts(a, chunks * 2 * TILE),
                    std::slice::from_raw_parts(b, chunks * 2 * TILE),
                )
            };
            let ld = ldc / 4;
            for i in 0..R {
                for j in 0..R {
                    let (ti, tj, ii, jj) = (i / 16, j / 16, i % 16, j % 16);
                    let mut sum = 0i32;
                    for ch in 0..chunks {
                        let at = &a[ch * 2 * TILE + ti * TILE..][..TILE];
                        let bt = &b[ch * 2 * TILE + tj * TILE..][..TILE];
                        for q in 0..16 {
                            for l in 0..4 {
                                sum = sum.wrapping_add(
                                    i32::from(at[ii * 64 + 4 * q + l])
                                        * i32::from(bt[q * 64 + jj * 4 + l]),
                                );
                            }
                        }
                    }
                    // SAFETY: (i, j) lies in the caller's 32 × 32 block.
                    let cell = unsafe { &mut *c.add(i * ld + j) };
                    *cell = if acc { cell.wrapping_add(sum) } else { sum };
                }
            }
        }
    }

    /// The packing, blocking and edge handling, checked through the scalar model on any
    /// machine (the hardware path is checked by the crate's kernel tests where AMX exists).
    #[test]
    fn packing_and_blocking_match_the_reference() {
        let mut seed = 7;
        for &(m, k, n) in &[
            (1, 1, 1),
            (32, 64, 32),
            (33, 65, 31),
            (130, 600, 70),
            (64, 1030, 96),
            (5, 3, 200),
        ] {
            let a: Vec<i8> = (0..m * k).map(|_| lcg(&mut seed)).collect();
            let bm: Vec<i8> = (0..k * n).map(|_| lcg(&mut seed)).collect();
            let bc: Vec<i8> = (0..n * k).map(|i| bm[(i % k) * n + i / k]).collect();
            let want: Vec<i32> = (0..m * n)
                .map(|idx| {
                    let (i, j) = (idx / n, idx % n);
                    (0..k)
                        .map(|kk| i32::from(a[i * k + kk]) * i32::from(bm[kk * n + j]))
                        .sum()
                })
                .collect();
            for (data, layout) in [(&bm, Layout::RowMajor), (&bc, Layout::ColMajor)] {
                for threads in [1, 2] {
                    let mut out = vec![i32::MIN; m * n];
                    let view = BView { data, k, n, layout };
                    run_on::<Model>(&a, view, &mut out, threads);
                    assert_eq!(out, want, "m={m} k={k} n={n} {layout:?} threads={threads}");
                }
            }
        }
    }
}
