//! evidence's message: domain types, wire conversion and the handler.

use borsh::{BorshDeserialize, BorshSerialize};
use lode_proto::staking::v1 as pb;
use lode_proto::tx::v1::msg::Sum;
use prost::Message;

use super::{state_key, EvidenceError};
use crate::{
    address::{parse_address, Address},
    codec::encode,
    error::TxError,
    event::Event,
    module::BlockCtx,
    modules::staking,
    store::StateWrite,
};

/// An evidence message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvidenceMsg {
    /// Two conflicting votes of one validator (checked to conflict when decoded).
    SubmitDoubleSign {
        submitter: Address,
        vote_a: SignedVote,
        vote_b: SignedVote,
    },
}

impl EvidenceMsg {
    pub fn sender(&self) -> &Address {
        match self {
            EvidenceMsg::SubmitDoubleSign { submitter, .. } => submitter,
        }
    }
}

/// One signed consensus vote (see `lode.staking.v1.SignedVote`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedVote {
    /// 0 = prevote, 1 = precommit.
    pub vote_type: u32,
    pub height: u64,
    pub round: i64,
    /// The block id voted for; empty for nil.
    pub value_id: Vec<u8>,
    /// First 20 bytes of SHA-256 of the consensus key.
    pub validator_address: [u8; 20],
    pub signature: [u8; 64],
}

impl SignedVote {
    /// The bytes the consensus engine signs for this vote on `chain_id`: the protobuf encoding of
    /// `lode.consensus.v1.CanonicalVote` (the same function as the engine's `vote_sign_bytes`).
    pub fn sign_bytes(&self, chain_id: &str) -> Vec<u8> {
        lode_proto::consensus::v1::CanonicalVote {
            chain_id: chain_id.to_owned(),
            vote_type: self.vote_type,
            height: self.height,
            round: self.round,
            value_id: self.value_id.clone(),
        }
        .encode_to_vec()
    }

    /// Whether `signature` verifies over [`Self::sign_bytes`] with `key` (ZIP-215, `ed25519-consensus`).
    pub fn verifies(&self, chain_id: &str, key: &[u8; 32]) -> bool {
        ed25519_consensus::VerificationKey::try_from(*key)
            .and_then(|k| {
                k.verify(
                    &ed25519_consensus::Signature::from(self.signature),
                    &self.sign_bytes(chain_id),
                )
            })
            .is_ok()
    }
}

impl TryFrom<pb::SignedVote> for SignedVote {
    type Error = TxError;
    fn try_from(v: pb::SignedVote) -> Result<Self, TxError> {
        if v.vote_type > 1 {
            return Err(TxError::Decode(format!(
                "vote_type {} (0 = prevote, 1 = precommit)",
                v.vote_type
            )));
        }
        if v.round < 0 {
            return Err(TxError::Decode(format!("vote round {}", v.round)));
        }
        if !(v.value_id.is_empty() || v.value_id.len() == 32) {
            return Err(TxError::Decode(format!(
                "value_id of {} bytes (32, or empty for nil)",
                v.value_id.len()
            )));
        }
        let validator_address =
            <[u8; 20]>::try_from(v.validator_address.as_slice()).map_err(|_| {
                TxError::Decode(format!(
                    "validator_address of {} bytes (20)",
                    v.validator_address.len()
                ))
            })?;
        let signature = <[u8; 64]>::try_from(v.signature.as_slice()).map_err(|_| {
            TxError::Decode(format!("signature of {} bytes (64)", v.signature.len()))
        })?;
        Ok(SignedVote {
            vote_type: v.vote_type,
            height: v.height,
            round: v.round,
            value_id: v.value_id,
            validator_address,
            signature,
        })
    }
}

impl From<&SignedVote> for pb::SignedVote {
    fn from(v: &SignedVote) -> Self {
        pb::SignedVote {
            vote_type: v.vote_type,
            height: v.height,
            round: v.round,
            value_id: v.value_id.clone(),
            validator_address: v.validator_address.to_vec(),
            signature: v.signature.to_vec(),
        }
    }
}

/// Whether two votes are a double sign: one validator, one height, round and vote type, two values.
pub fn check_conflict(a: &SignedVote, b: &SignedVote) -> Result<(), EvidenceError> {
    if a.validator_address != b.validator_address {
        return Err(EvidenceError::NotConflicting(
            "the votes are from different validators".into(),
        ));
    }
    if (a.height, a.round, a.vote_type) != (b.height, b.round, b.vote_type) {
        return Err(EvidenceError::NotConflicting(format!(
            "height/round/type {}/{}/{} and {}/{}/{} differ",
            a.height, a.round, a.vote_type, b.height, b.round, b.vote_type
        )));
    }
    if a.value_id == b.value_id {
        return Err(EvidenceError::NotConflicting(
            "both votes are for the same value".into(),
        ));
    }
    Ok(())
}

impl TryFrom<pb::MsgSubmitDoubleSign> for EvidenceMsg {
    type Error = TxError;
    fn try_from(m: pb::MsgSubmitDoubleSign) -> Result<Self, TxError> {
        let submitter = parse_address(&m.submitter)?;
        let (Some(a), Some(b)) = (m.vote_a, m.vote_b) else {
            return Err(TxError::Decode(
                "double-sign evidence needs two votes".into(),
            ));
        };
        let (vote_a, vote_b) = (SignedVote::try_from(a)?, SignedVote::try_from(b)?);
        check_conflict(&vote_a, &vote_b)?;
        Ok(EvidenceMsg::SubmitDoubleSign {
            submitter,
            vote_a,
            vote_b,
        })
    }
}

impl From<&EvidenceMsg> for Sum {
    fn from(m: &EvidenceMsg) -> Sum {
        match m {
            EvidenceMsg::SubmitDoubleSign {
                submitter,
                vote_a,
                vote_b,
            } => Sum::SubmitDoubleSign(pb::MsgSubmitDoubleSign {
                submitter: submitter.to_string(),
                vote_a: Some(vote_a.into()),
                vote_b: Some(vote_b.into()),
            }),
        }
    }
}

/// What a double sign left in state: the offence and what it cost.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct DoubleSignRecord {
    pub height: u64,
    pub round: i64,
    pub vote_type: u32,
    /// The height the evidence was executed at (the validator was tombstoned then).
    pub punished_at: u64,
    pub slashed: u128,
    pub submitter: Address,
}

/// Executes an evidence message. Checks, in order: the votes' height against this block (165, 161), the
/// validator (160), both signatures (163), an earlier punishment (162); then slashes
/// `staking.slash_double_sign_bps` of every delegation to the validator (to the treasury), tombstones it
/// (out of the consensus set at the end of this block, for good) and records the evidence.
pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    m: &EvidenceMsg,
    ctx: BlockCtx<'_>,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let EvidenceMsg::SubmitDoubleSign {
        submitter,
        vote_a,
        vote_b,
    } = m;
    let (height, current) = (vote_a.height, ctx.height);
    if height > current {
        return Err(EvidenceError::FromTheFuture { height, current }.into());
    }
    let st = &ctx.params.staking;
    let max_age = st.evidence_max_age_blocks.min(st.unbonding_blocks);
    if current.saturating_sub(height) > max_age {
        return Err(EvidenceError::TooOld {
            height,
            current,
            max_age,
        }
        .into());
    }
    let addr = vote_a.validator_address;
    let Some(op) = staking::set::operator_of_cons_addr(s, &addr)? else {
        return Err(EvidenceError::UnknownValidator(hex::encode(addr)).into());
    };
    let Some(val) = staking::validator(s, &op)? else {
        return Err(EvidenceError::UnknownValidator(hex::encode(addr)).into());
    };
    for (name, v) in [("vote_a", vote_a), ("vote_b", vote_b)] {
        if !v.verifies(ctx.chain_id, &val.consensus_key) {
            return Err(EvidenceError::BadSignature(name).into());
        }
    }
    if staking::is_tombstoned(s, &op)? {
        return Err(EvidenceError::Duplicate(op.to_string()).into());
    }
    let slashed = staking::liveness::slash(s, &op, ctx.params.staking.slash_double_sign_bps)?;
    staking::tombstone(s, &op, current)?;
    s.put(
        state_key::double_sign(&op),
        encode(&DoubleSignRecord {
            height,
            round: vote_a.round,
            vote_type: vote_a.vote_type,
            punished_at: current,
            slashed,
            submitter: *submitter,
        }),
    );
    events.push(
        Event::new("double_sign")
            .attr("validator", op.to_string())
            .attr("height", height.to_string())
            .attr("round", vote_a.round.to_string())
            .attr("vote_type", vote_a.vote_type.to_string())
            .attr("slashed", slashed.to_string())
            .attr("submitter", submitter.to_string()),
    );
    Ok(())
}
