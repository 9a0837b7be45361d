//! The wire codec: every message Malachite asks the application to encode (gossip, WAL, value sync), as
//! `lode.consensus.v1` protos. Only Malachite's `Codec` impls live here; the conversions are in
//! [`crate::convert`]. Decoding never panics: malformed bytes become a [`CodecError`].

use bytes::Bytes;
use malachitebft_app_channel::app::streaming::StreamMessage;
use malachitebft_app_channel::app::types::codec::{Codec, HasEncodedLen};
use malachitebft_app_channel::app::types::sync::{Request, Response, Status};
use malachitebft_app_channel::app::types::{ProposedValue, SignedConsensusMsg};
use malachitebft_core_consensus::LivenessMsg;
use malachitebft_core_types::{CommitCertificate, PolkaCertificate, ValidatorProof};
use prost::Message;

use crate::context::LodeContext;
use crate::convert::*;
use crate::error::CodecError;
use crate::types::ProposalPart;
use lode_proto::consensus::v1 as pb;

/// Lode's codec for consensus gossip, the WAL and value sync. Stateless.
#[derive(Clone, Copy, Debug, Default)]
pub struct LodeCodec;

// ---- Codec impls ----

macro_rules! codec_via {
    ($t:ty, $pb:ty, $to:expr, $from:expr) => {
        impl Codec<$t> for LodeCodec {
            type Error = CodecError;

            fn decode(&self, bytes: Bytes) -> Result<$t, CodecError> {
                let m: $pb = decode_pb(&bytes)?;
                let from: fn($pb) -> Result<$t, CodecError> = $from;
                from(m)
            }

            fn encode(&self, msg: &$t) -> Result<Bytes, CodecError> {
                let to: fn(&$t) -> $pb = $to;
                let m: $pb = to(msg);
                Ok(Bytes::from(m.encode_to_vec()))
            }
        }
    };
}

codec_via!(
    ProposalPart,
    pb::ProposalPart,
    part_to_proto,
    part_from_proto
);
codec_via!(
    SignedConsensusMsg<LodeContext>,
    pb::SignedMessage,
    signed_msg_to_proto,
    signed_msg_from_proto
);
codec_via!(
    StreamMessage<ProposalPart>,
    pb::StreamMessage,
    stream_to_proto,
    stream_from_proto
);
codec_via!(
    PolkaCertificate<LodeContext>,
    pb::PolkaCertificate,
    polka_to_proto,
    polka_from_proto
);
codec_via!(
    CommitCertificate<LodeContext>,
    pb::CommitCertificate,
    commit_cert_to_proto,
    commit_cert_from_proto
);

codec_via!(
    LivenessMsg<LodeContext>,
    pb::LivenessMessage,
    liveness_to_proto,
    liveness_from_proto
);

codec_via!(
    ValidatorProof<LodeContext>,
    pb::ValidatorProof,
    validator_proof_to_proto,
    validator_proof_from_proto
);

codec_via!(
    ProposedValue<LodeContext>,
    pb::ProposedValue,
    proposed_value_to_proto,
    proposed_value_from_proto
);

codec_via!(
    Status<LodeContext>,
    pb::SyncStatus,
    status_to_proto,
    status_from_proto
);

codec_via!(
    Request<LodeContext>,
    pb::SyncRequest,
    request_to_proto,
    request_from_proto
);

codec_via!(
    Response<LodeContext>,
    pb::SyncResponse,
    response_to_proto,
    response_from_proto
);

impl HasEncodedLen<Response<LodeContext>> for LodeCodec {
    fn encoded_len(&self, msg: &Response<LodeContext>) -> Result<usize, CodecError> {
        Ok(response_to_proto(msg).encoded_len())
    }
}
