//! `lode tx nft …`: collections, tokens, approvals and the fixed-price market.

use clap::{Args, Subcommand};
use lode_proto::{nft::v1 as nftpb, tx::v1 as txpb};

use super::{MsgCommand, TxOpts};
use lode_client::tx::TxMsg;

/// A token in a collection.
#[derive(Debug, Args)]
pub(crate) struct TokenRef {
    /// Collection id.
    #[arg(long)]
    pub(super) collection: String,
    /// Token id within the collection.
    #[arg(long)]
    pub(super) token: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum NftTx {
    /// Create a collection (the signer is its creator).
    Create {
        #[command(flatten)]
        opts: TxOpts,
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        symbol: String,
        #[arg(long, default_value = "")]
        uri: String,
        /// Creator royalty on every sale, in basis points (capped by `nft.max_royalty_bps`).
        #[arg(long, default_value_t = 0)]
        royalty_bps: u32,
        /// 0 = unlimited.
        #[arg(long, default_value_t = 0)]
        max_supply: u64,
        /// Anyone may mint, not only the creator.
        #[arg(long)]
        open_mint: bool,
    },
    /// Mint a token.
    Mint {
        #[command(flatten)]
        opts: TxOpts,
        #[command(flatten)]
        token: TokenRef,
        #[arg(long, default_value = "")]
        uri: String,
        /// Owner of the new token (default: the signer).
        #[arg(long)]
        to: Option<String>,
    },
    /// Transfer a token (as its owner, its approved address or a collection operator).
    Transfer {
        #[command(flatten)]
        opts: TxOpts,
        #[command(flatten)]
        token: TokenRef,
        #[arg(long)]
        to: String,
    },
    /// Approve one address to transfer one token.
    Approve {
        #[command(flatten)]
        opts: TxOpts,
        #[command(flatten)]
        token: TokenRef,
        #[arg(long)]
        spender: String,
        /// Last height the approval is valid at; 0 = no expiry.
        #[arg(long, default_value_t = 0)]
        expiry_height: u64,
    },
    /// Approve (or with `--revoke` remove) an operator for all of the signer's tokens in a collection.
    Operator {
        #[command(flatten)]
        opts: TxOpts,
        #[arg(long)]
        collection: String,
        #[arg(long)]
        operator: String,
        #[arg(long)]
        revoke: bool,
        #[arg(long, default_value_t = 0)]
        expiry_height: u64,
    },
    /// List a token for sale at a fixed price (or update the price).
    List {
        #[command(flatten)]
        opts: TxOpts,
        #[command(flatten)]
        token: TokenRef,
        #[arg(long)]
        price: u128,
    },
    /// Cancel a listing.
    Unlist {
        #[command(flatten)]
        opts: TxOpts,
        #[command(flatten)]
        token: TokenRef,
    },
    /// Buy a listed token at its listed price (refused if the price differs from `--price`).
    Buy {
        #[command(flatten)]
        opts: TxOpts,
        #[command(flatten)]
        token: TokenRef,
        #[arg(long)]
        price: u128,
    },
    /// Burn a token.
    Burn {
        #[command(flatten)]
        opts: TxOpts,
        #[command(flatten)]
        token: TokenRef,
    },
}

impl MsgCommand for NftTx {
    fn opts(&self) -> &TxOpts {
        match self {
            NftTx::Create { opts, .. }
            | NftTx::Mint { opts, .. }
            | NftTx::Transfer { opts, .. }
            | NftTx::Approve { opts, .. }
            | NftTx::Operator { opts, .. }
            | NftTx::List { opts, .. }
            | NftTx::Unlist { opts, .. }
            | NftTx::Buy { opts, .. }
            | NftTx::Burn { opts, .. } => opts,
        }
    }

    fn build(&self, signer: &str) -> eyre::Result<txpb::Msg> {
        self.message(signer.to_owned()).map(|(m, _)| m)
    }
}

impl NftTx {
    /// The message and the shared flags of this command.
    fn message(&self, s: String) -> eyre::Result<(txpb::Msg, &TxOpts)> {
        Ok(match self {
            NftTx::Create {
                opts,
                id,
                name,
                symbol,
                uri,
                royalty_bps,
                max_supply,
                open_mint,
            } => (
                nftpb::MsgCreateCollection {
                    creator: s,
                    id: id.clone(),
                    name: name.clone(),
                    symbol: symbol.clone(),
                    uri: uri.clone(),
                    royalty_bps: *royalty_bps,
                    max_supply: *max_supply,
                    open_mint: *open_mint,
                }
                .into_msg(),
                opts,
            ),
            NftTx::Mint {
                opts,
                token,
                uri,
                to,
            } => (
                nftpb::MsgMint {
                    owner: to.clone().unwrap_or_else(|| s.clone()),
                    minter: s,
                    collection: token.collection.clone(),
                    token_id: token.token.clone(),
                    uri: uri.clone(),
                }
                .into_msg(),
                opts,
            ),
            NftTx::Transfer { opts, token, to } => (
                nftpb::MsgTransfer {
                    sender: s,
                    collection: token.collection.clone(),
                    token_id: token.token.clone(),
                    to: to.clone(),
                }
                .into_msg(),
                opts,
            ),
            NftTx::Approve {
                opts,
                token,
                spender,
                expiry_height,
            } => (
                nftpb::MsgApprove {
                    owner: s,
                    collection: token.collection.clone(),
                    token_id: token.token.clone(),
                    spender: spender.clone(),
                    expiry_height: *expiry_height,
                }
                .into_msg(),
                opts,
            ),
            NftTx::Operator {
                opts,
                collection,
                operator,
                revoke,
                expiry_height,
            } => (
                nftpb::MsgSetOperator {
                    owner: s,
                    collection: collection.clone(),
                    operator: operator.clone(),
                    approved: !revoke,
                    expiry_height: *expiry_height,
                }
                .into_msg(),
                opts,
            ),
            NftTx::List { opts, token, price } => (
                nftpb::MsgList {
                    seller: s,
                    collection: token.collection.clone(),
                    token_id: token.token.clone(),
                    price: price.to_string(),
                }
                .into_msg(),
                opts,
            ),
            NftTx::Unlist { opts, token } => (
                nftpb::MsgCancelListing {
                    seller: s,
                    collection: token.collection.clone(),
                    token_id: token.token.clone(),
                }
                .into_msg(),
                opts,
            ),
            NftTx::Buy { opts, token, price } => (
                nftpb::MsgBuy {
                    buyer: s,
                    collection: token.collection.clone(),
                    token_id: token.token.clone(),
                    price: price.to_string(),
                }
                .into_msg(),
                opts,
            ),
            NftTx::Burn { opts, token } => (
                nftpb::MsgBurn {
                    owner: s,
                    collection: token.collection.clone(),
                    token_id: token.token.clone(),
                }
                .into_msg(),
                opts,
            ),
        })
    }
}
