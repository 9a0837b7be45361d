//! Helpers shared by the benches (each bench is its own crate and includes this module).
#![allow(dead_code)]

use std::time::Duration;

use lode_gpu_verify::MatrixI8;

/// A deterministic pseudo-random int8 matrix (an LCG seeded with `seed`).
pub fn random(rows: usize, cols: usize, seed: u64) -> MatrixI8 {
    let mut s = seed;
    MatrixI8::from_fn(rows, cols, |_, _| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 56) as i8
    })
    .expect("shape")
}

/// CPU time of the calling thread (Linux `CLOCK_THREAD_CPUTIME_ID`): on a machine shared
/// with other work, wall time inflates a 13 s product and a 30 ms check differently.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
#[allow(unsafe_code)]
pub fn thread_cpu_time() -> Option<Duration> {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: on 64-bit Linux `struct timespec` is two 64-bit fields; the call writes only
    // that struct.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    let (sec, nsec) = (u64::try_from(ts.sec).ok()?, u32::try_from(ts.nsec).ok()?);
    (rc == 0).then(|| Duration::new(sec, nsec))
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
pub fn thread_cpu_time() -> Option<Duration> {
    None
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
