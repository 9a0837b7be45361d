//! `lode keys add|list|show|multisig`.

use std::path::Path;

use clap::Subcommand;
use eyre::{bail, WrapErr};

use super::HomeArg;
use crate::keys::{self, KeyFile, MultisigFile};

#[derive(Debug, Subcommand)]
pub(super) enum KeysCommand {
    /// Create a new random key (file mode 0600); refuses an existing name.
    Add {
        /// Key name: letters, digits, '_' and '-'.
        name: String,
        #[command(flatten)]
        home: HomeArg,
    },
    /// List the keys: name and address.
    List {
        #[command(flatten)]
        home: HomeArg,
    },
    /// Create a k-of-n multisig account from member public keys (`<home>/keys/multisig/<name>.json`).
    Multisig {
        /// Account name.
        name: String,
        /// Signatures needed.
        #[arg(long)]
        threshold: u32,
        /// A member: key name in `<home>/keys`, key file path, or 64-hex ed25519 public key. Repeat per
        /// member.
        #[arg(long = "key", required = true)]
        keys: Vec<String>,
        #[command(flatten)]
        home: HomeArg,
    },
    /// Show a key's address and public key.
    Show {
        /// Key name.
        name: String,
        /// Also print the private key.
        #[arg(long)]
        private: bool,
        #[command(flatten)]
        home: HomeArg,
    },
}

pub(super) fn run(cmd: &KeysCommand) -> eyre::Result<()> {
    match cmd {
        KeysCommand::Add { name, home } => {
            let home = home.home();
            keys::validate_name(name)?;
            let path = home.key_path(name);
            if path.exists() {
                bail!("key {name:?} already exists at {}", path.display());
            }
            keys::create_keys_dir(&home.keys_dir())?;
            let key = KeyFile::generate(name)?;
            key.save_new(&path)?;
            print_key(&key, false, Some(&path))?;
        }
        KeysCommand::Multisig {
            name,
            threshold,
            keys: members,
            home,
        } => {
            let home = home.home();
            let mut public = Vec::new();
            for m in members {
                public.push(member_key(m, &home)?);
            }
            let multisig = MultisigFile::new(name, *threshold, public)?;
            let dir = home.keys_dir().join("multisig");
            keys::create_keys_dir(&home.keys_dir())?;
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(format!("{name}.json"));
            if path.exists() {
                bail!("multisig {name:?} already exists at {}", path.display());
            }
            multisig.save_new(&path)?;
            super::emit(
                serde_json::json!({
                    "name": multisig.name,
                    "address": multisig.address,
                    "threshold": multisig.threshold,
                    "public_keys": multisig.public_keys,
                    "file": path,
                }),
                || {
                    println!("name:      {}", multisig.name);
                    println!("address:   {}", multisig.address);
                    println!(
                        "threshold: {} of {}",
                        multisig.threshold,
                        multisig.public_keys.len()
                    );
                    println!("file:      {}", path.display());
                },
            )?;
        }
        KeysCommand::List { home } => {
            let keys = keys::list(&home.home().keys_dir())?;
            super::emit(
                keys.iter()
                    .map(|k| {
                        serde_json::json!({
                            "name": k.name,
                            "address": k.address,
                            "public_key": k.public_key,
                        })
                    })
                    .collect(),
                || {
                    for key in &keys {
                        println!("{}\t{}", key.name, key.address);
                    }
                },
            )?;
        }
        KeysCommand::Show {
            name,
            private,
            home,
        } => {
            keys::validate_name(name)?;
            let path = home.home().key_path(name);
            let key = KeyFile::load(&path).wrap_err_with(|| format!("no usable key {name:?}"))?;
            print_key(&key, *private, None)?;
        }
    }
    Ok(())
}

fn print_key(key: &KeyFile, private: bool, file: Option<&Path>) -> eyre::Result<()> {
    let mut v = serde_json::json!({
        "name": key.name,
        "address": key.address,
        "public_key": key.public_key,
    });
    if private {
        v["private_key"] = key.private_key.clone().into();
    }
    if let Some(f) = file {
        v["file"] = f.display().to_string().into();
    }
    super::emit(v, || {
        println!("name:        {}", key.name);
        println!("address:     {}", key.address);
        println!("public_key:  {}", key.public_key);
        if private {
            println!("private_key: {}", key.private_key);
        }
        if let Some(f) = file {
            println!("file:        {}", f.display());
        }
    })
}

/// A multisig member: a 64-hex public key, a key file path, or a key name in the home.
fn member_key(m: &str, home: &crate::home::Home) -> eyre::Result<[u8; 32]> {
    if m.len() == 64 {
        if let Some(k) = hex::decode(m)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        {
            return Ok(k);
        }
    }
    let path = std::path::Path::new(m);
    let path = if path.is_file() {
        path.to_path_buf()
    } else {
        keys::validate_name(m)?;
        home.key_path(m)
    };
    KeyFile::load(&path)
        .wrap_err_with(|| format!("member {m:?}"))?
        .public_key_bytes()
}
