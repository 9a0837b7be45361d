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

    proptest! {
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
