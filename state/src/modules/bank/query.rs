//! bank's query: `/account`, the one path served at any retained height and with a proof.

use lode_proto::query::v1 as querypb;
use prost::Message;

use super::{state_key, Account};
use crate::{
    address::{Address, AddressError},
    query::{code, ProvenAnswer, ProvenQuery, QueryError},
    store::{StateRead, Store},
};

/// `/account`: `data` is the bech32 address; the answer is a `lode.query.v1.Account` at the requested height
/// (0: the last commit), with a JMT proof when asked.
pub fn account(store: &Store, q: &ProvenQuery<'_>) -> Result<ProvenAnswer, QueryError> {
    let addr: Address = std::str::from_utf8(q.data)
        .map_err(|e| e.to_string())
        .and_then(|s| s.parse().map_err(|e: AddressError| e.to_string()))
        .map_err(|e| (code::INVALID_ADDRESS, format!("invalid address: {e}")))?;
    let last = q.last.height;
    let height = if q.height <= 0 { last } else { q.height as u64 };
    if height > last {
        return Err((
            code::HEIGHT_UNAVAILABLE,
            format!("height {height} is above the last commit {last}"),
        ));
    }
    let key = state_key::account(&addr);
    let (raw, proof) = if q.prove || height != last {
        let version = q.last.version_of(height).ok_or_else(|| {
            (
                code::HEIGHT_UNAVAILABLE,
                format!("height {height} is before genesis"),
            )
        })?;
        let (v, proof) = store
            .get_with_proof(&key, version)
            .map_err(|e| (code::INTERNAL, e.to_string()))?;
        (
            v,
            q.prove.then(|| borsh::to_vec(&proof).unwrap_or_default()),
        )
    } else {
        let v = store
            .get(&key)
            .map_err(|e| (code::INTERNAL, e.to_string()))?;
        (v, None)
    };
    let acct = raw
        .as_deref()
        .map(Account::decode)
        .transpose()
        .map_err(|e| (code::INTERNAL, e.to_string()))?
        .unwrap_or_default();
    let value = querypb::Account {
        address: addr.to_string(),
        balance: acct.balance.to_string(),
        nonce: acct.nonce,
    };
    Ok(ProvenAnswer {
        key,
        value: value.encode_to_vec(),
        proof,
        height,
    })
}
