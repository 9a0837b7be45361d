//! u128 amounts on the wire: canonical decimal strings (digits only, no sign, no leading zeros).

use crate::error::TxError;

/// Parses a canonical decimal u128. "0" is the only string that may start with '0'.
pub fn parse_amount(s: &str) -> Result<u128, TxError> {
    let bad = |reason| TxError::InvalidAmount {
        amount: truncate(s),
        reason,
    };
    if s.is_empty() {
        return Err(bad("empty"));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("not a decimal number"));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(bad("leading zero"));
    }
    s.parse::<u128>()
        .map_err(|_| TxError::Overflow("amount exceeds u128"))
}

/// Parses a canonical decimal u128 that must be greater than zero (transfer amounts, bonds, prices).
pub fn parse_positive(s: &str) -> Result<u128, TxError> {
    match parse_amount(s)? {
        0 => Err(TxError::InvalidAmount {
            amount: s.into(),
            reason: "must be greater than zero",
        }),
        v => Ok(v),
    }
}

/// Serde for u128 amounts as canonical decimal strings (JSON numbers lose precision in most clients).
pub mod serde_str {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_amount(&s).map_err(serde::de::Error::custom)
    }
}

/// `floor(a × num / den)` without overflow for `num <= den` (royalties, shares, vote weights).
pub fn mul_div_floor(a: u128, num: u128, den: u128) -> Option<u128> {
    if den == 0 || num > den {
        return None;
    }
    // a = q·den + r, so a·num/den = q·num + r·num/den, and r·num < den² fits when den < 2^64.
    let q = a.checked_div(den)?;
    let r = a.checked_rem(den)?;
    q.checked_mul(num)?
        .checked_add(r.checked_mul(num)?.checked_div(den)?)
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_amounts_parse() {
        assert_eq!(parse_amount("0"), Ok(0));
        assert_eq!(
            parse_amount("340282366920938463463374607431768211455"),
            Ok(u128::MAX)
        );
    }

    #[test]
    fn non_canonical_amounts_are_rejected() {
        for s in ["", "-1", "+1", "01", " 1", "1.0", "1e3", "0x10"] {
            assert_eq!(parse_amount(s).map_err(|e| e.code()), Err(14), "{s}");
        }
        assert_eq!(
            parse_amount("340282366920938463463374607431768211456").map_err(|e| e.code()),
            Err(11)
        );
    }

    #[test]
    fn mul_div_floor_is_exact_and_never_overflows() {
        assert_eq!(mul_div_floor(10_001, 250, 10_000), Some(250));
        assert_eq!(mul_div_floor(39, 250, 10_000), Some(0));
        assert_eq!(mul_div_floor(u128::MAX, 10_000, 10_000), Some(u128::MAX));
        assert_eq!(mul_div_floor(u128::MAX, 1, 2), Some(u128::MAX / 2));
        assert_eq!(mul_div_floor(1, 2, 1), None);
        assert_eq!(mul_div_floor(1, 0, 0), None);
    }

    proptest! {
        #[test]
        fn mul_div_floor_matches_wide_arithmetic(a in any::<u64>(), num in 0u128..=10_000) {
            prop_assert_eq!(mul_div_floor(a as u128, num, 10_000), Some(a as u128 * num / 10_000));
        }

        #[test]
        fn any_u128_round_trips(v in any::<u128>()) {
            prop_assert_eq!(parse_amount(&v.to_string()), Ok(v));
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,60}") {
            let _ = parse_amount(&s);
        }
    }
}
