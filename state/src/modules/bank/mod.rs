//! bank: accounts (balance and nonce), transfers and the total supply. Module accounts (fee collector,
//! treasury, bonded pool, gov deposits) are ordinary accounts whose address no key can sign for.
//!
//! Invariant `bank/supply`: the recorded supply equals the sum of every account's balance, module accounts
//! included.

pub mod error;
pub mod event;
pub mod msg;
pub mod query;
pub mod state_key;

use lode_proto::tx::v1::msg::Sum;

pub use msg::BankMsg;

use crate::{
    address::Address,
    error::{CodeRange, ModuleError, StateError, StoreError, TxError},
    event::Event,
    genesis::{AppState, GenesisBalance},
    module::{BlockCtx, Decoded, Invariant, Module, Side},
    params::Params,
    query::{QueryError, QueryRead},
    store::{StateRead, StateWrite},
};

/// The bank module.
#[derive(Debug)]
pub struct Bank;

impl Module for Bank {
    const NAME: &'static str = "bank";
    const CODES: CodeRange = error::CODES;
    type Msg = BankMsg;

    fn decode(sum: Sum) -> Decoded<BankMsg> {
        msg::decode(sum)
    }

    fn encode(m: &BankMsg) -> Sum {
        m.into()
    }

    fn sender(m: &BankMsg) -> &Address {
        m.sender()
    }

    fn gas(m: &BankMsg, p: &Params) -> Option<u64> {
        m.gas(p)
    }

    fn prefetch(m: &BankMsg, keys: &mut Vec<Vec<u8>>) {
        match m {
            BankMsg::Send { to, .. } => keys.push(state_key::account(to)),
            BankMsg::MultiSend { outputs, .. } => {
                keys.extend(outputs.iter().map(|(to, _)| state_key::account(to)));
            }
        }
    }

    fn execute<S: StateWrite + ?Sized>(
        s: &mut S,
        m: &BankMsg,
        _ctx: BlockCtx<'_>,
        events: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        msg::execute(s, m, events)
    }

    /// Funds the genesis accounts and records their sum as the supply.
    fn init_genesis<S: StateWrite + ?Sized>(
        s: &mut S,
        genesis: &AppState,
    ) -> Result<(), StateError> {
        let balances = genesis
            .parsed_balances()
            .map_err(|_| StateError::Genesis("balances".into()))?;
        let mut supply: u128 = 0;
        for (addr, amount) in &balances {
            put_account(
                s,
                addr,
                &Account {
                    balance: *amount,
                    nonce: 0,
                },
            );
            supply = supply
                .checked_add(*amount)
                .ok_or_else(|| StateError::Genesis("supply overflows".into()))?;
        }
        put_supply(s, supply);
        Ok(())
    }

    /// Every account with a balance, in address order (nonces are not part of genesis).
    fn export_genesis<S: StateRead + ?Sized>(
        s: &S,
        genesis: &mut AppState,
    ) -> Result<(), StoreError> {
        for (k, v) in s.scan_prefix(state_key::ACCOUNT_PREFIX)? {
            let addr = crate::codec::address_at(&k, state_key::ACCOUNT_PREFIX.len())?;
            let acct = Account::decode(&v)?;
            if acct.balance > 0 {
                genesis.balances.push(GenesisBalance {
                    address: addr.to_string(),
                    amount: acct.balance.to_string(),
                });
            }
        }
        Ok(())
    }

    fn query(
        state: &dyn QueryRead,
        path: &str,
        data: &[u8],
    ) -> Option<Result<Vec<u8>, QueryError>> {
        (path == "/account").then(|| query::account(state, data))
    }

    fn invariants() -> Vec<Invariant> {
        vec![Invariant {
            name: "bank/supply",
            sides: supply_sides,
        }]
    }

    fn error_examples() -> Vec<TxError> {
        error::BankError::examples()
            .into_iter()
            .map(TxError::from)
            .collect()
    }
}

/// `bank/supply`: the recorded supply against the sum of all balances.
fn supply_sides(s: &dyn StateRead) -> Result<(Side, Side), StoreError> {
    let mut sum: u128 = 0;
    for (_, v) in s.scan_prefix(state_key::ACCOUNT_PREFIX)? {
        sum = sum
            .checked_add(Account::decode(&v)?.balance)
            .ok_or_else(|| StoreError::Corrupt {
                key: "bank/account".into(),
                reason: "balances overflow u128".into(),
            })?;
    }
    Ok((
        Side {
            what: "bank/supply",
            value: supply(s)?,
        },
        Side {
            what: "sum of account balances (module pools included)",
            value: sum,
        },
    ))
}

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

/// Destroys `amount` held by `from` (the market burns its protocol fee this way): the balance and the
/// recorded supply both fall, so `bank/supply` still holds.
pub fn burn<S: StateWrite + ?Sized>(
    s: &mut S,
    from: &Address,
    amount: u128,
) -> Result<(), TxError> {
    if amount == 0 {
        return Ok(());
    }
    let mut src = account(s, from)?;
    src.balance = src
        .balance
        .checked_sub(amount)
        .ok_or(TxError::InsufficientFunds {
            balance: src.balance,
            needed: amount,
        })?;
    put_account(s, from, &src);
    let total = supply(s)?
        .checked_sub(amount)
        .ok_or(TxError::Overflow("supply below burn"))?;
    put_supply(s, total);
    Ok(())
}
