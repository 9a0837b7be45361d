//! Executing a statelessly checked, signature-verified tx against state.
//!
//! Order: timeout, fee floor, nonce, fee payment (these "ante" steps change nothing when they fail), then the
//! messages in a nested overlay. A failing message reverts every message of the tx, but the fee stays paid
//! and the nonce consumed, so a block cannot be filled with failing txs for free. CheckTx runs the whole tx
//! and admits it only if everything succeeds, so such a tx never reaches an honest proposer's block.

pub use crate::module::BlockCtx;
pub use crate::modules::end_block;

use crate::{
    amount::mul_div_floor,
    error::TxError,
    event::Event,
    modules::ante::{self as bank, fee_collector, treasury},
    store::{Overlay, StateWrite},
    tx::Tx,
};

/// What a tx did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutcome {
    pub gas_used: u64,
    pub events: Vec<Event>,
}

/// A tx's failure: the error and the gas it was charged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxFailure {
    pub error: TxError,
    pub gas_used: u64,
}

/// Runs the ante steps, then the messages. On `Err` with `gas_used == 0`, state is untouched; on a message
/// failure the fee and nonce changes remain in `state`.
pub fn execute_tx<S: StateWrite + ?Sized>(
    state: &mut S,
    tx: &Tx,
    ctx: BlockCtx<'_>,
) -> Result<TxOutcome, TxFailure> {
    let ante_fail = |error| TxFailure { error, gas_used: 0 };
    if tx.body.timeout_height != 0 && ctx.height > tx.body.timeout_height {
        return Err(ante_fail(TxError::TimedOut {
            timeout_height: tx.body.timeout_height,
            height: ctx.height,
        }));
    }
    let (gas, min_fee) = tx.min_fee(ctx.params).map_err(ante_fail)?;
    if tx.auth.fee < min_fee {
        return Err(ante_fail(TxError::InsufficientFee {
            got: tx.auth.fee,
            min: min_fee,
            gas,
        }));
    }
    let signer = tx.auth.signer;
    let mut acct = bank::account(state, &signer).map_err(|e| ante_fail(e.into()))?;
    if tx.auth.nonce < acct.nonce {
        return Err(ante_fail(TxError::NonceReplayed {
            got: tx.auth.nonce,
            want: acct.nonce,
        }));
    }
    if tx.auth.nonce > acct.nonce {
        return Err(ante_fail(TxError::NonceGap {
            got: tx.auth.nonce,
            want: acct.nonce,
        }));
    }
    acct.balance = acct
        .balance
        .checked_sub(tx.auth.fee)
        .ok_or(TxError::InsufficientFunds {
            balance: acct.balance,
            needed: tx.auth.fee,
        })
        .map_err(ante_fail)?;
    acct.nonce = acct
        .nonce
        .checked_add(1)
        .ok_or(TxError::Overflow("nonce"))
        .map_err(ante_fail)?;
    // The treasury's share (rounded down), then the rest to the fee collector.
    let to_treasury = mul_div_floor(tx.auth.fee, ctx.params.gov.treasury_fee_bps as u128, 10_000)
        .ok_or(TxError::Overflow("treasury share"))
        .map_err(ante_fail)?;
    // Never short: the treasury's share is at most the fee (bps <= 10 000, or mul_div_floor refuses).
    let to_collector = tx
        .auth
        .fee
        .checked_sub(to_treasury)
        .ok_or(TxError::Overflow("treasury share"))
        .map_err(ante_fail)?;
    bank::put_account(state, &signer, &acct);
    // Fees can never overflow a module account: its balance is part of a supply that fits in u128.
    for (pool, amount) in [(fee_collector(), to_collector), (treasury(), to_treasury)] {
        if amount == 0 {
            continue;
        }
        let mut pot = bank::account(state, &pool).map_err(|e| ante_fail(e.into()))?;
        pot.balance = pot
            .balance
            .checked_add(amount)
            .ok_or(TxError::Overflow("fee pool"))
            .map_err(ante_fail)?;
        bank::put_account(state, &pool, &pot);
    }

    let mut events = vec![Event::new("tx")
        .attr("signer", signer)
        .attr("nonce", tx.auth.nonce)
        .attr("fee", tx.auth.fee)];
    let msg_writes = {
        let mut scratch = Overlay::new(&*state);
        for m in &tx.body.msgs {
            m.execute(&mut scratch, ctx, &mut events)
                .map_err(|error| TxFailure {
                    error,
                    gas_used: gas,
                })?;
        }
        scratch.into_writes()
    };
    for (k, v) in msg_writes {
        match v {
            Some(v) => state.put(k, v),
            None => state.delete(k),
        }
    }
    Ok(TxOutcome {
        gas_used: gas,
        events,
    })
}
