//! staking's queries: `/staking/validators`, `/staking/delegations`, `/staking/signing_info`, `/staking/power`
//! (proof of useful compute: epoch and every validator's power) and `/staking/link` (a provider link).

use lode_proto::staking::v1 as stpb;
use prost::Message;

use crate::query::{addr, internal, page, req, QueryError, QueryRead};
use crate::{
    address::Address,
    codec::{address_at, decode},
    error::StoreError,
    store::StateRead,
};

use super::{self as staking, liveness, state_key as sk};

/// Serves staking's query paths.
pub fn handle(
    store: &dyn QueryRead,
    path: &str,
    data: &[u8],
) -> Option<Result<Vec<u8>, QueryError>> {
    Some(match path {
        "/staking/validators" => validators(store, data),
        "/staking/delegations" => delegations(store, data),
        "/staking/power" => power(store, data),
        "/staking/link" => link(store, data),
        "/staking/signing_info" => signing_info(store, data),
        _ => return None,
    })
}

fn validators(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: stpb::ValidatorsRequest = req(data)?;
    let (items, pagination) = page(store, sk::VALIDATOR_PREFIX, r.pagination)?;
    let params = crate::params::load(store).map_err(internal)?;
    let set = crate::validators::load(store).map_err(internal)?;
    let target: std::collections::BTreeMap<Address, u64> =
        super::power::target_powers(store, &params)
            .map_err(internal)?
            .into_iter()
            .collect();
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
        let tombstoned = staking::is_tombstoned(store, &op).map_err(internal)?;
        let status = match (jailed_until, set_power) {
            _ if tombstoned => "tombstoned",
            (Some(_), _) => "jailed",
            (None, 0) => "unbonded",
            (None, _) => "bonded",
        };
        out.push(stpb::Validator {
            operator: op.to_string(),
            consensus_key: val.consensus_key.to_vec(),
            moniker: val.moniker,
            tokens: val.tokens.to_string(),
            power: target.get(&op).copied().unwrap_or(0),
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

fn signing_info(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
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

fn delegations(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
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

fn power(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let _: stpb::PowerRequest = req(data)?;
    Ok(power_response(store).map_err(internal)?.encode_to_vec())
}

/// The answer to `/staking/power`: the running epoch and every validator's power, by operator.
pub fn power_response<S: StateRead + ?Sized>(s: &S) -> Result<stpb::PowerResponse, StoreError> {
    use super::power as pw;
    use std::collections::BTreeMap;
    let params = crate::params::load(s)?;
    let epoch = pw::current_epoch(s)?;
    let candidates = pw::candidates(s)?;
    let pp = pw::power_params(s, &params)?;
    // Jailed, tombstoned and under-bonded validators are listed with power 0, as in the consensus set.
    let now: BTreeMap<Address, u64> = pw::target_powers(s, &params)?.into_iter().collect();
    let baseline: BTreeMap<Address, u64> = pw::stored_powers(s)?.into_iter().collect();
    let merged: BTreeMap<Address, (u128, u128)> = candidates
        .iter()
        .map(|c| (c.key, (c.stake, c.verified_cu)))
        .collect();
    let weights = pw::weights(&merged, pp.compute_weight_bps, pp.cu_floor);
    let to_power = |w: u128| {
        u64::try_from(
            w.saturating_mul(u128::from(pw::TOTAL_POWER))
                .checked_div(pw::WEIGHT_SCALE)
                .unwrap_or(0),
        )
        .unwrap_or(u64::MAX)
    };
    let mut validators = Vec::new();
    for c in &candidates {
        let (sw, cw) = weights.get(&c.key).copied().unwrap_or((0, 0));
        let provider = pw::link(s, &c.key)?
            .and_then(|l| l.provider)
            .map(|p| p.to_string())
            .unwrap_or_default();
        validators.push(stpb::ValidatorPower {
            operator: c.key.to_string(),
            power: now.get(&c.key).copied().unwrap_or(0),
            epoch_power: baseline.get(&c.key).copied().unwrap_or(0),
            stake: c.stake.to_string(),
            verified_cu: c.verified_cu.to_string(),
            stake_part: to_power(sw),
            compute_part: to_power(cw),
            provider,
        });
    }
    Ok(stpb::PowerResponse {
        epoch: epoch.number,
        epoch_start_height: epoch.start_height,
        epoch_blocks: params.compute.epoch_blocks,
        total_power: pw::TOTAL_POWER,
        cu_floor: pp.cu_floor.to_string(),
        validators,
    })
}

fn link(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: stpb::LinkRequest = req(data)?;
    let a = addr(&r.address)?;
    Ok(link_response(store, &a).map_err(internal)?.encode_to_vec())
}

/// The answer to `/staking/link` for `a`, a validator operator or a provider.
pub fn link_response<S: StateRead + ?Sized>(
    s: &S,
    a: &Address,
) -> Result<stpb::LinkResponse, StoreError> {
    use super::power as pw;
    let params = crate::params::load(s)?;
    let current = pw::current_epoch(s)?.number;
    let mut out = stpb::LinkResponse {
        provider_nonce: pw::link_nonce(s, a)?,
        current_epoch: current,
        ..Default::default()
    };
    if let Some(l) = pw::link(s, a)? {
        out.validator = a.to_string();
        out.provider = l.provider.map(|p| p.to_string()).unwrap_or_default();
        out.changed_epoch = l.changed_epoch;
        out.next_change_epoch = l
            .changed_epoch
            .saturating_add(params.staking.link_cooldown_epochs);
    } else if let Some(v) = pw::linked_validator(s, a)? {
        out.validator = v.to_string();
        out.provider = a.to_string();
        if let Some(l) = pw::link(s, &v)? {
            out.changed_epoch = l.changed_epoch;
            out.next_change_epoch = l
                .changed_epoch
                .saturating_add(params.staking.link_cooldown_epochs);
        }
    }
    Ok(out)
}
