//! staking's events.

use crate::{address::Address, event::Event};

pub fn create_validator(op: &Address, moniker: &str, self_bond: u128) -> Event {
    Event::new("create_validator")
        .attr("validator", op.to_string())
        .attr("moniker", moniker)
        .attr("self_bond", self_bond.to_string())
}

pub fn delegate(del: &Address, val: &Address, amount: u128) -> Event {
    Event::new("delegate")
        .attr("delegator", del.to_string())
        .attr("validator", val.to_string())
        .attr("amount", amount.to_string())
}

pub fn undelegate(del: &Address, val: &Address, amount: u128, completion_height: u64) -> Event {
    Event::new("undelegate")
        .attr("delegator", del.to_string())
        .attr("validator", val.to_string())
        .attr("amount", amount.to_string())
        .attr("completion_height", completion_height.to_string())
}

pub fn unbonding_complete(del: &Address, val: &Address, amount: u128) -> Event {
    Event::new("unbonding_complete")
        .attr("delegator", del.to_string())
        .attr("validator", val.to_string())
        .attr("amount", amount.to_string())
}

pub fn link_provider(op: &Address, provider: &Address, epoch: u64) -> Event {
    Event::new("link_provider")
        .attr("validator", op.to_string())
        .attr("provider", provider.to_string())
        .attr("epoch", epoch.to_string())
}

pub fn unlink_provider(op: &Address, provider: &Address, epoch: u64) -> Event {
    Event::new("unlink_provider")
        .attr("validator", op.to_string())
        .attr("provider", provider.to_string())
        .attr("epoch", epoch.to_string())
}
