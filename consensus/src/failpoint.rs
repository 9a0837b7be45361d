//! Crash points on the commit path, for the tests that kill a node at each step and restart it.
//!
//! Compiled in only with the `failpoints` feature (tests); otherwise [`hit`] is empty and costs nothing. With
//! the feature, a node whose environment names a point in `LODE_FAILPOINT` aborts its process there, as a
//! SIGKILL would: no destructor runs and nothing more is written. (The one place a library crate reads the
//! environment: the point must be chosen per process, and only test builds have it.)

/// The commit path's crash points, in the order the bridge passes them.
pub const POINTS: [&str; 4] = [
    "before_finalize_block",
    "after_finalize_block",
    "after_stage_commit",
    "after_app_commit",
];

/// Aborts the process if `LODE_FAILPOINT` names `point`.
#[cfg(feature = "failpoints")]
pub(crate) fn hit(point: &str) {
    static CHOSEN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let chosen = CHOSEN.get_or_init(|| std::env::var("LODE_FAILPOINT").ok());
    if chosen.as_deref() == Some(point) {
        eprintln!("failpoint {point}: aborting");
        std::process::abort();
    }
}

/// Does nothing: crash points exist only in builds with the `failpoints` feature.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn hit(_point: &str) {}
