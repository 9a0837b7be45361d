//! NFTs through ABCI: royalty math to the unit, every transfer authority, listings, and bad input.

use lode_proto::nft::v1 as nftpb;
use lode_state::{
    module::BlockCtx,
    modules::nft::{self, NftMsg},
    store::{Overlay, StateRead},
    tx::Msg,
    Address, Params,
};

use crate::common::*;

fn create(chain: &mut Chain, i: usize, id: &str, royalty_bps: u32, max_supply: Option<u64>) -> u32 {
    let creator = chain.addr(i);
    chain
        .run(
            i,
            Msg::Nft(NftMsg::CreateCollection {
                creator,
                id: id.into(),
                name: "Name".into(),
                symbol: "SYM".into(),
                uri: "ipfs://c".into(),
                royalty_bps,
                max_supply,
                open_mint: false,
            }),
        )
        .code
}

fn mint(chain: &mut Chain, i: usize, c: &str, t: &str, to: usize) -> u32 {
    let (minter, owner) = (chain.addr(i), chain.addr(to));
    chain
        .run(
            i,
            Msg::Nft(NftMsg::Mint {
                minter,
                collection: c.into(),
                token_id: t.into(),
                owner,
                uri: format!("ipfs://{t}"),
            }),
        )
        .code
}

fn list(chain: &mut Chain, i: usize, c: &str, t: &str, price: u128) -> u32 {
    let seller = chain.addr(i);
    chain
        .run(
            i,
            Msg::Nft(NftMsg::List {
                seller,
                collection: c.into(),
                token_id: t.into(),
                price,
            }),
        )
        .code
}

fn buy_msg(chain: &Chain, i: usize, c: &str, t: &str, price: u128) -> Msg {
    Msg::Nft(NftMsg::Buy {
        buyer: chain.addr(i),
        collection: c.into(),
        token_id: t.into(),
        price,
    })
}

fn transfer_msg(chain: &Chain, by: usize, c: &str, t: &str, to: usize) -> Msg {
    Msg::Nft(NftMsg::Transfer {
        sender: chain.addr(by),
        collection: c.into(),
        token_id: t.into(),
        to: chain.addr(to),
    })
}

fn owner(chain: &Chain, c: &str, t: &str) -> Address {
    nft::token(chain.app.store(), c, t)
        .expect("read")
        .expect("token")
        .owner
}

/// Creator 0 mints to seller 1; buyer 2 buys at `price`. Returns (royalty, seller proceeds) as observed.
fn sale(royalty_bps: u32, price: u128) -> (u128, u128) {
    let mut chain = Chain::with_params(3, module_params());
    assert_eq!(create(&mut chain, 0, "art", royalty_bps, None), 0);
    assert_eq!(mint(&mut chain, 0, "art", "t1", 1), 0);
    assert_eq!(list(&mut chain, 1, "art", "t1", price), 0);
    let (c0, s0, b0) = (
        chain.balance(&chain.addr(0)),
        chain.balance(&chain.addr(1)),
        chain.balance(&chain.addr(2)),
    );
    let r = chain.ok(2, buy_msg(&chain, 2, "art", "t1", price));
    assert!(r.events.iter().any(|e| e.r#type == "nft_sale"));
    assert_eq!(chain.balance(&chain.addr(2)), b0 - price - MODULE_FEE);
    assert_eq!(owner(&chain, "art", "t1"), chain.addr(2));
    assert!(nft::listing(chain.app.store(), "art", "t1")
        .expect("read")
        .is_none());
    chain.check_invariants();
    (
        chain.balance(&chain.addr(0)) - c0,
        chain.balance(&chain.addr(1)) - s0,
    )
}

#[test]
fn a_sale_pays_the_royalty_to_the_creator_to_the_unit() {
    // 2.5% of 10,001 = 250.025 → 250 (rounded down, in the seller's favour).
    assert_eq!(sale(250, 10_001), (250, 9_751));
    // 2.5% of 39 = 0.975 → 0.
    assert_eq!(sale(250, 39), (0, 39));
    // Royalty 0.
    assert_eq!(sale(0, 1_000_000), (0, 1_000_000));
    // Exactly at the cap (25% by default).
    assert_eq!(sale(2_500, 999), (249, 750));
}

#[test]
fn a_royalty_above_the_cap_is_refused() {
    let mut chain = Chain::with_params(2, module_params());
    let cap = Params::default().nft.max_royalty_bps;
    let creator = chain.addr(0);
    chain.assert_msg_rejected(
        0,
        Msg::Nft(NftMsg::CreateCollection {
            creator,
            id: "art".into(),
            name: "n".into(),
            symbol: "s".into(),
            uri: String::new(),
            royalty_bps: cap + 1,
            max_supply: None,
            open_mint: false,
        }),
        74,
    );
}

#[test]
fn owner_approved_address_and_operator_can_each_transfer() {
    let mut chain = Chain::with_params(5, module_params());
    create(&mut chain, 0, "art", 0, None);
    mint(&mut chain, 0, "art", "t1", 1);
    // Owner.
    chain.ok(1, transfer_msg(&chain, 1, "art", "t1", 2));
    assert_eq!(owner(&chain, "art", "t1"), chain.addr(2));
    // Approved address (per token).
    let (o, spender) = (chain.addr(2), chain.addr(3));
    chain.ok(
        2,
        Msg::Nft(NftMsg::Approve {
            owner: o,
            collection: "art".into(),
            token_id: "t1".into(),
            spender: Some(spender),
            expiry_height: None,
        }),
    );
    chain.ok(3, transfer_msg(&chain, 3, "art", "t1", 4));
    assert_eq!(owner(&chain, "art", "t1"), chain.addr(4));
    // The approval cleared with the transfer.
    chain.assert_msg_rejected(3, transfer_msg(&chain, 3, "art", "t1", 3), 77);
    // Operator for the whole collection.
    let (o, op) = (chain.addr(4), chain.addr(0));
    chain.ok(
        4,
        Msg::Nft(NftMsg::SetOperator {
            owner: o,
            collection: "art".into(),
            operator: op,
            approved: true,
            expiry_height: None,
        }),
    );
    chain.ok(0, transfer_msg(&chain, 0, "art", "t1", 1));
    assert_eq!(owner(&chain, "art", "t1"), chain.addr(1));
    let owned: nftpb::TokensByOwnerResponse = chain.query(
        "/nft/tokens_by_owner",
        &nftpb::TokensByOwnerRequest {
            owner: chain.addr(1).to_string(),
            pagination: None,
        },
    );
    assert_eq!(owned.tokens.len(), 1);
    assert_eq!(owned.tokens[0].id, "t1");
}

#[test]
fn an_expired_approval_and_a_stranger_are_refused() {
    let mut chain = Chain::with_params(4, module_params());
    create(&mut chain, 0, "art", 0, None);
    mint(&mut chain, 0, "art", "t1", 1);
    let (o, spender) = (chain.addr(1), chain.addr(2));
    let expiry = chain.height + 2;
    chain.ok(
        1,
        Msg::Nft(NftMsg::Approve {
            owner: o,
            collection: "art".into(),
            token_id: "t1".into(),
            spender: Some(spender),
            expiry_height: Some(expiry),
        }),
    );
    chain.advance_to(expiry);
    chain.assert_msg_rejected(2, transfer_msg(&chain, 2, "art", "t1", 2), 78);
    chain.assert_msg_rejected(3, transfer_msg(&chain, 3, "art", "t1", 3), 77);
    // Burning is the owner's alone.
    let stranger = chain.addr(3);
    chain.assert_msg_rejected(
        3,
        Msg::Nft(NftMsg::Burn {
            owner: stranger,
            collection: "art".into(),
            token_id: "t1".into(),
        }),
        79,
    );
}

#[test]
fn buying_an_unlisted_or_relisted_higher_token_is_refused() {
    let mut chain = Chain::with_params(3, module_params());
    create(&mut chain, 0, "art", 100, None);
    mint(&mut chain, 0, "art", "t1", 1);
    chain.assert_msg_rejected(2, buy_msg(&chain, 2, "art", "t1", 500), 80);
    list(&mut chain, 1, "art", "t1", 500);
    list(&mut chain, 1, "art", "t1", 700);
    chain.assert_msg_rejected(2, buy_msg(&chain, 2, "art", "t1", 500), 81);
    // A transfer cancels the listing.
    chain.ok(1, transfer_msg(&chain, 1, "art", "t1", 0));
    chain.assert_msg_rejected(2, buy_msg(&chain, 2, "art", "t1", 700), 80);
    let listings: nftpb::ListingsResponse = chain.query(
        "/nft/listings",
        &nftpb::ListingsRequest {
            collection: String::new(),
            pagination: None,
        },
    );
    assert!(listings.listings.is_empty());
}

#[test]
fn max_supply_duplicates_and_minting_rights_are_enforced() {
    let mut chain = Chain::with_params(3, module_params());
    assert_eq!(create(&mut chain, 0, "art", 0, Some(2)), 0);
    assert_eq!(create(&mut chain, 1, "art", 0, None), 70);
    assert_eq!(mint(&mut chain, 0, "art", "a", 0), 0);
    assert_eq!(mint(&mut chain, 0, "art", "a", 0), 72);
    assert_eq!(mint(&mut chain, 1, "art", "b", 1), 76);
    assert_eq!(mint(&mut chain, 0, "nope", "b", 1), 71);
    assert_eq!(mint(&mut chain, 0, "art", "b", 0), 0);
    let minter = chain.addr(0);
    chain.assert_msg_rejected(
        0,
        Msg::Nft(NftMsg::Mint {
            minter,
            collection: "art".into(),
            token_id: "c".into(),
            owner: minter,
            uri: String::new(),
        }),
        75,
    );
    let minter = chain.addr(0);
    chain.assert_msg_rejected(
        0,
        Msg::Nft(NftMsg::Mint {
            minter,
            collection: "art".into(),
            token_id: "a".into(),
            owner: minter,
            uri: String::new(),
        }),
        72,
    );
    let col: nftpb::CollectionResponse = chain.query(
        "/nft/collection",
        &nftpb::CollectionRequest { id: "art".into() },
    );
    let col = col.collection.expect("collection");
    assert_eq!((col.minted, col.supply, col.max_supply), (2, 2, 2));
}

#[test]
fn a_module_can_own_a_collection_and_mint_into_it() {
    let chain = Chain::with_params(1, module_params());
    let params = module_params();
    let ctx = BlockCtx::pending(1, crate::common::CHAIN_ID, &params);
    let store = chain.app.store();
    let mut s = Overlay::new(store);
    let mut ev = Vec::new();
    nft::create_module_collection(
        &mut s, ctx, "market", "receipts", "Receipts", "RCPT", "", None, &mut ev,
    )
    .expect("create");
    let to = chain.addr(0);
    nft::mint_as_module(&mut s, ctx, "market", "receipts", "job-1", &to, "", &mut ev)
        .expect("mint");
    // Another module (or any account) cannot mint into it.
    let err = nft::mint_as_module(&mut s, ctx, "gov", "receipts", "job-2", &to, "", &mut ev);
    assert_eq!(err.map_err(|e| e.code()), Err(76));
    assert!(s
        .get(&nft::state_key::token("receipts", "job-1"))
        .expect("get")
        .is_some());
}
