//! The JMT's storage on RocksDB: nodes by key, and the value history by (key hash, version).

use borsh::BorshDeserialize;
use jmt::{
    storage::{LeafNode, Node, NodeKey, TreeReader, TreeUpdateBatch},
    KeyHash, OwnedValue, Version,
};
use rocksdb::WriteBatch;

use super::{Store, CF_JMT_NODES, CF_JMT_VALUES};
use crate::error::StoreError;

/// Reads committed JMT data.
#[derive(Debug)]
pub struct JmtReader<'a> {
    store: &'a Store,
}

impl<'a> JmtReader<'a> {
    pub fn new(store: &'a Store) -> Self {
        JmtReader { store }
    }
}

fn value_key(key_hash: &KeyHash, version: Version) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(&key_hash.0);
    k[32..].copy_from_slice(&version.to_be_bytes());
    k
}

impl TreeReader for JmtReader<'_> {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        let key = borsh::to_vec(node_key)?;
        let cf = self.store.cf(CF_JMT_NODES)?;
        match self.store.db.get_pinned_cf(cf, key)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(Node::try_from_slice(&bytes)?)),
        }
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        let cf = self.store.cf(CF_JMT_VALUES)?;
        let mut iter = self.store.db.raw_iterator_cf(cf);
        iter.seek_for_prev(value_key(&key_hash, max_version));
        iter.status()?;
        match (iter.key(), iter.value()) {
            (Some(k), Some(v)) if k.len() == 40 && k[..32] == key_hash.0 => match v.split_first() {
                Some((0, _)) => Ok(None),
                Some((1, rest)) => Ok(Some(rest.to_vec())),
                _ => Err(StoreError::Corrupt {
                    key: hex::encode(k),
                    reason: "bad value tag".into(),
                }
                .into()),
            },
            _ => Ok(None),
        }
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        // Only JMT's state-sync restore needs this, and Lode does not restore trees from chunks.
        anyhow::bail!("get_rightmost_leaf is not supported by Lode's store")
    }
}

/// Adds a JMT update (new nodes and the new values) to a write batch. Stale nodes are kept so that
/// queries with proofs work at past heights.
pub fn write_tree_batch(
    store: &Store,
    wb: &mut WriteBatch,
    tree: &TreeUpdateBatch,
) -> Result<(), StoreError> {
    let nodes = store.cf(CF_JMT_NODES)?;
    for (key, node) in tree.node_batch.nodes() {
        let k = borsh::to_vec(key).map_err(|e| StoreError::Jmt(e.to_string()))?;
        let v = borsh::to_vec(node).map_err(|e| StoreError::Jmt(e.to_string()))?;
        wb.put_cf(nodes, k, v);
    }
    let values = store.cf(CF_JMT_VALUES)?;
    for ((version, key_hash), value) in tree.node_batch.values() {
        let v = match value {
            None => vec![0u8],
            Some(v) => {
                let mut out = Vec::with_capacity(v.len() + 1);
                out.push(1u8);
                out.extend_from_slice(v);
                out
            }
        };
        wb.put_cf(values, value_key(key_hash, *version), v);
    }
    Ok(())
}
