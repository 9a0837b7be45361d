//! Genesis files: valid ones load and turn into InitChain; each kind of invalid one is rejected with the JSON
//! path of the problem.

use ed25519_consensus::SigningKey;
use lode_genesis::{Genesis, GenesisError, Issue};
use lode_state::address::Address;
use serde_json::{json, Value};

fn key(seed: u8) -> SigningKey {
    SigningKey::from([seed; 32])
}

fn pub_hex(seed: u8) -> String {
    hex::encode(key(seed).verification_key().to_bytes())
}

fn addr(seed: u8) -> String {
    Address::from_public_key(&key(seed).verification_key().to_bytes()).to_string()
}

fn valid() -> Value {
    json!({
        "chain_id": "lode-test-1",
        "genesis_time": "2025-01-01T00:00:00Z",
        "initial_height": 1,
        "validators": [
            // The proof-of-useful-compute rule at genesis with no cap: the stake shares of 10^9 (10:5).
            { "name": "val0", "pub_key": pub_hex(1), "power": 666_666_667 },
            { "name": "val1", "pub_key": pub_hex(2), "power": 333_333_333 }
        ],
        "app_state": {
            "balances": [
                { "address": addr(10), "amount": "1000000" },
                { "address": addr(11), "amount": "5" },
                { "address": addr(20), "amount": "10000000" },
                { "address": addr(21), "amount": "5000000" }
            ],
            "validators": [
                { "operator": addr(20), "moniker": "val0", "consensus_key": pub_hex(1), "self_bond": "10000000" },
                { "operator": addr(21), "moniker": "val1", "consensus_key": pub_hex(2), "self_bond": "5000000" }
            ],
            "params": { "staking": { "max_power_bps": 10000 } }
        }
    })
}

fn with(mut doc: Value, pointer: &str, value: Value) -> Value {
    *doc.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in the document")) = value;
    doc
}

fn insert(mut doc: Value, object: &str, key: &str, value: Value) -> Value {
    doc.pointer_mut(object)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no object {object:?} in the document"))
        .insert(key.to_owned(), value);
    doc
}

fn load(doc: &Value) -> Result<Genesis, GenesisError> {
    Genesis::from_json(&doc.to_string())
}

/// The paths of the issues `doc` is rejected with.
fn rejected_paths(doc: &Value) -> Vec<String> {
    match load(doc) {
        Ok(_) => panic!("accepted an invalid genesis: {doc:#}"),
        Err(e) => {
            assert!(!e.issues().is_empty(), "error without a located issue: {e}");
            e.issues().iter().map(|i| i.path.clone()).collect()
        }
    }
}

fn invalid_issues(doc: &Value) -> Vec<Issue> {
    match load(doc) {
        Err(GenesisError::Invalid(issues)) => issues,
        other => panic!("expected validation issues, got {other:?}"),
    }
}

fn parse_issue(doc: &str) -> Issue {
    match Genesis::from_json(doc) {
        Err(GenesisError::Parse { issue, .. }) => issue,
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn a_valid_genesis_loads_saves_and_loads_again_unchanged() {
    let g = load(&valid()).expect("valid genesis");
    assert_eq!(g.chain_id, "lode-test-1");
    assert_eq!(g.validators.len(), 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("genesis.json");
    g.save(&path).expect("save");
    let again = Genesis::load(&path).expect("load");
    assert_eq!(again.to_json().expect("json"), g.to_json().expect("json"));
}

#[test]
fn initial_height_defaults_to_one() {
    let mut doc = valid();
    doc.as_object_mut()
        .expect("object")
        .remove("initial_height");
    assert_eq!(load(&doc).expect("valid").initial_height, 1);
}

#[test]
fn init_chain_request_carries_chain_id_time_validators_and_app_state() {
    let g = load(&with(valid(), "/initial_height", json!(7))).expect("valid");
    let req = g.init_chain_request().expect("request");
    assert_eq!(req.chain_id, "lode-test-1");
    assert_eq!(req.initial_height, 7);
    let time = req.time.expect("time");
    assert_eq!((time.seconds, time.nanos), (1_735_689_600, 0));
    assert_eq!(req.validators.len(), 2);
    assert_eq!(req.validators[1].power, 333_333_333);
    let sum = req.validators[0]
        .pub_key
        .clone()
        .and_then(|k| k.sum)
        .expect("key");
    assert_eq!(
        sum,
        tendermint_proto::v0_38::crypto::public_key::Sum::Ed25519(
            key(1).verification_key().to_bytes().to_vec()
        )
    );
    let app_state: Value = serde_json::from_slice(&req.app_state_bytes).expect("app state json");
    assert_eq!(app_state["balances"][0]["amount"], "1000000");
}

#[test]
fn a_missing_file_is_a_read_error_naming_the_file() {
    let err = Genesis::load("/nonexistent/genesis.json").expect_err("missing file");
    assert!(matches!(err, GenesisError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/genesis.json"));
}

/// A genesis "file" that never ends is refused once past the limit, not read until memory runs out.
#[test]
fn an_endless_file_is_a_read_error_after_the_limit() {
    let err = Genesis::load("/dev/zero").expect_err("endless");
    assert!(matches!(err, GenesisError::Read { .. }), "{err}");
    assert!(err.to_string().contains("limit"), "{err}");
}

#[test]
fn malformed_json_is_rejected_with_its_line() {
    let err = Genesis::from_json("{\n  \"chain_id\": \"x\",\n  oops\n}").expect_err("malformed");
    let GenesisError::Parse { line, .. } = err else {
        panic!("expected a parse error, got {err:?}")
    };
    assert_eq!(line, 3);
}

#[test]
fn trailing_content_after_the_document_is_rejected() {
    let issue = parse_issue(&format!("{} {{}}", valid()));
    assert_eq!(issue.path, ".");
}

#[test]
fn an_unknown_top_level_field_is_rejected() {
    let doc = insert(valid(), "", "consensus", json!({}));
    let issue = parse_issue(&doc.to_string());
    assert_eq!(issue.path, "consensus", "{issue}");
    assert!(
        issue.message.contains("unknown field `consensus`"),
        "{issue}"
    );
}

#[test]
fn an_unknown_field_in_a_validator_is_rejected_with_its_path() {
    let doc = insert(valid(), "/validators/1", "address", json!("x"));
    let issue = parse_issue(&doc.to_string());
    assert_eq!(issue.path, "validators[1].address", "{issue}");
    assert!(issue.message.contains("unknown field `address`"), "{issue}");
}

#[test]
fn an_unknown_field_in_app_state_is_rejected_with_its_path() {
    let doc = insert(valid(), "/app_state/balances/0", "denom", json!("ulode"));
    let issue = parse_issue(&doc.to_string());
    assert_eq!(issue.path, "app_state.balances[0].denom", "{issue}");
    assert!(issue.message.contains("unknown field `denom`"), "{issue}");
}

#[test]
fn a_value_of_the_wrong_type_is_rejected_with_its_path() {
    let issue = parse_issue(&with(valid(), "/validators/0/power", json!("ten")).to_string());
    assert_eq!(issue.path, "validators[0].power");
    let issue = parse_issue(&with(valid(), "/app_state/balances/1/amount", json!(5)).to_string());
    assert_eq!(issue.path, "app_state.balances[1].amount");
}

#[test]
fn a_negative_power_is_rejected_with_its_path() {
    let issue = parse_issue(&with(valid(), "/validators/1/power", json!(-1)).to_string());
    assert_eq!(issue.path, "validators[1].power");
}

#[test]
fn a_missing_field_is_rejected() {
    let mut doc = valid();
    doc.as_object_mut().expect("object").remove("chain_id");
    let issue = parse_issue(&doc.to_string());
    assert!(
        issue.message.contains("missing field `chain_id`"),
        "{issue}"
    );
}

#[test]
fn a_duplicate_account_is_rejected_at_its_address() {
    let doc = with(valid(), "/app_state/balances/1/address", json!(addr(10)));
    assert_eq!(rejected_paths(&doc), ["app_state.balances[1].address"]);
}

#[test]
fn a_malformed_address_is_rejected_at_its_address() {
    let doc = with(
        valid(),
        "/app_state/balances/0/address",
        json!("cosmos1xyz"),
    );
    assert_eq!(rejected_paths(&doc), ["app_state.balances[0].address"]);
}

#[test]
fn a_zero_balance_is_rejected_at_its_amount() {
    let doc = with(valid(), "/app_state/balances/1/amount", json!("0"));
    assert_eq!(rejected_paths(&doc), ["app_state.balances[1].amount"]);
}

#[test]
fn a_non_decimal_amount_is_rejected_at_its_amount() {
    let doc = with(valid(), "/app_state/balances/0/amount", json!("1e6"));
    assert_eq!(rejected_paths(&doc), ["app_state.balances[0].amount"]);
}

#[test]
fn an_overflowing_total_supply_is_rejected_at_balances() {
    let doc = with(
        valid(),
        "/app_state/balances/0/amount",
        json!(u128::MAX.to_string()),
    );
    assert_eq!(rejected_paths(&doc), ["app_state.balances"]);
}

#[test]
fn a_genesis_without_balances_is_rejected_for_zero_supply() {
    let doc = with(valid(), "/app_state/balances", json!([]));
    let doc = with(doc, "/app_state/validators", json!([]));
    assert_eq!(rejected_paths(&doc), ["app_state.balances"]);
}

#[test]
fn an_empty_validator_set_is_rejected() {
    let doc = with(valid(), "/validators", json!([]));
    assert_eq!(rejected_paths(&doc), ["validators"]);
}

#[test]
fn a_key_that_is_not_hex_is_rejected_at_its_pub_key() {
    let doc = with(valid(), "/validators/1/pub_key", json!("zz"));
    assert_eq!(rejected_paths(&doc), ["validators[1].pub_key"]);
}

#[test]
fn a_key_of_the_wrong_length_is_rejected_at_its_pub_key() {
    let doc = with(valid(), "/validators/0/pub_key", json!("ab".repeat(31)));
    let issues = invalid_issues(&doc);
    assert_eq!(
        issues,
        [Issue::new(
            "validators[0].pub_key",
            "an ed25519 public key is 32 bytes, got 31"
        )]
    );
}

#[test]
fn a_key_off_the_curve_is_rejected_at_its_pub_key() {
    let off_curve = (2u8..=255)
        .map(|y| {
            let mut b = [0u8; 32];
            b[0] = y;
            hex::encode(b)
        })
        .find(|h| {
            lode_genesis::parse_ed25519_public_key(h).is_err_and(|m| m.contains("not a point"))
        })
        .expect("some small y is off the curve");
    let issues = invalid_issues(&with(valid(), "/validators/0/pub_key", json!(off_curve)));
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].path, "validators[0].pub_key");
    assert!(issues[0].message.contains("not a point"));
}

#[test]
fn a_small_order_key_is_rejected_at_its_pub_key() {
    // The identity point (y = 1).
    let identity = format!("01{}", "00".repeat(31));
    let issues = invalid_issues(&with(valid(), "/validators/1/pub_key", json!(identity)));
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].path, "validators[1].pub_key");
    assert!(issues[0].message.contains("small-order"));
}

#[test]
fn a_non_canonical_key_encoding_is_rejected_at_its_pub_key() {
    // y + p for a small y whose point is valid: the same point, spelled non-canonically.
    // p = 2^255 - 19, little-endian: ed ff .. ff 7f.
    let non_canonical = (0u8..19)
        .filter(|y| {
            let mut b = [0u8; 32];
            b[0] = *y;
            lode_genesis::parse_ed25519_public_key(&hex::encode(b)).is_ok()
        })
        .map(|y| {
            let mut b = [0xffu8; 32];
            b[0] = 0xed + y;
            b[31] = 0x7f;
            hex::encode(b)
        })
        .next()
        .expect("some y < 19 is a valid point");
    let issues = invalid_issues(&with(
        valid(),
        "/validators/0/pub_key",
        json!(non_canonical),
    ));
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].path, "validators[0].pub_key");
    assert!(
        issues[0].message.contains("canonical"),
        "{}",
        issues[0].message
    );
}

#[test]
fn a_duplicate_validator_key_is_rejected_at_the_second_one() {
    let doc = with(valid(), "/validators/1/pub_key", json!(pub_hex(1)));
    assert_eq!(rejected_paths(&doc), ["validators[1].pub_key"]);
}

#[test]
fn a_duplicate_validator_name_is_rejected_at_the_second_one() {
    let doc = with(valid(), "/validators/1/name", json!("val0"));
    assert_eq!(rejected_paths(&doc), ["validators[1].name"]);
}

#[test]
fn a_zero_power_is_rejected_at_its_power() {
    let doc = with(valid(), "/validators/0/power", json!(0));
    assert_eq!(rejected_paths(&doc), ["validators[0].power"]);
}

#[test]
fn an_overflowing_total_power_is_rejected_at_validators() {
    let doc = with(valid(), "/validators/0/power", json!(u64::MAX));
    assert_eq!(rejected_paths(&doc), ["validators"]);
    let doc = with(
        valid(),
        "/validators/0/power",
        json!(lode_genesis::MAX_TOTAL_POWER),
    );
    assert_eq!(rejected_paths(&doc), ["validators"]);
}

#[test]
fn a_bad_chain_id_is_rejected() {
    for bad in ["", "lode chain", "-lode", &"x".repeat(51)] {
        assert_eq!(
            rejected_paths(&with(valid(), "/chain_id", json!(bad))),
            ["chain_id"],
            "{bad:?}"
        );
    }
}

#[test]
fn a_genesis_time_that_is_not_rfc3339_utc_is_rejected() {
    for bad in [
        "yesterday",
        "2025-01-01 00:00:00",
        "2025-01-01T00:00:00+02:00",
        "2025-13-01T00:00:00Z",
    ] {
        assert_eq!(
            rejected_paths(&with(valid(), "/genesis_time", json!(bad))),
            ["genesis_time"],
            "{bad:?}"
        );
    }
}

#[test]
fn an_initial_height_of_zero_is_rejected() {
    assert_eq!(
        rejected_paths(&with(valid(), "/initial_height", json!(0))),
        ["initial_height"]
    );
}

#[test]
fn every_problem_is_reported_at_once_one_per_line() {
    let mut doc = with(valid(), "/chain_id", json!(""));
    doc = with(doc, "/validators/1/power", json!(0));
    doc = with(doc, "/app_state/balances/1/address", json!(addr(10)));
    doc = with(doc, "/app_state/balances/0/amount", json!("0"));
    let err = load(&doc).expect_err("invalid");
    let paths: Vec<&str> = err.issues().iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "chain_id",
            "validators[1].power",
            "app_state.balances[0].amount",
            "app_state.balances[1].address"
        ]
    );
    let text = err.to_string();
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(
        text.lines()
            .nth(2)
            .is_some_and(|l| l.trim_start().starts_with("validators[1].power: ")),
        "{text}"
    );
}

#[test]
fn validators_that_are_not_the_set_the_self_bonds_give_are_rejected() {
    // One unit more than the self-bonds give (a third of 10^9).
    let doc = with(valid(), "/validators/1/power", json!(333_333_334));
    assert_eq!(rejected_paths(&doc), ["validators"]);
    // The default cap (20%) cannot hold with two validators: they get half each, whatever their bonds.
    let mut doc = valid();
    doc["app_state"]["params"]["staking"]["max_power_bps"] = json!(2_000);
    assert_eq!(rejected_paths(&doc), ["validators"]);
    doc["validators"][0]["power"] = json!(500_000_000);
    doc["validators"][1]["power"] = json!(500_000_000);
    load(&doc).expect("half each under the cap");
    // `set_validator_powers` writes the powers the rule gives.
    let mut g: Genesis =
        serde_json::from_value(with(valid(), "/validators/0/power", json!(1))).expect("shape");
    g.set_validator_powers().expect("powers");
    assert_eq!(
        g.validators.iter().map(|v| v.power).collect::<Vec<_>>(),
        [666_666_667, 333_333_333]
    );
    // A genesis validator missing from app_state.validators.
    let doc = with(
        valid(),
        "/app_state/validators",
        json!([{ "operator": addr(20), "moniker": "val0", "consensus_key": pub_hex(1), "self_bond": "10000000" }]),
    );
    assert_eq!(rejected_paths(&doc), ["validators"]);
}

#[test]
fn a_self_bond_above_the_operators_balance_or_below_one_power_is_rejected() {
    let doc = with(
        valid(),
        "/app_state/validators/0/self_bond",
        json!("10000001"),
    );
    assert_eq!(rejected_paths(&doc), ["app_state.validators[0].self_bond"]);
    let doc = with(
        valid(),
        "/app_state/validators/1/self_bond",
        json!("999999"),
    );
    assert_eq!(rejected_paths(&doc), ["app_state.validators[1].self_bond"]);
    let doc = with(
        valid(),
        "/app_state/validators/1/consensus_key",
        json!(pub_hex(1)),
    );
    assert_eq!(
        rejected_paths(&doc),
        ["app_state.validators[1].consensus_key"]
    );
}
