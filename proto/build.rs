//! Compiles `proto/**/*.proto` with protox (a pure-Rust protobuf compiler), so no `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/lode/tx/v1/tx.proto",
        "proto/lode/bank/v1/bank.proto",
        "proto/lode/query/v1/query.proto",
        "proto/lode/consensus/v1/consensus.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
