//! bank's storage keys. Keys are public API: proofs and tools depend on them.

use crate::address::Address;

pub const ACCOUNT_PREFIX: &[u8] = b"bank/account/";
pub const SUPPLY: &[u8] = b"bank/supply";

/// `bank/account/` ‖ 20 address bytes.
pub fn account(a: &Address) -> Vec<u8> {
    [ACCOUNT_PREFIX, a.as_bytes()].concat()
}
