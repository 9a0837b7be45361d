//! The JMT's storage on RocksDB: nodes by key, and the value history by (key hash, version).

use borsh::BorshDeserialize;
use jmt::{
    storage::{HasPreimage, LeafNode, Node, NodeKey, TreeReader, TreeUpdateBatch},
    KeyHash, OwnedValue, Version,
};
use rocksdb::WriteBatch;

use super::{Store, CF_JMT_NODES, CF_JMT_PREIMAGES, CF_JMT_VALUES};
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
        if let Some(node) = self
            .store
            .last_nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get_node(node_key)
        {
            return Ok(Some(node.clone()));
        }
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
            (Some(k), Some(v)) if k.len() == 40 && k.starts_with(&key_hash.0) => {
                match v.split_first() {
                    Some((0, _)) => Ok(None),
                    Some((1, rest)) => Ok(Some(rest.to_vec())),
                    _ => Err(StoreError::Corrupt {
                        key: hex::encode(k),
                        reason: "bad value tag".into(),
                    }
                    .into()),
                }
            }
            _ => Ok(None),
        }
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        // Only JMT's state-sync restore needs this, and Lode does not restore trees from chunks.
        anyhow::bail!("get_rightmost_leaf is not supported by Lode's store")
    }
}

impl HasPreimage for JmtReader<'_> {
    fn preimage(&self, key_hash: KeyHash) -> anyhow::Result<Option<Vec<u8>>> {
        let cf = self.store.cf(CF_JMT_PREIMAGES)?;
        Ok(self.store.db.get_cf(cf, key_hash.0)?)
    }
}

/// Adds a JMT update (new nodes and the new values) to a write batch. Stale nodes are kept so that
/// queries with proofs work at past heights.
pub fn write_tree_batch(
    store: &Store,
    wb: &mut WriteBatch,
    tree: &TreeUpdateBatch,
) -> Result<(), StoreError> {
    let jmt_err = |e: std::io::Error| StoreError::Jmt(e.to_string());
    let nodes = store.cf(CF_JMT_NODES)?;
    let mut keyed = tree
        .node_batch
        .nodes()
        .iter()
        .map(|(key, node)| Ok((borsh::to_vec(key)?, node)))
        .collect::<Result<Vec<(Vec<u8>, &Node)>, std::io::Error>>()
        .map_err(jmt_err)?;
    // In the order of the encoded keys (not the tree's: borsh writes the version little-endian), so that
    // each memtable insert lands next to the previous one, several times cheaper than a random place.
    // Keys are distinct.
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut buf = Vec::with_capacity(1024);
    for (k, node) in keyed {
        buf.clear();
        borsh::to_writer(&mut buf, node).map_err(jmt_err)?;
        wb.put_cf(nodes, k, &buf);
    }
    // Already in key order: same version, ascending key hash.
    let values = store.cf(CF_JMT_VALUES)?;
    for ((version, key_hash), value) in tree.node_batch.values() {
        buf.clear();
        match value {
            None => buf.push(0u8),
            Some(v) => {
                buf.push(1u8);
                buf.extend_from_slice(v);
            }
        }
        wb.put_cf(values, value_key(key_hash, *version), &buf);
    }
    Ok(())
}
