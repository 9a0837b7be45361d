//! Value and key codecs shared by every module: borsh values, little-endian u128 amounts, and addresses and
//! ids embedded in keys. A leaf: it knows no module.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{
    address::Address,
    error::StoreError,
    store::{StateRead, StateWrite},
};

/// Decodes a borsh value stored under `key`; a value that does not decode is a corrupt record.
pub fn decode<T: BorshDeserialize>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    T::try_from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

/// Borsh-encodes a value.
pub fn encode<T: BorshSerialize>(v: &T) -> Vec<u8> {
    // Borsh-encoding plain structs into a Vec cannot fail.
    borsh::to_vec(v).unwrap_or_default()
}

/// A u128 stored as 16 little-endian bytes; 0 when absent.
pub fn get_u128<S: StateRead + ?Sized>(s: &S, key: &[u8]) -> Result<u128, StoreError> {
    match s.get(key)? {
        None => Ok(0),
        Some(b) => u128_value(key, &b),
    }
}

/// Decodes a u128 value (16 little-endian bytes) read from `key`.
pub fn u128_value(key: &[u8], bytes: &[u8]) -> Result<u128, StoreError> {
    bytes
        .try_into()
        .map(u128::from_le_bytes)
        .map_err(|_| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "not 16 bytes".into(),
        })
}

/// Writes a u128, deleting the key when it is zero.
pub fn put_u128<S: StateWrite + ?Sized>(s: &mut S, key: Vec<u8>, v: u128) {
    if v == 0 {
        s.delete(key);
    } else {
        s.put(key, v.to_le_bytes().to_vec());
    }
}

/// The 20-byte address embedded in `key` at byte `at`.
pub fn address_at(key: &[u8], at: usize) -> Result<Address, StoreError> {
    key.get(at..at.saturating_add(20))
        .and_then(|b| <[u8; 20]>::try_from(b).ok())
        .map(Address)
        .ok_or_else(|| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "short key".into(),
        })
}

/// The big-endian u64 embedded in `key` at byte `at` (heights and ids in queue keys).
pub fn u64_at(key: &[u8], at: usize) -> Result<u64, StoreError> {
    key.get(at..at.saturating_add(8))
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "short key".into(),
        })
}

/// The sum of the u128 values under `prefix` (the invariants' pool totals); corruption if it overflows.
pub fn sum_u128_under(s: &dyn StateRead, prefix: &[u8]) -> Result<u128, StoreError> {
    let mut sum: u128 = 0;
    for (k, v) in s.scan_prefix(prefix)? {
        sum = sum
            .checked_add(u128_value(&k, &v)?)
            .ok_or_else(|| StoreError::Corrupt {
                key: String::from_utf8_lossy(prefix).into_owned(),
                reason: "sum overflows u128".into(),
            })?;
    }
    Ok(sum)
}
