//! Compiles the node's gRPC protos with protox (no `protoc` needed) and tonic-prost-build: the clients
//! always, the servers only with feature `server` (the node's). The module query services reuse the
//! request/response messages of the `lode-proto` crate (`extern_path`), so a gRPC response is byte-for-byte
//! the ABCI query value. Without feature `grpc` nothing is compiled (the state crate's build).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("CARGO_FEATURE_GRPC").is_none() {
        return Ok(());
    }
    let files = [
        "proto/lode/node/v1/node.proto",
        "proto/lode/node/v1/modules.proto",
        "proto/lode/node/v1/chain.proto",
        "proto/lode/node/v1/blobs.proto",
        "proto/lode/node/v1/blobs_p2p.proto",
        // Not used by a service, but served by reflection (and the explorer's schema) so that a client that
        // learns the API by reflection alone can build and decode a tx.
        "../proto/proto/lode/tx/v1/tx.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-changed=../proto/proto");
    let descriptors = protox::compile(files, ["proto", "../proto/proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("lode_node_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    let mut builder = tonic_prost_build::configure()
        .build_server(std::env::var_os("CARGO_FEATURE_SERVER").is_some());
    for module in [
        "bank", "compute", "gov", "market", "nft", "query", "staking", "tx",
    ] {
        builder = builder.extern_path(
            format!(".lode.{module}.v1"),
            format!("::lode_proto::{module}::v1"),
        );
    }
    // Blob chunks and fetched txs are `bytes::Bytes`, so each is sliced out of the received buffer, never
    // copied.
    for path in [
        ".lode.node.v1.PutRequest.chunk",
        ".lode.node.v1.GetResponse.chunk",
        ".lode.node.v1.PeerBlobResponse.chunk",
        ".lode.node.v1.PeerTxRequest.hashes",
        ".lode.node.v1.PeerTxResponse.txs",
    ] {
        builder = builder.bytes(path);
    }
    builder.compile_fds(descriptors)?;
    Ok(())
}
