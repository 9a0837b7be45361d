//! `lode`: the Lode node binary. Everything lives in the `lode_node` library; this file only reports errors.

use std::process::ExitCode;

fn main() -> ExitCode {
    match lode_node::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:?}");
            ExitCode::FAILURE
        }
    }
}
