//! Double-sign evidence the engine saw, handed to the node.
//!
//! Malachite's vote keeper records every pair of conflicting votes of one validator (one height, round and
//! vote type, two values) among the votes it verified, and hands them to the host with `Finalized`
//! (`MisbehaviorEvidence::votes`). The bridge checks both signatures once more against the validator's
//! key in the set of that height (a vote that does not verify is never evidence), turns each pair into a
//! [`DoubleVote`] and offers it on a bounded channel to the node, which submits it to the chain as a
//! transaction. The channel is never waited on: when it is full the pair is dropped with a warning (the
//! engine keeps recording, and the node deduplicates per offence anyway), so evidence never holds up a
//! height.

use malachitebft_core_types::{NilOrVal, SignedVote};

use crate::context::LodeContext;
use crate::signing::vote_type_to_u32;

/// Pairs of conflicting votes waiting for the node; beyond it a pair is dropped (see the module docs).
pub const EVIDENCE_CHANNEL: usize = 64;

/// One signed vote as evidence carries it (the fields of `lode.staking.v1.SignedVote`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidenceVote {
    /// 0 = prevote, 1 = precommit.
    pub vote_type: u32,
    /// The height.
    pub height: u64,
    /// The round (never negative in a vote).
    pub round: i64,
    /// The block voted for; `None` for nil.
    pub value_id: Option<[u8; 32]>,
    /// The voter's consensus address.
    pub validator_address: [u8; 20],
    /// Its ed25519 signature over the vote's sign bytes.
    pub signature: [u8; 64],
}

impl EvidenceVote {
    /// The evidence form of a signed vote from the engine.
    pub fn from_signed(v: &SignedVote<LodeContext>) -> Self {
        let m = &v.message;
        EvidenceVote {
            vote_type: vote_type_to_u32(m.vote_type),
            height: m.height.0,
            round: m.round.as_i64(),
            value_id: match &m.value_id {
                NilOrVal::Nil => None,
                NilOrVal::Val(id) => Some(id.0),
            },
            validator_address: m.validator_address.0,
            signature: v.signature.0,
        }
    }
}

/// Two conflicting votes of one validator, both verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoubleVote {
    /// The first vote.
    pub a: EvidenceVote,
    /// The vote conflicting with it.
    pub b: EvidenceVote,
}

impl DoubleVote {
    /// Whether the two votes are an offence: one validator, height, round and type, two values.
    pub fn conflicts(&self) -> bool {
        let (a, b) = (&self.a, &self.b);
        a.validator_address == b.validator_address
            && (a.height, a.round, a.vote_type) == (b.height, b.round, b.vote_type)
            && a.value_id != b.value_id
    }

    /// What one offence is known by: (validator address, height, round, vote type).
    pub fn offence(&self) -> ([u8; 20], u64, i64, u32) {
        (
            self.a.validator_address,
            self.a.height,
            self.a.round,
            self.a.vote_type,
        )
    }
}
