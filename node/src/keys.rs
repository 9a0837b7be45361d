//! Key files: one ed25519 key per JSON file in `<home>/keys/`, created with mode 0600 and never overwritten.

use std::{
    fmt,
    fs::OpenOptions,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

use ed25519_consensus::SigningKey;
use eyre::{bail, ensure, eyre, WrapErr};
use lode_state::address::Address;
use serde::{Deserialize, Serialize};

/// A key file's content. `address` and `public_key` are derived from `private_key` and checked on load.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// The key's name (its file name without `.json`).
    pub name: String,
    /// bech32m `lode1…` account address of the key.
    pub address: String,
    /// ed25519 public key, hex.
    pub public_key: String,
    /// ed25519 private key (the 32-byte seed), hex.
    pub private_key: String,
}

// The private key never reaches a log line.
impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl KeyFile {
    /// A fresh random key from the operating system's RNG.
    pub fn generate(name: &str) -> eyre::Result<Self> {
        validate_name(name)?;
        Ok(Self::from_signing_key(
            name,
            &SigningKey::new(rand_core::OsRng),
        ))
    }

    /// The key file for an existing signing key.
    pub fn from_signing_key(name: &str, key: &SigningKey) -> Self {
        let public = key.verification_key().to_bytes();
        Self {
            name: name.to_owned(),
            address: Address::from_public_key(&public).to_string(),
            public_key: hex::encode(public),
            private_key: hex::encode(key.to_bytes()),
        }
    }

    /// The signing key, after checking that the public key and address match it.
    pub fn signing_key(&self) -> eyre::Result<SigningKey> {
        let seed: [u8; 32] = hex::decode(&self.private_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| eyre!("key {:?}: private_key is not 32 bytes of hex", self.name))?;
        let key = SigningKey::from(seed);
        let derived = Self::from_signing_key(&self.name, &key);
        ensure!(
            derived.public_key == self.public_key,
            "key {:?}: public_key does not match private_key",
            self.name
        );
        ensure!(
            derived.address == self.address,
            "key {:?}: address does not match private_key",
            self.name
        );
        Ok(key)
    }

    /// The 32-byte public key.
    pub fn public_key_bytes(&self) -> eyre::Result<[u8; 32]> {
        Ok(self.signing_key()?.verification_key().to_bytes())
    }

    /// Reads and checks a key file.
    pub fn load(path: &Path) -> eyre::Result<Self> {
        let text = crate::home::read_text(path)
            .wrap_err_with(|| format!("cannot read key file {}", path.display()))?;
        let key: Self = serde_json::from_str(&text)
            .wrap_err_with(|| format!("invalid key file {}", path.display()))?;
        key.signing_key()
            .wrap_err_with(|| format!("invalid key file {}", path.display()))?;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format_args!("{mode:o}"), "key file is readable by others");
        }
        Ok(key)
    }

    /// Writes the key to `path`, which must not exist yet, readable and writable by the owner only.
    pub fn save_new(&self, path: &Path) -> eyre::Result<()> {
        write_new_json(path, self, 0o600, "key file")
    }
}

/// A k-of-n multisig account: `<home>/keys/multisig/<name>.json`. It holds public keys only; each co-signer
/// keeps its own private key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultisigFile {
    /// The account's name.
    pub name: String,
    /// bech32m `lode1…` address, derived from the threshold and the keys.
    pub address: String,
    /// Signatures needed.
    pub threshold: u32,
    /// Member ed25519 public keys, hex, strictly ascending.
    pub public_keys: Vec<String>,
}

impl MultisigFile {
    /// A multisig account of `threshold` of `keys` (any order; sorted here). Checks the set.
    pub fn new(name: &str, threshold: u32, keys: Vec<[u8; 32]>) -> eyre::Result<Self> {
        validate_name(name)?;
        let key = lode_state::tx::multisig::MultisigKey::new(threshold, keys)
            .map_err(|e| eyre!("invalid multisig: {e}"))?;
        Ok(Self {
            name: name.to_owned(),
            address: key.address().to_string(),
            threshold: key.threshold,
            public_keys: key.keys.iter().map(hex::encode).collect(),
        })
    }

    /// The key set, after checking the keys and that the address matches them.
    pub fn key(&self) -> eyre::Result<lode_state::tx::multisig::MultisigKey> {
        let keys = self
            .public_keys
            .iter()
            .map(|k| {
                hex::decode(k)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| {
                        eyre!("multisig {:?}: {k:?} is not a 32-byte hex key", self.name)
                    })
            })
            .collect::<eyre::Result<Vec<_>>>()?;
        let key = lode_state::tx::multisig::MultisigKey::checked(self.threshold, keys)
            .map_err(|e| eyre!("multisig {:?}: {e}", self.name))?;
        ensure!(
            key.address().to_string() == self.address,
            "multisig {:?}: address does not match its keys",
            self.name
        );
        Ok(key)
    }

    /// Reads and checks a multisig file.
    pub fn load(path: &Path) -> eyre::Result<Self> {
        let text = crate::home::read_text(path)
            .wrap_err_with(|| format!("cannot read multisig file {}", path.display()))?;
        let m: Self = serde_json::from_str(&text)
            .wrap_err_with(|| format!("invalid multisig file {}", path.display()))?;
        m.key()
            .wrap_err_with(|| format!("invalid multisig file {}", path.display()))?;
        Ok(m)
    }

    /// Writes the file to `path`, which must not exist yet.
    pub fn save_new(&self, path: &Path) -> eyre::Result<()> {
        write_new_json(path, self, 0o644, "multisig file")
    }
}

/// Writes `value` as pretty JSON to `path`, which must not exist yet, with file `mode`, and syncs it.
/// `what` names the file in the error.
pub fn write_new_json(
    path: &Path,
    value: &impl Serialize,
    mode: u32,
    what: &str,
) -> eyre::Result<()> {
    let mut json = serde_json::to_string_pretty(value)?;
    json.push('\n');
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .wrap_err_with(|| format!("cannot create {what} {}", path.display()))?;
    file.write_all(json.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// A key name is 1 to 64 characters of `[A-Za-z0-9_-]`, so it is always a plain file name.
pub fn validate_name(name: &str) -> eyre::Result<()> {
    if name.is_empty() || name.len() > 64 {
        bail!("key name must be 1 to 64 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        bail!("key name {name:?} may contain only ASCII letters, digits, '_' and '-'");
    }
    Ok(())
}

/// Creates the keys directory (mode 0700) if it does not exist.
pub fn create_keys_dir(dir: &Path) -> eyre::Result<()> {
    std::fs::create_dir_all(dir).wrap_err_with(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// Every key file in `dir`, sorted by name. A missing directory has no keys.
pub fn list(dir: &Path) -> eyre::Result<Vec<KeyFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).wrap_err_with(|| format!("cannot list {}", dir.display())),
    };
    let mut keys = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            keys.push(KeyFile::load(&path)?);
        }
    }
    keys.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_key_loads_back_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = KeyFile::generate("alice").expect("key");
        let path = dir.path().join("alice.json");
        key.save_new(&path).expect("save");
        assert_eq!(
            std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(KeyFile::load(&path).expect("load"), key);
        assert!(
            key.save_new(&path).is_err(),
            "overwrote an existing key file"
        );
    }

    #[test]
    fn a_multisig_file_round_trips_and_rejects_a_tampered_threshold() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys: Vec<[u8; 32]> = (0..3)
            .map(|_| {
                KeyFile::generate("m")
                    .and_then(|k| k.public_key_bytes())
                    .expect("key")
            })
            .collect();
        let m = MultisigFile::new("team", 2, keys.clone()).expect("multisig");
        let path = dir.path().join("team.json");
        m.save_new(&path).expect("save");
        assert_eq!(MultisigFile::load(&path).expect("load"), m);
        let mut tampered = m.clone();
        tampered.threshold = 1;
        assert!(
            tampered.key().is_err(),
            "address kept for another threshold"
        );
        assert!(MultisigFile::new("team", 4, keys.clone()).is_err());
        assert!(MultisigFile::new("team", 2, vec![keys[0], keys[0]]).is_err());
    }

    #[test]
    fn a_tampered_address_is_rejected() {
        let mut key = KeyFile::generate("bob").expect("key");
        key.address = KeyFile::generate("eve").expect("key").address;
        assert!(key.signing_key().is_err());
    }

    #[test]
    fn debug_output_hides_the_private_key() {
        let key = KeyFile::generate("carol").expect("key");
        assert!(!format!("{key:?}").contains(&key.private_key));
    }

    #[test]
    fn names_that_are_not_plain_file_names_are_rejected() {
        for bad in ["", "../x", "a/b", "a.b", "x y", &"k".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name("dev0_A-1").is_ok());
    }
}
