//! staking's messages: domain types, wire conversion and handlers.

use lode_proto::staking::v1 as pb;

use super::event;
use crate::{
    address::{check_public_key, parse_address, Address},
    amount::parse_positive,
    error::TxError,
    event::Event,
    module::BlockCtx,
    store::StateWrite,
};

/// A staking message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StakingMsg {
    CreateValidator {
        operator: Address,
        consensus_key: [u8; 32],
        moniker: String,
        self_bond: u128,
    },
    Delegate {
        delegator: Address,
        validator: Address,
        amount: u128,
    },
    Undelegate {
        delegator: Address,
        validator: Address,
        amount: u128,
    },
    /// Lets the signer's jailed validator back into the set (see `liveness`).
    Unjail { operator: Address },
}

impl StakingMsg {
    pub fn sender(&self) -> &Address {
        match self {
            StakingMsg::CreateValidator { operator, .. } | StakingMsg::Unjail { operator } => {
                operator
            }
            StakingMsg::Delegate { delegator, .. } | StakingMsg::Undelegate { delegator, .. } => {
                delegator
            }
        }
    }

    pub fn gas(&self, p: &crate::params::Params) -> u64 {
        match self {
            StakingMsg::CreateValidator { .. } => p.staking.gas_create_validator,
            StakingMsg::Delegate { .. } => p.staking.gas_delegate,
            StakingMsg::Undelegate { .. } => p.staking.gas_undelegate,
            StakingMsg::Unjail { .. } => p.staking.gas_unjail,
        }
    }
}

impl TryFrom<pb::MsgCreateValidator> for StakingMsg {
    type Error = TxError;
    fn try_from(m: pb::MsgCreateValidator) -> Result<Self, TxError> {
        let consensus_key: [u8; 32] = m
            .consensus_key
            .as_slice()
            .try_into()
            .map_err(|_| TxError::InvalidPublicKey("consensus key must be 32 bytes"))?;
        check_public_key(&consensus_key)?;
        Ok(StakingMsg::CreateValidator {
            operator: parse_address(&m.operator)?,
            consensus_key,
            moniker: m.moniker,
            self_bond: parse_positive(&m.self_bond)?,
        })
    }
}

impl TryFrom<pb::MsgDelegate> for StakingMsg {
    type Error = TxError;
    fn try_from(m: pb::MsgDelegate) -> Result<Self, TxError> {
        Ok(StakingMsg::Delegate {
            delegator: parse_address(&m.delegator)?,
            validator: parse_address(&m.validator)?,
            amount: parse_positive(&m.amount)?,
        })
    }
}

impl TryFrom<pb::MsgUndelegate> for StakingMsg {
    type Error = TxError;
    fn try_from(m: pb::MsgUndelegate) -> Result<Self, TxError> {
        Ok(StakingMsg::Undelegate {
            delegator: parse_address(&m.delegator)?,
            validator: parse_address(&m.validator)?,
            amount: parse_positive(&m.amount)?,
        })
    }
}

impl TryFrom<pb::MsgUnjail> for StakingMsg {
    type Error = TxError;
    fn try_from(m: pb::MsgUnjail) -> Result<Self, TxError> {
        Ok(StakingMsg::Unjail {
            operator: parse_address(&m.operator)?,
        })
    }
}

impl From<&StakingMsg> for lode_proto::tx::v1::msg::Sum {
    fn from(m: &StakingMsg) -> Self {
        use lode_proto::tx::v1::msg::Sum;
        match m {
            StakingMsg::CreateValidator {
                operator,
                consensus_key,
                moniker,
                self_bond,
            } => Sum::CreateValidator(pb::MsgCreateValidator {
                operator: operator.to_string(),
                consensus_key: consensus_key.to_vec(),
                moniker: moniker.clone(),
                self_bond: self_bond.to_string(),
            }),
            StakingMsg::Delegate {
                delegator,
                validator,
                amount,
            } => Sum::Delegate(pb::MsgDelegate {
                delegator: delegator.to_string(),
                validator: validator.to_string(),
                amount: amount.to_string(),
            }),
            StakingMsg::Undelegate {
                delegator,
                validator,
                amount,
            } => Sum::Undelegate(pb::MsgUndelegate {
                delegator: delegator.to_string(),
                validator: validator.to_string(),
                amount: amount.to_string(),
            }),
            StakingMsg::Unjail { operator } => Sum::Unjail(pb::MsgUnjail {
                operator: operator.to_string(),
            }),
        }
    }
}

/// Executes one staking message.
pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    msg: &StakingMsg,
    ctx: BlockCtx<'_>,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let p = &ctx.params.staking;
    match msg {
        StakingMsg::CreateValidator {
            operator,
            consensus_key,
            moniker,
            self_bond,
        } => {
            if moniker.is_empty() || moniker.len() as u64 > p.max_moniker_bytes {
                return Err(TxError::InvalidField {
                    field: "moniker",
                    reason: format!("must be 1..={} bytes", p.max_moniker_bytes),
                });
            }
            if *self_bond < p.min_self_bond {
                return Err(TxError::InvalidAmount {
                    amount: self_bond.to_string(),
                    reason: "self-bond is below staking.min_self_bond",
                });
            }
            super::create(s, operator, consensus_key, moniker, *self_bond)?;
            events.push(event::create_validator(operator, moniker, *self_bond));
        }
        StakingMsg::Delegate {
            delegator,
            validator,
            amount,
        } => {
            super::bond(s, delegator, validator, *amount)?;
            events.push(event::delegate(delegator, validator, *amount));
        }
        StakingMsg::Undelegate {
            delegator,
            validator,
            amount,
        } => {
            let done = super::unbond(
                s,
                delegator,
                validator,
                *amount,
                ctx.height,
                p.unbonding_blocks,
            )?;
            events.push(event::undelegate(delegator, validator, *amount, done));
        }
        StakingMsg::Unjail { operator } => {
            super::liveness::unjail(s, operator, ctx.height)?;
            events.push(event::unjail(operator));
        }
    }
    Ok(())
}
