//! nft: collections with creator royalties, tokens, per-token approvals (optionally expiring), collection
//! operators, and fixed-price listings with an atomic buy that pays the royalty to the creator.
//!
//! System hook: another module can own a collection (its creator is `Address::module(name)`, for which no
//! key can sign) and mint into it with [`create_module_collection`] and [`mint_as_module`] (the marketplace
//! will mint compute receipts this way).

pub mod error;
pub mod event;
pub mod msg;
pub mod params;
pub mod query;
pub mod state_key;

use borsh::{BorshDeserialize, BorshSerialize};
use lode_proto::tx::v1::msg::Sum;

use crate::{
    address::Address,
    amount::mul_div_floor,
    codec::{decode, encode},
    error::{CodeRange, ModuleError, StoreError, TxError},
    event::Event,
    module::{BlockCtx, Decoded, Module},
    params::Params,
    query::{QueryError, QueryRead},
    store::{StateRead, StateWrite},
};

pub use error::NftError;
pub use msg::NftMsg;

/// The NFT module.
#[derive(Debug)]
pub struct Nft;

impl Module for Nft {
    const NAME: &'static str = "nft";
    const CODES: CodeRange = error::CODES;
    type Msg = NftMsg;

    fn decode(sum: Sum) -> Decoded<NftMsg> {
        match sum {
            sum @ (Sum::NftCreateCollection(_)
            | Sum::NftMint(_)
            | Sum::NftTransfer(_)
            | Sum::NftApprove(_)
            | Sum::NftSetOperator(_)
            | Sum::NftBurn(_)
            | Sum::NftList(_)
            | Sum::NftCancelListing(_)
            | Sum::NftBuy(_)) => Decoded::Mine(sum.try_into()),
            other => Decoded::NotMine(other),
        }
    }

    fn encode(m: &NftMsg) -> Sum {
        m.into()
    }

    fn sender(m: &NftMsg) -> &Address {
        m.sender()
    }

    fn gas(m: &NftMsg, p: &Params) -> Option<u64> {
        Some(m.gas(p))
    }

    fn execute<S: StateWrite + ?Sized>(
        s: &mut S,
        m: &NftMsg,
        ctx: BlockCtx<'_>,
        events: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        msg::execute(s, m, ctx, events)
    }

    fn query(
        store: &dyn QueryRead,
        path: &str,
        data: &[u8],
    ) -> Option<Result<Vec<u8>, QueryError>> {
        query::handle(store, path, data)
    }

    fn error_examples() -> Vec<TxError> {
        NftError::examples()
            .into_iter()
            .map(TxError::from)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Collection {
    pub creator: Address,
    pub name: String,
    pub symbol: String,
    pub uri: String,
    pub royalty_bps: u32,
    pub max_supply: Option<u64>,
    pub open_mint: bool,
    /// Tokens ever minted (max supply counts these, so burning frees no slot).
    pub minted: u64,
    /// Tokens that exist now.
    pub supply: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Token {
    pub owner: Address,
    pub uri: String,
    /// One approved spender, with an optional expiry height (valid while height <= expiry).
    pub approval: Option<(Address, Option<u64>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Listing {
    pub seller: Address,
    pub price: u128,
}

/// Collection ids: 1-64 of [a-z0-9._-].
pub fn check_collection_id(id: &str) -> Result<(), TxError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(TxError::InvalidField {
            field: "collection id",
            reason: "must be 1-64 of [a-z0-9._-]".into(),
        })
    }
}

/// Token ids: 1-128 of [A-Za-z0-9._:-].
pub fn check_token_id(id: &str) -> Result<(), TxError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(TxError::InvalidField {
            field: "token id",
            reason: "must be 1-128 of [A-Za-z0-9._:-]".into(),
        })
    }
}

pub fn collection<S: StateRead + ?Sized>(
    s: &S,
    id: &str,
) -> Result<Option<Collection>, StoreError> {
    let key = state_key::collection(id);
    s.get(&key)?.map(|b| decode(&key, &b)).transpose()
}

pub fn token<S: StateRead + ?Sized>(s: &S, c: &str, t: &str) -> Result<Option<Token>, StoreError> {
    let key = state_key::token(c, t);
    s.get(&key)?.map(|b| decode(&key, &b)).transpose()
}

pub fn listing<S: StateRead + ?Sized>(
    s: &S,
    c: &str,
    t: &str,
) -> Result<Option<Listing>, StoreError> {
    let key = state_key::listing(c, t);
    s.get(&key)?.map(|b| decode(&key, &b)).transpose()
}

/// The operator approval of `op` over `owner`'s tokens in a collection: Some(expiry) if approved.
pub fn operator<S: StateRead + ?Sized>(
    s: &S,
    c: &str,
    owner: &Address,
    op: &Address,
) -> Result<Option<Option<u64>>, StoreError> {
    let key = state_key::operator(c, owner, op);
    s.get(&key)?.map(|b| decode(&key, &b)).transpose()
}

pub(crate) fn put_collection<S: StateWrite + ?Sized>(s: &mut S, id: &str, c: &Collection) {
    s.put(state_key::collection(id), encode(c));
}

pub(crate) fn put_token<S: StateWrite + ?Sized>(s: &mut S, c: &str, t: &str, tok: &Token) {
    s.put(state_key::token(c, t), encode(tok));
}

/// The royalty on a sale: floor(price × bps / 10,000). The rounding favours the seller.
pub fn royalty(price: u128, royalty_bps: u32) -> Option<u128> {
    mul_div_floor(price, royalty_bps as u128, 10_000)
}

/// Creates a collection. Shared by the message handler and the module hook.
#[allow(clippy::too_many_arguments)]
pub(crate) fn create<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    creator: &Address,
    id: &str,
    name: &str,
    symbol: &str,
    uri: &str,
    royalty_bps: u32,
    max_supply: Option<u64>,
    open_mint: bool,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let p = &ctx.params.nft;
    check_collection_id(id)?;
    let long = |field: &'static str, v: &str, max: u64| {
        if v.len() as u64 > max {
            Err(TxError::InvalidField {
                field,
                reason: format!("over {max} bytes"),
            })
        } else {
            Ok(())
        }
    };
    long("name", name, p.max_name_bytes)?;
    long("symbol", symbol, p.max_symbol_bytes)?;
    long("uri", uri, p.max_uri_bytes)?;
    if royalty_bps > p.max_royalty_bps {
        return Err(TxError::from(NftError::RoyaltyAboveCap {
            bps: royalty_bps,
            cap: p.max_royalty_bps,
        }));
    }
    if collection(s, id)?.is_some() {
        return Err(TxError::from(NftError::CollectionExists(id.to_string())));
    }
    put_collection(
        s,
        id,
        &Collection {
            creator: *creator,
            name: name.to_string(),
            symbol: symbol.to_string(),
            uri: uri.to_string(),
            royalty_bps,
            max_supply,
            open_mint,
            minted: 0,
            supply: 0,
        },
    );
    events.push(event::collection_created(id, creator, royalty_bps));
    Ok(())
}

/// Mints a token; `minter` must be the creator unless the collection is open.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mint<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    minter: &Address,
    c: &str,
    t: &str,
    owner: &Address,
    uri: &str,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    check_token_id(t)?;
    if uri.len() as u64 > ctx.params.nft.max_uri_bytes {
        return Err(TxError::InvalidField {
            field: "uri",
            reason: format!("over {} bytes", ctx.params.nft.max_uri_bytes),
        });
    }
    let mut col = collection(s, c)?
        .ok_or_else(|| TxError::from(NftError::UnknownCollection(c.to_string())))?;
    if !col.open_mint && col.creator != *minter {
        return Err(TxError::from(NftError::NotMinter(minter.to_string())));
    }
    if token(s, c, t)?.is_some() {
        return Err(TxError::from(NftError::TokenExists {
            collection: c.to_string(),
            token: t.to_string(),
        }));
    }
    if col.max_supply.is_some_and(|m| col.minted >= m) {
        return Err(TxError::from(NftError::MaxSupplyReached(c.to_string())));
    }
    col.minted = col
        .minted
        .checked_add(1)
        .ok_or(TxError::Overflow("minted"))?;
    col.supply = col
        .supply
        .checked_add(1)
        .ok_or(TxError::Overflow("supply"))?;
    put_collection(s, c, &col);
    put_token(
        s,
        c,
        t,
        &Token {
            owner: *owner,
            uri: uri.to_string(),
            approval: None,
        },
    );
    s.put(state_key::owned(owner, c, t), Vec::new());
    events.push(event::minted(c, t, minter, owner));
    Ok(())
}

/// Moves a token to `to`, clearing its approval and any listing.
pub(crate) fn move_token<S: StateWrite + ?Sized>(
    s: &mut S,
    c: &str,
    t: &str,
    mut tok: Token,
    to: &Address,
    events: &mut Vec<Event>,
) {
    s.delete(state_key::owned(&tok.owner, c, t));
    s.put(state_key::owned(to, c, t), Vec::new());
    tok.owner = *to;
    tok.approval = None;
    put_token(s, c, t, &tok);
    let lk = state_key::listing(c, t);
    if s.get(&lk).ok().flatten().is_some() {
        s.delete(lk);
        events.push(event::listing_cancelled(c, t, "transferred"));
    }
}

/// Creates a collection owned by module `module` (no key can sign for it, so only that module mints).
#[allow(clippy::too_many_arguments)]
pub fn create_module_collection<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    module: &str,
    id: &str,
    name: &str,
    symbol: &str,
    uri: &str,
    max_supply: Option<u64>,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let creator = Address::module(module);
    create(
        s, ctx, &creator, id, name, symbol, uri, 0, max_supply, false, events,
    )
}

/// Mints into a collection owned by module `module`; fails unless that module created it.
#[allow(clippy::too_many_arguments)]
pub fn mint_as_module<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    module: &str,
    collection_id: &str,
    token_id: &str,
    owner: &Address,
    uri: &str,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let minter = Address::module(module);
    mint(s, ctx, &minter, collection_id, token_id, owner, uri, events)
}
