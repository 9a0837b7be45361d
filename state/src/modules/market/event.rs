//! market's events (compute's lifecycle events are in `compute::event`). Every job event carries `job`
//! (hex id); provider events carry `provider`.

use crate::{address::Address, event::Event};

pub fn job(kind: &'static str, id: &[u8; 32]) -> Event {
    Event::new(kind).attr("job", hex::encode(id))
}

pub fn provider(kind: &'static str, a: &Address) -> Event {
    Event::new(kind).attr("provider", a.to_string())
}
