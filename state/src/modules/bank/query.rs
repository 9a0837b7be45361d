//! bank's query: `/account` (data: the bech32m address as UTF-8; answer: a `lode.query.v1.Account`, zero
//! balance and nonce for an account never written).

use lode_proto::query::v1 as querypb;
use prost::Message;

use super::{state_key, Account};
use crate::{
    address::{Address, AddressError},
    query::{code, QueryError, QueryRead},
};

/// `/account`: reads one key, `state_key::account(address)`.
pub fn account(state: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let addr: Address = std::str::from_utf8(data)
        .map_err(|e| e.to_string())
        .and_then(|s| s.parse().map_err(|e: AddressError| e.to_string()))
        .map_err(|e| (code::INVALID_ADDRESS, format!("invalid address: {e}")))?;
    let raw = state
        .get(&state_key::account(&addr))
        .map_err(|e| (code::INTERNAL, e.to_string()))?;
    let acct = raw
        .as_deref()
        .map(Account::decode)
        .transpose()
        .map_err(|e| (code::INTERNAL, e.to_string()))?
        .unwrap_or_default();
    Ok(querypb::Account {
        address: addr.to_string(),
        balance: acct.balance.to_string(),
        nonce: acct.nonce,
    }
    .encode_to_vec())
}
