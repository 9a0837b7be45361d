//! ABCI queries, routed to the modules through the registry (each module serves its paths in its
//! `query.rs`). Each path takes a protobuf request in `data` and answers a protobuf response in `value` (the
//! node's gRPC services map onto these 1:1). All but `/account` are served at the last commit only:
//!
//! | path | request → response |
//! |---|---|
//! | `/account` | the bech32 address → `lode.query.v1.Account`, at any retained height, with a proof |
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
    store::{CommitRecord, KeyValue, Store},
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
    store: &Store,
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

/// Serves one module query path; `None` if the path is not a module query./// A query that may name an older height and ask for a proof (served by [`Module::query_proven`]).
///
/// [`Module::query_proven`]: crate::module::Module::query_proven
#[derive(Debug, Clone, Copy)]
pub struct ProvenQuery<'a> {
    pub data: &'a [u8],
    /// The requested height; 0 or less means the last commit.
    pub height: i64,
    pub prove: bool,
    /// The last commit.
    pub last: &'a CommitRecord,
}

/// The answer to a [`ProvenQuery`]: the state key read, the encoded response, the borsh-encoded JMT proof
/// of the key against the height's app hash (when asked), and the height served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenAnswer {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub proof: Option<Vec<u8>>,
    pub height: u64,
}

/// Serves one last-commit query path (`/params` or a module's); `None` if no one serves the path.
pub fn handle(store: &Store, path: &str, data: &[u8]) -> Option<Result<Vec<u8>, QueryError>> {
    if path == "/params" {
        return Some(params_q(store, data));
    }
    modules::query(store, path, data)
}

/// Serves a path that may ask for an older height or a proof; `None` if no module serves it.
pub fn handle_proven(
    store: &Store,
    path: &str,
    query: &ProvenQuery<'_>,
) -> Option<Result<ProvenAnswer, QueryError>> {
    modules::query_proven(store, path, query)
}

fn params_q(store: &Store, data: &[u8]) -> Result<Vec<u8>, QueryError> {
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
