//! staking: validators and delegators bond tokens; undelegated tokens wait an unbonding period (longer than
//! a voting period) before they return. Bonded and unbonding tokens sit in the `bonded_pool` module account,
//! so `pool balance == sum of delegations + sum of unbonding entries`.
//!
//! Stake and verified compute drive consensus: genesis validators are staking validators (self-bond from a
//! funded account), and at the end of every block [`set`] returns the difference between the target set
//! (the proof-of-useful-compute power of [`power`] over the unjailed, untombstoned validators, top
//! `max_validators`) and the stored consensus set as ABCI validator updates.
//! [`liveness`] jails and slashes validators that miss too many of the blocks they should sign, from the
//! commit signatures the block carries; `MsgUnjail` lets them back after `jail_blocks`.
//!
//! Double signing is the evidence module's (`modules::evidence`): it slashes and calls [`tombstone`].

pub mod error;
pub mod event;
pub mod liveness;
pub mod msg;
pub mod params;
pub mod power;
pub mod query;
pub mod set;
pub mod state_key;

use borsh::{BorshDeserialize, BorshSerialize};
use lode_proto::tx::v1::msg::Sum;

pub use error::StakingError;
pub use msg::StakingMsg;

use crate::{
    address::Address,
    codec::{address_at, decode, encode, get_u128, put_u128, u64_at},
    error::{CodeRange, ModuleError, StateError, StoreError, TxError},
    event::Event,
    genesis::AppState,
    module::{BlockCtx, Decoded, DelegationChange, Invariant, Module, Side},
    modules::{self, bank},
    params::Params,
    query::{QueryError, QueryRead},
    store::{StateRead, StateWrite},
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
            Sum::Unjail(m) => Decoded::Mine(m.try_into()),
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

    fn query(
        store: &dyn QueryRead,
        path: &str,
        data: &[u8],
    ) -> Option<Result<Vec<u8>, QueryError>> {
        query::handle(store, path, data)
    }

    /// Validators as genesis validators self-bonding their self-delegation (when it is at least one unit of
    /// power and `min_self_bond`), and every bond back as a balance: other delegations and unbonding entries
    /// become their delegators' liquid tokens, and the bonded pool is not exported (the new genesis bonds
    /// the self-bonds again). Balances stay in address order. Jailing and signing records start afresh; a
    /// tombstoned validator is not exported (its self-bond is its operator's balance). The epoch, its
    /// baseline powers, the links of exported validators and every link nonce carry over.
    fn export_genesis<S: StateRead + ?Sized>(
        s: &S,
        genesis: &mut AppState,
    ) -> Result<(), StoreError> {
        use std::collections::BTreeMap;
        let pool = bonded_pool().to_string();
        let mut balances: BTreeMap<Address, u128> = BTreeMap::new();
        for b in genesis.balances.drain(..) {
            if b.address == pool {
                continue;
            }
            if let (Ok(a), Ok(v)) = (b.address.parse(), crate::amount::parse_amount(&b.amount)) {
                balances.insert(a, v);
            }
        }
        let mut add = |a: Address, v: u128| {
            let e = balances.entry(a).or_default();
            *e = e.saturating_add(v);
        };
        let p = crate::params::load(s)?.staking;
        let min = p.min_self_bond.max(p.power_reduction);
        for (k, v) in s.scan_prefix(state_key::DELEGATION_PREFIX)? {
            let del = address_at(&k, state_key::DELEGATION_PREFIX.len())?;
            let val = address_at(&k, state_key::DELEGATION_PREFIX.len().saturating_add(20))?;
            let amount = crate::codec::u128_value(&k, &v)?;
            add(del, amount);
            if del == val && amount >= min {
                if let Some(v) = validator(s, &val)? {
                    genesis
                        .validators
                        .push(crate::genesis::GenesisStakingValidator {
                            operator: val.to_string(),
                            moniker: v.moniker,
                            consensus_key: hex::encode(v.consensus_key),
                            self_bond: amount.to_string(),
                        });
                }
            }
        }
        for (_, del, _, amount) in unbonding_entries(s)? {
            add(del, amount);
        }
        let mut kept = Vec::with_capacity(genesis.validators.len());
        for v in genesis.validators.drain(..) {
            match v.operator.parse::<Address>() {
                Ok(op) if !is_tombstoned(s, &op)? => kept.push(v),
                _ => {}
            }
        }
        genesis.validators = kept;
        genesis.compute_power = Some(power::export_genesis(s, &genesis.validators)?);
        genesis.balances = balances
            .into_iter()
            .filter(|(_, v)| *v > 0)
            .map(|(a, v)| crate::genesis::GenesisBalance {
                address: a.to_string(),
                amount: v.to_string(),
            })
            .collect();
        Ok(())
    }

    /// Creates the genesis validators and bonds their self-bonds from their operators' balances (bank's
    /// genesis runs first). `genesis` has been validated.
    fn init_genesis<S: StateWrite + ?Sized>(
        s: &mut S,
        genesis: &AppState,
    ) -> Result<(), StateError> {
        for (i, g) in genesis.validators.iter().enumerate() {
            let fail = |e: String| StateError::Genesis(format!("app_state.validators[{i}]: {e}"));
            let operator: Address = g.operator.parse().map_err(|e| fail(format!("{e}")))?;
            let consensus_key =
                crate::genesis::parse_consensus_key(&g.consensus_key).map_err(fail)?;
            let self_bond =
                crate::amount::parse_amount(&g.self_bond).map_err(|e| fail(e.to_string()))?;
            create(s, &operator, &consensus_key, &g.moniker, self_bond)
                .map_err(|e| fail(e.log()))?;
        }
        if let Some(c) = &genesis.compute_power {
            power::init_genesis(s, c)?;
        }
        Ok(())
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

/// Registers `operator` as a validator with `consensus_key` and bonds `self_bond` from its balance
/// (`MsgCreateValidator` and genesis). Refuses an operator or consensus key already in use.
pub fn create<S: StateWrite + ?Sized>(
    s: &mut S,
    operator: &Address,
    consensus_key: &[u8; 32],
    moniker: &str,
    self_bond: u128,
) -> Result<(), TxError> {
    if validator(s, operator)?.is_some() {
        return Err(StakingError::ValidatorExists(operator.to_string()).into());
    }
    let ck = state_key::consensus_key(consensus_key);
    if s.get(&ck)?.is_some() {
        return Err(StakingError::ValidatorExists(format!(
            "with consensus key {}",
            hex::encode(consensus_key)
        ))
        .into());
    }
    s.put(ck, operator.as_bytes().to_vec());
    s.put(
        state_key::cons_addr(&set::cons_addr(consensus_key)),
        operator.as_bytes().to_vec(),
    );
    put_validator(
        s,
        operator,
        &Validator {
            consensus_key: *consensus_key,
            moniker: moniker.to_string(),
            tokens: 0,
        },
    );
    bond(s, operator, operator, self_bond)
}

/// Whether `op` was tombstoned (double signing): it never holds power again.
pub fn is_tombstoned<S: StateRead + ?Sized>(s: &S, op: &Address) -> Result<bool, StoreError> {
    Ok(s.get(&state_key::tombstone(op))?.is_some())
}

/// Tombstones `op` at `height`: out of the consensus set at the end of this block, for good. Its liveness
/// window stops (it is marked jailed forever, so commits no longer count for it and `unjail` is refused
/// with 45).
pub fn tombstone<S: StateWrite + ?Sized>(
    s: &mut S,
    op: &Address,
    height: u64,
) -> Result<(), TxError> {
    s.put(state_key::tombstone(op), encode(&height));
    liveness::jail_forever(s, op, height)?;
    Ok(())
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
    liveness::index_delegation(s, del, val, d);
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
    liveness::index_delegation(s, del, val, rest);
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
