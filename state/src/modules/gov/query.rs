//! gov's queries: proposals (with the final or running tally), votes, deposits and the treasury.

use lode_proto::gov::v1 as govpb;
use prost::Message;

use crate::query::{code, internal, page, req, QueryError, QueryRead};
use crate::{
    codec::{address_at, decode},
    error::StoreError,
    modules::bank,
    store::StateRead,
};

use super::{self as gov, msg::options_pb, state_key as gk, Proposal, StoredTally};

/// Serves gov's query paths.
pub fn handle(
    store: &dyn QueryRead,
    path: &str,
    data: &[u8],
) -> Option<Result<Vec<u8>, QueryError>> {
    Some(match path {
        "/gov/proposals" => proposals(store, data),
        "/gov/proposal" => proposal(store, data),
        "/gov/votes" => votes(store, data),
        "/gov/deposits" => deposits(store, data),
        "/gov/treasury" => treasury(store),
        _ => return None,
    })
}

fn tally_pb(t: &StoredTally) -> govpb::TallyResult {
    govpb::TallyResult {
        yes: t.yes.to_string(),
        abstain: t.abstain.to_string(),
        no: t.no.to_string(),
        no_with_veto: t.no_with_veto.to_string(),
        total_bonded: t.total_bonded.to_string(),
        outcome: t.outcome.clone(),
    }
}

/// The wire form of a proposal.
pub fn proposal_pb(p: &Proposal) -> govpb::Proposal {
    govpb::Proposal {
        id: p.id,
        proposer: p.proposer.to_string(),
        title: p.title.clone(),
        description: p.description.clone(),
        content: Some((&p.content).into()),
        status: p.status as i32,
        submit_height: p.submit_height,
        deposit_end_height: p.deposit_end_height,
        voting_start_height: p.voting_start_height,
        voting_end_height: p.voting_end_height,
        total_deposit: p.total_deposit.to_string(),
        final_tally: p.final_tally.as_ref().map(tally_pb),
        failure_reason: p.failure_reason.clone(),
    }
}

fn load_proposal(store: &dyn QueryRead, id: u64) -> Result<Proposal, QueryError> {
    gov::proposal(store, id)
        .map_err(internal)?
        .ok_or((code::NOT_FOUND, format!("unknown proposal {id}")))
}

fn id_suffix(k: &[u8]) -> Result<u64, QueryError> {
    k.last_chunk::<8>()
        .map(|b| u64::from_be_bytes(*b))
        .ok_or((code::INTERNAL, "corrupt proposal key".into()))
}

fn proposals(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: govpb::ProposalsRequest = req(data)?;
    let status = u8::try_from(r.status)
        .ok()
        .filter(|s| *s <= 6)
        .ok_or((code::INVALID_REQUEST, "unknown status".into()))?;
    let prefix = if status == 0 {
        gk::PROPOSAL_PREFIX.to_vec()
    } else {
        gk::status_prefix(status)
    };
    let (items, pagination) = page(store, &prefix, r.pagination)?;
    let mut out = Vec::with_capacity(items.len());
    for (k, _) in items {
        out.push(proposal_pb(&load_proposal(store, id_suffix(&k)?)?));
    }
    Ok(govpb::ProposalsResponse {
        proposals: out,
        pagination,
    }
    .encode_to_vec())
}

fn proposal(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: govpb::ProposalRequest = req(data)?;
    proposal_response(store, r.id)
        .map_err(internal)?
        .ok_or((code::NOT_FOUND, format!("unknown proposal {}", r.id)))
        .map(|resp| resp.encode_to_vec())
}

/// The answer to `/gov/proposal`: the proposal with its final tally, or its running tally while it is in
/// its voting period; None for an unknown id.
pub fn proposal_response<S: StateRead + ?Sized>(
    s: &S,
    id: u64,
) -> Result<Option<govpb::ProposalResponse>, StoreError> {
    let Some(p) = gov::proposal(s, id)? else {
        return Ok(None);
    };
    let tally = match &p.final_tally {
        Some(t) => Some(tally_pb(t)),
        None if p.status == gov::ProposalStatus::VotingPeriod => {
            let t = gov::current_tally(s, p.id)?;
            Some(tally_pb(&StoredTally::new(&t, "")))
        }
        None => None,
    };
    Ok(Some(govpb::ProposalResponse {
        proposal: Some(proposal_pb(&p)),
        tally,
    }))
}

fn votes(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: govpb::VotesRequest = req(data)?;
    load_proposal(store, r.proposal_id)?;
    let prefix = gk::votes_of(r.proposal_id);
    let (items, pagination) = page(store, &prefix, r.pagination)?;
    let mut out = Vec::new();
    for (k, v) in items {
        let voter = address_at(&k, prefix.len()).map_err(internal)?;
        let opts: Vec<(gov::VoteOption, u32)> = decode(&k, &v).map_err(internal)?;
        out.push(govpb::Vote {
            proposal_id: r.proposal_id,
            voter: voter.to_string(),
            options: options_pb(&opts),
        });
    }
    Ok(govpb::VotesResponse {
        votes: out,
        pagination,
    }
    .encode_to_vec())
}

fn deposits(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: govpb::DepositsRequest = req(data)?;
    load_proposal(store, r.proposal_id)?;
    let prefix = gk::deposits_of(r.proposal_id);
    let (items, pagination) = page(store, &prefix, r.pagination)?;
    let mut out = Vec::new();
    for (k, v) in items {
        let who = address_at(&k, prefix.len()).map_err(internal)?;
        let amount = <[u8; 16]>::try_from(v.as_slice())
            .map(u128::from_le_bytes)
            .map_err(|_| (code::INTERNAL, "corrupt deposit".to_string()))?;
        out.push(govpb::Deposit {
            proposal_id: r.proposal_id,
            depositor: who.to_string(),
            amount: amount.to_string(),
        });
    }
    Ok(govpb::DepositsResponse {
        deposits: out,
        pagination,
    }
    .encode_to_vec())
}

fn treasury(store: &dyn QueryRead) -> Result<Vec<u8>, QueryError> {
    let t = gov::treasury();
    let balance = bank::account(store, &t).map_err(internal)?.balance;
    Ok(govpb::TreasuryResponse {
        address: t.to_string(),
        balance: balance.to_string(),
    }
    .encode_to_vec())
}
