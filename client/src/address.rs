//! Account addresses: the first 20 bytes of SHA-256(ed25519 public key), shown as bech32m with the `lode` prefix
//! (docs/tx-format.md). Module and multisig accounts derive theirs from a name or a key set. The chain uses this
//! very type (`lode_state::Address` re-exports it), so a wallet and the chain cannot disagree on an address.

use std::{fmt, str::FromStr};

use bech32::Bech32m;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The human-readable prefix of every Lode address.
pub const HRP: &str = "lode";

/// A 20-byte account address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "borsh",
    derive(borsh::BorshSerialize, borsh::BorshDeserialize)
)]
pub struct Address(pub [u8; 20]);

/// Why a string is not a valid address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    #[error("not bech32m: {0}")]
    Encoding(String),
    #[error("prefix is {0:?}, expected \"lode\"")]
    WrongPrefix(String),
    #[error("payload is {0} bytes, expected 20")]
    WrongLength(usize),
}

impl Address {
    /// The address of an ed25519 public key.
    pub fn from_public_key(pk: &[u8; 32]) -> Address {
        Address::from_digest(Sha256::digest(pk).into())
    }

    /// The address of a module account (no key can sign for it): SHA-256("lode/module/" || name)[..20].
    pub fn module(name: &str) -> Address {
        let mut h = Sha256::new();
        h.update(b"lode/module/");
        h.update(name.as_bytes());
        Address::from_digest(h.finalize().into())
    }

    /// The address of a k-of-n multisig account: SHA-256("lode/multisig/" ‖ threshold (u32 BE) ‖ n (u32 BE)
    /// ‖ keys in the given order)[..20]. Callers pass the keys sorted (see `tx::multisig::MultisigKey`).
    pub fn multisig(threshold: u32, keys: &[[u8; 32]]) -> Address {
        let mut h = Sha256::new();
        h.update(b"lode/multisig/");
        h.update(threshold.to_be_bytes());
        h.update((keys.len() as u32).to_be_bytes());
        for k in keys {
            h.update(k);
        }
        Address::from_digest(h.finalize().into())
    }

    /// The first 20 bytes of a SHA-256 digest.
    fn from_digest(digest: [u8; 32]) -> Address {
        let mut out = [0u8; 20];
        for (o, d) in out.iter_mut().zip(digest) {
            *o = d;
        }
        Address(out)
    }

    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let out = self.bech32m();
        // The alphabet and the prefix are ASCII.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

/// The bech32 alphabet.
const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
/// Marks a byte outside [`CHARSET`] in [`CHARSET_REV`].
const INVALID: u8 = 0xff;
/// Each ASCII byte's value in [`CHARSET`], or [`INVALID`].
// Evaluated by the compiler: an index out of bounds here fails the build, it cannot panic at run time.
#[allow(clippy::indexing_slicing)]
const CHARSET_REV: [u8; 128] = {
    let mut t = [INVALID; 128];
    let mut i = 0;
    while i < CHARSET.len() {
        t[CHARSET[i] as usize] = i as u8;
        i += 1;
    }
    t
};
/// The constant a bech32m checksum is xored with (BIP-350).
const BECH32M_CONST: u32 = 0x2bc8_30a3;

/// The alphabet's character for a five-bit group (the high bits of `v` are ignored).
// In bounds: `v & 0x1f` < 32 = CHARSET.len().
#[allow(clippy::indexing_slicing)]
fn charset(v: u8) -> u8 {
    CHARSET[usize::from(v & 0x1f)]
}

/// One step of the BIP-173 checksum's polynomial division. Without branches: each generator is masked in
/// by its bit of `top`, which is as good as random, so a branch per generator was a misprediction half the
/// time (events and tx decoding run this about fifty times per address).
// In bounds: `i` < GEN.len().
#[allow(clippy::indexing_slicing)]
const fn polymod_step(chk: u32, value: u8) -> u32 {
    const GEN: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    let top = chk >> 25;
    let mut chk = ((chk & 0x01ff_ffff) << 5) ^ value as u32;
    let mut i = 0;
    while i < GEN.len() {
        // All ones when bit i of `top` is set, else zero.
        chk ^= GEN[i] & 0u32.wrapping_sub((top >> i) & 1);
        i += 1;
    }
    chk
}

/// The checksum state after the prefix: a bech32m checksum covers the prefix's high bits, a zero, its low
/// bits, then the data and six zeros. Computed once, by the compiler (an index out of bounds fails the build).
#[allow(clippy::indexing_slicing)]
const PREFIX_CHECKSUM: u32 = {
    let hrp = HRP.as_bytes();
    let mut chk = 1u32;
    let mut i = 0;
    while i < hrp.len() {
        chk = polymod_step(chk, hrp[i] >> 5);
        i += 1;
    }
    chk = polymod_step(chk, 0);
    let mut i = 0;
    while i < hrp.len() {
        chk = polymod_step(chk, hrp[i] & 0x1f);
        i += 1;
    }
    chk
};

impl Address {
    /// The bech32m string `lode1…` (4 + 1 + 32 data + 6 checksum characters) as bytes. Events name
    /// addresses several times per tx, so this specialises the `bech32` crate's general encoder to the
    /// one prefix and payload size Lode uses (the tests hold the two equal).
    fn bech32m(&self) -> [u8; 43] {
        // 20 bytes are exactly 32 groups of five bits, most significant first: four runs of 5 bytes, 8
        // groups each.
        let mut groups = [0u8; 32];
        for (bytes, run) in self.0.chunks_exact(5).zip(groups.chunks_exact_mut(8)) {
            let acc = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            for (g, shift) in run.iter_mut().zip((0..=35).rev().step_by(5)) {
                *g = ((acc >> shift) & 0x1f) as u8;
            }
        }
        let mut chk = PREFIX_CHECKSUM;
        for &v in &groups {
            chk = polymod_step(chk, v);
        }
        for _ in 0..6 {
            chk = polymod_step(chk, 0);
        }
        chk ^= BECH32M_CONST;
        let checksum = (0..=25).rev().step_by(5).map(|shift| (chk >> shift) as u8);
        let chars = HRP
            .bytes()
            .chain([b'1'])
            .chain(groups.into_iter().chain(checksum).map(charset));
        let mut out = [0u8; 43];
        for (o, c) in out.iter_mut().zip(chars) {
            *o = c;
        }
        out
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(a) = Address::parse_canonical(s.as_bytes()) {
            return Ok(a);
        }
        Address::parse_general(s)
    }
}

impl Address {
    /// The inverse of [`Address::bech32m`]: `lode1`, 38 lower-case characters of the alphabet and a valid
    /// bech32m checksum, or None. Every tx names addresses, and each node parses a tx several times, so the
    /// common case skips the `bech32` crate's general decoder; anything this does not accept goes to
    /// [`Address::parse_general`], which gives the error (the tests hold the two equal).
    pub fn parse_canonical(s: &[u8]) -> Option<Address> {
        const PREFIX: &[u8] = b"lode1";
        if s.len() != 43 || !s.starts_with(PREFIX) {
            return None;
        }
        let mut chk = PREFIX_CHECKSUM;
        let mut values = [0u8; 38];
        for (v, &c) in values.iter_mut().zip(s.strip_prefix(PREFIX)?) {
            *v = *CHARSET_REV.get(usize::from(c))?;
            if *v == INVALID {
                return None;
            }
            chk = polymod_step(chk, *v);
        }
        // The first 32 characters are the payload (four runs of 8 groups = 5 bytes); the last 6 the checksum.
        let mut out = [0u8; 20];
        for (run, bytes) in values.chunks_exact(8).zip(out.chunks_exact_mut(5)) {
            let acc = run.iter().fold(0u64, |acc, &v| (acc << 5) | u64::from(v));
            for (b, shift) in bytes.iter_mut().zip((0..=32).rev().step_by(8)) {
                *b = (acc >> shift) as u8;
            }
        }
        (chk == BECH32M_CONST).then_some(Address(out))
    }

    /// Any string the `bech32` crate decodes, held to Lode's rules, with the reason it is not an address.
    fn parse_general(s: &str) -> Result<Self, AddressError> {
        let checked = bech32::primitives::decode::CheckedHrpstring::new::<Bech32m>(s)
            .map_err(|e| AddressError::Encoding(e.to_string()))?;
        if checked.hrp().as_str() != HRP {
            return Err(AddressError::WrongPrefix(checked.hrp().to_string()));
        }
        // Only the canonical lower-case form is accepted, so one address has one spelling.
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(AddressError::Encoding("upper-case address".into()));
        }
        let data: Vec<u8> = checked.byte_iter().collect();
        let bytes: [u8; 20] = data
            .as_slice()
            .try_into()
            .map_err(|_| AddressError::WrongLength(data.len()))?;
        Ok(Address(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bech32::Hrp;
    use proptest::prelude::*;

    #[test]
    fn address_round_trips_through_bech32m() {
        let a = Address::from_public_key(&[7u8; 32]);
        let s = a.to_string();
        assert!(s.starts_with("lode1"));
        assert_eq!(s.parse::<Address>(), Ok(a));
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        let good = Address([1u8; 20]).to_string();
        let mut flipped = good.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'q' { b'p' } else { b'q' };
        let flipped = String::from_utf8(flipped).unwrap_or_default();
        for bad in [
            "",
            "lode1",
            "cosmos1qqqq",
            "lode1zzzzzzzz",
            flipped.as_str(),
            &good.to_uppercase(),
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad} accepted");
        }
        // bech32 (not bech32m) checksum is rejected.
        let hrp = Hrp::parse_unchecked(HRP);
        let b32 = bech32::encode::<bech32::Bech32>(hrp, &[1u8; 20]).unwrap_or_default();
        assert!(b32.parse::<Address>().is_err());
        // Wrong payload length.
        let short = bech32::encode::<Bech32m>(hrp, &[1u8; 19]).unwrap_or_default();
        assert_eq!(short.parse::<Address>(), Err(AddressError::WrongLength(19)));
    }

    proptest! {
        #[test]
        fn the_specialised_encoder_matches_the_bech32_crate(bytes in any::<[u8; 20]>()) {
            let hrp = Hrp::parse_unchecked(HRP);
            let want = bech32::encode::<Bech32m>(hrp, &bytes).unwrap_or_default();
            prop_assert_eq!(Address(bytes).to_string(), want);
        }

        #[test]
        fn parsing_arbitrary_strings_never_panics(s in ".{0,120}") {
            let _ = s.parse::<Address>();
        }

        #[test]
        fn the_fast_parser_agrees_with_the_bech32_crate(
            bytes in any::<[u8; 20]>(),
            edits in proptest::collection::vec((0usize..43, any::<u8>()), 0..3),
        ) {
            let mut s = Address(bytes).to_string().into_bytes();
            for (i, c) in edits {
                // Mostly characters of the alphabet (a checksum failure), sometimes anything ASCII.
                s[i] = if c % 4 == 0 { c % 128 } else { CHARSET[c as usize % 32] };
            }
            let Ok(s) = String::from_utf8(s) else { return Ok(()) };
            let general = Address::parse_general(&s);
            prop_assert_eq!(s.parse::<Address>(), general.clone());
            if let Some(fast) = Address::parse_canonical(s.as_bytes()) {
                prop_assert_eq!(Ok(fast), general);
            }
        }
    }
}
