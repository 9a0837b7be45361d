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

/// Most bytes of a `config.toml`, `provider.toml`, key, multisig or `devnet.json` file read.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads a file of the home (a config, key, multisig or manifest file) as UTF-8 text, reading no more than
/// [`MAX_FILE_BYTES`] + 1 bytes: a larger file, or a FIFO or device that never ends, is an error rather than
/// an unbounded allocation.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("over the {MAX_FILE_BYTES}-byte limit of this file"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod read_tests {
    use super::*;

    #[test]
    fn a_file_over_the_limit_or_without_end_is_refused_after_reading_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = dir.path().join("at.toml");
        std::fs::write(&at, vec![b'#'; MAX_FILE_BYTES as usize]).expect("write");
        assert_eq!(
            read_text(&at).expect("at the limit").len() as u64,
            MAX_FILE_BYTES
        );
        let over = dir.path().join("over.toml");
        std::fs::write(&over, vec![b'#'; MAX_FILE_BYTES as usize + 1]).expect("write");
        let e = read_text(&over).expect_err("over the limit");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
        // A device that never ends: refused once the limit is passed, not read forever.
        let e = read_text(Path::new("/dev/zero")).expect_err("endless");
        assert!(e.to_string().contains("limit"), "{e}");
    }
}
