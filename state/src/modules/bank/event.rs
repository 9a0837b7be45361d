//! bank's events.

use crate::{address::Address, event::Event};

pub fn transfer(from: &Address, to: &Address, amount: u128) -> Event {
    Event::new("transfer")
        .attr("sender", from)
        .attr("recipient", to)
        .attr("amount", amount)
}
