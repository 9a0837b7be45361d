//! staking's queries: `/staking/validators` and `/staking/delegations`.

use lode_proto::staking::v1 as stpb;
use prost::Message;

use crate::query::{addr, internal, page, req, QueryError};
use crate::{
    address::Address,
    codec::{address_at, decode},
    error::StoreError,
    store::{StateRead, Store},
};

use super::{self as staking, state_key as sk};

/// Serves staking's query paths.
pub fn handle(store: &Store, path: &str, data: &[u8]) -> Option<Result<Vec<u8>, QueryError>> {
    Some(match path {
        "/staking/validators" => validators(store, data),
        "/staking/delegations" => delegations(store, data),
        _ => return None,
    })
}

fn validators(store: &Store, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: stpb::ValidatorsRequest = req(data)?;
    let (items, pagination) = page(store, sk::VALIDATOR_PREFIX, r.pagination)?;
    let mut out = Vec::new();
    for (k, v) in items {
        let op = address_at(&k, sk::VALIDATOR_PREFIX.len()).map_err(internal)?;
        let val: staking::Validator = decode(&k, &v).map_err(internal)?;
        out.push(stpb::Validator {
            operator: op.to_string(),
            consensus_key: val.consensus_key.to_vec(),
            moniker: val.moniker,
            tokens: val.tokens.to_string(),
        });
    }
    Ok(stpb::ValidatorsResponse {
        validators: out,
        pagination,
        total_bonded: staking::total_bonded(store).map_err(internal)?.to_string(),
    }
    .encode_to_vec())
}

fn delegations(store: &Store, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: stpb::DelegationsRequest = req(data)?;
    let del = addr(&r.delegator)?;
    Ok(delegations_response(store, &del)
        .map_err(internal)?
        .encode_to_vec())
}

/// The answer to `/staking/delegations`: a delegator's bonds and its unbonding entries (by completion
/// height, then validator).
pub fn delegations_response<S: StateRead + ?Sized>(
    s: &S,
    del: &Address,
) -> Result<stpb::DelegationsResponse, StoreError> {
    let delegations = staking::delegations_of(s, del)?
        .into_iter()
        .map(|(v, a)| stpb::Delegation {
            delegator: del.to_string(),
            validator: v.to_string(),
            amount: a.to_string(),
        })
        .collect();
    let unbonding = staking::unbonding_entries_of(s, del)?
        .into_iter()
        .map(|(h, d, v, a)| stpb::UnbondingEntry {
            delegator: d.to_string(),
            validator: v.to_string(),
            amount: a.to_string(),
            completion_height: h,
        })
        .collect();
    Ok(stpb::DelegationsResponse {
        delegations,
        unbonding,
    })
}
