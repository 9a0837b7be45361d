//! bank's message handlers.

use super::{event, transfer};
use crate::{error::TxError, event::Event, store::StateWrite, tx::Msg};

/// Executes one bank message. The sender was checked against the signer statelessly.
pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    msg: &Msg,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    match msg {
        Msg::Send { from, to, amount } => {
            transfer(s, from, to, *amount)?;
            events.push(event::transfer(from, to, *amount));
        }
        Msg::MultiSend { from, outputs } => {
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
        _ => return Err(TxError::Internal("not a bank message".into())),
    }
    Ok(())
}
