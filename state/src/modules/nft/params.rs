//! nft's governable parameters (`app_state.params.nft`).

use serde::{Deserialize, Serialize};

/// NFT parameters. JSON field names are public API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NftParams {
    /// Highest royalty a collection may charge, in basis points.
    pub max_royalty_bps: u32,
    pub max_name_bytes: u64,
    pub max_symbol_bytes: u64,
    pub max_uri_bytes: u64,
    pub gas_create_collection: u64,
    pub gas_mint: u64,
    pub gas_transfer: u64,
    pub gas_approve: u64,
    pub gas_set_operator: u64,
    pub gas_burn: u64,
    pub gas_list: u64,
    pub gas_cancel_listing: u64,
    pub gas_buy: u64,
}

impl Default for NftParams {
    fn default() -> Self {
        NftParams {
            max_royalty_bps: 2_500,
            max_name_bytes: 64,
            max_symbol_bytes: 16,
            max_uri_bytes: 512,
            gas_create_collection: 10_000,
            gas_mint: 3_000,
            gas_transfer: 2_000,
            gas_approve: 1_000,
            gas_set_operator: 1_000,
            gas_burn: 1_000,
            gas_list: 1_500,
            gas_cancel_listing: 1_000,
            gas_buy: 4_000,
        }
    }
}

impl NftParams {
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut issues = Vec::new();
        if self.max_royalty_bps > 10_000 {
            issues.push(("nft.max_royalty_bps", "must be at most 10000".to_string()));
        }
        issues
    }
}
