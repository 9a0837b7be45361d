//! Downtime: which validators signed the previous block, from FinalizeBlock's `decided_last_commit` (which
//! the consensus engine builds from the commit signatures carried in the block itself, so every node sees
//! the same list). Each validator's last `signed_blocks_window` blocks in the set are a bitmap; one that
//! missed more than `max_missed_bps` of its window is jailed: it leaves the set at the end of the block,
//! `slash_downtime_bps` of its tokens and of each delegation to it go to the treasury, and it may `unjail`
//! from `jailed_until` on. Jailing clears its window, so it starts afresh when it returns.
//!
//! Cost per block: O(1) reads and writes per validator of the commit (its signing info and one 64-bit word
//! of its bitmap), whatever the height.

use borsh::{BorshDeserialize, BorshSerialize};

use super::{bonded_pool, delegation, event, params::StakingParams, put_validator, state_key};
use super::{total_bonded, validator, StakingError};
use crate::{
    address::Address,
    codec::{address_at, decode, encode, put_u128},
    error::{StoreError, TxError},
    event::Event,
    module::DelegationChange,
    modules::{self, bank, gov},
    store::{StateRead, StateWrite},
};

/// A validator's liveness record. Created the first time it appears in a commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SigningInfo {
    /// The first height it was tracked at.
    pub start_height: u64,
    /// How many blocks of the set it has been tracked for since its window last started (its position in the
    /// window is `index % window`).
    pub index: u64,
    /// Blocks missed in the current window.
    pub missed: u64,
    /// The window length its bitmap was kept with (a parameter change restarts the window).
    pub window: u64,
    /// `Some(h)`: jailed; `unjail` is accepted from height `h` on.
    pub jailed_until: Option<u64>,
}

/// One validator's vote in the previous block's commit, as the application receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitVote {
    /// Consensus address (first 20 bytes of SHA-256 of the consensus key).
    pub address: [u8; 20],
    /// Whether its commit signature is in the block.
    pub signed: bool,
}

pub fn signing_info<S: StateRead + ?Sized>(
    s: &S,
    op: &Address,
) -> Result<Option<SigningInfo>, StoreError> {
    let key = state_key::signing_info(op);
    s.get(&key)?.map(|b| decode(&key, &b)).transpose()
}

fn put_signing_info<S: StateWrite + ?Sized>(s: &mut S, op: &Address, i: &SigningInfo) {
    s.put(state_key::signing_info(op), encode(i));
}

/// Whether `op` is jailed.
pub fn is_jailed<S: StateRead + ?Sized>(s: &S, op: &Address) -> Result<bool, StoreError> {
    Ok(signing_info(s, op)?.is_some_and(|i| i.jailed_until.is_some()))
}

fn word<S: StateRead + ?Sized>(s: &S, op: &Address, w: u64) -> Result<u64, StoreError> {
    let key = state_key::missed_word(op, w);
    match s.get(&key)? {
        None => Ok(0),
        Some(b) => <[u8; 8]>::try_from(b.as_slice())
            .map(u64::from_le_bytes)
            .map_err(|_| StoreError::Corrupt {
                key: "staking/missed".into(),
                reason: "not 8 bytes".into(),
            }),
    }
}

fn put_word<S: StateWrite + ?Sized>(s: &mut S, op: &Address, w: u64, v: u64) {
    let key = state_key::missed_word(op, w);
    if v == 0 {
        s.delete(key);
    } else {
        s.put(key, v.to_le_bytes().to_vec());
    }
}

/// Deletes every word of a window of `window` blocks: `window / 64` deletes, once per jailing or window
/// change (the window is bounded by `MAX_SIGNED_BLOCKS_WINDOW`).
fn clear_window<S: StateWrite + ?Sized>(s: &mut S, op: &Address, window: u64) {
    for w in 0..window.div_ceil(64) {
        s.delete(state_key::missed_word(op, w));
    }
}

/// Whether `missed` blocks of a `window` exceed `max_missed_bps`.
pub fn over_limit(missed: u64, window: u64, max_missed_bps: u32) -> bool {
    u128::from(missed).saturating_mul(10_000)
        > u128::from(window).saturating_mul(u128::from(max_missed_bps))
}

/// Records the previous block's commit: for each listed validator that is known and not jailed, one step of
/// its window; jails each that went over the limit. Addresses that name no validator are skipped (the
/// engine lists the previous height's set, which staking built).
pub fn record_commit<S: StateWrite + ?Sized>(
    s: &mut S,
    height: u64,
    votes: &[CommitVote],
    p: &StakingParams,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let window = p.signed_blocks_window.max(1);
    for v in votes {
        let Some(op) = super::set::operator_of_cons_addr(s, &v.address)? else {
            continue;
        };
        let mut info = signing_info(s, &op)?.unwrap_or(SigningInfo {
            start_height: height,
            window,
            ..SigningInfo::default()
        });
        if info.jailed_until.is_some() {
            continue;
        }
        if info.window != window {
            clear_window(s, &op, info.window);
            info.window = window;
            info.index = 0;
            info.missed = 0;
        }
        let i = info.index.checked_rem(window).unwrap_or(0);
        let (w, bit) = (
            i.div_euclid(64),
            1u64.checked_shl(i.rem_euclid(64) as u32).unwrap_or(0),
        );
        let old = word(s, &op, w)?;
        let was_missed = old & bit != 0;
        let missed = !v.signed;
        match (was_missed, missed) {
            (false, true) => {
                info.missed = info.missed.saturating_add(1);
                put_word(s, &op, w, old | bit);
            }
            (true, false) => {
                info.missed = info.missed.saturating_sub(1);
                put_word(s, &op, w, old & !bit);
            }
            _ => {}
        }
        info.index = info.index.saturating_add(1);
        if missed && over_limit(info.missed, window, p.max_missed_bps) {
            let until = height.saturating_add(p.jail_blocks);
            let slashed = slash(s, &op, p.slash_downtime_bps)?;
            clear_window(s, &op, window);
            info = SigningInfo {
                start_height: info.start_height,
                window,
                jailed_until: Some(until),
                ..SigningInfo::default()
            };
            events.push(event::jail(&op, info_missed_reason(p), slashed, until));
        }
        put_signing_info(s, &op, &info);
    }
    Ok(())
}

fn info_missed_reason(p: &StakingParams) -> String {
    format!(
        "missed more than {} bps of {} blocks",
        p.max_missed_bps, p.signed_blocks_window
    )
}

/// Slashes `bps` of every delegation to `op` (each rounded down) to the treasury; returns the total.
/// Reads only `op`'s delegations (the by-validator index). Unbonding entries are not slashed.
pub fn slash<S: StateWrite + ?Sized>(s: &mut S, op: &Address, bps: u32) -> Result<u128, TxError> {
    let Some(mut v) = validator(s, op)? else {
        return Ok(0);
    };
    let prefix = state_key::delegators_of(op);
    let mut total: u128 = 0;
    for (k, _) in s.scan_prefix(&prefix)? {
        let del = address_at(&k, prefix.len())?;
        let before = delegation(s, &del, op)?;
        let cut = before
            .saturating_mul(u128::from(bps))
            .checked_div(10_000)
            .unwrap_or(0);
        if cut == 0 {
            continue;
        }
        let after = before.saturating_sub(cut);
        put_u128(s, state_key::delegation(&del, op), after);
        index_delegation(s, &del, op, after);
        let tokens_before = v.tokens;
        v.tokens = v
            .tokens
            .checked_sub(cut)
            .ok_or_else(|| TxError::Internal("validator tokens below a delegation".into()))?;
        total = total.saturating_add(cut);
        modules::delegation_changed(
            s,
            &DelegationChange {
                delegator: del,
                validator: *op,
                before,
                after,
                tokens_before,
                tokens_after: v.tokens,
            },
        )?;
    }
    if total == 0 {
        return Ok(0);
    }
    put_validator(s, op, &v);
    let t = total_bonded(s)?
        .checked_sub(total)
        .ok_or_else(|| TxError::Internal("total bonded below a slash".into()))?;
    put_u128(s, state_key::TOTAL_BONDED.to_vec(), t);
    bank::transfer(s, &bonded_pool(), &gov::treasury(), total)?;
    Ok(total)
}

/// Jails `op` with no end (tombstoning): its window is cleared and commits no longer count for it.
pub fn jail_forever<S: StateWrite + ?Sized>(
    s: &mut S,
    op: &Address,
    height: u64,
) -> Result<(), StoreError> {
    let info = signing_info(s, op)?.unwrap_or(SigningInfo {
        start_height: height,
        ..SigningInfo::default()
    });
    clear_window(s, op, info.window);
    put_signing_info(
        s,
        op,
        &SigningInfo {
            start_height: info.start_height,
            window: info.window,
            jailed_until: Some(u64::MAX),
            ..SigningInfo::default()
        },
    );
    Ok(())
}

/// `MsgUnjail`: the operator's validator leaves jail from `jailed_until` on; never once tombstoned.
pub fn unjail<S: StateWrite + ?Sized>(s: &mut S, op: &Address, height: u64) -> Result<(), TxError> {
    if validator(s, op)?.is_none() {
        return Err(StakingError::UnknownValidator(op.to_string()).into());
    }
    if super::is_tombstoned(s, op)? {
        return Err(StakingError::Tombstoned(op.to_string()).into());
    }
    let mut info = signing_info(s, op)?.unwrap_or_default();
    let Some(until) = info.jailed_until else {
        return Err(StakingError::NotJailed(op.to_string()).into());
    };
    if height < until {
        return Err(StakingError::StillJailed { until, height }.into());
    }
    info.jailed_until = None;
    put_signing_info(s, op, &info);
    Ok(())
}

/// The delegation to `op` of `del` exists: keeps the by-validator index in step with a bond (`after > 0`)
/// or an unbond to zero.
pub fn index_delegation<S: StateWrite + ?Sized>(
    s: &mut S,
    del: &Address,
    op: &Address,
    after: u128,
) {
    let key = state_key::delegator_of(op, del);
    if after == 0 {
        s.delete(key);
    } else {
        s.put(key, Vec::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_strictly_more_than_the_share_of_the_window() {
        // 50% of 20 is 10: 10 misses are allowed, 11 are not.
        assert!(!over_limit(10, 20, 5_000));
        assert!(over_limit(11, 20, 5_000));
        // 0 bps: any miss jails; 10000 bps: never.
        assert!(over_limit(1, 100, 0));
        assert!(!over_limit(100, 100, 10_000));
    }
}
