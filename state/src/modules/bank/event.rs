//! bank's events.

use crate::{address::Address, event::Event};

pub fn transfer(from: &Address, to: &Address, amount: u128) -> Event {
    Event::new("transfer")
        .attr("sender", from.to_string())
        .attr("recipient", to.to_string())
        .attr("amount", amount.to_string())
}
