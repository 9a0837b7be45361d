//! market's queries: providers (by status, one with its recent jobs), jobs (by consumer, provider or status,
//! one with its history) and the market's supply and demand (`/market/stats`).

use std::collections::BTreeMap;

use lode_proto::market::v1 as mpb;
use prost::Message;

use super::{self as market, state_key as mk, JobStatus, Provider};
use crate::query::{addr, code, internal, page, req, QueryError, QueryRead};
use crate::{address::Address, codec::decode, store::StateRead};

/// Serves market's query paths.
pub fn handle(
    store: &dyn QueryRead,
    path: &str,
    data: &[u8],
) -> Option<Result<Vec<u8>, QueryError>> {
    Some(match path {
        "/market/providers" => providers(store, data),
        "/market/provider" => provider(store, data),
        "/market/jobs" => jobs(store, data),
        "/market/job" => job(store, data),
        "/market/stats" => stats(store, data),
        _ => return None,
    })
}

fn provider_pb(
    store: &dyn QueryRead,
    a: &Address,
    p: &Provider,
) -> Result<mpb::Provider, QueryError> {
    let pending = store
        .get(&mk::pending_ask(a))
        .map_err(internal)?
        .map(|v| crate::codec::u128_value(&mk::pending_ask(a), &v))
        .transpose()
        .map_err(internal)?;
    Ok(mpb::Provider {
        address: a.to_string(),
        moniker: p.moniker.clone(),
        devices: p
            .devices
            .iter()
            .map(|d| mpb::Device {
                model: d.model.clone(),
                memory_mib: d.memory_mib,
                count: d.count,
            })
            .collect(),
        ask_per_cu: p.ask_per_cu.to_string(),
        pending_ask: pending.map(|v| v.to_string()).unwrap_or_default(),
        max_job_cu: p.max_job_cu,
        bond: p.bond.to_string(),
        reputation: p.reputation,
        jobs_in_flight: p.jobs_in_flight,
        status: if p.release_height.is_some() {
            "unbonding".into()
        } else {
            "active".into()
        },
        release_height: p.release_height.unwrap_or(0),
        registered_height: p.registered_height,
        jobs_settled: p.jobs_settled,
        jobs_failed: p.jobs_failed,
    })
}

/// A job in its query form.
pub fn job_pb(
    store: &dyn StateRead,
    id: &[u8; 32],
    j: &market::Job,
) -> Result<mpb::Job, QueryError> {
    let escrow = market::escrow(store, id).map_err(internal)?;
    let holdback = market::holdback(store, id).map_err(internal)?;
    Ok(mpb::Job {
        id: id.to_vec(),
        consumer: j.consumer.to_string(),
        m: j.m,
        k: j.k,
        n: j.n,
        tile: j.tile,
        samples: j.samples,
        a_root: j.a_root.to_vec(),
        b_root: j.b_root.to_vec(),
        max_price_per_cu: j.max_price_per_cu.to_string(),
        cu: j.cu,
        deadline_blocks: j.deadline_blocks,
        min_reputation: j.min_reputation,
        on_failure: if j.refund_on_failure {
            mpb::OnFailure::Refund as i32
        } else {
            mpb::OnFailure::Requeue as i32
        },
        status: j.status.as_str().into(),
        posted_height: j.posted_height,
        provider: j.provider.map(|p| p.to_string()).unwrap_or_default(),
        price_per_cu: j.price_per_cu.to_string(),
        escrow: escrow.to_string(),
        output_root: j.output_root.map(|r| r.to_vec()).unwrap_or_default(),
        commit_height: j.commit_height,
        seed: j.seed.map(|r| r.to_vec()).unwrap_or_default(),
        sampled_tiles: j.sampled.clone(),
        revealed_tiles: j.revealed.clone(),
        deadline_height: j.deadline,
        holdback: holdback.to_string(),
        challenge_tiles: j.challenge.clone(),
        excluded_providers: j.excluded.iter().map(|a| a.to_string()).collect(),
        history: j
            .history
            .iter()
            .map(|h| mpb::HistoryEntry {
                height: h.height,
                step: h.step.clone(),
                detail: h.detail.clone(),
            })
            .collect(),
    })
}

fn providers(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: mpb::ProvidersRequest = req(data)?;
    let want_unbonding = match r.status.as_str() {
        "" => None,
        "active" => Some(false),
        "unbonding" => Some(true),
        other => {
            return Err((
                code::INVALID_REQUEST,
                format!("unknown provider status {other:?} (active, unbonding)"),
            ))
        }
    };
    let (items, pagination) = page(store, mk::PROVIDER_PREFIX, r.pagination)?;
    let mut out = Vec::new();
    for (k, v) in items {
        let a = crate::codec::address_at(&k, mk::PROVIDER_PREFIX.len()).map_err(internal)?;
        let p: Provider = decode(&k, &v).map_err(internal)?;
        if want_unbonding.is_none_or(|u| u == p.release_height.is_some()) {
            out.push(provider_pb(store, &a, &p)?);
        }
    }
    Ok(mpb::ProvidersResponse {
        providers: out,
        pagination,
    }
    .encode_to_vec())
}

fn provider(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: mpb::ProviderRequest = req(data)?;
    let a = addr(&r.address)?;
    let p = market::provider(store, &a)
        .map_err(internal)?
        .ok_or((code::NOT_FOUND, format!("{a} is not a provider")))?;
    let mut recent: Vec<Vec<u8>> = store
        .scan_prefix(&mk::by_provider_of(&a))
        .map_err(internal)?
        .into_iter()
        .rev()
        .take(100)
        .filter_map(|(k, _)| k.get(k.len().saturating_sub(32)..).map(<[u8]>::to_vec))
        .collect();
    recent.dedup();
    Ok(mpb::ProviderResponse {
        provider: Some(provider_pb(store, &a, &p)?),
        recent_jobs: recent,
    }
    .encode_to_vec())
}

fn jobs(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: mpb::JobsRequest = req(data)?;
    let set = [&r.consumer, &r.provider, &r.status]
        .iter()
        .filter(|s| !s.is_empty())
        .count();
    if set != 1 {
        return Err((
            code::INVALID_REQUEST,
            "set exactly one of consumer, provider, status".into(),
        ));
    }
    let prefix = if !r.consumer.is_empty() {
        mk::by_consumer_of(&addr(&r.consumer)?)
    } else if !r.provider.is_empty() {
        mk::by_provider_of(&addr(&r.provider)?)
    } else {
        let st = JobStatus::parse(&r.status).ok_or((
            code::INVALID_REQUEST,
            format!("unknown job status {:?}", r.status),
        ))?;
        mk::by_status_of(st as u8)
    };
    let (items, pagination) = page(store, &prefix, r.pagination)?;
    let mut out = Vec::new();
    for (k, _) in items {
        let id: [u8; 32] = k
            .get(k.len().saturating_sub(32)..)
            .and_then(|b| b.try_into().ok())
            .ok_or((code::INTERNAL, "corrupt job index key".to_string()))?;
        if let Some(j) = market::job(store, &id).map_err(internal)? {
            out.push(job_pb(store, &id, &j)?);
        }
    }
    Ok(mpb::JobsResponse {
        jobs: out,
        pagination,
    }
    .encode_to_vec())
}

fn job(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: mpb::JobRequest = req(data)?;
    let id: [u8; 32] = r.job_id.as_slice().try_into().map_err(|_| {
        (
            code::INVALID_REQUEST,
            format!("job_id must be 32 bytes, got {}", r.job_id.len()),
        )
    })?;
    let j = market::job(store, &id)
        .map_err(internal)?
        .ok_or((code::NOT_FOUND, format!("unknown job {}", hex::encode(id))))?;
    Ok(mpb::JobResponse {
        job: Some(job_pb(store, &id, &j)?),
    }
    .encode_to_vec())
}

/// Providers in the matching index, read in one pass: at most this many for a stats answer.
const STATS_PROVIDER_SCAN: usize = 10_000;

fn stats(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let _: mpb::StatsRequest = req(data)?;
    let (open_jobs, open_cu) = market::open_totals(store).map_err(internal)?;
    let (avail, _) = store
        .scan_page(mk::AVAIL_PREFIX, &[], STATS_PROVIDER_SCAN)
        .map_err(internal)?;
    let mut by_model: BTreeMap<String, (u64, Option<u128>)> = BTreeMap::new();
    let mut lowest = Vec::new();
    for (k, _) in avail {
        let a = crate::codec::address_at(&k, k.len().saturating_sub(20)).map_err(internal)?;
        let Some(p) = market::provider(store, &a).map_err(internal)? else {
            continue;
        };
        let free = p.device_count().saturating_sub(u64::from(p.jobs_in_flight));
        // Devices are taken in list order; the free ones are the last `free`.
        let mut busy = u64::from(p.jobs_in_flight);
        for d in &p.devices {
            let f = u64::from(d.count).saturating_sub(busy);
            busy = busy.saturating_sub(u64::from(d.count));
            if f > 0 {
                let e = by_model.entry(d.model.clone()).or_insert((0, None));
                e.0 = e.0.saturating_add(f);
                e.1 = Some(e.1.map_or(p.ask_per_cu, |x: u128| x.min(p.ask_per_cu)));
            }
        }
        if lowest.len() < 20 {
            lowest.push(mpb::Ask {
                provider: a.to_string(),
                ask_per_cu: p.ask_per_cu.to_string(),
                free_devices: u32::try_from(free).unwrap_or(u32::MAX),
                reputation: p.reputation,
            });
        }
    }
    let clearing: Option<market::Clearing> = store
        .get(mk::CLEARING)
        .map_err(internal)?
        .map(|b| decode(mk::CLEARING, &b))
        .transpose()
        .map_err(internal)?;
    let in_flight = [
        JobStatus::Matched,
        JobStatus::Accepted,
        JobStatus::Committed,
        JobStatus::Revealing,
    ]
    .iter()
    .map(|st| {
        store
            .scan_prefix(&mk::by_status_of(*st as u8))
            .map(|v| v.len() as u64)
    })
    .sum::<Result<u64, _>>()
    .map_err(internal)?;
    Ok(mpb::StatsResponse {
        open_jobs,
        open_cu,
        free_devices: by_model
            .into_iter()
            .map(|(model, (free, ask))| mpb::ModelSupply {
                model,
                free,
                lowest_ask: ask.map(|a| a.to_string()).unwrap_or_default(),
            })
            .collect(),
        lowest_asks: lowest,
        last_clearing: clearing.map(|c| mpb::Clearing {
            height: c.height,
            matches: c.matches,
            min_price_per_cu: c.min.to_string(),
            median_price_per_cu: c.median.to_string(),
            max_price_per_cu: c.max.to_string(),
        }),
        jobs_in_flight: in_flight,
    }
    .encode_to_vec())
}
