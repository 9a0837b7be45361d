//! Portable micro-kernel: plain Rust loops the compiler vectorises for the baseline target.

use super::MicroKernel;

pub(crate) struct Portable;

const MR: usize = 4;
const NR: usize = 16;

impl MicroKernel for Portable {
    const MR: usize = MR;
    const NR: usize = NR;
    const KG: usize = 1;
    type A = i32;
    type B = i32;
    const SHIFTED_B: bool = false;

    fn enc_a(v: i8) -> i32 {
        i32::from(v)
    }

    fn enc_b(v: i8) -> i32 {
        i32::from(v)
    }

    fn kernel(a: &[i32], b: &[i32], groups: usize, out: &mut [i32], ldc: usize, accumulate: bool) {
        let mut acc = [[0i32; NR]; MR];
        for (ag, bg) in a.chunks_exact(MR).zip(b.chunks_exact(NR)).take(groups) {
            for (row, &av) in acc.iter_mut().zip(ag) {
                for (c, &bv) in row.iter_mut().zip(bg) {
                    // Products fit in i16 and partial sums are bounded by k·2¹⁴ < 2³¹.
                    *c = c.wrapping_add(av * bv);
                }
            }
        }
        for (ii, row) in acc.iter().enumerate() {
            let dst = &mut out[ii * ldc..ii * ldc + NR];
            if accumulate {
                for (d, v) in dst.iter_mut().zip(row) {
                    *d = d.wrapping_add(*v);
                }
            } else {
                dst.copy_from_slice(row);
            }
        }
    }
}
