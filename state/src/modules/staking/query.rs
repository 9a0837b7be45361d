//! staking's queries: `/staking/validators`, `/staking/delegations` and `/staking/signing_info`.

use lode_proto::staking::v1 as stpb;
use prost::Message;

use crate::query::{addr, internal, page, req, QueryError};
use crate::{
    address::Address,
    codec::{address_at, decode},
    error::StoreError,
    store::{StateRead, Store},
};

use super::{self as staking, liveness, set, state_key as sk};

/// Serves staking's query paths.
pub fn handle(store: &Store, path: &str, data: &[u8]) -> Option<Result<Vec<u8>, QueryError>> {
    Some(match path {
        "/staking/validators" => validators(store, data),
        "/staking/delegations" => delegations(store, data),
        "/staking/signing_info" => signing_info(store, data),
        _ => return None,
    })
}

fn validators(store: &Store, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: stpb::ValidatorsRequest = req(data)?;
    let (items, pagination) = page(store, sk::VALIDATOR_PREFIX, r.pagination)?;
    let params = crate::params::load(store).map_err(internal)?;
    let set = crate::validators::load(store).map_err(internal)?;
    let mut out = Vec::new();
    for (k, v) in items {
        let op = address_at(&k, sk::VALIDATOR_PREFIX.len()).map_err(internal)?;
        let val: staking::Validator = decode(&k, &v).map_err(internal)?;
        let info = liveness::signing_info(store, &op).map_err(internal)?;
        let jailed_until = info.and_then(|i| i.jailed_until);
        let set_power = set
            .binary_search_by_key(&val.consensus_key, |(k, _)| *k)
            .ok()
            .and_then(|i| set.get(i))
            .map_or(0, |m| m.1);
        let status = match (jailed_until, set_power) {
            (Some(_), _) => "jailed",
            (None, 0) => "unbonded",
            (None, _) => "bonded",
        };
        out.push(stpb::Validator {
            operator: op.to_string(),
            consensus_key: val.consensus_key.to_vec(),
            moniker: val.moniker,
            tokens: val.tokens.to_string(),
            power: if jailed_until.is_some() {
                0
            } else {
                set::power_of(val.tokens, params.staking.power_reduction)
            },
            status: status.into(),
            set_power,
            jailed_until: jailed_until.unwrap_or(0),
        });
    }
    Ok(stpb::ValidatorsResponse {
        validators: out,
        pagination,
        total_bonded: staking::total_bonded(store).map_err(internal)?.to_string(),
    }
    .encode_to_vec())
}

fn signing_info(store: &Store, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: stpb::SigningInfoRequest = req(data)?;
    let op = addr(&r.operator)?;
    if staking::validator(store, &op).map_err(internal)?.is_none() {
        return Err((crate::query::code::NOT_FOUND, format!("no validator {op}")));
    }
    let i = liveness::signing_info(store, &op)
        .map_err(internal)?
        .unwrap_or_default();
    Ok(stpb::SigningInfoResponse {
        info: Some(stpb::SigningInfo {
            operator: op.to_string(),
            start_height: i.start_height,
            missed_blocks: i.missed,
            window: i.window,
            index: i.index,
            jailed_until: i.jailed_until.unwrap_or(0),
            jailed: i.jailed_until.is_some(),
        }),
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
