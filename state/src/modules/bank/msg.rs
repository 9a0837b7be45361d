//! bank's messages: domain types, wire conversion and handlers.

use lode_proto::{bank::v1 as pb, tx::v1::msg::Sum};

use super::{event, transfer};
use crate::{
    address::{parse_address, Address},
    amount::parse_positive,
    error::TxError,
    event::Event,
    module::Decoded,
    params::Params,
    store::StateWrite,
};

/// A bank message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankMsg {
    Send {
        from: Address,
        to: Address,
        amount: u128,
    },
    MultiSend {
        from: Address,
        outputs: Vec<(Address, u128)>,
    },
}

impl BankMsg {
    pub fn sender(&self) -> &Address {
        match self {
            BankMsg::Send { from, .. } | BankMsg::MultiSend { from, .. } => from,
        }
    }

    pub fn gas(&self, p: &Params) -> Option<u64> {
        match self {
            BankMsg::Send { .. } => Some(p.gas_per_send),
            BankMsg::MultiSend { outputs, .. } => p
                .gas_per_multi_send_output
                .checked_mul(outputs.len() as u64)?
                .checked_add(p.gas_per_multi_send),
        }
    }
}

/// Converts bank's arms of the tx oneof and hands any other arm back.
pub(super) fn decode(sum: Sum) -> Decoded<BankMsg> {
    match sum {
        Sum::Send(s) => Decoded::Mine(send(s)),
        Sum::MultiSend(s) => Decoded::Mine(multi_send(s)),
        other => Decoded::NotMine(other),
    }
}

fn send(s: pb::MsgSend) -> Result<BankMsg, TxError> {
    Ok(BankMsg::Send {
        from: parse_address(&s.from)?,
        to: parse_address(&s.to)?,
        amount: parse_positive(&s.amount)?,
    })
}

fn multi_send(s: pb::MsgMultiSend) -> Result<BankMsg, TxError> {
    if s.outputs.is_empty() {
        return Err(TxError::EmptyMsgs);
    }
    let outputs = s
        .outputs
        .iter()
        .map(|o| Ok((parse_address(&o.to)?, parse_positive(&o.amount)?)))
        .collect::<Result<Vec<_>, TxError>>()?;
    Ok(BankMsg::MultiSend {
        from: parse_address(&s.from)?,
        outputs,
    })
}

impl From<&BankMsg> for Sum {
    fn from(m: &BankMsg) -> Self {
        match m {
            BankMsg::Send { from, to, amount } => Sum::Send(pb::MsgSend {
                from: from.to_string(),
                to: to.to_string(),
                amount: amount.to_string(),
            }),
            BankMsg::MultiSend { from, outputs } => Sum::MultiSend(pb::MsgMultiSend {
                from: from.to_string(),
                outputs: outputs
                    .iter()
                    .map(|(to, a)| pb::Output {
                        to: to.to_string(),
                        amount: a.to_string(),
                    })
                    .collect(),
            }),
        }
    }
}

/// Executes one bank message. The sender was checked against the signer statelessly.
pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    msg: &BankMsg,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    match msg {
        BankMsg::Send { from, to, amount } => {
            transfer(s, from, to, *amount)?;
            events.push(event::transfer(from, to, *amount));
        }
        BankMsg::MultiSend { from, outputs } => {
            // Sum first so an overflowing request fails before anything moves.
            outputs
                .iter()
                .try_fold(0u128, |acc, (_, a)| acc.checked_add(*a))
                .ok_or(TxError::Overflow("sum of outputs"))?;
            for (to, amount) in outputs {
                transfer(s, from, to, *amount)?;
                events.push(event::transfer(from, to, *amount));
            }
        }
    }
    Ok(())
}
