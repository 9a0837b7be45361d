//! nft's errors. Codes 70..=89; numbers are public API and never reused.

use thiserror::Error;

use crate::error::{CodeRange, ModuleError};

/// The codes nft's errors may use.
pub const CODES: CodeRange = CodeRange {
    module: "nft",
    first: 70,
    last: 89,
};

/// Why an NFT message was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NftError {
    #[error("collection {0:?} already exists")]
    CollectionExists(String),
    #[error("unknown collection {0:?}")]
    UnknownCollection(String),
    #[error("token {token:?} already exists in collection {collection:?}")]
    TokenExists { collection: String, token: String },
    #[error("unknown token {token:?} in collection {collection:?}")]
    UnknownToken { collection: String, token: String },
    #[error("royalty {bps} bps is above the cap of {cap} bps")]
    RoyaltyAboveCap { bps: u32, cap: u32 },
    #[error("collection {0:?} reached its max supply")]
    MaxSupplyReached(String),
    #[error("{0} may not mint into this collection")]
    NotMinter(String),
    #[error("{0} is neither the owner, the approved address nor an operator")]
    NotAuthorized(String),
    #[error("approval expired at height {expiry}, block height is {height}")]
    ApprovalExpired { expiry: u64, height: u64 },
    #[error("{0} does not own this token")]
    NotOwner(String),
    #[error("token is not listed")]
    NotListed,
    #[error("listed at {listed}, buyer expected {expected}")]
    PriceMismatch { listed: u128, expected: u128 },
    #[error("the seller cannot buy their own listing")]
    SelfPurchase,
}

impl ModuleError for NftError {
    const CODES: CodeRange = CODES;

    fn code(&self) -> u32 {
        match self {
            NftError::CollectionExists(_) => 70,
            NftError::UnknownCollection(_) => 71,
            NftError::TokenExists { .. } => 72,
            NftError::UnknownToken { .. } => 73,
            NftError::RoyaltyAboveCap { .. } => 74,
            NftError::MaxSupplyReached(_) => 75,
            NftError::NotMinter(_) => 76,
            NftError::NotAuthorized(_) => 77,
            NftError::ApprovalExpired { .. } => 78,
            NftError::NotOwner(_) => 79,
            NftError::NotListed => 80,
            NftError::PriceMismatch { .. } => 81,
            NftError::SelfPurchase => 82,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            NftError::CollectionExists(_) => "ERR_COLLECTION_EXISTS",
            NftError::UnknownCollection(_) => "ERR_UNKNOWN_COLLECTION",
            NftError::TokenExists { .. } => "ERR_TOKEN_EXISTS",
            NftError::UnknownToken { .. } => "ERR_UNKNOWN_TOKEN",
            NftError::RoyaltyAboveCap { .. } => "ERR_ROYALTY_ABOVE_CAP",
            NftError::MaxSupplyReached(_) => "ERR_MAX_SUPPLY_REACHED",
            NftError::NotMinter(_) => "ERR_NOT_MINTER",
            NftError::NotAuthorized(_) => "ERR_NOT_AUTHORIZED",
            NftError::ApprovalExpired { .. } => "ERR_APPROVAL_EXPIRED",
            NftError::NotOwner(_) => "ERR_NOT_OWNER",
            NftError::NotListed => "ERR_NOT_LISTED",
            NftError::PriceMismatch { .. } => "ERR_PRICE_MISMATCH",
            NftError::SelfPurchase => "ERR_SELF_PURCHASE",
        }
    }

    fn examples() -> Vec<Self> {
        let s = String::new;
        vec![
            NftError::CollectionExists(s()),
            NftError::UnknownCollection(s()),
            NftError::TokenExists {
                collection: s(),
                token: s(),
            },
            NftError::UnknownToken {
                collection: s(),
                token: s(),
            },
            NftError::RoyaltyAboveCap { bps: 0, cap: 0 },
            NftError::MaxSupplyReached(s()),
            NftError::NotMinter(s()),
            NftError::NotAuthorized(s()),
            NftError::ApprovalExpired {
                expiry: 0,
                height: 0,
            },
            NftError::NotOwner(s()),
            NftError::NotListed,
            NftError::PriceMismatch {
                listed: 0,
                expected: 0,
            },
            NftError::SelfPurchase,
        ]
    }
}
