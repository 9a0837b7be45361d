//! `lode tx multisig …`: co-sign an unsigned multisig tx offline, then broadcast it.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use eyre::{bail, eyre, WrapErr};
use lode_state::tx::multisig::{self, MultisigTx};

use super::super::client::{connect, find_signer, runtime, Signer, DEFAULT_NODE};
use super::super::HomeArg;
use super::broadcast;

#[derive(Debug, Subcommand)]
pub(crate) enum MultisigCmd {
    /// Add the `--from` key's signature to an unsigned multisig tx file (in place), after checking it.
    Sign {
        /// The unsigned tx file written by `--out`.
        file: PathBuf,
        #[command(flatten)]
        home: HomeArg,
        /// A member key: name in `<home>/keys` or a key file path.
        #[arg(long)]
        from: String,
    },
    /// Broadcast a multisig tx file once it holds at least `threshold` signatures.
    Broadcast {
        file: PathBuf,
        #[arg(long, env = "LODE_NODE", default_value = DEFAULT_NODE)]
        node: String,
        #[arg(long)]
        wait: bool,
        /// Simulate it instead (gas, fee, result, events); send nothing.
        #[arg(long, conflicts_with = "wait")]
        dry_run: bool,
    },
}

fn read_doc(path: &Path) -> eyre::Result<MultisigTx> {
    let text =
        crate::home::read_text(path).wrap_err_with(|| format!("cannot read {}", path.display()))?;
    let doc: MultisigTx = serde_json::from_str(&text)
        .wrap_err_with(|| format!("{} is not an unsigned multisig tx", path.display()))?;
    doc.key().map_err(|e| eyre!("{}: {e}", path.display()))?;
    Ok(doc)
}

/// Runs a `lode tx multisig` command.
pub(super) fn run(cmd: &MultisigCmd) -> eyre::Result<()> {
    match cmd {
        MultisigCmd::Sign { file, home, from } => {
            let Signer::Key(key) = find_signer(from, &home.home)? else {
                bail!("--from must be a member's own key, not a multisig account");
            };
            let mut doc = read_doc(file)?;
            let signing = key.signing_key()?;
            let sig = multisig::sign(&doc, &signing);
            multisig::add_signature(&mut doc, &key.public_key_bytes()?, &sig)
                .map_err(|e| eyre!("cannot add {}'s signature: {e}", key.name))?;
            let mut json = serde_json::to_string_pretty(&doc)?;
            json.push('\n');
            // Write a sibling file and rename it over the original: a crash leaves the old or the new file.
            let tmp = file.with_extension("tmp");
            std::fs::write(&tmp, json)
                .wrap_err_with(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(&tmp, file)?;
            let threshold = doc.key().map(|k| k.threshold).unwrap_or_default();
            super::super::emit(
                serde_json::json!({
                    "signed_by": key.name,
                    "signatures": doc.signed(),
                    "threshold": threshold,
                    "file": file,
                }),
                || {
                    println!(
                        "signed by {}: {} of {} needed signatures",
                        key.name,
                        doc.signed(),
                        threshold
                    )
                },
            )
        }
        MultisigCmd::Broadcast {
            file,
            node,
            wait,
            dry_run,
        } => {
            let doc = read_doc(file)?;
            let tx = multisig::assemble(&doc).map_err(|e| eyre!("cannot assemble: {e}"))?;
            runtime()?.block_on(async {
                let channel = connect(node).await?;
                if *dry_run {
                    let fee = <lode_proto::tx::v1::AuthInfo as prost::Message>::decode(
                        doc.auth_info_bytes.as_slice(),
                    )
                    .ok()
                    .and_then(|a| a.fee)
                    .map(|f| f.amount)
                    .unwrap_or_default();
                    super::dry_run(channel, tx, &fee).await
                } else {
                    broadcast(channel, tx, *wait).await
                }
            })
        }
    }
}
