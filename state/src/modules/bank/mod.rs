//! bank: accounts (balance and nonce), transfers and the total supply.

pub mod event;
pub mod msg;
pub mod state_key;

use crate::{
    address::Address,
    error::{StoreError, TxError},
    store::{StateRead, StateWrite},
};

/// The module account that collects fees until they are distributed.
pub fn fee_collector() -> Address {
    // Every tx pays into it: hash the name once.
    static ADDR: std::sync::LazyLock<Address> =
        std::sync::LazyLock::new(|| Address::module("fee_collector"));
    *ADDR
}

/// An account record. Stored as 24 bytes: balance (u128 LE) ‖ nonce (u64 LE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Account {
    pub balance: u128,
    /// The nonce the account's next tx must carry.
    pub nonce: u64,
}

impl Account {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        out.extend_from_slice(&self.balance.to_le_bytes());
        out.extend_from_slice(&self.nonce.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Account, StoreError> {
        let corrupt = || StoreError::Corrupt {
            key: "bank/account".into(),
            reason: format!("{} bytes, expected 24", bytes.len()),
        };
        let balance: [u8; 16] = bytes
            .get(..16)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        let nonce: [u8; 8] = bytes
            .get(16..24)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        if bytes.len() != 24 {
            return Err(corrupt());
        }
        Ok(Account {
            balance: u128::from_le_bytes(balance),
            nonce: u64::from_le_bytes(nonce),
        })
    }
}

/// An account, or the empty account if it was never written.
pub fn account<S: StateRead + ?Sized>(s: &S, a: &Address) -> Result<Account, StoreError> {
    match s.get(&state_key::account(a))? {
        None => Ok(Account::default()),
        Some(b) => Account::decode(&b),
    }
}

pub fn put_account<S: StateWrite + ?Sized>(s: &mut S, a: &Address, acct: &Account) {
    s.put(state_key::account(a), acct.encode());
}

/// Total supply of the native token.
pub fn supply<S: StateRead + ?Sized>(s: &S) -> Result<u128, StoreError> {
    match s.get(state_key::SUPPLY)? {
        None => Ok(0),
        Some(b) => b
            .as_slice()
            .try_into()
            .map(u128::from_le_bytes)
            .map_err(|_| StoreError::Corrupt {
                key: "bank/supply".into(),
                reason: "length".into(),
            }),
    }
}

pub fn put_supply<S: StateWrite + ?Sized>(s: &mut S, v: u128) {
    s.put(state_key::SUPPLY.to_vec(), v.to_le_bytes().to_vec());
}

/// Moves `amount` between accounts with checked arithmetic.
pub fn transfer<S: StateWrite + ?Sized>(
    s: &mut S,
    from: &Address,
    to: &Address,
    amount: u128,
) -> Result<(), TxError> {
    let mut src = account(s, from)?;
    src.balance = src
        .balance
        .checked_sub(amount)
        .ok_or(TxError::InsufficientFunds {
            balance: src.balance,
            needed: amount,
        })?;
    put_account(s, from, &src);
    let mut dst = account(s, to)?;
    dst.balance = dst
        .balance
        .checked_add(amount)
        .ok_or(TxError::Overflow("recipient balance"))?;
    put_account(s, to, &dst);
    Ok(())
}
