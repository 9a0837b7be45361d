//! gov's events.

use crate::{address::Address, event::Event};

use super::tally::{Outcome, Tally};

pub fn submit(id: u64, proposer: &Address, kind: &str, deposit_end: u64) -> Event {
    Event::new("proposal_submitted")
        .attr("proposal_id", id.to_string())
        .attr("proposer", proposer.to_string())
        .attr("kind", kind)
        .attr("deposit_end_height", deposit_end.to_string())
}

pub fn deposit(id: u64, depositor: &Address, amount: u128, total: u128) -> Event {
    Event::new("proposal_deposit")
        .attr("proposal_id", id.to_string())
        .attr("depositor", depositor.to_string())
        .attr("amount", amount.to_string())
        .attr("total_deposit", total.to_string())
}

pub fn voting_started(id: u64, start: u64, end: u64) -> Event {
    Event::new("voting_period_started")
        .attr("proposal_id", id.to_string())
        .attr("start_height", start.to_string())
        .attr("end_height", end.to_string())
}

pub fn vote(id: u64, voter: &Address, options: &str) -> Event {
    Event::new("proposal_vote")
        .attr("proposal_id", id.to_string())
        .attr("voter", voter.to_string())
        .attr("options", options)
}

pub fn tallied(id: u64, t: &Tally, o: Outcome) -> Event {
    Event::new("proposal_tallied")
        .attr("proposal_id", id.to_string())
        .attr("outcome", o.as_str())
        .attr("yes", t.yes.to_string())
        .attr("abstain", t.abstain.to_string())
        .attr("no", t.no.to_string())
        .attr("no_with_veto", t.no_with_veto.to_string())
        .attr("total_bonded", t.total_bonded.to_string())
}

pub fn expired(id: u64) -> Event {
    Event::new("proposal_expired").attr("proposal_id", id.to_string())
}

pub fn deposits_settled(id: u64, total: u128, burned: bool) -> Event {
    Event::new(if burned {
        "proposal_deposits_burned"
    } else {
        "proposal_deposits_refunded"
    })
    .attr("proposal_id", id.to_string())
    .attr("amount", total.to_string())
}

pub fn executed(id: u64) -> Event {
    Event::new("proposal_executed").attr("proposal_id", id.to_string())
}

pub fn execution_failed(id: u64, reason: &str) -> Event {
    Event::new("proposal_failed")
        .attr("proposal_id", id.to_string())
        .attr("reason", reason)
}

pub fn param_change(path: &str, value: &str) -> Event {
    Event::new("param_change")
        .attr("path", path)
        .attr("value", value)
}

pub fn treasury_spend(id: u64, recipient: &Address, amount: u128) -> Event {
    Event::new("treasury_spend")
        .attr("proposal_id", id.to_string())
        .attr("recipient", recipient.to_string())
        .attr("amount", amount.to_string())
}
