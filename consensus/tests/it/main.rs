//! Integration tests for lode-consensus: proposer selection, signatures, the codec, and validators deciding
//! blocks together over loopback.

mod codec_round_trips_and_rejects_malformed_bytes;
mod four_validators_decide_and_agree;
mod proposer_selection_is_weighted_and_deterministic;
mod signatures_bind_votes_and_proposals;
