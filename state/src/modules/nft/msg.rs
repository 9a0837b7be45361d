//! nft's messages: domain types, wire conversion and handlers.

use lode_proto::nft::v1 as pb;

use super::NftError;
use super::{
    check_collection_id, check_token_id, collection, event, listing, move_token, operator,
    put_token, royalty, state_key, token, Listing, Token,
};
use crate::{
    address::{parse_address, Address},
    amount::parse_positive,
    codec::encode,
    error::TxError,
    event::Event,
    module::BlockCtx,
    modules::bank,
    store::StateWrite,
};

/// An NFT message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NftMsg {
    CreateCollection {
        creator: Address,
        id: String,
        name: String,
        symbol: String,
        uri: String,
        royalty_bps: u32,
        max_supply: Option<u64>,
        open_mint: bool,
    },
    Mint {
        minter: Address,
        collection: String,
        token_id: String,
        owner: Address,
        uri: String,
    },
    Transfer {
        sender: Address,
        collection: String,
        token_id: String,
        to: Address,
    },
    /// `spender: None` revokes the approval.
    Approve {
        owner: Address,
        collection: String,
        token_id: String,
        spender: Option<Address>,
        expiry_height: Option<u64>,
    },
    SetOperator {
        owner: Address,
        collection: String,
        operator: Address,
        approved: bool,
        expiry_height: Option<u64>,
    },
    Burn {
        owner: Address,
        collection: String,
        token_id: String,
    },
    List {
        seller: Address,
        collection: String,
        token_id: String,
        price: u128,
    },
    CancelListing {
        seller: Address,
        collection: String,
        token_id: String,
    },
    Buy {
        buyer: Address,
        collection: String,
        token_id: String,
        price: u128,
    },
}

impl NftMsg {
    pub fn sender(&self) -> &Address {
        match self {
            NftMsg::CreateCollection { creator, .. } => creator,
            NftMsg::Mint { minter, .. } => minter,
            NftMsg::Transfer { sender, .. } => sender,
            NftMsg::Approve { owner, .. }
            | NftMsg::SetOperator { owner, .. }
            | NftMsg::Burn { owner, .. } => owner,
            NftMsg::List { seller, .. } | NftMsg::CancelListing { seller, .. } => seller,
            NftMsg::Buy { buyer, .. } => buyer,
        }
    }

    pub fn gas(&self, p: &crate::params::Params) -> u64 {
        let n = &p.nft;
        match self {
            NftMsg::CreateCollection { .. } => n.gas_create_collection,
            NftMsg::Mint { .. } => n.gas_mint,
            NftMsg::Transfer { .. } => n.gas_transfer,
            NftMsg::Approve { .. } => n.gas_approve,
            NftMsg::SetOperator { .. } => n.gas_set_operator,
            NftMsg::Burn { .. } => n.gas_burn,
            NftMsg::List { .. } => n.gas_list,
            NftMsg::CancelListing { .. } => n.gas_cancel_listing,
            NftMsg::Buy { .. } => n.gas_buy,
        }
    }
}

fn ids(c: String, t: String) -> Result<(String, String), TxError> {
    check_collection_id(&c)?;
    check_token_id(&t)?;
    Ok((c, t))
}

fn opt_height(h: u64) -> Option<u64> {
    (h != 0).then_some(h)
}

impl TryFrom<lode_proto::tx::v1::msg::Sum> for NftMsg {
    type Error = TxError;
    fn try_from(m: lode_proto::tx::v1::msg::Sum) -> Result<Self, TxError> {
        use lode_proto::tx::v1::msg::Sum;
        Ok(match m {
            Sum::NftCreateCollection(m) => {
                check_collection_id(&m.id)?;
                NftMsg::CreateCollection {
                    creator: parse_address(&m.creator)?,
                    id: m.id,
                    name: m.name,
                    symbol: m.symbol,
                    uri: m.uri,
                    royalty_bps: m.royalty_bps,
                    max_supply: opt_height(m.max_supply),
                    open_mint: m.open_mint,
                }
            }
            Sum::NftMint(m) => {
                let minter = parse_address(&m.minter)?;
                let owner = if m.owner.is_empty() {
                    minter
                } else {
                    parse_address(&m.owner)?
                };
                let (collection, token_id) = ids(m.collection, m.token_id)?;
                NftMsg::Mint {
                    minter,
                    collection,
                    token_id,
                    owner,
                    uri: m.uri,
                }
            }
            Sum::NftTransfer(m) => {
                let (collection, token_id) = ids(m.collection, m.token_id)?;
                NftMsg::Transfer {
                    sender: parse_address(&m.sender)?,
                    collection,
                    token_id,
                    to: parse_address(&m.to)?,
                }
            }
            Sum::NftApprove(m) => {
                let (collection, token_id) = ids(m.collection, m.token_id)?;
                let spender = if m.spender.is_empty() {
                    None
                } else {
                    Some(parse_address(&m.spender)?)
                };
                NftMsg::Approve {
                    owner: parse_address(&m.owner)?,
                    collection,
                    token_id,
                    spender,
                    expiry_height: opt_height(m.expiry_height),
                }
            }
            Sum::NftSetOperator(m) => {
                check_collection_id(&m.collection)?;
                NftMsg::SetOperator {
                    owner: parse_address(&m.owner)?,
                    collection: m.collection,
                    operator: parse_address(&m.operator)?,
                    approved: m.approved,
                    expiry_height: opt_height(m.expiry_height),
                }
            }
            Sum::NftBurn(m) => {
                let (collection, token_id) = ids(m.collection, m.token_id)?;
                NftMsg::Burn {
                    owner: parse_address(&m.owner)?,
                    collection,
                    token_id,
                }
            }
            Sum::NftList(m) => {
                let (collection, token_id) = ids(m.collection, m.token_id)?;
                NftMsg::List {
                    seller: parse_address(&m.seller)?,
                    collection,
                    token_id,
                    price: parse_positive(&m.price)?,
                }
            }
            Sum::NftCancelListing(m) => {
                let (collection, token_id) = ids(m.collection, m.token_id)?;
                NftMsg::CancelListing {
                    seller: parse_address(&m.seller)?,
                    collection,
                    token_id,
                }
            }
            Sum::NftBuy(m) => {
                let (collection, token_id) = ids(m.collection, m.token_id)?;
                NftMsg::Buy {
                    buyer: parse_address(&m.buyer)?,
                    collection,
                    token_id,
                    price: parse_positive(&m.price)?,
                }
            }
            _ => return Err(TxError::Decode("not an nft message".into())),
        })
    }
}

impl From<&NftMsg> for lode_proto::tx::v1::msg::Sum {
    fn from(m: &NftMsg) -> Self {
        use lode_proto::tx::v1::msg::Sum;
        let s = |a: &Address| a.to_string();
        match m.clone() {
            NftMsg::CreateCollection {
                creator,
                id,
                name,
                symbol,
                uri,
                royalty_bps,
                max_supply,
                open_mint,
            } => Sum::NftCreateCollection(pb::MsgCreateCollection {
                creator: s(&creator),
                id,
                name,
                symbol,
                uri,
                royalty_bps,
                max_supply: max_supply.unwrap_or(0),
                open_mint,
            }),
            NftMsg::Mint {
                minter,
                collection,
                token_id,
                owner,
                uri,
            } => Sum::NftMint(pb::MsgMint {
                minter: s(&minter),
                collection,
                token_id,
                owner: s(&owner),
                uri,
            }),
            NftMsg::Transfer {
                sender,
                collection,
                token_id,
                to,
            } => Sum::NftTransfer(pb::MsgTransfer {
                sender: s(&sender),
                collection,
                token_id,
                to: s(&to),
            }),
            NftMsg::Approve {
                owner,
                collection,
                token_id,
                spender,
                expiry_height,
            } => Sum::NftApprove(pb::MsgApprove {
                owner: s(&owner),
                collection,
                token_id,
                spender: spender.map(|a| a.to_string()).unwrap_or_default(),
                expiry_height: expiry_height.unwrap_or(0),
            }),
            NftMsg::SetOperator {
                owner,
                collection,
                operator,
                approved,
                expiry_height,
            } => Sum::NftSetOperator(pb::MsgSetOperator {
                owner: s(&owner),
                collection,
                operator: s(&operator),
                approved,
                expiry_height: expiry_height.unwrap_or(0),
            }),
            NftMsg::Burn {
                owner,
                collection,
                token_id,
            } => Sum::NftBurn(pb::MsgBurn {
                owner: s(&owner),
                collection,
                token_id,
            }),
            NftMsg::List {
                seller,
                collection,
                token_id,
                price,
            } => Sum::NftList(pb::MsgList {
                seller: s(&seller),
                collection,
                token_id,
                price: price.to_string(),
            }),
            NftMsg::CancelListing {
                seller,
                collection,
                token_id,
            } => Sum::NftCancelListing(pb::MsgCancelListing {
                seller: s(&seller),
                collection,
                token_id,
            }),
            NftMsg::Buy {
                buyer,
                collection,
                token_id,
                price,
            } => Sum::NftBuy(pb::MsgBuy {
                buyer: s(&buyer),
                collection,
                token_id,
                price: price.to_string(),
            }),
        }
    }
}

fn unknown_token(c: &str, t: &str) -> TxError {
    TxError::from(NftError::UnknownToken {
        collection: c.to_string(),
        token: t.to_string(),
    })
}

fn owned_token<S: StateWrite + ?Sized>(
    s: &S,
    c: &str,
    t: &str,
    who: &Address,
) -> Result<Token, TxError> {
    let tok = token(s, c, t)?.ok_or_else(|| unknown_token(c, t))?;
    if tok.owner != *who {
        return Err(TxError::from(NftError::NotOwner(who.to_string())));
    }
    Ok(tok)
}

/// Executes one NFT message.
pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    msg: &NftMsg,
    ctx: BlockCtx<'_>,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let h = ctx.height;
    match msg {
        NftMsg::CreateCollection {
            creator,
            id,
            name,
            symbol,
            uri,
            royalty_bps,
            max_supply,
            open_mint,
        } => super::create(
            s,
            ctx,
            creator,
            id,
            name,
            symbol,
            uri,
            *royalty_bps,
            *max_supply,
            *open_mint,
            events,
        )?,
        NftMsg::Mint {
            minter,
            collection,
            token_id,
            owner,
            uri,
        } => super::mint(s, ctx, minter, collection, token_id, owner, uri, events)?,
        NftMsg::Transfer {
            sender,
            collection: c,
            token_id: t,
            to,
        } => {
            let tok = token(s, c, t)?.ok_or_else(|| unknown_token(c, t))?;
            if tok.owner != *sender {
                let approved = tok
                    .approval
                    .filter(|(spender, _)| spender == sender)
                    .map(|(_, exp)| exp);
                let expiry = match approved {
                    Some(exp) => exp,
                    None => operator(s, c, &tok.owner, sender)?.ok_or_else(|| {
                        TxError::from(NftError::NotAuthorized(sender.to_string()))
                    })?,
                };
                if let Some(expiry) = expiry.filter(|e| h > *e) {
                    return Err(TxError::from(NftError::ApprovalExpired {
                        expiry,
                        height: h,
                    }));
                }
            }
            let from = tok.owner;
            move_token(s, c, t, tok, to, events);
            events.push(event::transfer(c, t, &from, to, sender));
        }
        NftMsg::Approve {
            owner,
            collection: c,
            token_id: t,
            spender,
            expiry_height,
        } => {
            let mut tok = owned_token(s, c, t, owner)?;
            if expiry_height.is_some_and(|e| e < h) {
                return Err(TxError::from(NftError::ApprovalExpired {
                    expiry: expiry_height.unwrap_or(0),
                    height: h,
                }));
            }
            tok.approval = spender.map(|a| (a, *expiry_height));
            put_token(s, c, t, &tok);
            events.push(event::approval(
                c,
                t,
                owner,
                spender.as_ref(),
                *expiry_height,
            ));
        }
        NftMsg::SetOperator {
            owner,
            collection: c,
            operator: op,
            approved,
            expiry_height,
        } => {
            if collection(s, c)?.is_none() {
                return Err(TxError::from(NftError::UnknownCollection(c.clone())));
            }
            let key = state_key::operator(c, owner, op);
            if *approved {
                s.put(key, encode(expiry_height));
            } else {
                s.delete(key);
            }
            events.push(event::operator(c, owner, op, *approved, *expiry_height));
        }
        NftMsg::Burn {
            owner,
            collection: c,
            token_id: t,
        } => {
            owned_token(s, c, t, owner)?;
            let mut col = collection(s, c)?
                .ok_or_else(|| TxError::from(NftError::UnknownCollection(c.clone())))?;
            col.supply = col
                .supply
                .checked_sub(1)
                .ok_or_else(|| TxError::Internal("collection supply underflow".into()))?;
            super::put_collection(s, c, &col);
            s.delete(state_key::token(c, t));
            s.delete(state_key::owned(owner, c, t));
            if listing(s, c, t)?.is_some() {
                s.delete(state_key::listing(c, t));
                events.push(event::listing_cancelled(c, t, "burned"));
            }
            events.push(event::burned(c, t, owner));
        }
        NftMsg::List {
            seller,
            collection: c,
            token_id: t,
            price,
        } => {
            owned_token(s, c, t, seller)?;
            s.put(
                state_key::listing(c, t),
                encode(&Listing {
                    seller: *seller,
                    price: *price,
                }),
            );
            events.push(event::listed(c, t, seller, *price));
        }
        NftMsg::CancelListing {
            seller,
            collection: c,
            token_id: t,
        } => {
            owned_token(s, c, t, seller)?;
            if listing(s, c, t)?.is_none() {
                return Err(TxError::from(NftError::NotListed));
            }
            s.delete(state_key::listing(c, t));
            events.push(event::listing_cancelled(c, t, "cancelled"));
        }
        NftMsg::Buy {
            buyer,
            collection: c,
            token_id: t,
            price,
        } => {
            let tok = token(s, c, t)?.ok_or_else(|| unknown_token(c, t))?;
            let l = listing(s, c, t)?.ok_or(TxError::from(NftError::NotListed))?;
            if l.seller != tok.owner {
                return Err(TxError::from(NftError::NotListed));
            }
            if l.price != *price {
                return Err(TxError::from(NftError::PriceMismatch {
                    listed: l.price,
                    expected: *price,
                }));
            }
            if *buyer == l.seller {
                return Err(TxError::from(NftError::SelfPurchase));
            }
            let col = collection(s, c)?
                .ok_or_else(|| TxError::from(NftError::UnknownCollection(c.clone())))?;
            let fee = royalty(l.price, col.royalty_bps).ok_or(TxError::Overflow("royalty"))?;
            let rest = l
                .price
                .checked_sub(fee)
                .ok_or(TxError::Overflow("royalty above price"))?;
            if fee > 0 {
                bank::transfer(s, buyer, &col.creator, fee)?;
            }
            bank::transfer(s, buyer, &l.seller, rest)?;
            move_token(s, c, t, tok, buyer, &mut Vec::new());
            s.delete(state_key::listing(c, t));
            events.push(event::sale(
                c,
                t,
                &l.seller,
                buyer,
                l.price,
                fee,
                &col.creator,
            ));
            events.push(event::transfer(c, t, &l.seller, buyer, buyer));
        }
    }
    Ok(())
}
