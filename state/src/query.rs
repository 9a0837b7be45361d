//! ABCI queries, routed to the modules through the registry (each module serves its paths in its
//! `query.rs`). Each path takes a protobuf request in `data` and answers a protobuf response in `value` (the
//! node's gRPC services map onto these 1:1). [`answer`] serves every path at any held height, with an ICS-23
//! proof of every state entry the handler read when asked (docs/proofs.md); paths that list a key prefix
//! only at the last commit.
//!
//! | path | request → response |
//! |---|---|
//! | `/account` | the bech32 address → `lode.query.v1.Account` |
//! | `/params` | `lode.query.v1.ParamsRequest` → `ParamsResponse` (JSON) |
//! | `/staking/validators` | `lode.staking.v1.ValidatorsRequest` → `ValidatorsResponse` |
//! | `/staking/delegations` | `DelegationsRequest` → `DelegationsResponse` |
//! | `/gov/proposals` | `lode.gov.v1.ProposalsRequest` (status filter, page) → `ProposalsResponse` |
//! | `/gov/proposal` | `ProposalRequest` → `ProposalResponse` (with final or running tally) |
//! | `/gov/votes` | `VotesRequest` → `VotesResponse` |
//! | `/gov/deposits` | `DepositsRequest` → `DepositsResponse` |
//! | `/gov/treasury` | `TreasuryRequest` → `TreasuryResponse` |
//! | `/nft/collections` | `lode.nft.v1.CollectionsRequest` → `CollectionsResponse` |
//! | `/nft/collection` | `CollectionRequest` → `CollectionResponse` |
//! | `/nft/tokens_by_owner` | `TokensByOwnerRequest` → `TokensByOwnerResponse` |
//! | `/nft/token` | `TokenRequest` → `TokenResponse` (with its listing) |
//! | `/nft/listings` | `ListingsRequest` → `ListingsResponse` |
//!
//! Pagination: `PageRequest { key, limit }` where `key` is the previous page's `next_key` (an opaque state-key
//! suffix); `limit` 0 means 100, at most 1000.

use lode_proto::query::v1 as qpb;
use prost::Message;

use crate::{
    address::Address,
    error::StoreError,
    modules, params,
    store::{KeyValue, StateRead, StateView, Store},
};

/// Query result codes (in the shared range of [`crate::error::CORE_CODES`]; `13` is the tx code of an
/// invalid address, on purpose).
pub mod code {
    pub const OK: u32 = 0;
    pub const INTERNAL: u32 = 1;
    pub const INVALID_ADDRESS: u32 = 13;
    pub const UNKNOWN_PATH: u32 = 30;
    pub const HEIGHT_UNAVAILABLE: u32 = 31;
    pub const NOT_INITIALIZED: u32 = 32;
    pub const INVALID_REQUEST: u32 = 33;
    pub const NOT_FOUND: u32 = 34;
    /// The node does not hold the state of the requested height (before its genesis, or pruned).
    pub const HEIGHT_PRUNED: u32 = 35;
    /// A listing (prefix scan) asked at a past height: served at the last commit only.
    pub const PAST_LISTING: u32 = 36;
    /// A proven query that reads more state keys than a proof may cover.
    pub const TOO_MANY_KEYS: u32 = 37;
}

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1_000;

/// A failed query: code and log.
pub type QueryError = (u32, String);

pub(crate) fn internal(e: StoreError) -> QueryError {
    (code::INTERNAL, e.to_string())
}

pub(crate) fn req<T: Message + Default>(data: &[u8]) -> Result<T, QueryError> {
    T::decode(data).map_err(|e| {
        (
            code::INVALID_REQUEST,
            format!("request does not decode: {e}"),
        )
    })
}

pub(crate) fn addr(s: &str) -> Result<Address, QueryError> {
    s.parse().map_err(|e: crate::address::AddressError| {
        (code::INVALID_ADDRESS, format!("invalid address: {e}"))
    })
}

pub(crate) fn page(
    store: &dyn QueryRead,
    prefix: &[u8],
    p: Option<qpb::PageRequest>,
) -> Result<(Vec<KeyValue>, Option<qpb::PageResponse>), QueryError> {
    let p = p.unwrap_or_default();
    let limit = match p.limit {
        0 => DEFAULT_LIMIT,
        l => l.min(MAX_LIMIT),
    } as usize;
    let (items, next) = store.scan_page(prefix, &p.key, limit).map_err(internal)?;
    Ok((
        items,
        Some(qpb::PageResponse {
            next_key: next.unwrap_or_default(),
        }),
    ))
}

/// Read access for query handlers: the state of one height, with paged prefix scans. The node hands
/// handlers the last commit ([`StateView`]), a past height (point reads through the JMT's value history),
/// or, for proofs, either wrapped in a [`Recorder`]; a client replays a handler over proven entries
/// ([`ProvenState`]).
pub trait QueryRead: StateRead {
    /// One page of (key, value) pairs under `prefix` from `prefix ‖ start` (inclusive), at most `limit`;
    /// the second value is the suffix (after `prefix`) of the next key, if any.
    fn scan_page(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<(Vec<KeyValue>, Option<Vec<u8>>), StoreError>;
}

impl QueryRead for Store {
    fn scan_page(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<(Vec<KeyValue>, Option<Vec<u8>>), StoreError> {
        Store::scan_page(self, prefix, start, limit)
    }
}

impl QueryRead for StateView<'_> {
    fn scan_page(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<(Vec<KeyValue>, Option<Vec<u8>>), StoreError> {
        StateView::scan_page(self, prefix, start, limit)
    }
}

/// Why a read was refused part-way through a handler; the refusal becomes the query's code whatever the
/// handler made of the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    TooManyKeys,
    PastListing,
}

/// The state of a past height: point reads through the JMT's value history at its version. Listing by
/// prefix is not possible there (the tree is keyed by key hashes and the plain-key table holds only the
/// last commit), so a scan is refused with [`code::PAST_LISTING`].
struct PastState<'a> {
    store: &'a Store,
    version: u64,
    refused: std::cell::Cell<Option<Refusal>>,
}

impl StateRead for PastState<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get_at(key, self.version)
    }

    fn scan_prefix(&self, _prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.refused.set(Some(Refusal::PastListing));
        Err(StoreError::Jmt("listing at a past height".into()))
    }
}

impl QueryRead for PastState<'_> {
    fn scan_page(
        &self,
        _prefix: &[u8],
        _start: &[u8],
        _limit: usize,
    ) -> Result<(Vec<KeyValue>, Option<Vec<u8>>), StoreError> {
        self.refused.set(Some(Refusal::PastListing));
        Err(StoreError::Jmt("listing at a past height".into()))
    }
}

/// Records every state entry a handler reads (the keys of point reads, present or absent, and every entry
/// a scan returned), up to `max_keys` distinct keys; past that, reads fail and the query answers
/// [`code::TOO_MANY_KEYS`]. A page scan reads one entry more than it returns, so the entry that makes
/// `next_key` is proven too and a replay over the recorded entries pages the same way.
pub struct Recorder<'a> {
    base: &'a dyn QueryRead,
    max_keys: usize,
    read: std::cell::RefCell<std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
    refused: std::cell::Cell<Option<Refusal>>,
}

impl std::fmt::Debug for Recorder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("max_keys", &self.max_keys)
            .field("read", &self.read.borrow().len())
            .finish_non_exhaustive()
    }
}

impl<'a> Recorder<'a> {
    fn new(base: &'a dyn QueryRead, max_keys: usize) -> Self {
        Recorder {
            base,
            max_keys,
            read: Default::default(),
            refused: Default::default(),
        }
    }

    fn record(
        &self,
        entries: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<(), StoreError> {
        let mut read = self.read.borrow_mut();
        for (k, v) in entries {
            read.insert(k, v);
            if read.len() > self.max_keys {
                self.refused.set(Some(Refusal::TooManyKeys));
                return Err(StoreError::Jmt(format!(
                    "a proven query may read at most {} keys",
                    self.max_keys
                )));
            }
        }
        Ok(())
    }
}

impl StateRead for Recorder<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.read.borrow().get(key) {
            return Ok(v.clone());
        }
        let v = self.base.get(key)?;
        self.record([(key.to_vec(), v.clone())])?;
        Ok(v)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let items = self.base.scan_prefix(prefix)?;
        self.record(items.iter().map(|(k, v)| (k.clone(), Some(v.clone()))))?;
        Ok(items)
    }
}

impl QueryRead for Recorder<'_> {
    fn scan_page(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<(Vec<KeyValue>, Option<Vec<u8>>), StoreError> {
        let (mut items, _) = self
            .base
            .scan_page(prefix, start, limit.saturating_add(1))?;
        self.record(items.iter().map(|(k, v)| (k.clone(), Some(v.clone()))))?;
        let next = if items.len() > limit {
            let extra = items.split_off(limit);
            extra
                .first()
                .and_then(|(k, _)| k.strip_prefix(prefix))
                .map(<[u8]>::to_vec)
        } else {
            None
        };
        Ok((items, next))
    }
}

/// State made of proven entries only (key → value, or None for a key proven absent), for a client that
/// replays a query handler over the entries of an answer ([`replay`]): a read of a key the answer did not
/// prove is an error, and scans see exactly the proven entries.
#[derive(Debug, Clone, Default)]
pub struct ProvenState {
    entries: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl ProvenState {
    pub fn new(entries: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>) -> Self {
        ProvenState {
            entries: entries.into_iter().collect(),
        }
    }

    fn live_from(&self, from: Vec<u8>) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> {
        self.entries
            .range(from..)
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }
}

impl StateRead for ProvenState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.entries
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt {
                key: hex::encode(key),
                reason: "read of a key the answer does not prove".into(),
            })
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        Ok(self
            .live_from(prefix.to_vec())
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl QueryRead for ProvenState {
    fn scan_page(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<(Vec<KeyValue>, Option<Vec<u8>>), StoreError> {
        let mut from = prefix.to_vec();
        from.extend_from_slice(start);
        crate::store::page_under(self.live_from(from).map(Ok), prefix, limit)
    }
}

/// A query: a path, its protobuf request, the height (0: the last commit) and whether to prove the answer.
#[derive(Debug, Clone, Copy)]
pub struct QueryRequest<'a> {
    pub path: &'a str,
    pub data: &'a [u8],
    pub height: i64,
    pub prove: bool,
}

/// Bounds on one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Distinct state keys a proven query may read (each gets a proof); past it: [`code::TOO_MANY_KEYS`].
    pub max_proven_keys: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_proven_keys: MAX_PROVEN_KEYS,
        }
    }
}

/// The default of [`QueryLimits::max_proven_keys`].
pub const MAX_PROVEN_KEYS: usize = 1_024;
/// The longest query path accepted.
pub const MAX_PATH_BYTES: usize = 128;
/// The largest request (`data`) accepted.
pub const MAX_DATA_BYTES: usize = 64 * 1024;
/// The ICS-23 proof op type of Lode's JMT proofs (ABCI `ProofOp.type`).
pub const PROOF_OP_TYPE: &str = "ics23:jmt-sha256";

/// The ICS-23 spec of Lode's proofs: jmt 0.12's (`jmt::ics23_spec`), except that a leaf's value is carried
/// already hashed (`prehash_value: NO_HASH`, the proof's `value` is SHA-256 of the stored value). The leaf
/// hash, `SHA-256("JMT::LeafNode" ‖ SHA-256(key) ‖ SHA-256(value))`, and so every root, are the same; but
/// ICS-23 verifiers refuse an empty value, and Lode's index entries (`nft/owner/…`, `market/by_status/…`)
/// store empty values, which as hashes are 32 bytes like any other. Defined in the client crate, which
/// verifiers use; a test holds it equal to jmt's with that one change.
pub fn proof_spec() -> ics23::ProofSpec {
    lode_client::proof::spec()
}

/// One proven state entry: the key, its value at the height (None: proven absent), and the protobuf
/// encoding of an `ics23.CommitmentProof` (existence or non-existence) against the height's app hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenEntry {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    pub proof: Vec<u8>,
}

/// A query's answer: the encoded response, the height it was read at, that height's app hash, and (when
/// asked) a proof of every state entry the response was built from, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryAnswer {
    pub value: Vec<u8>,
    pub height: u64,
    pub app_hash: [u8; 32],
    pub proofs: Vec<ProvenEntry>,
}

/// Runs the handler of `path` over `state`; `None` if no one serves the path.
fn dispatch(state: &dyn QueryRead, path: &str, data: &[u8]) -> Option<Result<Vec<u8>, QueryError>> {
    if path == "/params" {
        return Some(params_q(state, data));
    }
    modules::query(state, path, data)
}

/// Serves a query path at the last commit (no proof); `None` if no one serves the path.
pub fn handle(store: &Store, path: &str, data: &[u8]) -> Option<Result<Vec<u8>, QueryError>> {
    dispatch(store, path, data)
}

/// Re-runs the handler of a query over the entries its answer proved, as a client checks that a proven
/// answer is what those entries give: the result must equal the answer's value byte for byte.
pub fn replay(
    path: &str,
    data: &[u8],
    entries: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
) -> Result<Vec<u8>, QueryError> {
    let state = ProvenState::new(entries);
    dispatch(&state, path, data)
        .unwrap_or_else(|| Err((code::UNKNOWN_PATH, format!("unknown query path {path:?}"))))
}

/// Serves any query path at a retained height, with ICS-23 proofs of every entry read when asked. The last
/// commit is read from one RocksDB snapshot; a past height through the JMT at its version (point reads
/// only: a listing there is [`code::PAST_LISTING`]).
pub fn answer(
    store: &Store,
    req: &QueryRequest<'_>,
    limits: QueryLimits,
) -> Result<QueryAnswer, QueryError> {
    if req.path.len() > MAX_PATH_BYTES {
        return Err((
            code::INVALID_REQUEST,
            format!("query path longer than {MAX_PATH_BYTES} bytes"),
        ));
    }
    if req.data.len() > MAX_DATA_BYTES {
        return Err((
            code::INVALID_REQUEST,
            format!(
                "query data of {} bytes is over the limit of {MAX_DATA_BYTES}",
                req.data.len()
            ),
        ));
    }
    let view = store
        .view()
        .map_err(internal)?
        .ok_or((code::NOT_INITIALIZED, "chain not initialised".to_string()))?;
    let last = view.record().clone();
    let height = match req.height {
        h if h < 0 => {
            return Err((
                code::INVALID_REQUEST,
                format!("height {h} is negative (0: the last commit)"),
            ))
        }
        0 => last.height,
        h => h as u64,
    };
    if height > last.height {
        return Err((
            code::HEIGHT_UNAVAILABLE,
            format!("height {height} is above the last commit {}", last.height),
        ));
    }
    let pruned = || {
        (
            code::HEIGHT_PRUNED,
            format!(
                "the state of height {height} is not held by this node (first height held: {})",
                last.initial_height.saturating_sub(1)
            ),
        )
    };
    let version = last.version_of(height).ok_or_else(pruned)?;
    let app_hash = if height == last.height {
        last.app_hash
    } else {
        store
            .root_option(version)
            .map_err(internal)?
            .ok_or_else(pruned)?
    };
    let past = PastState {
        store,
        version,
        refused: Default::default(),
    };
    let base: &dyn QueryRead = if height == last.height { &view } else { &past };
    let recorder = Recorder::new(base, limits.max_proven_keys);
    let state: &dyn QueryRead = if req.prove { &recorder } else { base };
    let result = dispatch(state, req.path, req.data).unwrap_or_else(|| {
        Err((
            code::UNKNOWN_PATH,
            format!("unknown query path {:?}", req.path),
        ))
    });
    match recorder.refused.get().or(past.refused.get()) {
        Some(Refusal::TooManyKeys) => {
            return Err((
                code::TOO_MANY_KEYS,
                format!(
                    "{} reads more than {} state keys; a proven query must stay under that (ask for a smaller page)",
                    req.path, limits.max_proven_keys
                ),
            ))
        }
        Some(Refusal::PastListing) => {
            return Err((
                code::PAST_LISTING,
                format!(
                    "{} lists by key prefix, which is served at the last commit ({}) only",
                    req.path, last.height
                ),
            ))
        }
        None => {}
    }
    let value = result?;
    let mut proofs = Vec::new();
    if req.prove {
        let read = recorder.read.into_inner();
        proofs.reserve(read.len());
        for (key, seen) in read {
            let (value, proof) = store
                .get_with_ics23_proof(&key, version)
                .map_err(internal)?;
            if value != seen {
                return Err((
                    code::INTERNAL,
                    format!(
                        "state key {} read differently from the tree at height {height}",
                        hex::encode(&key)
                    ),
                ));
            }
            proofs.push(ProvenEntry {
                key,
                value,
                proof: prost013::Message::encode_to_vec(&proof),
            });
        }
    }
    Ok(QueryAnswer {
        value,
        height,
        app_hash,
        proofs,
    })
}

fn params_q(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: qpb::ParamsRequest = req(data)?;
    let p = params::load(store).map_err(internal)?;
    let json = match r.module.as_str() {
        "" => serde_json::to_string(&p),
        "gov" => serde_json::to_string(&p.gov),
        "staking" => serde_json::to_string(&p.staking),
        "nft" => serde_json::to_string(&p.nft),
        "market" => serde_json::to_string(&p.market),
        "compute" => serde_json::to_string(&p.compute),
        other => return Err((code::INVALID_REQUEST, format!("unknown module {other:?}"))),
    }
    .map_err(|e| (code::INTERNAL, e.to_string()))?;
    Ok(qpb::ParamsResponse { json }.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CommitBatch, CommitRecord, Writes};

    #[test]
    fn the_proof_spec_is_jmts_with_the_value_carried_hashed() {
        let mut want = jmt::ics23_spec();
        if let Some(leaf) = want.leaf_spec.as_mut() {
            leaf.prehash_value = ics23::HashOp::NoHash.into();
        }
        assert_eq!(proof_spec(), want);
    }

    /// A store whose genesis (version 0, height `initial - 1`) holds `keys`, then one empty block per
    /// `blocks`.
    fn store(dir: &std::path::Path, initial: u64, keys: &[(&[u8], &[u8])], blocks: u64) -> Store {
        let store = Store::open(dir).expect("open");
        let mut set: Writes = keys
            .iter()
            .map(|(k, v)| (k.to_vec(), Some(v.to_vec())))
            .collect();
        for version in 0..=blocks {
            let (root, tree) = store.compute_root(&set, version).expect("root");
            store
                .commit(CommitBatch {
                    record: CommitRecord {
                        chain_id: "t".into(),
                        initial_height: initial,
                        height: initial - 1 + version,
                        app_hash: root.0,
                    },
                    writes: std::mem::take(&mut set),
                    tree,
                    block: None,
                    tx_hashes: vec![],
                    tx_ok: vec![],
                    tx_accounts: vec![],
                })
                .expect("commit");
        }
        store
    }

    fn ask(
        store: &Store,
        path: &str,
        data: &[u8],
        height: i64,
        max: usize,
    ) -> Result<QueryAnswer, QueryError> {
        answer(
            store,
            &QueryRequest {
                path,
                data,
                height,
                prove: true,
            },
            QueryLimits {
                max_proven_keys: max,
            },
        )
    }

    #[test]
    fn a_page_scan_records_the_entry_after_the_page_and_replays_the_same() {
        let entries: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0u8..6)
            .map(|i| (vec![b'p', i], Some(vec![i])))
            .chain([(b"q".to_vec(), Some(vec![9]))])
            .collect();
        let base = ProvenState::new(entries);
        let rec = Recorder::new(&base, 100);
        let (items, next) = rec.scan_page(b"p", &[1], 2).expect("page");
        assert_eq!(items.len(), 2);
        assert_eq!(next, Some(vec![3]));
        // The two returned and the one that makes `next_key`.
        let read = rec.read.borrow().clone();
        assert_eq!(read.len(), 3);
        let replayed = ProvenState::new(read);
        assert_eq!(
            replayed.scan_page(b"p", &[1], 2).expect("replay"),
            (items, next)
        );
        // A key the recorder did not see is an error on replay, not an absence.
        assert!(replayed.get(b"q").is_err());
    }

    #[test]
    fn a_proven_query_past_its_key_cap_is_refused_with_its_code() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = store(dir.path(), 1, &[(b"x", b"y")], 1);
        let data = qpb::ParamsRequest::default().encode_to_vec();
        // `/params` reads one key (absent here: the defaults).
        let ok = ask(&s, "/params", &data, 0, 1).expect("within the cap");
        assert_eq!(ok.proofs.len(), 1);
        assert_eq!(ok.proofs[0].value, None);
        let err = ask(&s, "/params", &data, 0, 0).expect_err("over the cap");
        assert_eq!(err.0, code::TOO_MANY_KEYS, "{}", err.1);
        // Without a proof there is no cap.
        let r = answer(
            &s,
            &QueryRequest {
                path: "/params",
                data: &data,
                height: 0,
                prove: false,
            },
            QueryLimits { max_proven_keys: 0 },
        )
        .expect("unproven");
        assert!(r.proofs.is_empty());
    }

    #[test]
    fn heights_outside_the_held_range_and_past_listings_get_their_codes() {
        let dir = tempfile::tempdir().expect("tmp");
        // Genesis at height 9 (initial height 10), then blocks 10 and 11.
        let s = store(dir.path(), 10, &[(b"x", b"y")], 2);
        let data = qpb::ParamsRequest::default().encode_to_vec();
        let code_of = |path: &str, data: &[u8], h: i64| {
            ask(&s, path, data, h, 100)
                .map(|a| a.height)
                .map_err(|e| e.0)
        };
        assert_eq!(code_of("/params", &data, 0), Ok(11));
        assert_eq!(code_of("/params", &data, 9), Ok(9));
        assert_eq!(code_of("/params", &data, 10), Ok(10));
        assert_eq!(code_of("/params", &data, 8), Err(code::HEIGHT_PRUNED));
        assert_eq!(code_of("/params", &data, 1), Err(code::HEIGHT_PRUNED));
        assert_eq!(code_of("/params", &data, 12), Err(code::HEIGHT_UNAVAILABLE));
        assert_eq!(code_of("/params", &data, -1), Err(code::INVALID_REQUEST));
        // A listing at a past height, and at the last one.
        let list = lode_proto::nft::v1::CollectionsRequest::default().encode_to_vec();
        assert_eq!(
            code_of("/nft/collections", &list, 10),
            Err(code::PAST_LISTING)
        );
        assert_eq!(code_of("/nft/collections", &list, 11), Ok(11));
        // Oversized and malformed requests, an unknown path.
        let big = vec![0u8; MAX_DATA_BYTES + 1];
        assert_eq!(code_of("/params", &big, 0), Err(code::INVALID_REQUEST));
        assert_eq!(
            code_of(&"/p".repeat(100), &data, 0),
            Err(code::INVALID_REQUEST)
        );
        assert_eq!(
            code_of("/params", &[0xff, 0xff], 0),
            Err(code::INVALID_REQUEST)
        );
        assert_eq!(code_of("/nope", &data, 0), Err(code::UNKNOWN_PATH));
        // Each height answers with its own root.
        let roots: Vec<[u8; 32]> = (9..=11)
            .map(|h| ask(&s, "/params", &data, h, 100).expect("answer").app_hash)
            .collect();
        for (v, root) in roots.iter().enumerate() {
            assert_eq!(*root, s.root_at(v as u64).expect("root"));
        }
    }
}
