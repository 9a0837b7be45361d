//! Uncommitted state: a sorted map of writes layered over something readable. A block executes into an
//! overlay of the store; each tx's messages execute into an overlay of the block, merged only on success.

use std::collections::BTreeMap;

use crate::error::StoreError;

/// A raw (key, value) pair.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Pending writes: key → new value, or None for a deletion. Sorted, so iteration is deterministic.
pub type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Read access to state.
pub trait StateRead {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Every live (key, value) under `prefix`, in key order. Modules use it for small per-owner or
    /// per-proposal ranges (votes of a proposal, delegations of an account, queue entries of a height).
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError>;
}

/// Write access to state.
pub trait StateWrite: StateRead {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>);
    fn delete(&mut self, key: Vec<u8>);
}

/// Writes buffered over a base.
#[derive(Debug)]
pub struct Overlay<'a, B: StateRead + ?Sized> {
    base: &'a B,
    writes: Writes,
}

impl<'a, B: StateRead + ?Sized> Overlay<'a, B> {
    pub fn new(base: &'a B) -> Self {
        Overlay {
            base,
            writes: Writes::new(),
        }
    }

    /// An overlay that continues from earlier writes.
    pub fn with_writes(base: &'a B, writes: Writes) -> Self {
        Overlay { base, writes }
    }

    pub fn into_writes(self) -> Writes {
        self.writes
    }

    /// Applies writes made on top of this overlay.
    pub fn merge(&mut self, writes: Writes) {
        self.writes.extend(writes);
    }
}

impl<B: StateRead + ?Sized> StateRead for Overlay<'_, B> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> =
            self.base.scan_prefix(prefix)?.into_iter().collect();
        for (k, v) in self
            .writes
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
        {
            match v {
                Some(v) => {
                    merged.insert(k.clone(), v.clone());
                }
                None => {
                    merged.remove(k);
                }
            }
        }
        Ok(merged.into_iter().collect())
    }
}

impl<B: StateRead + ?Sized> StateWrite for Overlay<'_, B> {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }
}
