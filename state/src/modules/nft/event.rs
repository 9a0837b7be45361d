//! nft's events.

use crate::{address::Address, event::Event};

fn tok(kind: &'static str, collection: &str, token: &str) -> Event {
    Event::new(kind)
        .attr("collection", collection)
        .attr("token_id", token)
}

pub fn collection_created(id: &str, creator: &Address, royalty_bps: u32) -> Event {
    Event::new("nft_collection_created")
        .attr("collection", id)
        .attr("creator", creator.to_string())
        .attr("royalty_bps", royalty_bps.to_string())
}

pub fn minted(c: &str, t: &str, minter: &Address, owner: &Address) -> Event {
    tok("nft_minted", c, t)
        .attr("minter", minter.to_string())
        .attr("owner", owner.to_string())
}

pub fn transfer(c: &str, t: &str, from: &Address, to: &Address, by: &Address) -> Event {
    tok("nft_transfer", c, t)
        .attr("from", from.to_string())
        .attr("to", to.to_string())
        .attr("sender", by.to_string())
}

pub fn approval(
    c: &str,
    t: &str,
    owner: &Address,
    spender: Option<&Address>,
    expiry: Option<u64>,
) -> Event {
    tok("nft_approval", c, t)
        .attr("owner", owner.to_string())
        .attr(
            "spender",
            spender.map(|a| a.to_string()).unwrap_or_default(),
        )
        .attr("expiry_height", expiry.unwrap_or(0).to_string())
}

pub fn operator(
    c: &str,
    owner: &Address,
    op: &Address,
    approved: bool,
    expiry: Option<u64>,
) -> Event {
    Event::new("nft_operator")
        .attr("collection", c)
        .attr("owner", owner.to_string())
        .attr("operator", op.to_string())
        .attr("approved", approved.to_string())
        .attr("expiry_height", expiry.unwrap_or(0).to_string())
}

pub fn burned(c: &str, t: &str, owner: &Address) -> Event {
    tok("nft_burned", c, t).attr("owner", owner.to_string())
}

pub fn listed(c: &str, t: &str, seller: &Address, price: u128) -> Event {
    tok("nft_listed", c, t)
        .attr("seller", seller.to_string())
        .attr("price", price.to_string())
}

pub fn listing_cancelled(c: &str, t: &str, reason: &str) -> Event {
    tok("nft_listing_cancelled", c, t).attr("reason", reason)
}

pub fn sale(
    c: &str,
    t: &str,
    seller: &Address,
    buyer: &Address,
    price: u128,
    royalty: u128,
    creator: &Address,
) -> Event {
    tok("nft_sale", c, t)
        .attr("seller", seller.to_string())
        .attr("buyer", buyer.to_string())
        .attr("price", price.to_string())
        .attr("royalty", royalty.to_string())
        .attr("royalty_recipient", creator.to_string())
        .attr("seller_proceeds", price.saturating_sub(royalty).to_string())
}
