//! Events emitted by execution: a kind and ordered string attributes. `app.rs` turns them into ABCI events.

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: &'static str,
    pub attributes: Vec<(&'static str, String)>,
}

impl Event {
    pub fn new(kind: &'static str) -> Self {
        Event {
            kind,
            attributes: Vec::new(),
        }
    }

    pub fn attr(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.attributes.push((key, value.into()));
        self
    }
}
