//! The rules a genesis file must satisfy. Each check appends to a list instead of returning early, so one
//! run reports every problem.

use std::collections::BTreeMap;

use curve25519_dalek_ng::edwards::CompressedEdwardsY;
use time::{format_description::well_known::Rfc3339, OffsetDateTime, UtcOffset};

use crate::{Genesis, Issue};

/// Longest chain id accepted (CometBFT's limit).
pub const MAX_CHAIN_ID_LEN: usize = 50;

/// Largest total voting power (CometBFT's `MaxTotalVotingPower`, `i64::MAX / 8`), so priority arithmetic in
/// any engine cannot overflow.
pub const MAX_TOTAL_POWER: u64 = (i64::MAX / 8) as u64;

pub(crate) fn validate(g: &Genesis) -> Vec<Issue> {
    let mut issues = Vec::new();
    check_chain_id(&g.chain_id, &mut issues);
    if let Err(m) = parse_genesis_time(&g.genesis_time) {
        issues.push(Issue::new("genesis_time", m));
    }
    if g.initial_height == 0 {
        issues.push(Issue::new("initial_height", "must be at least 1"));
    } else if i64::try_from(g.initial_height).is_err() {
        issues.push(Issue::new(
            "initial_height",
            "must fit in a signed 64-bit integer",
        ));
    }
    let before = issues.len();
    check_validators(g, &mut issues);
    let app_issues = g.app_state.validate();
    if app_issues.is_empty() && issues.len() == before {
        check_staking_set(g, &mut issues);
    }
    issues.extend(
        app_issues
            .into_iter()
            .map(|i| Issue::new(format!("app_state.{}", i.path), i.message)),
    );
    issues
}

/// The consensus set must be the one the genesis validators' self-bonds give by the proof-of-useful-compute
/// rule every later block uses (`lode_state::genesis::validator_set`): one model of validators from height 1
/// on.
fn check_staking_set(g: &Genesis, issues: &mut Vec<Issue>) {
    let want = match lode_state::genesis::validator_set(&g.app_state) {
        Ok(w) => w,
        Err(e) => {
            issues.push(Issue::new("app_state", e.to_string()));
            return;
        }
    };
    let mut got: Vec<([u8; 32], u64)> = g
        .validators
        .iter()
        .filter_map(|v| Some((parse_ed25519_public_key(&v.pub_key).ok()?, v.power)))
        .collect();
    got.sort_by_key(|(k, _)| *k);
    if got != want {
        let show = |v: &[([u8; 32], u64)]| {
            v.iter()
                .map(|(k, p)| format!("{}={p}", hex::encode(k)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        issues.push(Issue::new(
            "validators",
            format!(
                "must be the set app_state.validators' self-bonds give ({}): [{}], not [{}]",
                lode_state::genesis::SET_RULE,
                show(&want),
                show(&got)
            ),
        ));
    }
}

fn check_chain_id(id: &str, issues: &mut Vec<Issue>) {
    if id.is_empty() {
        issues.push(Issue::new("chain_id", "must not be empty"));
        return;
    }
    if id.len() > MAX_CHAIN_ID_LEN {
        issues.push(Issue::new(
            "chain_id",
            format!(
                "is {} bytes long, at most {MAX_CHAIN_ID_LEN} allowed",
                id.len()
            ),
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        issues.push(Issue::new(
            "chain_id",
            "may contain only ASCII letters, digits, '-', '_' and '.'",
        ));
    } else if !id.as_bytes()[0].is_ascii_alphanumeric() {
        issues.push(Issue::new("chain_id", "must start with a letter or digit"));
    }
}

fn check_validators(g: &Genesis, issues: &mut Vec<Issue>) {
    if g.validators.is_empty() {
        issues.push(Issue::new(
            "validators",
            "at least one validator is required",
        ));
        return;
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut keys: BTreeMap<[u8; 32], usize> = BTreeMap::new();
    let mut total: u64 = 0;
    let mut overflow = false;
    for (i, v) in g.validators.iter().enumerate() {
        let at = |field: &str| format!("validators[{i}].{field}");
        if v.name.trim().is_empty() {
            issues.push(Issue::new(at("name"), "must not be empty"));
        } else if let Some(first) = names.insert(v.name.as_str(), i) {
            names.insert(v.name.as_str(), first);
            issues.push(Issue::new(
                at("name"),
                format!("duplicate of validators[{first}].name"),
            ));
        }
        match parse_ed25519_public_key(&v.pub_key) {
            Ok(key) => {
                if let Some(&first) = keys.get(&key) {
                    issues.push(Issue::new(
                        at("pub_key"),
                        format!("duplicate of validators[{first}].pub_key"),
                    ));
                } else {
                    keys.insert(key, i);
                }
            }
            Err(m) => issues.push(Issue::new(at("pub_key"), m)),
        }
        if v.power == 0 {
            issues.push(Issue::new(at("power"), "must be at least 1"));
        }
        match total.checked_add(v.power) {
            Some(t) => total = t,
            None => overflow = true,
        }
    }
    if overflow || total > MAX_TOTAL_POWER {
        issues.push(Issue::new(
            "validators",
            format!("total voting power exceeds the maximum {MAX_TOTAL_POWER}"),
        ));
    }
}

/// Parses an RFC 3339 timestamp that must be in UTC (`Z` or `+00:00`).
pub fn parse_genesis_time(s: &str) -> Result<OffsetDateTime, String> {
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("not an RFC 3339 timestamp such as 2025-01-01T00:00:00Z: {e}"))?;
    if t.offset() != UtcOffset::UTC {
        return Err("must be in UTC (end with 'Z')".to_owned());
    }
    Ok(t)
}

/// Parses a hex ed25519 public key and accepts it only if it is a canonical encoding of a curve point outside
/// the small-order subgroup (such keys would let anyone forge signatures under ZIP-215).
pub fn parse_ed25519_public_key(hex_key: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(hex_key).map_err(|e| format!("not hex: {e}"))?;
    let key: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("an ed25519 public key is 32 bytes, got {}", bytes.len()))?;
    let compressed = CompressedEdwardsY(key);
    let point = compressed
        .decompress()
        .ok_or("not a point on the ed25519 curve")?;
    if point.is_small_order() {
        return Err("a small-order point is not a valid public key".to_owned());
    }
    if point.compress() != compressed {
        return Err("not the canonical encoding of the point".to_owned());
    }
    Ok(key)
}
