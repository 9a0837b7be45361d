//! `lode testnet init`: lay out the homes of a local multi-validator network (the layout is
//! [`crate::testnet`]). `lode devnet` runs such a network, `lode bench` load-tests a fresh one.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::testnet::{self, TestnetSpec};

#[derive(Debug, Subcommand)]
pub(super) enum TestnetCommand {
    /// Create the homes of an N-validator network sharing one genesis, on loopback ports.
    Init(TestnetInitArgs),
}

#[derive(Debug, Args)]
pub(super) struct TestnetInitArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Directory to create the homes in (`node0`, `node1`, …).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    net: NetArgs,
}

/// Settings shared by `testnet init` and `devnet`.
#[derive(Debug, Clone, Args)]
pub(super) struct NetArgs {
    /// Chain id.
    #[arg(long, env = "LODE_CHAIN_ID", default_value = "lode-devnet-1")]
    chain_id: String,
    /// Funded dev accounts (keys in node0's keys directory).
    #[arg(long, default_value_t = 4)]
    dev_accounts: usize,
    /// First port: node i listens on base+10i (consensus), +1 (gossip), +2 (gRPC), +3 (ABCI); 0 picks free
    /// ports. The default puts node 0's gRPC on 9090.
    #[arg(long, default_value_t = 9088)]
    base_port: u16,
    /// Consensus propose timeout in milliseconds (prevote/precommit get half of it). An idle chain makes an
    /// empty block every half of this; blocks with transactions come as fast as the validators vote.
    #[arg(long, default_value_t = 1000)]
    timeout_propose_ms: u64,
    /// BIP-39 mnemonic the dev accounts are derived from (account k on `m/44'/7337'/0'/0'/k'`). The default
    /// is the public devnet mnemonic, so dev accounts have the same addresses on every machine.
    #[arg(long, env = "LODE_MNEMONIC", default_value = crate::hd::DEVNET_MNEMONIC, hide_default_value = true)]
    mnemonic: String,
    /// Random dev account keys instead of the mnemonic's.
    #[arg(long, conflicts_with = "mnemonic")]
    random_keys: bool,
}

impl NetArgs {
    pub(super) fn spec(&self, validators: usize) -> TestnetSpec {
        TestnetSpec {
            chain_id: self.chain_id.clone(),
            validators,
            dev_accounts: self.dev_accounts,
            base_port: self.base_port,
            timeout_propose_ms: self.timeout_propose_ms,
            mnemonic: (!self.random_keys).then(|| self.mnemonic.clone()),
        }
    }
}

pub(super) fn run(cmd: &TestnetCommand) -> eyre::Result<()> {
    match cmd {
        TestnetCommand::Init(a) => {
            let nodes = testnet::create(&a.out, &a.net.spec(a.validators))?;
            super::emit(manifest(&a.out)?, || {
                println!(
                    "created {} validator homes under {}",
                    nodes.len(),
                    a.out.display()
                );
                for n in &nodes {
                    println!("  {}  grpc http://{}", n.home.display(), n.grpc);
                }
            })?;
            if !super::json_output() {
                print_dev_accounts(&a.out)?;
            }
            Ok(())
        }
    }
}

/// The testnet's `devnet.json` as a value.
pub(super) fn manifest(dir: &std::path::Path) -> eyre::Result<serde_json::Value> {
    let text = crate::home::read_text(&dir.join(testnet::MANIFEST))?;
    Ok(serde_json::from_str(&text)?)
}

pub(super) fn print_dev_accounts(dir: &std::path::Path) -> eyre::Result<()> {
    println!("dev accounts (balance {} each):", testnet::DEV_BALANCE);
    for k in testnet::dev_keys(dir)? {
        println!(
            "  {}  {}  key {}",
            k.name,
            k.address,
            testnet::node_home(dir, 0)
                .join("keys")
                .join(format!("{}.json", k.name))
                .display()
        );
        println!("        private key {}", k.private_key);
    }
    match testnet::manifest_mnemonic(dir) {
        Some(m) if m == crate::hd::DEVNET_MNEMONIC => println!(
            "(derived from the public devnet mnemonic \"{m}\"; never hold value with these keys)"
        ),
        Some(m) => println!("(derived from the mnemonic \"{m}\")"),
        None => {}
    }
    println!(
        "everything above, for scripts: {}",
        dir.join(testnet::MANIFEST).display()
    );
    Ok(())
}
