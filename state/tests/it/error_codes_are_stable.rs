//! Error codes are public API: every code a tx can be refused with, with its stable name, must equal the
//! golden list in `tests/golden/error_codes.txt` (recorded before the module restructure); no two errors
//! share a code, and every module's codes stay inside its declared range.
//!
//! To re-record after deliberately adding an error (existing lines never change): `LODE_BLESS=1 cargo nextest
//! run --workspace -E 'package(lode-state) and (test(error_codes) or test(golden))'`.

use lode_state::{
    error::CORE_CODES,
    modules::{error_codes, error_examples, range_of, CODE_RANGES, NAMES},
};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/error_codes.txt");

#[test]
fn every_error_code_is_unique_and_keeps_its_golden_number_and_name() {
    let lines = error_codes();
    for pair in lines.windows(2) {
        assert_ne!(
            pair[0].0, pair[1].0,
            "{} and {} share a code",
            pair[0].1, pair[1].1
        );
    }
    let got: String = lines.iter().map(|(c, n)| format!("{c} {n}\n")).collect();
    if std::env::var_os("LODE_BLESS").is_some() {
        std::fs::write(GOLDEN, &got).expect("write golden file");
        return;
    }
    let want = std::fs::read_to_string(GOLDEN).expect("golden file");
    assert_eq!(got, want, "error codes or names changed");
}

#[test]
fn module_code_ranges_do_not_overlap_and_every_code_is_in_its_owners_range() {
    assert_eq!(CODE_RANGES.len(), NAMES.len());
    let all: Vec<_> = std::iter::once(CORE_CODES)
        .chain(CODE_RANGES.iter().copied())
        .collect();
    for (i, a) in all.iter().enumerate() {
        assert!(a.first <= a.last, "{} range is empty", a.module);
        for b in &all[i + 1..] {
            assert!(!a.overlaps(b), "{} and {} overlap", a.module, b.module);
        }
    }
    for e in error_examples() {
        let owner = match &e {
            lode_state::TxError::Module(m) => m.module,
            _ => "tx",
        };
        let range = range_of(e.code()).expect("code in some range");
        assert_eq!(
            range.module,
            owner,
            "{} ({}) is outside {owner}'s range",
            e.name(),
            e.code()
        );
    }
}
