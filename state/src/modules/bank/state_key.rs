//! bank's storage keys. Keys are public API: proofs and tools depend on them.

use crate::address::Address;

pub const ACCOUNT_PREFIX: &[u8] = b"bank/account/";
pub const SUPPLY: &[u8] = b"bank/supply";

/// `bank/account/` ‖ 20 address bytes.
pub fn account(a: &Address) -> Vec<u8> {
    let mut k = Vec::with_capacity(ACCOUNT_PREFIX.len() + 20);
    k.extend_from_slice(ACCOUNT_PREFIX);
    k.extend_from_slice(a.as_bytes());
    k
}
