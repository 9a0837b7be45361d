//! staking (the part governance needs): validators and delegators bond tokens; undelegated tokens wait an
//! unbonding period (longer than a voting period) before they return. Bonded and unbonding tokens sit in
//! the `bonded_pool` module account, so `pool balance == sum of delegations + sum of unbonding entries`.
//!
//! Not yet here: consensus validator-set updates from stake, jailing and slashing (the consensus set is
//! still genesis's, see `crate::validators`).

pub mod error;
pub mod event;
pub mod msg;
pub mod params;
pub mod power;
pub mod query;
pub mod state_key;

use borsh::{BorshDeserialize, BorshSerialize};
use lode_proto::tx::v1::msg::Sum;

pub use error::StakingError;
pub use msg::StakingMsg;

use crate::{
    address::Address,
    codec::{address_at, decode, encode, get_u128, put_u128, u64_at},
    error::{CodeRange, ModuleError, StoreError, TxError},
    event::Event,
    module::{BlockCtx, Decoded, DelegationChange, Invariant, Module, Side},
    modules::{self, bank},
    params::Params,
    query::QueryError,
    store::{StateRead, StateWrite, Store},
};

/// The staking module.
#[derive(Debug)]
pub struct Staking;

impl Module for Staking {
    const NAME: &'static str = "staking";
    const CODES: CodeRange = error::CODES;
    type Msg = StakingMsg;

    fn decode(sum: Sum) -> Decoded<StakingMsg> {
        match sum {
            Sum::CreateValidator(m) => Decoded::Mine(m.try_into()),
            Sum::Delegate(m) => Decoded::Mine(m.try_into()),
            Sum::Undelegate(m) => Decoded::Mine(m.try_into()),
            Sum::LinkProvider(m) => Decoded::Mine(m.try_into()),
            Sum::UnlinkProvider(m) => Decoded::Mine(m.try_into()),
            other => Decoded::NotMine(other),
        }
    }

    fn encode(m: &StakingMsg) -> Sum {
        m.into()
    }

    fn sender(m: &StakingMsg) -> &Address {
        m.sender()
    }

    fn gas(m: &StakingMsg, p: &Params) -> Option<u64> {
        Some(m.gas(p))
    }

    fn execute<S: StateWrite + ?Sized>(
        s: &mut S,
        m: &StakingMsg,
        ctx: BlockCtx<'_>,
        events: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        msg::execute(s, m, ctx, events)
    }

    /// Pays out the unbonding entries that complete at this height, then closes the epoch after its last
    /// block (proof of useful compute: [`power::end_block`]).
    fn end_block<S: StateWrite + ?Sized>(
        s: &mut S,
        ctx: BlockCtx<'_>,
        events: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        end_block(s, ctx.height, events)?;
        power::end_block(s, ctx, events)
    }

    fn query(store: &Store, path: &str, data: &[u8]) -> Option<Result<Vec<u8>, QueryError>> {
        query::handle(store, path, data)
    }

    fn invariants() -> Vec<Invariant> {
        vec![
            Invariant {
                name: "staking/bonded-pool",
                sides: pool_sides,
            },
            Invariant {
                name: "staking/total-bonded",
                sides: total_bonded_sides,
            },
            Invariant {
                name: "staking/unbonding-index",
                sides: unbonding_index_sides,
            },
        ]
    }

    fn error_examples() -> Vec<TxError> {
        StakingError::examples()
            .into_iter()
            .map(TxError::from)
            .collect()
    }
}

/// `staking/bonded-pool`: the pool account's balance against every bond and unbonding entry.
fn pool_sides(s: &dyn StateRead) -> Result<(Side, Side), StoreError> {
    let bonded = crate::codec::sum_u128_under(s, state_key::DELEGATION_PREFIX)?;
    let unbonding = crate::codec::sum_u128_under(s, state_key::UNBONDING_PREFIX)?;
    Ok((
        Side {
            what: "balance of the bonded_pool account",
            value: bank::account(s, &bonded_pool())?.balance,
        },
        Side {
            what: "sum of delegations + sum of unbonding entries",
            value: bonded
                .checked_add(unbonding)
                .ok_or_else(|| StoreError::Corrupt {
                    key: "staking".into(),
                    reason: "bonds overflow u128".into(),
                })?,
        },
    ))
}

/// `staking/total-bonded`: the recorded total against the sum of delegations.
fn total_bonded_sides(s: &dyn StateRead) -> Result<(Side, Side), StoreError> {
    Ok((
        Side {
            what: "staking/total_bonded",
            value: total_bonded(s)?,
        },
        Side {
            what: "sum of delegations",
            value: crate::codec::sum_u128_under(s, state_key::DELEGATION_PREFIX)?,
        },
    ))
}

/// `staking/unbonding-index`: the by-delegator index holds exactly the unbonding entries. Counted as
/// `2 × (entries whose index twin holds the same amount)` against `entries + index entries`, which are
/// equal only when every entry has its twin and the index holds nothing else.
fn unbonding_index_sides(s: &dyn StateRead) -> Result<(Side, Side), StoreError> {
    let entries = unbonding_entries(s)?;
    let index = s.scan_prefix(state_key::UNBONDING_BY_DELEGATOR_PREFIX)?;
    let mut matched: u128 = 0;
    for (h, d, v, a) in &entries {
        if s.get(&state_key::unbonding_of(d, *h, v))? == Some(a.to_le_bytes().to_vec()) {
            matched = matched.saturating_add(1);
        }
    }
    Ok((
        Side {
            what: "2 x unbonding entries with their by-delegator index entry",
            value: matched.saturating_mul(2),
        },
        Side {
            what: "unbonding entries + by-delegator index entries",
            value: (entries.len() as u128).saturating_add(index.len() as u128),
        },
    ))
}

/// The module account holding every bonded and unbonding token.
pub fn bonded_pool() -> Address {
    Address::module("bonded_pool")
}

/// A validator. Its operator address is its id.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Validator {
    pub consensus_key: [u8; 32],
    pub moniker: String,
    /// Everything bonded to it, self-bond included.
    pub tokens: u128,
}

pub fn validator<S: StateRead + ?Sized>(
    s: &S,
    op: &Address,
) -> Result<Option<Validator>, StoreError> {
    let key = state_key::validator(op);
    s.get(&key)?.map(|b| decode(&key, &b)).transpose()
}

pub fn put_validator<S: StateWrite + ?Sized>(s: &mut S, op: &Address, v: &Validator) {
    s.put(state_key::validator(op), encode(v));
}

pub fn delegation<S: StateRead + ?Sized>(
    s: &S,
    del: &Address,
    val: &Address,
) -> Result<u128, StoreError> {
    get_u128(s, &state_key::delegation(del, val))
}

/// Every (validator, amount) a delegator has bonded, by validator address.
pub fn delegations_of<S: StateRead + ?Sized>(
    s: &S,
    del: &Address,
) -> Result<Vec<(Address, u128)>, StoreError> {
    let prefix = state_key::delegations_of(del);
    s.scan_prefix(&prefix)?
        .into_iter()
        .map(|(k, v)| {
            let val = address_at(&k, prefix.len())?;
            let amt = v
                .as_slice()
                .try_into()
                .map(u128::from_le_bytes)
                .map_err(|_| StoreError::Corrupt {
                    key: "staking/delegation".into(),
                    reason: "not 16 bytes".into(),
                })?;
            Ok((val, amt))
        })
        .collect()
}

pub fn total_bonded<S: StateRead + ?Sized>(s: &S) -> Result<u128, StoreError> {
    get_u128(s, state_key::TOTAL_BONDED)
}

/// Bonds `amount` of `del`'s tokens to `val`.
pub fn bond<S: StateWrite + ?Sized>(
    s: &mut S,
    del: &Address,
    val: &Address,
    amount: u128,
) -> Result<(), TxError> {
    let mut v =
        validator(s, val)?.ok_or_else(|| StakingError::UnknownValidator(val.to_string()))?;
    bank::transfer(s, del, &bonded_pool(), amount)?;
    let tokens_before = v.tokens;
    v.tokens = v
        .tokens
        .checked_add(amount)
        .ok_or(TxError::Overflow("validator tokens"))?;
    put_validator(s, val, &v);
    let before = delegation(s, del, val)?;
    let d = before
        .checked_add(amount)
        .ok_or(TxError::Overflow("delegation"))?;
    put_u128(s, state_key::delegation(del, val), d);
    let t = total_bonded(s)?
        .checked_add(amount)
        .ok_or(TxError::Overflow("total bonded"))?;
    put_u128(s, state_key::TOTAL_BONDED.to_vec(), t);
    modules::delegation_changed(
        s,
        &DelegationChange {
            delegator: *del,
            validator: *val,
            before,
            after: d,
            tokens_before,
            tokens_after: v.tokens,
        },
    )
}

/// Unbonds `amount`; the tokens stay in the pool until `completion_height`. Returns that height.
pub fn unbond<S: StateWrite + ?Sized>(
    s: &mut S,
    del: &Address,
    val: &Address,
    amount: u128,
    height: u64,
    unbonding_blocks: u64,
) -> Result<u64, TxError> {
    let mut v =
        validator(s, val)?.ok_or_else(|| StakingError::UnknownValidator(val.to_string()))?;
    let bonded = delegation(s, del, val)?;
    let rest = bonded
        .checked_sub(amount)
        .ok_or(StakingError::InsufficientBond {
            bonded,
            needed: amount,
        })?;
    put_u128(s, state_key::delegation(del, val), rest);
    let tokens_before = v.tokens;
    v.tokens = v
        .tokens
        .checked_sub(amount)
        .ok_or_else(|| TxError::Internal("validator tokens below a delegation".into()))?;
    put_validator(s, val, &v);
    let t = total_bonded(s)?
        .checked_sub(amount)
        .ok_or_else(|| TxError::Internal("total bonded below a delegation".into()))?;
    put_u128(s, state_key::TOTAL_BONDED.to_vec(), t);
    let done = height
        .checked_add(unbonding_blocks)
        .ok_or(TxError::Overflow("completion height"))?;
    let key = state_key::unbonding(done, del, val);
    let queued = get_u128(s, &key)?
        .checked_add(amount)
        .ok_or(TxError::Overflow("unbonding"))?;
    put_u128(s, key, queued);
    put_u128(s, state_key::unbonding_of(del, done, val), queued);
    modules::delegation_changed(
        s,
        &DelegationChange {
            delegator: *del,
            validator: *val,
            before: bonded,
            after: rest,
            tokens_before,
            tokens_after: v.tokens,
        },
    )?;
    Ok(done)
}

/// End of block: pays out every unbonding entry that completes at `height`.
pub fn end_block<S: StateWrite + ?Sized>(
    s: &mut S,
    height: u64,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let prefix = state_key::unbonding_at(height);
    for (k, _) in s.scan_prefix(&prefix)? {
        let del = address_at(&k, prefix.len())?;
        let val = address_at(&k, prefix.len().saturating_add(20))?;
        let amount = get_u128(s, &k)?;
        bank::transfer(s, &bonded_pool(), &del, amount)?;
        s.delete(k);
        s.delete(state_key::unbonding_of(&del, height, &val));
        events.push(event::unbonding_complete(&del, &val, amount));
    }
    Ok(())
}

/// One delegator's unbonding entries: (completion height, delegator, validator, amount), by completion
/// height then validator. Reads only that delegator's entries (the by-delegator index).
pub fn unbonding_entries_of<S: StateRead + ?Sized>(
    s: &S,
    del: &Address,
) -> Result<Vec<(u64, Address, Address, u128)>, StoreError> {
    let prefix = state_key::unbondings_of(del);
    let p = prefix.len();
    s.scan_prefix(&prefix)?
        .into_iter()
        .map(|(k, v)| {
            Ok((
                u64_at(&k, p)?,
                *del,
                address_at(&k, p.saturating_add(8))?,
                crate::codec::u128_value(&k, &v)?,
            ))
        })
        .collect()
}

/// Every unbonding entry: (completion height, delegator, validator, amount). A scan of all of them: for
/// invariants and tests, not for queries.
pub fn unbonding_entries<S: StateRead + ?Sized>(
    s: &S,
) -> Result<Vec<(u64, Address, Address, u128)>, StoreError> {
    let p = state_key::UNBONDING_PREFIX.len();
    s.scan_prefix(state_key::UNBONDING_PREFIX)?
        .into_iter()
        .map(|(k, v)| {
            let h = k
                .get(p..)
                .and_then(<[u8]>::first_chunk::<8>)
                .map(|b| u64::from_be_bytes(*b))
                .ok_or_else(|| StoreError::Corrupt {
                    key: "staking/unbonding".into(),
                    reason: "short key".into(),
                })?;
            let amt = v
                .as_slice()
                .try_into()
                .map(u128::from_le_bytes)
                .map_err(|_| StoreError::Corrupt {
                    key: "staking/unbonding".into(),
                    reason: "not 16 bytes".into(),
                })?;
            let (del, val) = (p.saturating_add(8), p.saturating_add(28));
            Ok((h, address_at(&k, del)?, address_at(&k, val)?, amt))
        })
        .collect()
}
