//! market's messages: domain types, wire conversion and handlers.

use lode_proto::market::v1 as pb;
use lode_proto::tx::v1::msg::Sum;

use super::{
    accept, compute_units, decline, event, existing_job, job_id, parse_job_id, provider, put_job,
    put_provider, refund_escrow, schedule, state_key, Device, Due, Job, JobStatus, MarketError,
    Provider, MAX_REPUTATION,
};
use crate::{
    address::{parse_address, Address},
    amount::{parse_amount, parse_positive},
    codec::{decode, encode, put_u128},
    error::TxError,
    event::Event,
    module::BlockCtx,
    modules::bank,
    params::Params,
    store::StateWrite,
};

/// A job as the consumer posts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    pub m: u64,
    pub k: u64,
    pub n: u64,
    pub a_root: [u8; 32],
    pub b_root: [u8; 32],
    pub tile: u32,
    pub samples: u32,
    pub max_price_per_cu: u128,
    pub deadline_blocks: u64,
    pub min_reputation: u32,
    pub refund_on_failure: bool,
}

/// A marketplace message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarketMsg {
    RegisterProvider {
        provider: Address,
        moniker: String,
        devices: Vec<Device>,
        ask_per_cu: u128,
        max_job_cu: u64,
        bond: u128,
    },
    UpdateProvider {
        provider: Address,
        ask_per_cu: Option<u128>,
        devices: Option<Vec<Device>>,
        max_job_cu: Option<u64>,
        add_bond: u128,
        moniker: Option<String>,
    },
    UnregisterProvider {
        provider: Address,
    },
    PostJob {
        consumer: Address,
        spec: JobSpec,
    },
    CancelJob {
        consumer: Address,
        job: [u8; 32],
    },
    AcceptJob {
        provider: Address,
        job: [u8; 32],
    },
    DeclineJob {
        provider: Address,
        job: [u8; 32],
        reason: String,
    },
}

impl MarketMsg {
    pub fn sender(&self) -> &Address {
        match self {
            MarketMsg::RegisterProvider { provider, .. }
            | MarketMsg::UpdateProvider { provider, .. }
            | MarketMsg::UnregisterProvider { provider }
            | MarketMsg::AcceptJob { provider, .. }
            | MarketMsg::DeclineJob { provider, .. } => provider,
            MarketMsg::PostJob { consumer, .. } | MarketMsg::CancelJob { consumer, .. } => consumer,
        }
    }

    pub fn gas(&self, p: &Params) -> u64 {
        let m = &p.market;
        match self {
            MarketMsg::RegisterProvider { .. } => m.gas_register_provider,
            MarketMsg::UpdateProvider { .. } => m.gas_update_provider,
            MarketMsg::UnregisterProvider { .. } => m.gas_unregister_provider,
            MarketMsg::PostJob { .. } => m.gas_post_job,
            MarketMsg::CancelJob { .. } => m.gas_cancel_job,
            MarketMsg::AcceptJob { .. } => m.gas_accept_job,
            MarketMsg::DeclineJob { .. } => m.gas_decline_job,
        }
    }
}

/// Longest decline reason, in bytes.
pub const MAX_REASON_BYTES: usize = 256;

fn root(bytes: &[u8], field: &'static str) -> Result<[u8; 32], TxError> {
    bytes.try_into().map_err(|_| TxError::InvalidField {
        field,
        reason: format!("must be 32 bytes, got {}", bytes.len()),
    })
}

fn devices_from(list: Vec<pb::Device>) -> Vec<Device> {
    list.into_iter()
        .map(|d| Device {
            model: d.model,
            memory_mib: d.memory_mib,
            count: d.count,
        })
        .collect()
}

fn devices_to(list: &[Device]) -> Vec<pb::Device> {
    list.iter()
        .map(|d| pb::Device {
            model: d.model.clone(),
            memory_mib: d.memory_mib,
            count: d.count,
        })
        .collect()
}

fn opt_amount(s: &str) -> Result<Option<u128>, TxError> {
    if s.is_empty() {
        Ok(None)
    } else {
        parse_positive(s).map(Some)
    }
}

impl TryFrom<Sum> for MarketMsg {
    type Error = TxError;
    fn try_from(m: Sum) -> Result<Self, TxError> {
        Ok(match m {
            Sum::MarketRegisterProvider(m) => MarketMsg::RegisterProvider {
                provider: parse_address(&m.provider)?,
                moniker: m.moniker,
                devices: devices_from(m.devices),
                ask_per_cu: parse_amount(&m.ask_per_cu)?,
                max_job_cu: m.max_job_cu,
                bond: parse_positive(&m.bond)?,
            },
            Sum::MarketUpdateProvider(m) => MarketMsg::UpdateProvider {
                provider: parse_address(&m.provider)?,
                ask_per_cu: if m.ask_per_cu.is_empty() {
                    None
                } else {
                    Some(parse_amount(&m.ask_per_cu)?)
                },
                devices: (!m.devices.is_empty()).then(|| devices_from(m.devices)),
                max_job_cu: (m.max_job_cu != 0).then_some(m.max_job_cu),
                add_bond: opt_amount(&m.add_bond)?.unwrap_or(0),
                moniker: (!m.moniker.is_empty()).then_some(m.moniker),
            },
            Sum::MarketUnregisterProvider(m) => MarketMsg::UnregisterProvider {
                provider: parse_address(&m.provider)?,
            },
            Sum::MarketPostJob(m) => MarketMsg::PostJob {
                consumer: parse_address(&m.consumer)?,
                spec: JobSpec {
                    m: m.m,
                    k: m.k,
                    n: m.n,
                    a_root: root(&m.a_root, "a_root")?,
                    b_root: root(&m.b_root, "b_root")?,
                    tile: m.tile,
                    samples: m.samples,
                    max_price_per_cu: parse_positive(&m.max_price_per_cu)?,
                    deadline_blocks: m.deadline_blocks,
                    min_reputation: m.min_reputation,
                    refund_on_failure: match pb::OnFailure::try_from(m.on_failure) {
                        Ok(pb::OnFailure::Unspecified) | Ok(pb::OnFailure::Requeue) => false,
                        Ok(pb::OnFailure::Refund) => true,
                        Err(_) => {
                            return Err(TxError::InvalidField {
                                field: "on_failure",
                                reason: format!("unknown value {}", m.on_failure),
                            })
                        }
                    },
                },
            },
            Sum::MarketCancelJob(m) => MarketMsg::CancelJob {
                consumer: parse_address(&m.consumer)?,
                job: parse_job_id(&m.job_id)?,
            },
            Sum::MarketAcceptJob(m) => MarketMsg::AcceptJob {
                provider: parse_address(&m.provider)?,
                job: parse_job_id(&m.job_id)?,
            },
            Sum::MarketDeclineJob(m) => {
                if m.reason.len() > MAX_REASON_BYTES {
                    return Err(TxError::InvalidField {
                        field: "reason",
                        reason: format!("over {MAX_REASON_BYTES} bytes"),
                    });
                }
                MarketMsg::DeclineJob {
                    provider: parse_address(&m.provider)?,
                    job: parse_job_id(&m.job_id)?,
                    reason: m.reason,
                }
            }
            other => return Err(TxError::Decode(format!("not a market message: {other:?}"))),
        })
    }
}

impl From<&MarketMsg> for Sum {
    fn from(m: &MarketMsg) -> Sum {
        match m {
            MarketMsg::RegisterProvider {
                provider,
                moniker,
                devices,
                ask_per_cu,
                max_job_cu,
                bond,
            } => Sum::MarketRegisterProvider(pb::MsgRegisterProvider {
                provider: provider.to_string(),
                moniker: moniker.clone(),
                devices: devices_to(devices),
                ask_per_cu: ask_per_cu.to_string(),
                max_job_cu: *max_job_cu,
                bond: bond.to_string(),
            }),
            MarketMsg::UpdateProvider {
                provider,
                ask_per_cu,
                devices,
                max_job_cu,
                add_bond,
                moniker,
            } => Sum::MarketUpdateProvider(pb::MsgUpdateProvider {
                provider: provider.to_string(),
                ask_per_cu: ask_per_cu.map(|a| a.to_string()).unwrap_or_default(),
                devices: devices.as_deref().map(devices_to).unwrap_or_default(),
                max_job_cu: max_job_cu.unwrap_or(0),
                add_bond: if *add_bond == 0 {
                    String::new()
                } else {
                    add_bond.to_string()
                },
                moniker: moniker.clone().unwrap_or_default(),
            }),
            MarketMsg::UnregisterProvider { provider } => {
                Sum::MarketUnregisterProvider(pb::MsgUnregisterProvider {
                    provider: provider.to_string(),
                })
            }
            MarketMsg::PostJob { consumer, spec } => Sum::MarketPostJob(pb::MsgPostJob {
                consumer: consumer.to_string(),
                m: spec.m,
                k: spec.k,
                n: spec.n,
                a_root: spec.a_root.to_vec(),
                b_root: spec.b_root.to_vec(),
                tile: spec.tile,
                samples: spec.samples,
                max_price_per_cu: spec.max_price_per_cu.to_string(),
                deadline_blocks: spec.deadline_blocks,
                min_reputation: spec.min_reputation,
                on_failure: if spec.refund_on_failure {
                    pb::OnFailure::Refund as i32
                } else {
                    pb::OnFailure::Requeue as i32
                },
            }),
            MarketMsg::CancelJob { consumer, job } => Sum::MarketCancelJob(pb::MsgCancelJob {
                consumer: consumer.to_string(),
                job_id: job.to_vec(),
            }),
            MarketMsg::AcceptJob { provider, job } => Sum::MarketAcceptJob(pb::MsgAcceptJob {
                provider: provider.to_string(),
                job_id: job.to_vec(),
            }),
            MarketMsg::DeclineJob {
                provider,
                job,
                reason,
            } => Sum::MarketDeclineJob(pb::MsgDeclineJob {
                provider: provider.to_string(),
                job_id: job.to_vec(),
                reason: reason.clone(),
            }),
        }
    }
}

fn check_devices(devices: &[Device], p: &Params) -> Result<(), TxError> {
    let mp = &p.market;
    let bad = |r: String| TxError::from(MarketError::InvalidDevices(r));
    if devices.is_empty() {
        return Err(bad("at least one device entry is needed".into()));
    }
    if devices.len() as u64 > u64::from(mp.max_device_entries) {
        return Err(bad(format!("more than {} entries", mp.max_device_entries)));
    }
    for d in devices {
        if d.model.is_empty()
            || d.model.len() > 64
            || !d.model.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(bad("a model is 1-64 printable ASCII characters".into()));
        }
        if d.count == 0 || d.count > mp.max_devices_per_entry {
            return Err(bad(format!(
                "a count is in 1..={}",
                mp.max_devices_per_entry
            )));
        }
    }
    Ok(())
}

fn check_moniker(moniker: &str, p: &Params) -> Result<(), TxError> {
    if moniker.len() as u64 > p.market.max_moniker_bytes {
        return Err(TxError::InvalidField {
            field: "moniker",
            reason: format!("over {} bytes", p.market.max_moniker_bytes),
        });
    }
    Ok(())
}

/// Checks a job against the parameters' bounds (also in CheckTx, before any state is read).
pub fn check_job(spec: &JobSpec, p: &Params) -> Result<u64, TxError> {
    let cp = &p.compute;
    let out = |r: String| TxError::from(MarketError::JobOutOfBounds(r));
    if spec.m == 0 || spec.k == 0 || spec.n == 0 {
        return Err(out("m, k and n must be positive".into()));
    }
    if spec.m > cp.max_m || spec.n > cp.max_n || spec.k > cp.max_k {
        return Err(out(format!(
            "{}x{}x{} is over the caps m <= {}, k <= {}, n <= {}",
            spec.m, spec.k, spec.n, cp.max_m, cp.max_k, cp.max_n
        )));
    }
    if spec.tile == 0 || spec.tile > cp.max_tile {
        return Err(out(format!("tile must be in 1..={}", cp.max_tile)));
    }
    let t = u64::from(spec.tile);
    if !spec.m.is_multiple_of(t) || !spec.n.is_multiple_of(t) {
        return Err(TxError::from(MarketError::TileNotDivisor {
            tile: spec.tile,
            m: spec.m,
            n: spec.n,
        }));
    }
    if spec.samples < cp.min_samples || spec.samples > cp.max_samples {
        return Err(out(format!(
            "samples must be in {}..={}",
            cp.min_samples, cp.max_samples
        )));
    }
    // One tile's reveal must fit in a tx: 2·T·k input bytes plus proofs.
    let one_tile = t
        .saturating_mul(2)
        .saturating_mul(spec.k)
        .saturating_add(crate::modules::compute::params::tile_overhead_bytes(t));
    if one_tile > p.max_tx_bytes {
        return Err(out(format!(
            "one tile's reveal ({one_tile} bytes at T = {t}, k = {}) would not fit in max_tx_bytes = {}",
            spec.k, p.max_tx_bytes
        )));
    }
    let cu = compute_units(spec.m, spec.k, spec.n).ok_or(TxError::Overflow("compute units"))?;
    if cu > cp.max_job_cu {
        return Err(out(format!("{cu} CU is over the cap of {}", cp.max_job_cu)));
    }
    let mp = &p.market;
    if spec.deadline_blocks < mp.min_deadline_blocks
        || spec.deadline_blocks > mp.max_deadline_blocks
    {
        return Err(TxError::from(MarketError::DeadlineOutOfBounds {
            got: spec.deadline_blocks,
            min: mp.min_deadline_blocks,
            max: mp.max_deadline_blocks,
        }));
    }
    if spec.min_reputation > MAX_REPUTATION {
        return Err(TxError::from(MarketError::ReputationOutOfBounds(
            spec.min_reputation,
        )));
    }
    Ok(cu)
}

/// The stateless checks that need the parameters.
pub fn check_stateless(m: &MarketMsg, p: &Params) -> Result<(), TxError> {
    match m {
        MarketMsg::RegisterProvider {
            moniker, devices, ..
        } => {
            check_moniker(moniker, p)?;
            check_devices(devices, p)
        }
        MarketMsg::UpdateProvider {
            devices, moniker, ..
        } => {
            if let Some(d) = devices {
                check_devices(d, p)?;
            }
            if let Some(mk) = moniker {
                check_moniker(mk, p)?;
            }
            Ok(())
        }
        MarketMsg::PostJob { spec, .. } => check_job(spec, p).map(|_| ()),
        _ => Ok(()),
    }
}

fn active_provider<S: StateWrite + ?Sized>(s: &S, a: &Address) -> Result<Provider, TxError> {
    let p = provider(s, a)?
        .ok_or_else(|| TxError::from(MarketError::UnknownProvider(a.to_string())))?;
    if p.release_height.is_some() {
        return Err(TxError::from(MarketError::ProviderUnbonding));
    }
    Ok(p)
}

fn check_bond(p: &Provider, params: &Params) -> Result<(), TxError> {
    let min = p.min_bond(&params.market);
    if p.bond < min {
        return Err(TxError::from(MarketError::BondTooLow {
            bond: p.bond,
            min,
            devices: p.device_count(),
        }));
    }
    Ok(())
}

/// The job named by a provider's message, matched to that provider and in `expected` status.
fn providers_job<S: StateWrite + ?Sized>(
    s: &S,
    ctx: BlockCtx<'_>,
    id: &[u8; 32],
    sender: &Address,
    expected: JobStatus,
) -> Result<Job, TxError> {
    let j = existing_job(s, id)?;
    if j.provider.as_ref() != Some(sender) {
        return Err(TxError::from(MarketError::NotProvider(sender.to_string())));
    }
    if j.status != expected {
        return Err(TxError::from(MarketError::WrongJobStatus {
            actual: j.status.as_str(),
            expected: expected.as_str(),
        }));
    }
    if ctx.height > j.deadline {
        return Err(TxError::from(MarketError::DeadlinePassed {
            deadline: j.deadline,
            height: ctx.height,
        }));
    }
    Ok(j)
}

pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    m: &MarketMsg,
    ctx: BlockCtx<'_>,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    check_stateless(m, ctx.params)?;
    match m {
        MarketMsg::RegisterProvider {
            provider: a,
            moniker,
            devices,
            ask_per_cu,
            max_job_cu,
            bond,
        } => {
            if provider(s, a)?.is_some() {
                return Err(TxError::from(MarketError::ProviderExists(a.to_string())));
            }
            let p = Provider {
                moniker: moniker.clone(),
                devices: devices.clone(),
                ask_per_cu: *ask_per_cu,
                max_job_cu: *max_job_cu,
                bond: *bond,
                reputation: ctx.params.market.initial_reputation,
                jobs_in_flight: 0,
                release_height: None,
                registered_height: ctx.height,
                jobs_settled: 0,
                jobs_failed: 0,
            };
            check_bond(&p, ctx.params)?;
            bank::transfer(s, a, &super::bond_pool(), *bond)?;
            put_provider(s, a, &p)?;
            events.push(
                event::provider("market_provider_registered", a)
                    .attr("devices", p.device_count().to_string())
                    .attr("ask_per_cu", ask_per_cu.to_string())
                    .attr("bond", bond.to_string()),
            );
        }
        MarketMsg::UpdateProvider {
            provider: a,
            ask_per_cu,
            devices,
            max_job_cu,
            add_bond,
            moniker,
        } => {
            let mut p = active_provider(s, a)?;
            if let Some(d) = devices {
                p.devices = d.clone();
            }
            if let Some(c) = max_job_cu {
                p.max_job_cu = *c;
            }
            if let Some(mk) = moniker {
                p.moniker = mk.clone();
            }
            if *add_bond > 0 {
                bank::transfer(s, a, &super::bond_pool(), *add_bond)?;
                p.bond = p
                    .bond
                    .checked_add(*add_bond)
                    .ok_or(TxError::Overflow("bond"))?;
            }
            check_bond(&p, ctx.params)?;
            put_provider(s, a, &p)?;
            if let Some(ask) = ask_per_cu {
                put_u128(s, state_key::pending_ask(a), *ask);
            }
            events.push(
                event::provider("market_provider_updated", a)
                    .attr(
                        "pending_ask",
                        ask_per_cu.map(|x| x.to_string()).unwrap_or_default(),
                    )
                    .attr("bond", p.bond.to_string()),
            );
        }
        MarketMsg::UnregisterProvider { provider: a } => {
            let mut p = active_provider(s, a)?;
            if p.jobs_in_flight > 0 {
                return Err(TxError::from(MarketError::JobsInFlight(p.jobs_in_flight)));
            }
            let release = ctx
                .height
                .saturating_add(ctx.params.market.unbonding_blocks);
            p.release_height = Some(release);
            put_provider(s, a, &p)?;
            s.delete(state_key::pending_ask(a));
            schedule(s, release, Due::Release, a.as_bytes());
            events.push(
                event::provider("market_provider_unregistered", a)
                    .attr("release_height", release.to_string()),
            );
        }
        MarketMsg::PostJob { consumer, spec } => {
            let cu = check_job(spec, ctx.params)?;
            let (open, _) = super::open_totals(s)?;
            if open >= ctx.params.market.max_open_jobs {
                return Err(TxError::from(MarketError::TooManyOpenJobs(open)));
            }
            let cu128 = u128::from(cu);
            let price = spec
                .max_price_per_cu
                .checked_mul(cu128)
                .ok_or(TxError::Overflow("job price"))?;
            let fee = ctx
                .params
                .market
                .protocol_fee_per_cu
                .checked_mul(cu128)
                .ok_or(TxError::Overflow("protocol fee"))?;
            let total = price.checked_add(fee).ok_or(TxError::Overflow("escrow"))?;
            let seq_key = state_key::seq(consumer);
            let seq: u64 = match s.get(&seq_key)? {
                None => 0,
                Some(b) => decode(&seq_key, &b)?,
            };
            let id = job_id(consumer, seq);
            s.put(seq_key, encode(&seq.saturating_add(1)));
            bank::transfer(s, consumer, &super::escrow_pool(), total)?;
            put_u128(s, state_key::escrow(&id), total);
            let mut j = Job {
                consumer: *consumer,
                m: spec.m,
                k: spec.k,
                n: spec.n,
                tile: spec.tile,
                samples: spec.samples,
                a_root: spec.a_root,
                b_root: spec.b_root,
                max_price_per_cu: spec.max_price_per_cu,
                cu,
                fee,
                deadline_blocks: spec.deadline_blocks,
                min_reputation: spec.min_reputation,
                refund_on_failure: spec.refund_on_failure,
                posted_height: ctx.height,
                status: JobStatus::Open,
                provider: None,
                price_per_cu: 0,
                matched_height: 0,
                deadline: 0,
                excluded: Vec::new(),
                output_root: None,
                commit_height: 0,
                seed: None,
                sampled: Vec::new(),
                revealed: Vec::new(),
                challenge: Vec::new(),
                challenge_answered: Vec::new(),
                challenge_deadline: 0,
                history: Vec::new(),
            };
            j.record(ctx.height, "posted", format!("{cu} CU, escrow {total}"));
            put_job(s, &id, &j)?;
            s.put(
                state_key::by_consumer(consumer, ctx.height, &id),
                Vec::new(),
            );
            events.push(
                event::job("market_job_posted", &id)
                    .attr("consumer", consumer.to_string())
                    .attr("cu", cu.to_string())
                    .attr("max_price_per_cu", spec.max_price_per_cu.to_string())
                    .attr("escrow", total.to_string()),
            );
        }
        MarketMsg::CancelJob { consumer, job } => {
            let mut j = existing_job(s, job)?;
            if j.consumer != *consumer {
                return Err(TxError::from(MarketError::NotConsumer(
                    consumer.to_string(),
                )));
            }
            if j.status != JobStatus::Open {
                return Err(TxError::from(MarketError::WrongJobStatus {
                    actual: j.status.as_str(),
                    expected: JobStatus::Open.as_str(),
                }));
            }
            let amount = refund_escrow(s, job, &j)?;
            j.status = JobStatus::Cancelled;
            j.record(ctx.height, "cancelled", format!("{amount} refunded"));
            put_job(s, job, &j)?;
            events
                .push(event::job("market_job_cancelled", job).attr("refunded", amount.to_string()));
        }
        MarketMsg::AcceptJob { provider: a, job } => {
            let j = providers_job(s, ctx, job, a, JobStatus::Matched)?;
            accept(s, ctx, job, j, events)?;
        }
        MarketMsg::DeclineJob {
            provider: a,
            job,
            reason,
        } => {
            let j = providers_job(s, ctx, job, a, JobStatus::Matched)?;
            decline(s, ctx, job, j, reason, false, events)?;
        }
    }
    Ok(())
}

/// Checks a provider's job for a compute message: matched to `sender`, in `expected` status, not late.
pub fn provider_job_in<S: StateWrite + ?Sized>(
    s: &S,
    ctx: BlockCtx<'_>,
    id: &[u8; 32],
    sender: &Address,
    expected: JobStatus,
) -> Result<Job, TxError> {
    providers_job(s, ctx, id, sender, expected)
}
