//! Proof of useful compute: consensus voting power from bonded stake and verified compute.
//!
//! # The allocation ([`allocate`], a pure function)
//!
//! Total power is fixed at [`TOTAL_POWER`] (10^9 units) whenever at least one validator has stake; a
//! validator with zero stake gets nothing. Integer math only; every step is a function of the inputs in
//! key order, so any permutation of the inputs gives the same result.
//!
//! 1. **Weights** (at the finer scale [`WEIGHT_SCALE`], 10^18). The compute pool is `compute_weight_bps`
//!    of it, split in proportion to each validator's verified CU, but divided by
//!    `max(total verified CU, cu_floor)`: while the market delivers less than the floor, the part of the
//!    compute pool that nobody earned goes back to the stake pool (so a thin market cannot be cornered
//!    with a few self-posted jobs, see docs/proof-of-useful-compute.md). The stake pool (the rest) is split
//!    in proportion to bonded stake. Stakes or CU that would overflow are shifted right together by the
//!    same number of bits first, so every product fits in `u128`.
//! 2. **Cap** (`max_power_bps` of [`TOTAL_POWER`]). Water-filling: validators sorted by weight (descending,
//!    then key ascending); the top `k` are held at the cap and the rest `R = TOTAL − k·cap` is split over
//!    the others in proportion to their weights, for the smallest `k` at which nobody else exceeds the cap.
//!    With `n` validators and `n · cap < TOTAL` the cap cannot be met: the effective cap is then
//!    `ceil(TOTAL / n)` (so the total stays exact and everyone capped is equal).
//! 3. **Rounding.** Every split of an integer amount in proportion to weights ([`split`]) is Hamilton's
//!    largest-remainder method: the floors, then one unit each to the largest remainders, ties to the
//!    smaller key. The parts sum to the amount exactly.
//! 4. **Churn** (`max_churn_bps` of [`TOTAL_POWER`] per epoch). With the previous powers `p` (rescaled to
//!    [`TOTAL_POWER`] by [`split`] if they sum to something else) and the target `t`: if
//!    `Σ|t − p| / 2 ≤ L` the result is `t`. Otherwise exactly `M = max(L, F)` units move, where `F` is the
//!    power of validators that lost all their stake (or are no longer candidates): they drop to zero at
//!    once, since power without stake at risk is unsafe. `M` is added to the gainers in proportion to
//!    their gap `t − p`, and `M − F` taken from the other losers in proportion to `p − t` ([`split`]). Every
//!    validator moves toward its target and never past it, so the cap holds whenever it held before
//!    (`new ≤ max(p, t)`). With no previous powers (the first epoch) the result is the target.
//!
//! # In state
//!
//! Epochs are counted in [`Epoch`] (`staking/epoch`): an epoch lasts `compute.epoch_blocks` blocks (read
//! at each block, so a governance change applies from the running epoch's start on, and epoch numbers
//! never go back). The market records verified CU under the current epoch's number ([`current_epoch`]).
//! At the end of an epoch's last block the powers in force are stored per validator
//! (`staking/power/<operator>`: the next epoch's baseline) and the epoch closes. [`target_powers`] gives
//! the power each validator should have now: the allocation from current bonded stake, the last closed
//! epoch's CU, and the stored baseline as the previous powers. So the closed epoch's CU acts from the
//! first block of the next epoch, stake changes act at once, and within an epoch the set is never more
//! than `max_churn_bps` away from the power it had when the epoch began.

use std::collections::BTreeMap;

use borsh::{BorshDeserialize, BorshSerialize};

use super::state_key;
use crate::{
    address::Address,
    codec::{address_at, decode, encode},
    error::{StoreError, TxError},
    event::Event,
    module::BlockCtx,
    params::Params,
    store::{StateRead, StateWrite},
};

/// Total voting power when at least one validator has stake: 10^9 units.
pub const TOTAL_POWER: u64 = 1_000_000_000;

/// The scale of the intermediate weights (10^18): fine enough that rounding in the weights is far below
/// one unit of power.
pub const WEIGHT_SCALE: u128 = 1_000_000_000_000_000_000;

/// Basis points in one.
pub const BPS: u64 = 10_000;

/// What [`allocate`] needs of the parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerParams {
    /// Share of total power split by verified CU (0..=10000).
    pub compute_weight_bps: u64,
    /// Most power one validator may hold (1..=10000), unless there are too few validators to meet it.
    pub max_power_bps: u64,
    /// Most power that moves in one epoch (1..=10000), except power whose holder lost all its stake.
    pub max_churn_bps: u64,
    /// The compute pool is divided by at least this much CU (see the module docs).
    pub cu_floor: u128,
}

/// One candidate validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorInput<K> {
    pub key: K,
    /// Bonded stake (base units).
    pub stake: u128,
    /// CU its linked provider had verified in the last closed epoch.
    pub verified_cu: u128,
}

/// The power of every input key (duplicates merged, stakes and CU summed), sorted by key. The sum is
/// exactly [`TOTAL_POWER`] if any input has stake, else zero. Keys only in `prev` are not in the result
/// (their power is zero). See the module docs for the rules.
pub fn allocate<K: Ord + Clone>(
    inputs: &[ValidatorInput<K>],
    prev: &[(K, u64)],
    p: &PowerParams,
) -> Vec<(K, u64)> {
    let mut merged: BTreeMap<K, (u128, u128)> = BTreeMap::new();
    for i in inputs {
        let e = merged.entry(i.key.clone()).or_insert((0, 0));
        e.0 = e.0.saturating_add(i.stake);
        e.1 = e.1.saturating_add(i.verified_cu);
    }
    let target = target(&merged, p);
    let mut prev_map: BTreeMap<K, u64> = BTreeMap::new();
    for (k, v) in prev {
        let e = prev_map.entry(k.clone()).or_insert(0);
        *e = e.saturating_add(*v);
    }
    let moved = limit_churn(&target, &prev_map, p.max_churn_bps);
    merged
        .keys()
        .map(|k| (k.clone(), moved.get(k).copied().unwrap_or(0)))
        .collect()
}

/// The weights (at [`WEIGHT_SCALE`]) of the validators with stake: (stake part, compute part).
pub fn weights<K: Ord + Clone>(
    merged: &BTreeMap<K, (u128, u128)>,
    compute_weight_bps: u64,
    cu_floor: u128,
) -> BTreeMap<K, (u128, u128)> {
    let eligible: Vec<(&K, u128, u128)> = merged
        .iter()
        .filter(|(_, (s, _))| *s > 0)
        .map(|(k, (s, c))| (k, *s, *c))
        .collect();
    let stakes = fit_64(&eligible.iter().map(|e| e.1).collect::<Vec<_>>());
    let (cus, floor) = {
        let mut all = fit_64(
            &eligible
                .iter()
                .map(|e| e.2)
                .chain(std::iter::once(cu_floor))
                .collect::<Vec<_>>(),
        );
        let floor = all.pop().unwrap_or(0);
        (all, floor)
    };
    let total_stake: u128 = stakes.iter().fold(0u128, |a, s| a.saturating_add(*s));
    let total_cu: u128 = cus.iter().fold(0u128, |a, c| a.saturating_add(*c));
    let compute_pool = WEIGHT_SCALE
        .saturating_mul(u128::from(compute_weight_bps.min(BPS)))
        .checked_div(u128::from(BPS))
        .unwrap_or(0);
    let divisor = total_cu.max(floor);
    // compute_pool < 2^60 and each CU < 2^64 after fit_64: the products fit.
    let compute_parts: Vec<u128> = cus
        .iter()
        .map(|c| {
            compute_pool
                .saturating_mul(*c)
                .checked_div(divisor)
                .unwrap_or(0)
        })
        .collect();
    let used = compute_parts
        .iter()
        .fold(0u128, |a, c| a.saturating_add(*c));
    let stake_pool = WEIGHT_SCALE.saturating_sub(used);
    eligible
        .iter()
        .zip(stakes.iter().zip(compute_parts))
        .map(|((k, ..), (s, c))| {
            let sp = stake_pool
                .saturating_mul(*s)
                .checked_div(total_stake)
                .unwrap_or(0);
            ((*k).clone(), (sp, c))
        })
        .collect()
}

/// The capped target power of every validator with stake (keys without stake are absent).
fn target<K: Ord + Clone>(merged: &BTreeMap<K, (u128, u128)>, p: &PowerParams) -> BTreeMap<K, u64> {
    let w = weights(merged, p.compute_weight_bps, p.cu_floor);
    let n = w.len() as u64;
    if n == 0 {
        return BTreeMap::new();
    }
    let total = TOTAL_POWER;
    let cap = total
        .saturating_mul(p.max_power_bps.clamp(1, BPS))
        .checked_div(BPS)
        .unwrap_or(total)
        .max(total.div_ceil(n));
    // By weight descending, then key ascending.
    let mut order: Vec<(&K, u128)> = w
        .iter()
        .map(|(k, (s, c))| (k, s.saturating_add(*c)))
        .collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let mut out = BTreeMap::new();
    let mut k = 0usize;
    let mut rest: u64 = total;
    while let Some(top) = order.get(k) {
        let tail = order.get(k..).unwrap_or_default();
        let sum: u128 = tail.iter().fold(0u128, |a, e| a.saturating_add(e.1));
        // With no weight left, the rest is split equally.
        let (w_top, w_sum) = if sum == 0 {
            (1u128, tail.len() as u128)
        } else {
            (top.1, sum)
        };
        // rest < 2^30 and weights < 2^61: the products fit.
        if u128::from(rest).saturating_mul(w_top) <= u128::from(cap).saturating_mul(w_sum) {
            let ws: Vec<u128> = tail
                .iter()
                .map(|e| if sum == 0 { 1 } else { e.1 })
                .collect();
            for (e, part) in tail.iter().zip(split(u128::from(rest), &ws)) {
                out.insert(e.0.clone(), u64::try_from(part).unwrap_or(u64::MAX));
            }
            return out;
        }
        out.insert(top.0.clone(), cap);
        rest = rest.saturating_sub(cap);
        k = k.saturating_add(1);
    }
    out
}

/// Moves from `prev` toward `target` by at most `max(L, F)` (see the module docs). Keys absent from
/// `target` have no stake and end at zero (absent from the result).
fn limit_churn<K: Ord + Clone>(
    target: &BTreeMap<K, u64>,
    prev: &BTreeMap<K, u64>,
    max_churn_bps: u64,
) -> BTreeMap<K, u64> {
    let prev_total: u128 = prev
        .values()
        .fold(0u128, |a, v| a.saturating_add(u128::from(*v)));
    if prev_total == 0 || target.is_empty() {
        return target.clone();
    }
    // Rescale the previous powers to TOTAL_POWER when they sum to something else.
    let prev: BTreeMap<K, u64> = if prev_total == u128::from(TOTAL_POWER) {
        prev.clone()
    } else {
        let ws: Vec<u128> = prev.values().map(|v| u128::from(*v)).collect();
        prev.keys()
            .cloned()
            .zip(split(u128::from(TOTAL_POWER), &ws))
            .map(|(k, v)| (k, u64::try_from(v).unwrap_or(u64::MAX)))
            .collect()
    };
    let forced: u64 = prev
        .iter()
        .filter(|(k, _)| !target.contains_key(*k))
        .fold(0u64, |a, (_, v)| a.saturating_add(*v));
    let mut gains: Vec<(&K, u64, u64)> = Vec::new(); // (key, prev, gap)
    let mut losses: Vec<(&K, u64, u64)> = Vec::new();
    let mut gap_total: u64 = 0;
    for (k, t) in target {
        let p = prev.get(k).copied().unwrap_or(0);
        if *t > p {
            let d = t.saturating_sub(p);
            gap_total = gap_total.saturating_add(d);
            gains.push((k, p, d));
        } else if p > *t {
            losses.push((k, p, p.saturating_sub(*t)));
        }
    }
    let limit = TOTAL_POWER
        .saturating_mul(max_churn_bps.clamp(1, BPS))
        .checked_div(BPS)
        .unwrap_or(TOTAL_POWER);
    let moving = limit.max(forced);
    if gap_total <= moving {
        return target.clone();
    }
    let mut out: BTreeMap<K, u64> = target
        .keys()
        .map(|k| (k.clone(), prev.get(k).copied().unwrap_or(0)))
        .collect();
    let gw: Vec<u128> = gains.iter().map(|g| u128::from(g.2)).collect();
    for (g, add) in gains.iter().zip(split(u128::from(moving), &gw)) {
        let v = g.1.saturating_add(u64::try_from(add).unwrap_or(0));
        out.insert(g.0.clone(), v);
    }
    let lw: Vec<u128> = losses.iter().map(|l| u128::from(l.2)).collect();
    let take = u128::from(moving.saturating_sub(forced));
    for (l, sub) in losses.iter().zip(split(take, &lw)) {
        let v = l.1.saturating_sub(u64::try_from(sub).unwrap_or(0));
        out.insert(l.0.clone(), v);
    }
    out
}

/// Splits `amount` in proportion to `weights` by the largest-remainder method: floors first, then one
/// unit each to the largest remainders, ties to the lower index. The parts sum to `amount` when any
/// weight is positive (else all parts are zero). Callers keep `amount × weight` below 2^128 (amounts
/// here are below 2^31 and weights below 2^62).
pub fn split(amount: u128, weights: &[u128]) -> Vec<u128> {
    let total: u128 = weights.iter().fold(0u128, |a, w| a.saturating_add(*w));
    if total == 0 {
        return vec![0; weights.len()];
    }
    let mut parts: Vec<u128> = Vec::with_capacity(weights.len());
    let mut rems: Vec<(u128, usize)> = Vec::with_capacity(weights.len());
    let mut given: u128 = 0;
    for (i, w) in weights.iter().enumerate() {
        let x = amount.saturating_mul(*w);
        let q = x.checked_div(total).unwrap_or(0);
        given = given.saturating_add(q);
        parts.push(q);
        rems.push((x.checked_rem(total).unwrap_or(0), i));
    }
    let mut left = amount.saturating_sub(given);
    rems.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    for (_, i) in rems {
        if left == 0 {
            break;
        }
        if let Some(p) = parts.get_mut(i) {
            *p = p.saturating_add(1);
            left = left.saturating_sub(1);
        }
    }
    parts
}

/// Shifts all values right by the same number of bits so that their sum is below 2^64 (no shift when it
/// already is): each value is below 2^(bits − shift) and there are at most 2^log_n of them.
fn fit_64(values: &[u128]) -> Vec<u128> {
    let n = values.len() as u128;
    let max = values.iter().copied().max().unwrap_or(0);
    let bits = 128u32.saturating_sub(max.leading_zeros());
    let log_n = 128u32.saturating_sub(n.saturating_sub(1).leading_zeros());
    let shift = bits.saturating_add(log_n).saturating_sub(64);
    values
        .iter()
        .map(|v| v.checked_shr(shift).unwrap_or(0))
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// In state: epochs, links, the stored baseline.

/// The running epoch: its number and first height. Absent means epoch 0 from height 0, which equals the
/// old `height / epoch_blocks` numbering for as long as `epoch_blocks` does not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, BorshSerialize, BorshDeserialize)]
pub struct Epoch {
    pub number: u64,
    pub start_height: u64,
}

/// The running epoch.
pub fn current_epoch<S: StateRead + ?Sized>(s: &S) -> Result<Epoch, StoreError> {
    match s.get(state_key::EPOCH)? {
        None => Ok(Epoch::default()),
        Some(b) => decode(state_key::EPOCH, &b),
    }
}

/// The last closed epoch, if any.
pub fn last_closed_epoch<S: StateRead + ?Sized>(s: &S) -> Result<Option<u64>, StoreError> {
    Ok(current_epoch(s)?.number.checked_sub(1))
}

/// A validator's provider link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Link {
    /// The linked provider, if any (None after an unlink; the record keeps the cooldown).
    pub provider: Option<Address>,
    /// The epoch of the last link or unlink.
    pub changed_epoch: u64,
}

pub fn link<S: StateRead + ?Sized>(s: &S, validator: &Address) -> Result<Option<Link>, StoreError> {
    let key = state_key::link(validator);
    s.get(&key)?.map(|b| decode(&key, &b)).transpose()
}

/// The validator a provider is linked to.
pub fn linked_validator<S: StateRead + ?Sized>(
    s: &S,
    provider: &Address,
) -> Result<Option<Address>, StoreError> {
    let key = state_key::provider_link(provider);
    match s.get(&key)? {
        None => Ok(None),
        Some(b) => Ok(Some(address_at(&b, 0)?)),
    }
}

/// The consent nonce a provider's next link signature must carry.
pub fn link_nonce<S: StateRead + ?Sized>(s: &S, provider: &Address) -> Result<u64, StoreError> {
    let key = state_key::link_nonce(provider);
    match s.get(&key)? {
        None => Ok(0),
        Some(b) => decode(&key, &b),
    }
}

/// The bytes a provider signs to consent to being linked to `validator`: a domain tag, the chain id
/// (length-prefixed), the validator, the provider and the provider's link nonce (big-endian).
pub fn link_sign_bytes(
    chain_id: &str,
    validator: &Address,
    provider: &Address,
    nonce: u64,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(96);
    b.extend_from_slice(b"lode/staking/link-provider/v1");
    b.extend_from_slice(&(chain_id.len() as u64).to_be_bytes());
    b.extend_from_slice(chain_id.as_bytes());
    b.extend_from_slice(validator.as_bytes());
    b.extend_from_slice(provider.as_bytes());
    b.extend_from_slice(&nonce.to_be_bytes());
    b
}

/// The CU a validator's link earns from the last closed epoch: the linked provider's verified CU in that
/// epoch, if the link was made before that epoch began (so a provider moved between validators never
/// counts twice, and a link cannot be timed to an epoch already known).
pub fn linked_cu<S: StateRead + ?Sized>(
    s: &S,
    validator: &Address,
    closed: Option<u64>,
) -> Result<u128, StoreError> {
    let (Some(closed), Some(l)) = (closed, link(s, validator)?) else {
        return Ok(0);
    };
    match l.provider {
        Some(p) if l.changed_epoch < closed => Ok(u128::from(crate::modules::market::verified_cu(
            s, &p, closed,
        )?)),
        _ => Ok(0),
    }
}

/// The [`PowerParams`] in force, with the CU floor for the current total bonded stake.
pub fn power_params<S: StateRead + ?Sized>(s: &S, p: &Params) -> Result<PowerParams, StoreError> {
    let bonded = super::total_bonded(s)?;
    Ok(PowerParams {
        compute_weight_bps: p.staking.compute_weight_bps,
        max_power_bps: p.staking.max_power_bps,
        max_churn_bps: p.staking.max_churn_bps,
        cu_floor: cu_floor(bonded, p),
    })
}

/// `total_bonded × epoch_blocks / bonded_per_floor_cu` (saturating): the least CU the compute pool is
/// divided by (see docs/proof-of-useful-compute.md).
pub fn cu_floor(total_bonded: u128, p: &Params) -> u128 {
    total_bonded
        .checked_div(u128::from(p.staking.bonded_per_floor_cu.max(1)))
        .unwrap_or(0)
        .saturating_mul(u128::from(p.compute.epoch_blocks))
}

/// A validator's allocation input with its consensus key.
pub type Keyed = (ValidatorInput<Address>, [u8; 32]);

/// Every validator with its bonded stake and its link's CU from the last closed epoch, by operator.
pub fn candidates<S: StateRead + ?Sized>(
    s: &S,
) -> Result<Vec<ValidatorInput<Address>>, StoreError> {
    Ok(scan(s)?.into_iter().map(|(i, _)| i).collect())
}

/// The validators that may hold consensus power, with their consensus keys, by operator: not jailed, not
/// tombstoned, and at least `staking.power_reduction` bonded (less is no power, as before proof of useful
/// compute). The consensus set, the epoch baseline, `/staking/power` and genesis all allocate over these.
pub fn eligible<S: StateRead + ?Sized>(s: &S, params: &Params) -> Result<Vec<Keyed>, StoreError> {
    let mut out = Vec::new();
    for (i, key) in scan(s)? {
        if i.stake < params.staking.power_reduction.max(1)
            || super::liveness::is_jailed(s, &i.key)?
            || super::is_tombstoned(s, &i.key)?
        {
            continue;
        }
        out.push((i, key));
    }
    Ok(out)
}

/// Every validator's input and consensus key, by operator (one scan over validators).
fn scan<S: StateRead + ?Sized>(s: &S) -> Result<Vec<Keyed>, StoreError> {
    let closed = last_closed_epoch(s)?;
    let p = state_key::VALIDATOR_PREFIX.len();
    let mut out = Vec::new();
    for (k, v) in s.scan_prefix(state_key::VALIDATOR_PREFIX)? {
        let op = address_at(&k, p)?;
        let val: super::Validator = decode(&k, &v)?;
        out.push((
            ValidatorInput {
                key: op,
                stake: val.tokens,
                verified_cu: linked_cu(s, &op, closed)?,
            },
            val.consensus_key,
        ));
    }
    Ok(out)
}

/// The stored baseline: every validator's power at the last epoch boundary, by operator.
pub fn stored_powers<S: StateRead + ?Sized>(s: &S) -> Result<Vec<(Address, u64)>, StoreError> {
    let p = state_key::POWER_PREFIX.len();
    s.scan_prefix(state_key::POWER_PREFIX)?
        .into_iter()
        .map(|(k, v)| Ok((address_at(&k, p)?, decode(&k, &v)?)))
        .collect()
}

/// The power every validator should have now, by operator (zeros included): [`allocate`] over
/// `candidates` (pass [`candidates`] for every validator, or a subset such as the unjailed ones), with
/// the stored baseline as the previous powers. This is the one call the consensus set needs.
pub fn target_powers_of<S: StateRead + ?Sized>(
    s: &S,
    params: &Params,
    candidates: &[ValidatorInput<Address>],
) -> Result<Vec<(Address, u64)>, StoreError> {
    let pp = power_params(s, params)?;
    Ok(allocate(candidates, &stored_powers(s)?, &pp))
}

/// [`target_powers_of`] over the [`eligible`] validators: the power each should hold now, by operator
/// (a jailed, tombstoned or under-bonded validator is absent, so its power is zero).
pub fn target_powers<S: StateRead + ?Sized>(
    s: &S,
    params: &Params,
) -> Result<Vec<(Address, u64)>, StoreError> {
    let inputs: Vec<ValidatorInput<Address>> =
        eligible(s, params)?.into_iter().map(|(i, _)| i).collect();
    target_powers_of(s, params, &inputs)
}

/// End of block: after an epoch's last block, stores every validator's power now (the baseline the next
/// epoch's churn is measured from), closes the epoch (so its CU becomes the last closed epoch's and drives
/// [`target_powers`] from the next block on), and emits `epoch_closed` and one `epoch_power` per validator with power. Runs before the market's end of block, so CU recorded in this block's
/// end already counts toward the new epoch.
pub fn end_block<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let e = current_epoch(s)?;
    let len = ctx.params.compute.epoch_blocks.max(1);
    if ctx.height.saturating_add(1) < e.start_height.saturating_add(len) {
        return Ok(());
    }
    let next = Epoch {
        number: e.number.saturating_add(1),
        start_height: ctx.height.saturating_add(1),
    };
    // The powers in force at the end of this epoch become the next epoch's baseline; the CU of the epoch
    // closing now then acts through `target_powers`, at most `max_churn_bps` away from it.
    let powers = target_powers(s, ctx.params)?;
    s.put(state_key::EPOCH.to_vec(), encode(&next));
    for (k, _) in s.scan_prefix(state_key::POWER_PREFIX)? {
        s.delete(k);
    }
    events.push(
        Event::new("epoch_closed")
            .attr("epoch", e.number.to_string())
            .attr("next_start_height", next.start_height.to_string()),
    );
    for (op, power) in &powers {
        if *power > 0 {
            s.put(state_key::power(op), encode(power));
            events.push(
                Event::new("epoch_power")
                    .attr("validator", op.to_string())
                    .attr("power", power.to_string()),
            );
        }
    }
    Ok(())
}

/// Writes genesis's proof-of-useful-compute state (validated: links name genesis validators, distinct
/// providers).
pub fn init_genesis<S: StateWrite + ?Sized>(
    s: &mut S,
    g: &crate::genesis::GenesisComputePower,
) -> Result<(), crate::error::StateError> {
    use crate::error::StateError;
    let parse = |what: &str, a: &str| -> Result<Address, StateError> {
        a.parse()
            .map_err(|e| StateError::Genesis(format!("app_state.compute_power {what} {a}: {e}")))
    };
    s.put(
        state_key::EPOCH.to_vec(),
        encode(&Epoch {
            number: g.epoch,
            start_height: g.epoch_start_height,
        }),
    );
    for p in &g.epoch_powers {
        let op = parse("validator", &p.validator)?;
        if p.power > 0 {
            s.put(state_key::power(&op), encode(&p.power));
        }
    }
    for l in &g.links {
        let (op, provider) = (
            parse("validator", &l.validator)?,
            parse("provider", &l.provider)?,
        );
        s.put(
            state_key::link(&op),
            encode(&Link {
                provider: Some(provider),
                changed_epoch: l.changed_epoch,
            }),
        );
        s.put(state_key::provider_link(&provider), op.as_bytes().to_vec());
    }
    for n in &g.link_nonces {
        let provider = parse("provider", &n.provider)?;
        s.put(state_key::link_nonce(&provider), encode(&n.nonce));
    }
    Ok(())
}

/// The proof-of-useful-compute state for an exported genesis whose validators are `validators`: the epoch,
/// the baseline powers and links of those validators, and every provider's link nonce.
pub fn export_genesis<S: StateRead + ?Sized>(
    s: &S,
    validators: &[crate::genesis::GenesisStakingValidator],
) -> Result<crate::genesis::GenesisComputePower, StoreError> {
    use crate::genesis::{GenesisComputePower, GenesisLink, GenesisLinkNonce, GenesisPower};
    let kept: std::collections::BTreeSet<Address> = validators
        .iter()
        .filter_map(|v| v.operator.parse().ok())
        .collect();
    let e = current_epoch(s)?;
    let epoch_powers = stored_powers(s)?
        .into_iter()
        .filter(|(op, _)| kept.contains(op))
        .map(|(op, power)| GenesisPower {
            validator: op.to_string(),
            power,
        })
        .collect();
    let mut links = Vec::new();
    for op in &kept {
        if let Some(Link {
            provider: Some(p),
            changed_epoch,
        }) = link(s, op)?
        {
            links.push(GenesisLink {
                validator: op.to_string(),
                provider: p.to_string(),
                changed_epoch,
            });
        }
    }
    let plen = state_key::LINK_NONCE_PREFIX.len();
    let link_nonces = s
        .scan_prefix(state_key::LINK_NONCE_PREFIX)?
        .into_iter()
        .map(|(k, v)| {
            Ok(GenesisLinkNonce {
                provider: address_at(&k, plen)?.to_string(),
                nonce: decode(&k, &v)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(GenesisComputePower {
        epoch: e.number,
        epoch_start_height: e.start_height,
        epoch_powers,
        links,
        link_nonces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(cw: u64, cap: u64, churn: u64) -> PowerParams {
        PowerParams {
            compute_weight_bps: cw,
            max_power_bps: cap,
            max_churn_bps: churn,
            cu_floor: 0,
        }
    }

    fn inp(key: u32, stake: u128, cu: u128) -> ValidatorInput<u32> {
        ValidatorInput {
            key,
            stake,
            verified_cu: cu,
        }
    }

    #[test]
    fn stake_only_splits_by_stake_exactly() {
        let out = allocate(
            &[inp(1, 1, 0), inp(2, 1, 0), inp(3, 2, 0)],
            &[],
            &params(0, 10_000, 10_000),
        );
        assert_eq!(
            out,
            vec![(1, 250_000_000), (2, 250_000_000), (3, 500_000_000)]
        );
    }

    #[test]
    fn compute_share_follows_cu_and_the_rest_stake() {
        // Equal stake, all CU with validator 1: 50% by CU → 1 gets 50% + 25%.
        let out = allocate(
            &[inp(1, 5, 100), inp(2, 5, 0)],
            &[],
            &params(5_000, 10_000, 10_000),
        );
        assert_eq!(out, vec![(1, 750_000_000), (2, 250_000_000)]);
    }

    #[test]
    fn the_floor_returns_unearned_compute_power_to_stake() {
        let mut p = params(5_000, 10_000, 10_000);
        p.cu_floor = 400;
        // 100 CU of a 400 floor earns a quarter of the compute pool (12.5%); the rest goes by stake.
        let out = allocate(&[inp(1, 5, 100), inp(2, 5, 0)], &[], &p);
        assert_eq!(out, vec![(1, 562_500_000), (2, 437_500_000)]);
    }

    #[test]
    fn the_cap_redistributes_and_too_few_validators_raise_it() {
        let out = allocate(
            &[inp(1, 90, 0), inp(2, 5, 0), inp(3, 5, 0)],
            &[],
            &params(0, 5_000, 10_000),
        );
        assert_eq!(
            out,
            vec![(1, 500_000_000), (2, 250_000_000), (3, 250_000_000)]
        );
        // Two validators cannot each stay under 10%: both end at 50%.
        let out = allocate(
            &[inp(1, 90, 0), inp(2, 10, 0)],
            &[],
            &params(0, 1_000, 10_000),
        );
        assert_eq!(out, vec![(1, 500_000_000), (2, 500_000_000)]);
    }

    #[test]
    fn churn_moves_exactly_the_limit_toward_the_target() {
        let prev = [(1u32, 500_000_000u64), (2, 500_000_000)];
        let out = allocate(
            &[inp(1, 1, 0), inp(2, 3, 0)],
            &prev,
            &params(0, 10_000, 1_000),
        );
        assert_eq!(out, vec![(1, 400_000_000), (2, 600_000_000)]);
    }

    #[test]
    fn a_validator_without_stake_drops_at_once() {
        let prev = [(1u32, 400_000_000u64), (2, 300_000_000), (3, 300_000_000)];
        let out = allocate(
            &[inp(1, 0, 0), inp(2, 1, 0), inp(3, 1, 0)],
            &prev,
            &params(0, 10_000, 100),
        );
        assert_eq!(out, vec![(1, 0), (2, 500_000_000), (3, 500_000_000)]);
    }

    #[test]
    fn huge_stakes_do_not_overflow() {
        let out = allocate(
            &[
                inp(1, u128::MAX, u128::MAX),
                inp(2, u128::MAX, 1),
                inp(3, 1, 0),
            ],
            &[(1, u64::MAX), (2, u64::MAX)],
            &PowerParams {
                compute_weight_bps: 3_000,
                max_power_bps: 4_000,
                max_churn_bps: 500,
                cu_floor: u128::MAX,
            },
        );
        assert_eq!(out.iter().map(|(_, p)| p).sum::<u64>(), TOTAL_POWER);
    }

    #[test]
    fn split_is_exact_and_breaks_ties_by_index() {
        assert_eq!(split(10, &[1, 1, 1]), vec![4, 3, 3]);
        assert_eq!(split(0, &[1, 2]), vec![0, 0]);
        assert_eq!(split(5, &[0, 0]), vec![0, 0]);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn arb_inputs() -> impl Strategy<Value = Vec<ValidatorInput<u8>>> {
            prop::collection::vec(
                (
                    0u8..16,
                    prop_oneof![Just(0u128), 1u128..1_000, 1u128..(1u128 << 60)],
                    prop_oneof![Just(0u128), 1u128..1_000_000_000],
                ),
                0..14,
            )
            .prop_map(|v| {
                v.into_iter()
                    .map(|(key, stake, verified_cu)| ValidatorInput {
                        key,
                        stake,
                        verified_cu,
                    })
                    .collect()
            })
        }

        fn arb_params() -> impl Strategy<Value = PowerParams> {
            (
                0u64..=10_000,
                1u64..=10_000,
                1u64..=10_000,
                prop_oneof![Just(0u128), 0u128..10_000_000_000],
            )
                .prop_map(|(cw, cap, churn, floor)| PowerParams {
                    compute_weight_bps: cw,
                    max_power_bps: cap,
                    max_churn_bps: churn,
                    cu_floor: floor,
                })
        }

        fn stake_of(inputs: &[ValidatorInput<u8>], k: u8) -> u128 {
            inputs.iter().filter(|i| i.key == k).map(|i| i.stake).sum()
        }

        fn eligible(inputs: &[ValidatorInput<u8>]) -> u64 {
            let mut keys: Vec<u8> = inputs
                .iter()
                .filter(|i| i.stake > 0)
                .map(|i| i.key)
                .collect();
            keys.sort_unstable();
            keys.dedup();
            // A key is eligible if its merged stake is positive.
            keys.into_iter()
                .filter(|k| stake_of(inputs, *k) > 0)
                .count() as u64
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(400))]

            #[test]
            fn total_cap_churn_and_zero_stake_hold(
                before in arb_inputs(),
                now in arb_inputs(),
                p in arb_params(),
            ) {
                let prev = allocate(&before, &[], &p);
                let out = allocate(&now, &prev, &p);
                let n = eligible(&now);
                let total: u64 = out.iter().map(|(_, v)| v).sum();
                prop_assert_eq!(total, if n > 0 { TOTAL_POWER } else { 0 });
                let cap = (TOTAL_POWER * p.max_power_bps / BPS).max(TOTAL_POWER.div_ceil(n.max(1)));
                let prev_of = |k: u8| prev.iter().find(|(pk, _)| *pk == k).map_or(0, |(_, v)| *v);
                let mut up = 0u64;
                for (k, v) in &out {
                    prop_assert!(*v <= cap.max(prev_of(*k)), "{} holds {} over cap {}", k, v, cap);
                    if stake_of(&now, *k) == 0 {
                        prop_assert_eq!(*v, 0);
                    }
                    up += v.saturating_sub(prev_of(*k));
                }
                let forced: u64 = prev
                    .iter()
                    .filter(|(k, _)| stake_of(&now, *k) == 0)
                    .map(|(_, v)| v)
                    .sum();
                let limit = TOTAL_POWER * p.max_churn_bps / BPS;
                let prev_total: u64 = prev.iter().map(|(_, v)| v).sum();
                if prev_total == TOTAL_POWER && n > 0 {
                    prop_assert!(up <= limit.max(forced), "moved {} > limit {} / forced {}", up, limit, forced);
                    // Nobody passes its target.
                    let target = allocate(&now, &[], &p);
                    for ((k, v), (_, t)) in out.iter().zip(&target) {
                        let pv = prev_of(*k);
                        prop_assert!(*v <= pv.max(*t) && *v >= pv.min(*t));
                    }
                }
                // Deterministic.
                prop_assert_eq!(&out, &allocate(&now, &prev, &p));
            }

            #[test]
            fn order_of_inputs_does_not_matter(
                now in arb_inputs().prop_shuffle(),
                before in arb_inputs(),
                p in arb_params(),
                rot in 0usize..16,
            ) {
                let prev = allocate(&before, &[], &p);
                let a = allocate(&now, &prev, &p);
                let mut sorted = now.clone();
                sorted.sort_by_key(|i| (i.key, i.stake, i.verified_cu));
                let mut prev_rot = prev.clone();
                if !prev_rot.is_empty() {
                    let r = rot % prev_rot.len();
                    prev_rot.rotate_left(r);
                }
                prop_assert_eq!(a, allocate(&sorted, &prev_rot, &p));
            }

            #[test]
            fn more_own_stake_or_cu_never_lowers_own_target(
                now in arb_inputs(),
                p in arb_params(),
                who in 0usize..14,
                more_stake in 0u128..1_000_000,
                more_cu in 0u128..1_000_000,
            ) {
                prop_assume!(!now.is_empty());
                let i = who % now.len();
                let key = now[i].key;
                let base = allocate(&now, &[], &p);
                let mut richer = now.clone();
                richer[i].stake += more_stake;
                richer[i].verified_cu += more_cu;
                let after = allocate(&richer, &[], &p);
                let own = |v: &[(u8, u64)]| v.iter().find(|(k, _)| *k == key).map_or(0, |(_, p)| *p);
                prop_assert!(own(&after) >= own(&base), "{} -> {}", own(&base), own(&after));
            }
        }
    }
}
