//! Matching at the end of a block (see the module docs for the order and the eligibility rules).

use super::{
    assign, open_totals, provider, put_open_totals, put_provider, state_key, Assignee, Clearing,
    OpenEntry, Provider,
};
use crate::{
    address::Address,
    codec::{decode, encode},
    error::{StoreError, TxError},
    event::Event,
    module::BlockCtx,
    store::StateWrite,
};

/// A provider with free devices, as matching sees it.
struct Candidate {
    addr: Address,
    /// `addr` rendered once, for the events and history of its matches.
    addr_str: String,
    record: Provider,
    free: u64,
    bond_ok: bool,
}

fn corrupt(reason: &str) -> StoreError {
    StoreError::Corrupt {
        key: "market/open".into(),
        reason: reason.into(),
    }
}

/// Runs one round of matching if anything changed since the last one.
pub(super) fn run<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    if s.get(state_key::MATCH_DIRTY)?.is_none() {
        return Ok(());
    }
    s.delete(state_key::MATCH_DIRTY.to_vec());
    let open = s.scan_prefix(state_key::OPEN_PREFIX)?;
    if open.is_empty() {
        return Ok(());
    }
    let avail = s.scan_prefix(state_key::AVAIL_PREFIX)?;
    let mut cands = Vec::with_capacity(avail.len());
    for (key, _) in &avail {
        let at = key.len().saturating_sub(20);
        let addr = crate::codec::address_at(key, at)?;
        let Some(record) = provider(s, &addr)? else {
            return Err(TxError::from(corrupt("avail entry without a provider")));
        };
        let free = record
            .device_count()
            .saturating_sub(u64::from(record.jobs_in_flight));
        let bond_ok = record.bond >= record.min_bond(&ctx.params.market);
        if free > 0 && bond_ok {
            cands.push(Candidate {
                addr,
                addr_str: addr.to_string(),
                record,
                free,
                bond_ok,
            });
        }
    }
    if cands.is_empty() {
        return Ok(());
    }
    let mut first_free = 0usize;
    let mut prices = Vec::new();
    let mut touched = vec![false; cands.len()];
    let totals_before = open_totals(s)?;
    let mut totals = totals_before;
    let plen = state_key::OPEN_PREFIX.len();
    let cap = usize::try_from(ctx.params.market.max_matches_per_block).unwrap_or(usize::MAX);
    let mut capped = false;
    for (key, value) in &open {
        if prices.len() >= cap {
            capped = true;
            break;
        }
        // prefix ‖ (u128::MAX − max price) ‖ posted height (8 bytes) ‖ job id (see `state_key::open`).
        let (price_inv, id) = key
            .get(plen..)
            .and_then(<[u8]>::split_first_chunk::<16>)
            .and_then(|(price_inv, rest)| Some((price_inv, rest.get(8..)?.first_chunk::<32>()?)))
            .ok_or_else(|| corrupt("short key"))?;
        // The complement of the complement.
        let max_price = !u128::from_be_bytes(*price_inv);
        let id = *id;
        let entry: OpenEntry = decode(key, value)?;
        first_free = cands
            .iter()
            .enumerate()
            .skip(first_free)
            .find(|(_, c)| c.free != 0)
            .map_or(cands.len(), |(i, _)| i);
        let mut chosen = None;
        for (i, c) in cands.iter().enumerate().skip(first_free) {
            if c.record.ask_per_cu > max_price {
                break;
            }
            if c.free == 0
                || !c.bond_ok
                || c.record.max_job_cu < entry.cu
                || c.record.reputation < entry.min_reputation
                || entry.excluded.contains(&c.addr)
            {
                continue;
            }
            chosen = Some(i);
            break;
        }
        let Some(i) = chosen else {
            continue;
        };
        let Some(c) = cands.get_mut(i) else {
            continue;
        };
        // Chosen only with a free device.
        let Some(free) = c.free.checked_sub(1) else {
            continue;
        };
        c.free = free;
        c.record.jobs_in_flight = c.record.jobs_in_flight.saturating_add(1);
        if let Some(t) = touched.get_mut(i) {
            *t = true;
        }
        prices.push(c.record.ask_per_cu);
        let who = Assignee {
            addr: &c.addr,
            addr_str: &c.addr_str,
            price: c.record.ask_per_cu,
        };
        assign(s, ctx, &id, &who, &mut totals, events)?;
    }
    if totals != totals_before {
        put_open_totals(s, totals);
    }
    for (c, _) in cands.iter().zip(&touched).filter(|(_, t)| **t) {
        put_provider(s, &c.addr, &c.record)?;
    }
    if capped {
        // Open jobs were left for the next block: match again there.
        s.put(state_key::MATCH_DIRTY.to_vec(), Vec::new());
    } else {
        // Putting a provider that still has free devices marks the market dirty, but nothing it could
        // match is left unmatched now; clear the flag so an idle market costs nothing next block.
        s.delete(state_key::MATCH_DIRTY.to_vec());
    }
    if !prices.is_empty() {
        prices.sort_unstable();
        let clearing = Clearing {
            height: ctx.height,
            matches: prices.len() as u64,
            min: prices.first().copied().unwrap_or(0),
            median: prices.get(prices.len() / 2).copied().unwrap_or(0),
            max: prices.last().copied().unwrap_or(0),
        };
        events.push(
            Event::new("market_cleared")
                .attr("matches", clearing.matches.to_string())
                .attr("min_price_per_cu", clearing.min.to_string())
                .attr("median_price_per_cu", clearing.median.to_string())
                .attr("max_price_per_cu", clearing.max.to_string()),
        );
        s.put(state_key::CLEARING.to_vec(), encode(&clearing));
    }
    Ok(())
}
