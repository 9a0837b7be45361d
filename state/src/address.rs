//! Account addresses (the type and its bech32m encoding live in `lode_client::address`, shared with wallets),
//! and the checks every module shares on the keys and addresses in messages: [`parse_address`] and
//! [`check_public_key`] (with the memo of keys already checked, which signature verification reuses).

use std::sync::{LazyLock, RwLock};

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};

use crate::{error::TxError, fasthash::HashMap};

pub use lode_client::address::{Address, AddressError, HRP};

/// Parses a bech32m address from a message field; the error names the (truncated) input.
pub fn parse_address(s: &str) -> Result<Address, TxError> {
    s.parse()
        .map_err(|e: AddressError| TxError::InvalidAddress {
            addr: s.chars().take(100).collect(),
            reason: e.to_string(),
        })
}

/// Rejects keys that ZIP-215 would accept for verification but that no honest wallet produces: encodings
/// that are not canonical, points that do not decompress, and small-order points (for which forged
/// signatures are trivial).
pub fn check_public_key(pk: &[u8; 32]) -> Result<(), TxError> {
    if known_key(pk).is_some() {
        return Ok(());
    }
    let point = CompressedEdwardsY(*pk)
        .decompress()
        .ok_or(TxError::InvalidPublicKey("not a curve point"))?;
    if point.compress().to_bytes() != *pk {
        return Err(TxError::InvalidPublicKey("non-canonical encoding"));
    }
    if point.is_small_order() {
        return Err(TxError::InvalidPublicKey("small-order point"));
    }
    if let Ok(mut keys) = VALID_KEYS.write() {
        if keys.len() >= VALID_KEYS_CAP {
            keys.clear();
        }
        keys.insert(*pk, point);
    }
    Ok(())
}

/// The decompressed point of a key that already passed [`check_public_key`].
pub(crate) fn known_key(pk: &[u8; 32]) -> Option<EdwardsPoint> {
    VALID_KEYS.read().ok()?.get(pk).copied()
}

/// Keys that already passed [`check_public_key`], with their decompressed points. Point decompression
/// dominates both a tx's stateless check and, per signature, batch verification, and most txs come from
/// keys seen before. The memo only skips work whose answer is known (decompression is a pure function of
/// the key's bytes), so it cannot change a verdict. Only looked up, never iterated; cleared when full.
static VALID_KEYS: LazyLock<RwLock<HashMap<[u8; 32], EdwardsPoint>>> =
    LazyLock::new(Default::default);
const VALID_KEYS_CAP: usize = 1 << 17;
