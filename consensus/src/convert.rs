//! Conversions between Lode's consensus types (and Malachite's) and their `lode.consensus.v1` protobuf
//! forms: the one place that knows both. Decoding never panics: malformed input becomes a [`CodecError`].
//! [`crate::codec`] builds Malachite's codecs on these; [`crate::store`] its records.

use bytes::Bytes;
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::sync::{Request, Response, Status};
use malachitebft_app_channel::app::types::{PeerId, ProposedValue, SignedConsensusMsg};
use malachitebft_core_consensus::LivenessMsg;
use malachitebft_core_types::{
    CommitCertificate, CommitSignature, ExtendedCommitCertificate, ExtendedCommitSignature,
    NilOrVal, PolkaCertificate, PolkaSignature, Round, RoundCertificate, RoundCertificateType,
    RoundSignature, SignedMessage, ValidatorProof, Validity, VoteType,
};
use malachitebft_sync::{RawDecidedValue, ValueRequest, ValueResponse};
use prost::Message;

use crate::context::LodeContext;
use crate::error::CodecError;
use crate::signing::vote_type_to_u32;
use crate::types::{
    Address, Block, BlockHeader, BlockId, BlockTime, CompactBlock, CompactTx, Height, LastCommit,
    PartInit, Proposal, ProposalPart, PublicKey, Signature, Validator, ValidatorSet, Vote,
    MAX_TOTAL_POWER,
};
use lode_proto::consensus::v1 as pb;
use sha2::{Digest, Sha256};

// ---- scalar helpers ----

pub(crate) fn round_from_i64(field: &'static str, r: i64) -> Result<Round, CodecError> {
    if r == -1 {
        Ok(Round::Nil)
    } else {
        u32::try_from(r)
            .map(Round::new)
            .map_err(|_| CodecError::invalid(field, "round out of range"))
    }
}

pub(crate) fn address(field: &'static str, b: &[u8]) -> Result<Address, CodecError> {
    <[u8; 20]>::try_from(b)
        .map(Address)
        .map_err(|_| CodecError::invalid(field, "address must be 20 bytes"))
}

pub(crate) fn block_id(field: &'static str, b: &[u8]) -> Result<BlockId, CodecError> {
    <[u8; 32]>::try_from(b)
        .map(BlockId)
        .map_err(|_| CodecError::invalid(field, "block id must be 32 bytes"))
}

pub(crate) fn nil_or_block_id(
    field: &'static str,
    b: &[u8],
) -> Result<NilOrVal<BlockId>, CodecError> {
    if b.is_empty() {
        Ok(NilOrVal::Nil)
    } else {
        block_id(field, b).map(NilOrVal::Val)
    }
}

pub(crate) fn nil_or_block_id_bytes(v: &NilOrVal<BlockId>) -> Vec<u8> {
    match v {
        NilOrVal::Nil => Vec::new(),
        NilOrVal::Val(id) => id.0.to_vec(),
    }
}

pub(crate) fn signature(field: &'static str, b: &[u8]) -> Result<Signature, CodecError> {
    <[u8; 64]>::try_from(b)
        .map(Signature)
        .map_err(|_| CodecError::invalid(field, "signature must be 64 bytes"))
}

pub(crate) fn public_key(field: &'static str, b: &[u8]) -> Result<PublicKey, CodecError> {
    <[u8; 32]>::try_from(b)
        .map(PublicKey)
        .map_err(|_| CodecError::invalid(field, "public key must be 32 bytes"))
}

pub(crate) fn vote_type(t: u32) -> Result<VoteType, CodecError> {
    match t {
        0 => Ok(VoteType::Prevote),
        1 => Ok(VoteType::Precommit),
        _ => Err(CodecError::invalid("vote_type", "unknown vote type")),
    }
}

pub(crate) fn decode_pb<M: Message + Default>(bytes: &[u8]) -> Result<M, CodecError> {
    Ok(M::decode(bytes)?)
}

// ---- block ----

impl BlockHeader {
    /// The protobuf form (what the block id hashes).
    pub(crate) fn to_proto(&self) -> pb::BlockHeader {
        pb::BlockHeader {
            chain_id: self.chain_id.clone(),
            height: self.height.0,
            time_seconds: self.time.seconds,
            time_nanos: self.time.nanos,
            proposer: self.proposer.0.to_vec(),
            last_block_id: self.last_block_id.map(|b| b.0.to_vec()).unwrap_or_default(),
            tx_root: self.tx_root.to_vec(),
            app_hash: self.app_hash.to_vec(),
            last_commit_hash: self
                .last_commit_hash
                .map(|h| h.to_vec())
                .unwrap_or_default(),
        }
    }
}

impl LastCommit {
    /// The protobuf form.
    pub fn to_proto(&self) -> pb::LastCommit {
        pb::LastCommit {
            round: self.round,
            signatures: self
                .signatures
                .iter()
                .map(|(a, s)| pb::AddressSignature {
                    address: a.0.to_vec(),
                    signature: s.0.to_vec(),
                })
                .collect(),
        }
    }

    /// From the protobuf form.
    pub fn from_proto(c: pb::LastCommit) -> Result<Self, CodecError> {
        Ok(LastCommit {
            round: c.round,
            signatures: c
                .signatures
                .into_iter()
                .map(|s| {
                    Ok((
                        address("last_commit.address", &s.address)?,
                        signature("last_commit.signature", &s.signature)?,
                    ))
                })
                .collect::<Result<_, CodecError>>()?,
        })
    }

    /// SHA-256 of the encoded commit (what the header's `last_commit_hash` holds).
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.to_proto().encode_to_vec()).into()
    }
}

impl Block {
    /// The protobuf form.
    pub fn to_proto(&self) -> pb::Block {
        pb::Block {
            header: Some(self.header().to_proto()),
            txs: self.txs().iter().map(|t| t.to_vec()).collect(),
            last_commit: self.last_commit().map(LastCommit::to_proto),
        }
    }

    /// From the protobuf form.
    pub fn from_proto(b: pb::Block) -> Result<Self, CodecError> {
        let header = header_from_proto(b.header.ok_or(CodecError::Missing("block.header"))?)?;
        Ok(Block::with_last_commit(
            header,
            b.txs.into_iter().map(Bytes::from).collect(),
            b.last_commit.map(LastCommit::from_proto).transpose()?,
        ))
    }

    /// Encoded bytes (what value sync and the block store carry).
    pub fn encode(&self) -> Bytes {
        Bytes::from(self.to_proto().encode_to_vec())
    }

    /// From encoded bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        Self::from_proto(decode_pb(bytes)?)
    }
}

impl CompactBlock {
    /// Encoded bytes (what a proposal stream's data chunks carry, concatenated).
    pub fn encode(&self) -> Bytes {
        use pb::compact_tx::Tx;
        Bytes::from(
            pb::CompactBlock {
                header: Some(self.header.to_proto()),
                txs: self
                    .txs
                    .iter()
                    .map(|t| pb::CompactTx {
                        tx: Some(match t {
                            CompactTx::Whole(b) => Tx::Whole(b.to_vec()),
                            CompactTx::Named(h) => Tx::Hash(h.to_vec()),
                        }),
                    })
                    .collect(),
                last_commit: self.last_commit.as_ref().map(LastCommit::to_proto),
            }
            .encode_to_vec(),
        )
    }

    /// From encoded bytes: every tx whole or named by a 32-byte hash.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        use pb::compact_tx::Tx;
        let b: pb::CompactBlock = decode_pb(bytes)?;
        let header = header_from_proto(b.header.ok_or(CodecError::Missing("block.header"))?)?;
        let txs = b
            .txs
            .into_iter()
            .map(|t| match t.tx {
                Some(Tx::Whole(b)) => Ok(CompactTx::Whole(Bytes::from(b))),
                Some(Tx::Hash(h)) => <[u8; 32]>::try_from(h.as_slice())
                    .map(CompactTx::Named)
                    .map_err(|_| CodecError::invalid("compact_tx.hash", "must be 32 bytes")),
                None => Err(CodecError::Missing("compact_tx.tx")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            header,
            txs,
            last_commit: b.last_commit.map(LastCommit::from_proto).transpose()?,
        })
    }
}

/// A header from its protobuf form.
fn header_from_proto(h: pb::BlockHeader) -> Result<BlockHeader, CodecError> {
    if h.time_nanos >= 1_000_000_000 {
        return Err(CodecError::invalid("header.time_nanos", "must be < 10^9"));
    }
    let header = BlockHeader {
        chain_id: h.chain_id,
        height: Height(h.height),
        time: BlockTime {
            seconds: h.time_seconds,
            nanos: h.time_nanos,
        },
        proposer: address("header.proposer", &h.proposer)?,
        last_block_id: if h.last_block_id.is_empty() {
            None
        } else {
            Some(block_id("header.last_block_id", &h.last_block_id)?)
        },
        tx_root: <[u8; 32]>::try_from(h.tx_root.as_slice())
            .map_err(|_| CodecError::invalid("header.tx_root", "must be 32 bytes"))?,
        app_hash: Bytes::from(h.app_hash),
        last_commit_hash: if h.last_commit_hash.is_empty() {
            None
        } else {
            Some(
                <[u8; 32]>::try_from(h.last_commit_hash.as_slice()).map_err(|_| {
                    CodecError::invalid("header.last_commit_hash", "must be 32 bytes")
                })?,
            )
        },
    };
    Ok(header)
}

// ---- votes, proposals ----

pub(crate) fn extension_to_proto(
    e: &Option<malachitebft_core_types::SignedExtension<LodeContext>>,
) -> Option<pb::Extension> {
    e.as_ref().map(|e| pb::Extension {
        data: e.message.to_vec(),
        signature: e.signature.0.to_vec(),
    })
}

pub(crate) fn extension_from_proto(
    e: Option<pb::Extension>,
) -> Result<Option<malachitebft_core_types::SignedExtension<LodeContext>>, CodecError> {
    e.map(|e| {
        Ok(SignedMessage::new(
            Bytes::from(e.data),
            signature("extension.signature", &e.signature)?,
        ))
    })
    .transpose()
}

pub(crate) fn vote_to_proto(v: &Vote) -> pb::Vote {
    pb::Vote {
        vote_type: vote_type_to_u32(v.vote_type),
        height: v.height.0,
        round: v.round.as_i64(),
        value_id: nil_or_block_id_bytes(&v.value_id),
        validator_address: v.validator_address.0.to_vec(),
        extension: extension_to_proto(&v.extension),
    }
}

pub(crate) fn vote_from_proto(v: pb::Vote) -> Result<Vote, CodecError> {
    Ok(Vote {
        vote_type: vote_type(v.vote_type)?,
        height: Height(v.height),
        round: round_from_i64("vote.round", v.round)?,
        value_id: nil_or_block_id("vote.value_id", &v.value_id)?,
        validator_address: address("vote.validator_address", &v.validator_address)?,
        extension: extension_from_proto(v.extension)?,
    })
}

pub(crate) fn proposal_to_proto(p: &Proposal) -> pb::Proposal {
    pb::Proposal {
        height: p.height.0,
        round: p.round.as_i64(),
        // The header only: the body travels in the proposal stream (see `Block`).
        value: Some(pb::Block {
            header: Some(p.value.header().to_proto()),
            txs: Vec::new(),
            last_commit: None,
        }),
        pol_round: p.pol_round.as_i64(),
        validator_address: p.validator_address.0.to_vec(),
    }
}

pub(crate) fn proposal_from_proto(p: pb::Proposal) -> Result<Proposal, CodecError> {
    let value = p.value.ok_or(CodecError::Missing("proposal.value"))?;
    // Only the header counts; a body a peer sent anyway is dropped unread.
    let header = Block::from_proto(pb::Block {
        header: value.header,
        txs: Vec::new(),
        last_commit: None,
    })?;
    Ok(Proposal {
        height: Height(p.height),
        round: round_from_i64("proposal.round", p.round)?,
        value: header.to_header_only(),
        pol_round: round_from_i64("proposal.pol_round", p.pol_round)?,
        validator_address: address("proposal.validator_address", &p.validator_address)?,
    })
}

pub(crate) fn signed_msg_to_proto(m: &SignedConsensusMsg<LodeContext>) -> pb::SignedMessage {
    match m {
        SignedConsensusMsg::Vote(v) => pb::SignedMessage {
            message: Some(pb::signed_message::Message::Vote(vote_to_proto(&v.message))),
            signature: v.signature.0.to_vec(),
        },
        SignedConsensusMsg::Proposal(p) => pb::SignedMessage {
            message: Some(pb::signed_message::Message::Proposal(proposal_to_proto(
                &p.message,
            ))),
            signature: p.signature.0.to_vec(),
        },
    }
}

pub(crate) fn signed_msg_from_proto(
    m: pb::SignedMessage,
) -> Result<SignedConsensusMsg<LodeContext>, CodecError> {
    let sig = signature("signed_message.signature", &m.signature)?;
    match m
        .message
        .ok_or(CodecError::Missing("signed_message.message"))?
    {
        pb::signed_message::Message::Vote(v) => Ok(SignedConsensusMsg::Vote(SignedMessage::new(
            vote_from_proto(v)?,
            sig,
        ))),
        pb::signed_message::Message::Proposal(p) => Ok(SignedConsensusMsg::Proposal(
            SignedMessage::new(proposal_from_proto(p)?, sig),
        )),
    }
}

// ---- proposal parts ----

pub(crate) fn part_to_proto(p: &ProposalPart) -> pb::ProposalPart {
    use pb::proposal_part::Part;
    let part = match p {
        ProposalPart::Init(i) => Part::Init(pb::PartInit {
            height: i.height.0,
            round: i.round.as_i64(),
            valid_round: i.valid_round.as_i64(),
            proposer: i.proposer.0.to_vec(),
        }),
        ProposalPart::Data(d) => Part::Data(pb::PartData { chunk: d.to_vec() }),
        ProposalPart::Fin(s) => Part::Fin(pb::PartFin {
            signature: s.0.to_vec(),
        }),
    };
    pb::ProposalPart { part: Some(part) }
}

pub(crate) fn part_from_proto(p: pb::ProposalPart) -> Result<ProposalPart, CodecError> {
    use pb::proposal_part::Part;
    Ok(
        match p.part.ok_or(CodecError::Missing("proposal_part.part"))? {
            Part::Init(i) => ProposalPart::Init(PartInit {
                height: Height(i.height),
                round: round_from_i64("part_init.round", i.round)?,
                valid_round: round_from_i64("part_init.valid_round", i.valid_round)?,
                proposer: address("part_init.proposer", &i.proposer)?,
            }),
            Part::Data(d) => ProposalPart::Data(Bytes::from(d.chunk)),
            Part::Fin(f) => ProposalPart::Fin(signature("part_fin.signature", &f.signature)?),
        },
    )
}

pub(crate) fn stream_to_proto(m: &StreamMessage<ProposalPart>) -> pb::StreamMessage {
    use pb::stream_message::Content;
    pb::StreamMessage {
        stream_id: m.stream_id.to_bytes().to_vec(),
        sequence: m.sequence,
        content: Some(match &m.content {
            StreamContent::Data(p) => Content::Data(part_to_proto(p)),
            StreamContent::Fin => Content::Fin(true),
        }),
    }
}

pub(crate) fn stream_from_proto(
    m: pb::StreamMessage,
) -> Result<StreamMessage<ProposalPart>, CodecError> {
    use pb::stream_message::Content;
    let content = match m
        .content
        .ok_or(CodecError::Missing("stream_message.content"))?
    {
        Content::Data(p) => StreamContent::Data(part_from_proto(p)?),
        Content::Fin(_) => StreamContent::Fin,
    };
    Ok(StreamMessage::new(
        StreamId::new(Bytes::from(m.stream_id)),
        m.sequence,
        content,
    ))
}

// ---- certificates ----

pub(crate) fn commit_cert_to_proto(c: &CommitCertificate<LodeContext>) -> pb::CommitCertificate {
    pb::CommitCertificate {
        height: c.height.0,
        round: c.round.as_i64(),
        value_id: c.value_id.0.to_vec(),
        signatures: c
            .commit_signatures
            .iter()
            .map(|s| pb::AddressSignature {
                address: s.address.0.to_vec(),
                signature: s.signature.0.to_vec(),
            })
            .collect(),
    }
}

pub(crate) fn commit_cert_from_proto(
    c: pb::CommitCertificate,
) -> Result<CommitCertificate<LodeContext>, CodecError> {
    Ok(CommitCertificate {
        height: Height(c.height),
        round: round_from_i64("certificate.round", c.round)?,
        value_id: block_id("certificate.value_id", &c.value_id)?,
        commit_signatures: c
            .signatures
            .into_iter()
            .map(|s| {
                Ok(CommitSignature::new(
                    address("signature.address", &s.address)?,
                    signature("signature.signature", &s.signature)?,
                ))
            })
            .collect::<Result<_, CodecError>>()?,
    })
}

pub(crate) fn ext_cert_to_proto(
    c: &ExtendedCommitCertificate<LodeContext>,
) -> pb::ExtendedCommitCertificate {
    pb::ExtendedCommitCertificate {
        height: c.height.0,
        round: c.round.as_i64(),
        value_id: c.value_id.0.to_vec(),
        signatures: c
            .commit_signatures
            .iter()
            .map(|s| pb::ExtendedCommitSignature {
                address: s.address.0.to_vec(),
                signature: s.signature.0.to_vec(),
                extension: extension_to_proto(&s.extension),
            })
            .collect(),
    }
}

pub(crate) fn ext_cert_from_proto(
    c: pb::ExtendedCommitCertificate,
) -> Result<ExtendedCommitCertificate<LodeContext>, CodecError> {
    Ok(ExtendedCommitCertificate {
        height: Height(c.height),
        round: round_from_i64("certificate.round", c.round)?,
        value_id: block_id("certificate.value_id", &c.value_id)?,
        commit_signatures: c
            .signatures
            .into_iter()
            .map(|s| {
                Ok(ExtendedCommitSignature::new(
                    address("signature.address", &s.address)?,
                    signature("signature.signature", &s.signature)?,
                    extension_from_proto(s.extension)?,
                ))
            })
            .collect::<Result<_, CodecError>>()?,
    })
}

/// A commit certificate without extensions, as an extended one (what value sync carries).
pub fn extend_certificate(
    c: &CommitCertificate<LodeContext>,
) -> ExtendedCommitCertificate<LodeContext> {
    ExtendedCommitCertificate {
        height: c.height,
        round: c.round,
        value_id: c.value_id,
        commit_signatures: c
            .commit_signatures
            .iter()
            .map(|s| ExtendedCommitSignature::new(s.address, s.signature, None))
            .collect(),
    }
}

pub(crate) fn polka_to_proto(c: &PolkaCertificate<LodeContext>) -> pb::PolkaCertificate {
    pb::PolkaCertificate {
        height: c.height.0,
        round: c.round.as_i64(),
        value_id: c.value_id.0.to_vec(),
        signatures: c
            .polka_signatures
            .iter()
            .map(|s| pb::AddressSignature {
                address: s.address.0.to_vec(),
                signature: s.signature.0.to_vec(),
            })
            .collect(),
    }
}

pub(crate) fn polka_from_proto(
    c: pb::PolkaCertificate,
) -> Result<PolkaCertificate<LodeContext>, CodecError> {
    Ok(PolkaCertificate {
        height: Height(c.height),
        round: round_from_i64("polka.round", c.round)?,
        value_id: block_id("polka.value_id", &c.value_id)?,
        polka_signatures: c
            .signatures
            .into_iter()
            .map(|s| {
                Ok(PolkaSignature::new(
                    address("signature.address", &s.address)?,
                    signature("signature.signature", &s.signature)?,
                ))
            })
            .collect::<Result<_, CodecError>>()?,
    })
}

pub(crate) fn round_cert_to_proto(c: &RoundCertificate<LodeContext>) -> pb::RoundCertificate {
    pb::RoundCertificate {
        height: c.height.0,
        round: c.round.as_i64(),
        cert_type: match c.cert_type {
            RoundCertificateType::Skip => 0,
            RoundCertificateType::Precommit => 1,
        },
        signatures: c
            .round_signatures
            .iter()
            .map(|s| pb::RoundSignature {
                vote_type: vote_type_to_u32(s.vote_type),
                value_id: nil_or_block_id_bytes(&s.value_id),
                address: s.address.0.to_vec(),
                signature: s.signature.0.to_vec(),
            })
            .collect(),
    }
}

pub(crate) fn round_cert_from_proto(
    c: pb::RoundCertificate,
) -> Result<RoundCertificate<LodeContext>, CodecError> {
    Ok(RoundCertificate {
        height: Height(c.height),
        round: round_from_i64("round_certificate.round", c.round)?,
        cert_type: match c.cert_type {
            0 => RoundCertificateType::Skip,
            1 => RoundCertificateType::Precommit,
            _ => return Err(CodecError::invalid("cert_type", "unknown certificate type")),
        },
        round_signatures: c
            .signatures
            .into_iter()
            .map(|s| {
                Ok(RoundSignature::new(
                    vote_type(s.vote_type)?,
                    nil_or_block_id("signature.value_id", &s.value_id)?,
                    address("signature.address", &s.address)?,
                    signature("signature.signature", &s.signature)?,
                ))
            })
            .collect::<Result<_, CodecError>>()?,
    })
}

// ---- validator sets ----

/// The protobuf form of a validator set (with priorities).
pub fn validator_set_to_proto(vs: &ValidatorSet) -> pb::ValidatorSet {
    pb::ValidatorSet {
        validators: vs
            .validators()
            .iter()
            .zip(vs.priorities())
            .map(|(v, p)| pb::Validator {
                public_key: v.public_key.0.to_vec(),
                voting_power: v.voting_power,
                proposer_priority: *p,
            })
            .collect(),
    }
}

/// A validator set from its protobuf form, only as the engine could have built it: validators sorted by
/// address without duplicates, at least one, each with power above zero and in all at most
/// [`MAX_TOTAL_POWER`] (proposer selection needs a candidate and its priority arithmetic that bound).
pub fn validator_set_from_proto(vs: pb::ValidatorSet) -> Result<ValidatorSet, CodecError> {
    if vs.validators.is_empty() {
        return Err(CodecError::invalid("validators", "empty"));
    }
    let total = vs.validators.iter().try_fold(0u64, |t, v| {
        (v.voting_power > 0)
            .then(|| t.checked_add(v.voting_power))
            .flatten()
    });
    if total.is_none_or(|t| t > MAX_TOTAL_POWER) {
        return Err(CodecError::invalid(
            "validators.voting_power",
            "each must be above zero and the total at most MAX_TOTAL_POWER",
        ));
    }
    let mut vals = Vec::with_capacity(vs.validators.len());
    let mut prios = Vec::with_capacity(vs.validators.len());
    for v in vs.validators {
        vals.push(Validator::new(
            public_key("validator.public_key", &v.public_key)?,
            v.voting_power,
        ));
        prios.push(v.proposer_priority);
    }
    if !vals
        .windows(2)
        .all(|w| matches!(w, [a, b] if a.address < b.address))
    {
        return Err(CodecError::invalid(
            "validators",
            "must be sorted by address, unique",
        ));
    }
    ValidatorSet::from_parts(vals, prios)
        .ok_or(CodecError::invalid("validators", "length mismatch"))
}

// ---- engine messages ----

pub(crate) fn response_to_proto(r: &Response<LodeContext>) -> pb::SyncResponse {
    match r {
        Response::ValueResponse(v) => pb::SyncResponse {
            start_height: v.start_height.0,
            values: v
                .values
                .iter()
                .map(|d| pb::RawDecidedValue {
                    value_bytes: d.value_bytes.to_vec(),
                    certificate: Some(ext_cert_to_proto(&d.certificate)),
                })
                .collect(),
        },
    }
}

pub(crate) fn liveness_to_proto(m: &LivenessMsg<LodeContext>) -> pb::LivenessMessage {
    use pb::liveness_message::Message as M;
    pb::LivenessMessage {
        message: Some(match m {
            LivenessMsg::Vote(v) => {
                M::Vote(signed_msg_to_proto(&SignedConsensusMsg::Vote(v.clone())))
            }
            LivenessMsg::PolkaCertificate(c) => M::PolkaCertificate(polka_to_proto(c)),
            LivenessMsg::SkipRoundCertificate(c) => M::SkipRoundCertificate(round_cert_to_proto(c)),
        }),
    }
}

pub(crate) fn liveness_from_proto(
    m: pb::LivenessMessage,
) -> Result<LivenessMsg<LodeContext>, CodecError> {
    use pb::liveness_message::Message as M;
    match m.message.ok_or(CodecError::Missing("liveness.message"))? {
        M::Vote(v) => match signed_msg_from_proto(v)? {
            SignedConsensusMsg::Vote(v) => Ok(LivenessMsg::Vote(v)),
            SignedConsensusMsg::Proposal(_) => {
                Err(CodecError::invalid("liveness.vote", "not a vote"))
            }
        },
        M::PolkaCertificate(c) => Ok(LivenessMsg::PolkaCertificate(polka_from_proto(c)?)),
        M::SkipRoundCertificate(c) => {
            Ok(LivenessMsg::SkipRoundCertificate(round_cert_from_proto(c)?))
        }
    }
}

pub(crate) fn validator_proof_to_proto(p: &ValidatorProof<LodeContext>) -> pb::ValidatorProof {
    pb::ValidatorProof {
        public_key: p.public_key.clone(),
        peer_id: p.peer_id.clone(),
        signature: p.signature.0.to_vec(),
    }
}

pub(crate) fn validator_proof_from_proto(
    p: pb::ValidatorProof,
) -> Result<ValidatorProof<LodeContext>, CodecError> {
    Ok(ValidatorProof::new(
        p.public_key,
        p.peer_id,
        signature("proof.signature", &p.signature)?,
    ))
}

pub(crate) fn proposed_value_to_proto(v: &ProposedValue<LodeContext>) -> pb::ProposedValue {
    pb::ProposedValue {
        height: v.height.0,
        round: v.round.as_i64(),
        valid_round: v.valid_round.as_i64(),
        proposer: v.proposer.0.to_vec(),
        value: Some(v.value.to_proto()),
        valid: v.validity.is_valid(),
    }
}

pub(crate) fn proposed_value_from_proto(
    v: pb::ProposedValue,
) -> Result<ProposedValue<LodeContext>, CodecError> {
    Ok(ProposedValue {
        height: Height(v.height),
        round: round_from_i64("proposed.round", v.round)?,
        valid_round: round_from_i64("proposed.valid_round", v.valid_round)?,
        proposer: address("proposed.proposer", &v.proposer)?,
        value: Block::from_proto(v.value.ok_or(CodecError::Missing("proposed.value"))?)?,
        validity: Validity::from_bool(v.valid),
    })
}

pub(crate) fn status_to_proto(s: &Status<LodeContext>) -> pb::SyncStatus {
    pb::SyncStatus {
        peer_id: s.peer_id.to_bytes(),
        tip_height: s.tip_height.0,
        history_min_height: s.history_min_height.0,
    }
}

pub(crate) fn status_from_proto(s: pb::SyncStatus) -> Result<Status<LodeContext>, CodecError> {
    Ok(Status {
        peer_id: PeerId::from_bytes(&s.peer_id)
            .map_err(|_| CodecError::invalid("status.peer_id", "not a peer id"))?,
        tip_height: Height(s.tip_height),
        history_min_height: Height(s.history_min_height),
    })
}

pub(crate) fn request_to_proto(r: &Request<LodeContext>) -> pb::SyncRequest {
    match r {
        Request::ValueRequest(v) => pb::SyncRequest {
            from_height: v.range.start().0,
            to_height: v.range.end().0,
        },
    }
}

pub(crate) fn request_from_proto(r: pb::SyncRequest) -> Result<Request<LodeContext>, CodecError> {
    Ok(Request::ValueRequest(ValueRequest::new(
        Height(r.from_height)..=Height(r.to_height),
    )))
}

pub(crate) fn response_from_proto(
    r: pb::SyncResponse,
) -> Result<Response<LodeContext>, CodecError> {
    let values = r
        .values
        .into_iter()
        .map(|d| {
            Ok(RawDecidedValue::new(
                Bytes::from(d.value_bytes),
                ext_cert_from_proto(
                    d.certificate
                        .ok_or(CodecError::Missing("raw_value.certificate"))?,
                )?,
            ))
        })
        .collect::<Result<Vec<_>, CodecError>>()?;
    Ok(Response::ValueResponse(ValueResponse::new(
        Height(r.start_height),
        values,
    )))
}
