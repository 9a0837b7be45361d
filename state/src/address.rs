//! Account addresses (the type and its bech32m encoding live in `lode_client::address`, shared with wallets),
//! and the checks every module shares on the keys and addresses in messages: [`parse_address`] and
//! [`check_public_key`] (with the memo of keys already checked, which signature verification reuses).

use std::sync::{LazyLock, RwLock};

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};

use crate::{error::TxError, fasthash::HashMap};

pub use lode_client::address::{Address, AddressError, HRP};

/// Parses a bech32m address from a message field; the error names the (truncated) input.
pub fn parse_address(s: &str) -> Result<Address, TxError> {
    if let Some(a) = parsed_lately(s) {
        return Ok(a);
    }
    let a = s
        .parse()
        .map_err(|e: AddressError| TxError::InvalidAddress {
            addr: s.chars().take(100).collect(),
            reason: e.to_string(),
        })?;
    remember_parsed(s, a);
    Ok(a)
}

/// Slots of each thread's memo of parsed addresses.
const PARSED_SLOTS: usize = 256;

thread_local! {
    /// Address strings this thread parsed lately, one per slot (chosen by the string's last three bytes,
    /// checksum characters). Every tx names its recipient as a bech32m string, and most name one seen before:
    /// checking its checksum again was ~0.7% of a loaded devnet's CPU. Only strings that parsed are kept,
    /// and a hit is the same string, so the memo cannot change an answer.
    static PARSED: std::cell::RefCell<Vec<Option<(String, Address)>>> =
        std::cell::RefCell::new(vec![None; PARSED_SLOTS]);
}

fn parsed_slot(s: &str) -> usize {
    s.as_bytes().iter().rev().take(3).fold(0usize, |acc, &b| {
        acc.wrapping_mul(31).wrapping_add(usize::from(b))
    }) % PARSED_SLOTS
}

/// The address `s` parsed to, if this thread parsed `s` lately.
fn parsed_lately(s: &str) -> Option<Address> {
    PARSED.with(|memo| match memo.borrow().get(parsed_slot(s)) {
        Some(Some((held, a))) if held == s => Some(*a),
        _ => None,
    })
}

fn remember_parsed(s: &str, a: Address) {
    PARSED.with(|memo| {
        if let Some(slot) = memo.borrow_mut().get_mut(parsed_slot(s)) {
            *slot = Some((s.to_owned(), a));
        }
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The memo answers as parsing does: each string its own address, whichever strings shared its slot
    /// before, and a string that does not parse is refused even right after one that did.
    #[test]
    fn the_memo_of_parsed_addresses_answers_as_parsing_does() {
        let addrs: Vec<Address> = (0..600u16)
            .map(|i| {
                let mut a = [0u8; 20];
                a[..2].copy_from_slice(&i.to_le_bytes());
                Address(a)
            })
            .collect();
        for _ in 0..2 {
            for a in &addrs {
                let text = a.to_string();
                assert_eq!(parse_address(&text).ok(), Some(*a));
                let mut broken = text.clone();
                broken.pop();
                broken.push(if text.ends_with('q') { 'p' } else { 'q' });
                assert!(parse_address(&broken).is_err(), "{broken}");
            }
        }
    }
}
