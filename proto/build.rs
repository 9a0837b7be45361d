//! Compiles `proto/**/*.proto` with protox (a pure-Rust protobuf compiler), so no `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/lode/tx/v1/tx.proto",
        "proto/lode/bank/v1/bank.proto",
        "proto/lode/query/v1/query.proto",
        "proto/lode/consensus/v1/consensus.proto",
        "proto/lode/staking/v1/staking.proto",
        "proto/lode/staking/v1/query.proto",
        "proto/lode/gov/v1/gov.proto",
        "proto/lode/gov/v1/query.proto",
        "proto/lode/nft/v1/nft.proto",
        "proto/lode/nft/v1/query.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
