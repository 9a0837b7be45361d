//! `lode keys add|list|show`.

use clap::Subcommand;
use eyre::{bail, WrapErr};

use super::HomeArg;
use crate::keys::{self, KeyFile};

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
            print_key(&key, false);
            println!("file:        {}", path.display());
        }
        KeysCommand::List { home } => {
            for key in keys::list(&home.home().keys_dir())? {
                println!("{}\t{}", key.name, key.address);
            }
        }
        KeysCommand::Show {
            name,
            private,
            home,
        } => {
            keys::validate_name(name)?;
            let path = home.home().key_path(name);
            let key = KeyFile::load(&path).wrap_err_with(|| format!("no usable key {name:?}"))?;
            print_key(&key, *private);
        }
    }
    Ok(())
}

fn print_key(key: &KeyFile, private: bool) {
    println!("name:        {}", key.name);
    println!("address:     {}", key.address);
    println!("public_key:  {}", key.public_key);
    if private {
        println!("private_key: {}", key.private_key);
    }
}
