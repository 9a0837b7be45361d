//! Events emitted by execution: a kind and ordered attributes. `app.rs` turns them into ABCI events, whose
//! attribute values are strings.

use std::{cell::RefCell, fmt};

use crate::address::Address;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: &'static str,
    pub attributes: Vec<(&'static str, AttrValue)>,
}

impl Event {
    pub fn new(kind: &'static str) -> Self {
        Event {
            kind,
            attributes: Vec::new(),
        }
    }

    pub fn attr(mut self, key: &'static str, value: impl Into<AttrValue>) -> Self {
        self.attributes.push((key, value.into()));
        self
    }
}

/// An attribute's value, kept typed until an ABCI event needs its text ([`AttrValue::render`]). CheckTx
/// and the mempool's recheck execute every tx and drop its events, and FinalizeBlock reads the accounts
/// a tx touched from them: formatting addresses (bech32m) and numbers there, and parsing the addresses
/// back, was about 5% of a loaded devnet's CPU. The text of a value is the same whichever way it is held,
/// and values compare by their text.
#[derive(Debug, Clone)]
pub enum AttrValue {
    Text(String),
    Address(Address),
    Number(u128),
}

impl AttrValue {
    /// The value as an ABCI attribute carries it.
    pub fn render(self) -> String {
        match self {
            AttrValue::Text(s) => s,
            AttrValue::Address(a) => render_address(&a),
            AttrValue::Number(n) => n.to_string(),
        }
    }

    /// The address this value names: an [`AttrValue::Address`], or text that parses as one.
    pub fn address(&self) -> Option<Address> {
        match self {
            AttrValue::Address(a) => Some(*a),
            AttrValue::Text(s) if s.starts_with(crate::address::HRP) => s.parse().ok(),
            _ => None,
        }
    }
}

/// Slots of each thread's memo of rendered addresses.
const RENDERED_SLOTS: usize = 256;

thread_local! {
    /// Addresses this thread rendered lately, one per slot (chosen by the address's first byte; a later
    /// address with the same first byte takes the slot). FinalizeBlock names the sender and recipient of
    /// every tx, and a block's txs come from far fewer accounts than txs: bech32m-encoding each address
    /// again was ~1.7% of a loaded devnet's CPU.
    static RENDERED: RefCell<Vec<Option<(Address, String)>>> =
        RefCell::new(vec![None; RENDERED_SLOTS]);
}

/// `a.to_string()`, from this thread's memo when it holds `a`.
fn render_address(a: &Address) -> String {
    let [first, ..] = a.0;
    RENDERED.with(|memo| {
        let mut memo = memo.borrow_mut();
        match memo.get_mut(usize::from(first) % RENDERED_SLOTS) {
            Some(Some((held, text))) if held == a => text.clone(),
            Some(slot) => {
                let text = a.to_string();
                *slot = Some((*a, text.clone()));
                text
            }
            None => a.to_string(),
        }
    })
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Text(s) => f.write_str(s),
            AttrValue::Address(a) => a.fmt(f),
            AttrValue::Number(n) => n.fmt(f),
        }
    }
}

impl PartialEq for AttrValue {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (AttrValue::Text(a), AttrValue::Text(b)) => a == b,
            (AttrValue::Address(a), AttrValue::Address(b)) => a == b,
            (AttrValue::Number(a), AttrValue::Number(b)) => a == b,
            (a, b) => a.to_string() == b.to_string(),
        }
    }
}

impl Eq for AttrValue {}

impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Text(s)
    }
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::Text(s.to_string())
    }
}

impl From<Address> for AttrValue {
    fn from(a: Address) -> Self {
        AttrValue::Address(a)
    }
}

impl From<&Address> for AttrValue {
    fn from(a: &Address) -> Self {
        AttrValue::Address(*a)
    }
}

impl From<u128> for AttrValue {
    fn from(n: u128) -> Self {
        AttrValue::Number(n)
    }
}

impl From<u64> for AttrValue {
    fn from(n: u64) -> Self {
        AttrValue::Number(n.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_sharing_a_memo_slot_render_as_their_own_text() {
        // Same first byte, so the same slot: each render must still be its own address's text.
        let a = Address([5; 20]);
        let mut b = a;
        b.0[19] = 6;
        for _ in 0..3 {
            for x in [a, b, b, a] {
                assert_eq!(AttrValue::from(x).render(), x.to_string());
            }
        }
    }

    #[test]
    fn typed_values_render_and_compare_as_their_text() {
        let a = Address([7; 20]);
        let text = a.to_string();
        assert_eq!(AttrValue::from(a).render(), text);
        assert_eq!(AttrValue::from(a), AttrValue::from(text.as_str()));
        assert_ne!(AttrValue::from(a), AttrValue::from(Address([8; 20])));
        assert_eq!(AttrValue::from(u128::MAX).render(), u128::MAX.to_string());
        assert_eq!(AttrValue::from(42u64), AttrValue::from("42"));
        assert_ne!(AttrValue::from(42u64), AttrValue::from("042"));
        assert_eq!(AttrValue::from("x").render(), "x");
    }

    #[test]
    fn the_address_of_a_value_is_read_from_either_form() {
        let a = Address([9; 20]);
        assert_eq!(AttrValue::from(a).address(), Some(a));
        assert_eq!(AttrValue::from(a.to_string()).address(), Some(a));
        assert_eq!(AttrValue::from("lode1notanaddress").address(), None);
        assert_eq!(AttrValue::from(5u64).address(), None);
    }
}
