//! evidence: double signing. Anyone who holds two conflicting votes of one validator (the same height, round
//! and vote type, two different values, both signed with its consensus key) submits them in a
//! `MsgSubmitDoubleSign`; the application checks both signatures against the validator's consensus key
//! (ZIP-215, over the engine's own vote sign bytes on this chain), that the votes are at most
//! `staking.evidence_max_age_blocks` old (and no older than `staking.unbonding_blocks`, so the stake that
//! signed is still bonded), and that the validator was not punished already; then it slashes
//! `staking.slash_double_sign_bps` of every delegation to it (to the treasury), tombstones it (it leaves
//! the consensus set at the end of the block and never returns: `unjail` is refused with 45) and records
//! the evidence (`evidence/double_sign/<operator>`, query `/evidence/double_sign`).
//!
//! Evidence travels as an ordinary transaction, so it is in the block, every node executes the same
//! evidence, and ProcessProposal's stateless checks cover its shape.

pub mod error;
pub mod msg;
pub mod state_key;

use lode_proto::staking::v1 as stpb;
use lode_proto::tx::v1::msg::Sum;
use prost::Message;

pub use error::EvidenceError;
pub use msg::{DoubleSignRecord, EvidenceMsg, SignedVote};

use crate::{
    address::Address,
    codec::decode,
    error::{CodeRange, ModuleError, StoreError, TxError},
    event::Event,
    module::{BlockCtx, Decoded, Module},
    params::Params,
    query::{addr, internal, req, QueryError, QueryRead},
    store::{StateRead, StateWrite},
};

/// The evidence module.
#[derive(Debug)]
pub struct Evidence;

impl Module for Evidence {
    const NAME: &'static str = "evidence";
    const CODES: CodeRange = error::CODES;
    type Msg = EvidenceMsg;

    fn decode(sum: Sum) -> Decoded<EvidenceMsg> {
        match sum {
            Sum::SubmitDoubleSign(m) => Decoded::Mine(m.try_into()),
            other => Decoded::NotMine(other),
        }
    }

    fn encode(m: &EvidenceMsg) -> Sum {
        m.into()
    }

    fn sender(m: &EvidenceMsg) -> &Address {
        m.sender()
    }

    fn gas(_m: &EvidenceMsg, p: &Params) -> Option<u64> {
        Some(p.staking.gas_submit_evidence)
    }

    fn execute<S: StateWrite + ?Sized>(
        s: &mut S,
        m: &EvidenceMsg,
        ctx: BlockCtx<'_>,
        events: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        msg::execute(s, m, ctx, events)
    }

    fn query(
        store: &dyn QueryRead,
        path: &str,
        data: &[u8],
    ) -> Option<Result<Vec<u8>, QueryError>> {
        match path {
            "/evidence/double_sign" => Some(double_sign_query(store, data)),
            _ => None,
        }
    }

    fn error_examples() -> Vec<TxError> {
        EvidenceError::examples()
            .into_iter()
            .map(TxError::from)
            .collect()
    }
}

/// The double-sign record of a validator, if it was punished.
pub fn double_sign<S: StateRead + ?Sized>(
    s: &S,
    op: &Address,
) -> Result<Option<DoubleSignRecord>, StoreError> {
    let key = state_key::double_sign(op);
    s.get(&key)?.map(|b| decode(&key, &b)).transpose()
}

fn double_sign_query(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: stpb::DoubleSignRequest = req(data)?;
    let op = addr(&r.operator)?;
    let rec = double_sign(store, &op).map_err(internal)?;
    Ok(stpb::DoubleSignResponse {
        found: rec.is_some(),
        height: rec.as_ref().map_or(0, |r| r.height),
        round: rec.as_ref().map_or(0, |r| r.round),
        vote_type: rec.as_ref().map_or(0, |r| r.vote_type),
        punished_at: rec.as_ref().map_or(0, |r| r.punished_at),
        slashed: rec.as_ref().map_or(0, |r| r.slashed).to_string(),
        submitter: rec.map(|r| r.submitter.to_string()).unwrap_or_default(),
    }
    .encode_to_vec())
}
