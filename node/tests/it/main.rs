//! Integration tests of the `lode` binary: real processes, loopback sockets, temp dirs.

mod a_diverged_node_halts_with_a_report;
mod a_job_runs_through_the_market_cli;
mod a_killed_validator_catches_up;
#[cfg(feature = "failpoints")]
mod a_node_killed_on_the_commit_path_restarts;
mod a_provider_daemon_runs_jobs;
mod a_validator_links_a_provider_through_the_cli;
mod abci_socket;
mod blob_service;
mod broadcast_stream;
mod browsers_call_the_api_over_grpc_web;
mod byzantine_proposer;
mod chaos_loses_no_acknowledged_tx_and_never_forks;
mod cli;
mod engine_votes_make_evidence_the_app_accepts;
mod four_validators_commit_a_transfer;
mod gossip_flood;
mod governance_on_a_devnet;
mod grpc_flood;
mod in_process;
mod jobs_end_to_end;
mod malformed_consensus;
mod malformed_gossip;
mod metrics_endpoint;
mod nft_and_multisig_cli;
mod peers_that_do_not_read_fill_the_blob_serving_bound;
mod provider_daemon;
mod reflection_and_status;
mod staking_drives_the_validator_set;
mod subscribers_get_every_block_once;
mod support;
mod the_consumers_check_costs_a_fraction_of_the_product;
mod tx_test_vectors;
mod txs_and_blocks_are_found_by_id;
mod verified_compute_moves_the_consensus_set;
mod workload;
