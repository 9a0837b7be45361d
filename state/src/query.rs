//! ABCI queries of the modules, served from the last commit. Each path takes a protobuf request in
//! `data` and answers a protobuf response in `value` (the node's gRPC services map onto these 1:1):
//!
//! | path | request → response |
//! |---|---|
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

use lode_proto::{gov::v1 as govpb, nft::v1 as nftpb, query::v1 as qpb, staking::v1 as stpb};
use prost::Message;

use crate::{
    address::Address,
    error::StoreError,
    modules::{
        bank, gov,
        gov::{msg::options_pb, state_key as gk, Proposal, StoredTally},
        nft::{self, state_key as nk},
        staking::{self, address_at, state_key as sk},
    },
    params,
    store::{KeyValue, Store},
};

/// Query result codes (shared with `app::query_code`).
pub mod code {
    pub const INTERNAL: u32 = 1;
    pub const INVALID_ADDRESS: u32 = 13;
    pub const UNKNOWN_PATH: u32 = 30;
    pub const INVALID_REQUEST: u32 = 33;
    pub const NOT_FOUND: u32 = 34;
}

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1_000;

/// A failed query: code and log.
pub type QueryError = (u32, String);

fn internal(e: StoreError) -> QueryError {
    (code::INTERNAL, e.to_string())
}

fn req<T: Message + Default>(data: &[u8]) -> Result<T, QueryError> {
    T::decode(data).map_err(|e| {
        (
            code::INVALID_REQUEST,
            format!("request does not decode: {e}"),
        )
    })
}

fn addr(s: &str) -> Result<Address, QueryError> {
    s.parse().map_err(|e: crate::address::AddressError| {
        (code::INVALID_ADDRESS, format!("invalid address: {e}"))
    })
}

fn page(
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

/// Serves one module query path; `None` if the path is not a module query.
pub fn handle(store: &Store, path: &str, data: &[u8]) -> Option<Result<Vec<u8>, QueryError>> {
    let r = match path {
        "/params" => params_q(store, data),
        "/staking/validators" => validators(store, data),
        "/staking/delegations" => delegations(store, data),
        "/gov/proposals" => proposals(store, data),
        "/gov/proposal" => proposal(store, data),
        "/gov/votes" => votes(store, data),
        "/gov/deposits" => deposits(store, data),
        "/gov/treasury" => treasury(store),
        "/nft/collections" => collections(store, data),
        "/nft/collection" => collection(store, data),
        "/nft/tokens_by_owner" => tokens_by_owner(store, data),
        "/nft/token" => token(store, data),
        "/nft/listings" => listings(store, data),
        _ => return None,
    };
    Some(r)
}

fn params_q(store: &Store, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: qpb::ParamsRequest = req(data)?;
    let p = params::load(store).map_err(internal)?;
    let json = match r.module.as_str() {
        "" => serde_json::to_string(&p),
        "gov" => serde_json::to_string(&p.gov),
        "staking" => serde_json::to_string(&p.staking),
        "nft" => serde_json::to_string(&p.nft),
        other => return Err((code::INVALID_REQUEST, format!("unknown module {other:?}"))),
    }
    .map_err(|e| (code::INTERNAL, e.to_string()))?;
    Ok(qpb::ParamsResponse { json }.encode_to_vec())
}

fn validators(store: &Store, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: stpb::ValidatorsRequest = req(data)?;
    let (items, pagination) = page(store, sk::VALIDATOR_PREFIX, r.pagination)?;
    let mut out = Vec::new();
    for (k, v) in items {
        let op = address_at(&k, sk::VALIDATOR_PREFIX.len()).map_err(internal)?;
        let val: staking::Validator = staking::decode(&k, &v).map_err(internal)?;
        out.push(stpb::Validator {
            operator: op.to_string(),
            consensus_key: val.consensus_key.to_vec(),
            moniker: val.moniker,
            tokens: val.tokens.to_string(),
        });
    }
    Ok(stpb::ValidatorsResponse {
        validators: out,
        pagination,
        total_bonded: staking::total_bonded(store).map_err(internal)?.to_string(),
    }
    .encode_to_vec())
}

fn delegations(store: &Store, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: stpb::DelegationsRequest = req(data)?;
    let del = addr(&r.delegator)?;
    let delegations = staking::delegations_of(store, &del)
        .map_err(internal)?
        .into_iter()
        .map(|(v, a)| stpb::Delegation {
            delegator: del.to_string(),
            validator: v.to_string(),
            amount: a.to_string(),
        })
        .collect();
    let unbonding = staking::unbonding_entries(store)
        .map_err(internal)?
        .into_iter()
        .filter(|(_, d, _, _)| *d == del)
        .map(|(h, d, v, a)| stpb::UnbondingEntry {
            delegator: d.to_string(),
            validator: v.to_string(),
            amount: a.to_string(),
            completion_height: h,
        })
        .collect();
    Ok(stpb::DelegationsResponse {
        delegations,
        unbonding,
    }
    .encode_to_vec())
}

fn tally_pb(t: &StoredTally) -> govpb::TallyResult {
    govpb::TallyResult {
        yes: t.yes.to_string(),
        abstain: t.abstain.to_string(),
        no: t.no.to_string(),
        no_with_veto: t.no_with_veto.to_string(),
        total_bonded: t.total_bonded.to_string(),
        outcome: t.outcome.clone(),
    }
}

/// The wire form of a proposal.
pub fn proposal_pb(p: &Proposal) -> govpb::Proposal {
    govpb::Proposal {
        id: p.id,
        proposer: p.proposer.to_string(),
        title: p.title.clone(),
        description: p.description.clone(),
        content: Some((&p.content).into()),
        status: p.status as i32,
        submit_height: p.submit_height,
        deposit_end_height: p.deposit_end_height,
        voting_start_height: p.voting_start_height,
        voting_end_height: p.voting_end_height,
        total_deposit: p.total_deposit.to_string(),
        final_tally: p.final_tally.as_ref().map(tally_pb),
        failure_reason: p.failure_reason.clone(),
    }
}

fn load_proposal(store: &Store, id: u64) -> Result<Proposal, QueryError> {
    gov::proposal(store, id)
        .map_err(internal)?
        .ok_or((code::NOT_FOUND, format!("unknown proposal {id}")))
}

fn id_suffix(k: &[u8]) -> Result<u64, QueryError> {
    k.len()
        .checked_sub(8)
        .and_then(|at| <[u8; 8]>::try_from(&k[at..]).ok())
        .map(u64::from_be_bytes)
        .ok_or((code::INTERNAL, "corrupt proposal key".into()))
}

fn proposals(store: &Store, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: govpb::ProposalsRequest = req(data)?;
    let status = u8::try_from(r.status)
        .ok()
        .filter(|s| *s <= 6)
        .ok_or((code::INVALID_REQUEST, "unknown status".into()))?;
    let prefix = if status == 0 {
        gk::PROPOSAL_PREFIX.to_vec()
    } else {
        gk::status_prefix(status)
    };
    let (items, pagination) = page(store, &prefix, r.pagination)?;
    let mut out = Vec::with_capacity(items.len());
    for (k, _) in items {
        out.push(proposal_pb(&load_proposal(store, id_suffix(&k)?)?));
    }
    Ok(govpb::ProposalsResponse {
        proposals: out,
        pagination,
    }
    .encode_to_vec())
}

fn proposal(store: &Store, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: govpb::ProposalRequest = req(data)?;
    let p = load_proposal(store, r.id)?;
    let tally = match &p.final_tally {
        Some(t) => Some(tally_pb(t)),
        None if p.status == gov::ProposalStatus::VotingPeriod => {
            let t = gov::current_tally(store, p.id).map_err(internal)?;
            Some(tally_pb(&StoredTally::new(&t, "")))
        }
        None => None,
    };
    Ok(govpb::ProposalResponse {
        proposal: Some(proposal_pb(&p)),
        tally,
    }
    .encode_to_vec())
}

fn votes(store: &Store, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: govpb::VotesRequest = req(data)?;
    load_proposal(store, r.proposal_id)?;
    let prefix = gk::votes_of(r.proposal_id);
    let (items, pagination) = page(store, &prefix, r.pagination)?;
    let mut out = Vec::new();
    for (k, v) in items {
        let voter = address_at(&k, prefix.len()).map_err(internal)?;
        let opts: Vec<(gov::VoteOption, u32)> = staking::decode(&k, &v).map_err(internal)?;
        out.push(govpb::Vote {
            proposal_id: r.proposal_id,
            voter: voter.to_string(),
            options: options_pb(&opts),
        });
    }
    Ok(govpb::VotesResponse {
        votes: out,
        pagination,
    }
    .encode_to_vec())
}

fn deposits(store: &Store, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: govpb::DepositsRequest = req(data)?;
    load_proposal(store, r.proposal_id)?;
    let prefix = gk::deposits_of(r.proposal_id);
    let (items, pagination) = page(store, &prefix, r.pagination)?;
    let mut out = Vec::new();
    for (k, v) in items {
        let who = address_at(&k, prefix.len()).map_err(internal)?;
        let amount = <[u8; 16]>::try_from(v.as_slice())
            .map(u128::from_le_bytes)
            .map_err(|_| (code::INTERNAL, "corrupt deposit".to_string()))?;
        out.push(govpb::Deposit {
            proposal_id: r.proposal_id,
            depositor: who.to_string(),
            amount: amount.to_string(),
        });
    }
    Ok(govpb::DepositsResponse {
        deposits: out,
        pagination,
    }
    .encode_to_vec())
}

fn treasury(store: &Store) -> Result<Vec<u8>, QueryError> {
    let t = gov::treasury();
    let balance = bank::account(store, &t).map_err(internal)?.balance;
    Ok(govpb::TreasuryResponse {
        address: t.to_string(),
        balance: balance.to_string(),
    }
    .encode_to_vec())
}

fn collection_pb(id: &str, c: &nft::Collection) -> nftpb::Collection {
    nftpb::Collection {
        id: id.to_string(),
        creator: c.creator.to_string(),
        name: c.name.clone(),
        symbol: c.symbol.clone(),
        uri: c.uri.clone(),
        royalty_bps: c.royalty_bps,
        max_supply: c.max_supply.unwrap_or(0),
        open_mint: c.open_mint,
        minted: c.minted,
        supply: c.supply,
    }
}

fn token_pb(c: &str, id: &str, t: &nft::Token) -> nftpb::Token {
    nftpb::Token {
        collection: c.to_string(),
        id: id.to_string(),
        owner: t.owner.to_string(),
        uri: t.uri.clone(),
        approved: t.approval.map(|(a, _)| a.to_string()).unwrap_or_default(),
        approval_expiry_height: t.approval.and_then(|(_, e)| e).unwrap_or(0),
    }
}

fn listing_pb(c: &str, id: &str, l: &nft::Listing) -> nftpb::Listing {
    nftpb::Listing {
        collection: c.to_string(),
        token_id: id.to_string(),
        seller: l.seller.to_string(),
        price: l.price.to_string(),
    }
}

/// Splits a `collection/token` key suffix.
fn split_ids(suffix: &[u8]) -> Result<(String, String), QueryError> {
    let s = std::str::from_utf8(suffix).map_err(|e| (code::INTERNAL, e.to_string()))?;
    s.split_once('/')
        .map(|(c, t)| (c.to_string(), t.to_string()))
        .ok_or((code::INTERNAL, "corrupt token key".into()))
}

fn collections(store: &Store, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: nftpb::CollectionsRequest = req(data)?;
    let (items, pagination) = page(store, nk::COLLECTION_PREFIX, r.pagination)?;
    let mut out = Vec::new();
    for (k, v) in items {
        let id = String::from_utf8_lossy(&k[nk::COLLECTION_PREFIX.len()..]).into_owned();
        let c: nft::Collection = staking::decode(&k, &v).map_err(internal)?;
        out.push(collection_pb(&id, &c));
    }
    Ok(nftpb::CollectionsResponse {
        collections: out,
        pagination,
    }
    .encode_to_vec())
}

fn collection(store: &Store, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: nftpb::CollectionRequest = req(data)?;
    let c = nft::collection(store, &r.id)
        .map_err(internal)?
        .ok_or((code::NOT_FOUND, format!("unknown collection {:?}", r.id)))?;
    Ok(nftpb::CollectionResponse {
        collection: Some(collection_pb(&r.id, &c)),
    }
    .encode_to_vec())
}

fn tokens_by_owner(store: &Store, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: nftpb::TokensByOwnerRequest = req(data)?;
    let owner = addr(&r.owner)?;
    let prefix = nk::owned_by(&owner);
    let (items, pagination) = page(store, &prefix, r.pagination)?;
    let mut out = Vec::new();
    for (k, _) in items {
        let (c, t) = split_ids(&k[prefix.len()..])?;
        if let Some(tok) = nft::token(store, &c, &t).map_err(internal)? {
            out.push(token_pb(&c, &t, &tok));
        }
    }
    Ok(nftpb::TokensByOwnerResponse {
        tokens: out,
        pagination,
    }
    .encode_to_vec())
}

fn token(store: &Store, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: nftpb::TokenRequest = req(data)?;
    let t = nft::token(store, &r.collection, &r.id)
        .map_err(internal)?
        .ok_or((
            code::NOT_FOUND,
            format!("unknown token {:?}/{:?}", r.collection, r.id),
        ))?;
    let listing = nft::listing(store, &r.collection, &r.id)
        .map_err(internal)?
        .map(|l| listing_pb(&r.collection, &r.id, &l));
    Ok(nftpb::TokenResponse {
        token: Some(token_pb(&r.collection, &r.id, &t)),
        listing,
    }
    .encode_to_vec())
}

fn listings(store: &Store, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: nftpb::ListingsRequest = req(data)?;
    let prefix = if r.collection.is_empty() {
        nk::LISTING_PREFIX.to_vec()
    } else {
        nk::listings_of_collection(&r.collection)
    };
    let (items, pagination) = page(store, &prefix, r.pagination)?;
    let mut out = Vec::new();
    for (k, v) in items {
        let (c, t) = split_ids(&k[nk::LISTING_PREFIX.len()..])?;
        let l: nft::Listing = staking::decode(&k, &v).map_err(internal)?;
        out.push(listing_pb(&c, &t, &l));
    }
    Ok(nftpb::ListingsResponse {
        listings: out,
        pagination,
    }
    .encode_to_vec())
}
