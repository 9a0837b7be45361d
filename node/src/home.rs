//! The layout of a node's home directory.
//!
//! ```text
//! <home>/config.toml      node configuration (see `config`)
//! <home>/genesis.json     the chain's genesis
//! <home>/keys/            key files, mode 0600 (node_key.json, validator_key.json, dev0.json, ...)
//! <home>/data/            RocksDB: application state, blocks, indexes
//! ```

use std::path::{Path, PathBuf};

/// File name of the node's network key in `keys/`: the libp2p identity (peer id) of both swarms, vouched
/// for by the validator key's proof on the consensus swarm. A home without one runs its swarms under the
/// validator key (homes made before node keys).
pub const NODE_KEY: &str = "node_key";
/// File name of the validator's consensus key in `keys/`.
pub const VALIDATOR_KEY: &str = "validator_key";
/// File name of the funded development account `lode init` creates in `keys/`.
pub const DEV_KEY: &str = "dev0";

/// A node home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home at `root` (nothing is created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The home directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `genesis.json`.
    pub fn genesis_path(&self) -> PathBuf {
        self.root.join("genesis.json")
    }

    /// `keys/`.
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// `keys/<name>.json`.
    pub fn key_path(&self, name: &str) -> PathBuf {
        self.keys_dir().join(format!("{name}.json"))
    }

    /// `data/`, the RocksDB directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }
}

/// `$HOME/.lode`, or `.lode` when `HOME` is unset.
pub fn default_home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from(".lode"),
        |h| PathBuf::from(h).join(".lode"),
    )
}
