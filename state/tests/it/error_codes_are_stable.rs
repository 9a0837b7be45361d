//! Error codes are public API: every code a tx can be refused with, with its stable name, must equal the
//! golden list in `tests/golden/error_codes.txt`, and no two errors share a code.
//!
//! To re-record after deliberately adding an error: `LODE_BLESS=1 cargo nextest run -p lode-state error_codes`.

use lode_state::TxError;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/error_codes.txt");

/// One value of every error variant.
fn every_error() -> Vec<TxError> {
    let s = || String::from("x");
    vec![
        TxError::Internal(s()),
        TxError::Decode(s()),
        TxError::TooLarge { size: 1, max: 0 },
        TxError::WrongChainId {
            got: s(),
            want: s(),
        },
        TxError::BadSignature,
        TxError::InvalidPublicKey("x"),
        TxError::NonceReplayed { got: 0, want: 1 },
        TxError::NonceGap { got: 2, want: 1 },
        TxError::InsufficientFee {
            got: 0,
            min: 1,
            gas: 1,
        },
        TxError::InsufficientFunds {
            balance: 0,
            needed: 1,
        },
        TxError::Overflow("x"),
        TxError::EmptyMsgs,
        TxError::InvalidAddress {
            addr: s(),
            reason: s(),
        },
        TxError::InvalidAmount {
            amount: s(),
            reason: "x",
        },
        TxError::SignerMismatch {
            sender: s(),
            signer: s(),
        },
        TxError::TimedOut {
            timeout_height: 1,
            height: 2,
        },
        TxError::SignatureCount { got: 0, want: 1 },
        TxError::MemoTooLong { len: 1, max: 0 },
        TxError::TooManyMsgs { got: 1, max: 0 },
        TxError::InvalidField {
            field: "x",
            reason: s(),
        },
        TxError::InvalidMultisig("x"),
        TxError::MultisigThreshold {
            got: 0,
            threshold: 1,
        },
        TxError::ValidatorExists(s()),
        TxError::UnknownValidator(s()),
        TxError::InsufficientBond {
            bonded: 0,
            needed: 1,
        },
        TxError::UnknownProposal(1),
        TxError::NotInDepositPeriod(1),
        TxError::NotInVotingPeriod(1),
        TxError::InvalidParamChange {
            path: s(),
            reason: s(),
        },
        TxError::InvalidVote("x"),
        TxError::DepositOverflow,
        TxError::InvalidProposal(s()),
        TxError::CollectionExists(s()),
        TxError::UnknownCollection(s()),
        TxError::TokenExists {
            collection: s(),
            token: s(),
        },
        TxError::UnknownToken {
            collection: s(),
            token: s(),
        },
        TxError::RoyaltyAboveCap { bps: 1, cap: 0 },
        TxError::MaxSupplyReached(s()),
        TxError::NotMinter(s()),
        TxError::NotAuthorized(s()),
        TxError::ApprovalExpired {
            expiry: 1,
            height: 2,
        },
        TxError::NotOwner(s()),
        TxError::NotListed,
        TxError::PriceMismatch {
            listed: 1,
            expected: 2,
        },
        TxError::SelfPurchase,
    ]
}

#[test]
fn every_error_code_is_unique_and_keeps_its_golden_number_and_name() {
    let mut lines: Vec<(u32, &'static str)> =
        every_error().iter().map(|e| (e.code(), e.name())).collect();
    lines.sort();
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
