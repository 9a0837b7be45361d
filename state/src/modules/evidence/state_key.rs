//! evidence's storage keys. Keys are public API: proofs and tools depend on them.

use crate::address::Address;

/// `evidence/double_sign/` ‖ operator → borsh `DoubleSignRecord`: the evidence that tombstoned it.
pub const DOUBLE_SIGN_PREFIX: &[u8] = b"evidence/double_sign/";

pub fn double_sign(op: &Address) -> Vec<u8> {
    [DOUBLE_SIGN_PREFIX, op.as_bytes()].concat()
}
