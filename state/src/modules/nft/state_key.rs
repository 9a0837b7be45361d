//! nft's storage keys. Keys are public API: proofs and tools depend on them. Collection and token ids never
//! contain '/', so `collection/token` keys are unambiguous.

use crate::address::Address;

pub const COLLECTION_PREFIX: &[u8] = b"nft/collection/";
pub const TOKEN_PREFIX: &[u8] = b"nft/token/";
pub const OWNER_PREFIX: &[u8] = b"nft/owner/";
pub const OPERATOR_PREFIX: &[u8] = b"nft/operator/";
pub const LISTING_PREFIX: &[u8] = b"nft/listing/";

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `nft/collection/` ‖ id → borsh `Collection`.
pub fn collection(id: &str) -> Vec<u8> {
    cat(&[COLLECTION_PREFIX, id.as_bytes()])
}

/// `nft/token/` ‖ collection ‖ `/` ‖ token → borsh `Token`.
pub fn token(collection: &str, token: &str) -> Vec<u8> {
    cat(&[TOKEN_PREFIX, collection.as_bytes(), b"/", token.as_bytes()])
}

pub fn tokens_of_collection(collection: &str) -> Vec<u8> {
    cat(&[TOKEN_PREFIX, collection.as_bytes(), b"/"])
}

/// `nft/owner/` ‖ owner ‖ collection ‖ `/` ‖ token → empty (tokens by owner).
pub fn owned(owner: &Address, collection: &str, token: &str) -> Vec<u8> {
    cat(&[
        OWNER_PREFIX,
        owner.as_bytes(),
        collection.as_bytes(),
        b"/",
        token.as_bytes(),
    ])
}

pub fn owned_by(owner: &Address) -> Vec<u8> {
    cat(&[OWNER_PREFIX, owner.as_bytes()])
}

/// `nft/operator/` ‖ collection ‖ `/` ‖ owner ‖ operator → borsh `Option<u64>` expiry height.
pub fn operator(collection: &str, owner: &Address, operator: &Address) -> Vec<u8> {
    cat(&[
        OPERATOR_PREFIX,
        collection.as_bytes(),
        b"/",
        owner.as_bytes(),
        operator.as_bytes(),
    ])
}

/// `nft/listing/` ‖ collection ‖ `/` ‖ token → borsh `Listing`.
pub fn listing(collection: &str, token: &str) -> Vec<u8> {
    cat(&[
        LISTING_PREFIX,
        collection.as_bytes(),
        b"/",
        token.as_bytes(),
    ])
}

pub fn listings_of_collection(collection: &str) -> Vec<u8> {
    cat(&[LISTING_PREFIX, collection.as_bytes(), b"/"])
}
