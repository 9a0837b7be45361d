//! nft's queries: collections, tokens (by owner, one with its listing) and listings.

use lode_proto::nft::v1 as nftpb;
use prost::Message;

use crate::codec::decode;
use crate::query::{addr, code, internal, page, req, QueryError, QueryRead};

use super::{self as nft, state_key as nk};

/// Serves nft's query paths.
pub fn handle(
    store: &dyn QueryRead,
    path: &str,
    data: &[u8],
) -> Option<Result<Vec<u8>, QueryError>> {
    Some(match path {
        "/nft/collections" => collections(store, data),
        "/nft/collection" => collection(store, data),
        "/nft/tokens_by_owner" => tokens_by_owner(store, data),
        "/nft/token" => token(store, data),
        "/nft/listings" => listings(store, data),
        _ => return None,
    })
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

/// A paged key without its prefix (paging by a prefix only returns keys that start with it).
fn key_suffix<'k>(k: &'k [u8], prefix: &[u8]) -> Result<&'k [u8], QueryError> {
    k.strip_prefix(prefix)
        .ok_or((code::INTERNAL, "corrupt key: outside its prefix".into()))
}

/// Splits a `collection/token` key suffix.
fn split_ids(suffix: &[u8]) -> Result<(String, String), QueryError> {
    let s = std::str::from_utf8(suffix).map_err(|e| (code::INTERNAL, e.to_string()))?;
    s.split_once('/')
        .map(|(c, t)| (c.to_string(), t.to_string()))
        .ok_or((code::INTERNAL, "corrupt token key".into()))
}

fn collections(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: nftpb::CollectionsRequest = req(data)?;
    let (items, pagination) = page(store, nk::COLLECTION_PREFIX, r.pagination)?;
    let mut out = Vec::new();
    for (k, v) in items {
        let id = String::from_utf8_lossy(key_suffix(&k, nk::COLLECTION_PREFIX)?).into_owned();
        let c: nft::Collection = decode(&k, &v).map_err(internal)?;
        out.push(collection_pb(&id, &c));
    }
    Ok(nftpb::CollectionsResponse {
        collections: out,
        pagination,
    }
    .encode_to_vec())
}

fn collection(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: nftpb::CollectionRequest = req(data)?;
    let c = nft::collection(store, &r.id)
        .map_err(internal)?
        .ok_or((code::NOT_FOUND, format!("unknown collection {:?}", r.id)))?;
    Ok(nftpb::CollectionResponse {
        collection: Some(collection_pb(&r.id, &c)),
    }
    .encode_to_vec())
}

fn tokens_by_owner(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: nftpb::TokensByOwnerRequest = req(data)?;
    let owner = addr(&r.owner)?;
    let prefix = nk::owned_by(&owner);
    let (items, pagination) = page(store, &prefix, r.pagination)?;
    let mut out = Vec::new();
    for (k, _) in items {
        let (c, t) = split_ids(key_suffix(&k, &prefix)?)?;
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

fn token(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
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

fn listings(store: &dyn QueryRead, data: &[u8]) -> Result<Vec<u8>, QueryError> {
    let r: nftpb::ListingsRequest = req(data)?;
    let prefix = if r.collection.is_empty() {
        nk::LISTING_PREFIX.to_vec()
    } else {
        nk::listings_of_collection(&r.collection)
    };
    let (items, pagination) = page(store, &prefix, r.pagination)?;
    let mut out = Vec::new();
    for (k, v) in items {
        let (c, t) = split_ids(key_suffix(&k, nk::LISTING_PREFIX)?)?;
        let l: nft::Listing = decode(&k, &v).map_err(internal)?;
        out.push(listing_pb(&c, &t, &l));
    }
    Ok(nftpb::ListingsResponse {
        listings: out,
        pagination,
    }
    .encode_to_vec())
}
