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
        "proto/lode/market/v1/market.proto",
        "proto/lode/market/v1/query.proto",
        "proto/lode/compute/v1/compute.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let mut config = prost_build::Config::new();
    // Query and module messages serialize to JSON for the CLI (`lode query …` prints them): bytes as hex,
    // enums by name.
    for package in [
        ".lode.query.v1",
        ".lode.staking.v1",
        ".lode.gov.v1",
        ".lode.nft.v1",
        ".lode.market.v1",
    ] {
        config.type_attribute(package, "#[derive(serde::Serialize)]");
    }
    for field in [
        ".lode.staking.v1.Validator.consensus_key",
        ".lode.staking.v1.MsgCreateValidator.consensus_key",
        ".lode.query.v1.PageRequest.key",
        ".lode.query.v1.PageResponse.next_key",
        ".lode.market.v1.Job.id",
        ".lode.market.v1.Job.a_root",
        ".lode.market.v1.Job.b_root",
        ".lode.market.v1.Job.output_root",
        ".lode.market.v1.Job.seed",
        ".lode.market.v1.MsgPostJob.a_root",
        ".lode.market.v1.MsgPostJob.b_root",
        ".lode.market.v1.MsgCancelJob.job_id",
        ".lode.market.v1.MsgAcceptJob.job_id",
        ".lode.market.v1.MsgDeclineJob.job_id",
        ".lode.market.v1.JobRequest.job_id",
    ] {
        config.field_attribute(field, "#[serde(serialize_with = \"crate::json::hex\")]");
    }
    config.field_attribute(
        ".lode.gov.v1.Proposal.status",
        "#[serde(serialize_with = \"crate::json::proposal_status\")]",
    );
    config.field_attribute(
        ".lode.gov.v1.ProposalsRequest.status",
        "#[serde(serialize_with = \"crate::json::proposal_status\")]",
    );
    config.field_attribute(
        ".lode.gov.v1.WeightedVoteOption.option",
        "#[serde(serialize_with = \"crate::json::vote_option\")]",
    );
    config.field_attribute(
        ".lode.market.v1.ProviderResponse.recent_jobs",
        "#[serde(serialize_with = \"crate::json::hex_list\")]",
    );
    config.field_attribute(
        ".lode.market.v1.Job.on_failure",
        "#[serde(serialize_with = \"crate::json::on_failure\")]",
    );
    config.compile_fds(descriptors)?;
    Ok(())
}
