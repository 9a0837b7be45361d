//! `lode`: the Lode node binary. Everything lives in the `lode_node` library; this file only reports errors.

use std::process::ExitCode;

/// jemalloc instead of glibc malloc: a node allocates per tx, per message and per RPC on many threads, and
/// glibc's allocator was about a sixth of a loaded devnet's CPU time.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    match lode_node::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<lode_node::cli::Exit>() {
            Some(exit) => {
                eprintln!("error: {}", exit.message);
                ExitCode::from(exit.code)
            }
            None => {
                eprintln!("error: {e:?}");
                ExitCode::FAILURE
            }
        },
    }
}
