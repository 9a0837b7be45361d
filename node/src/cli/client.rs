//! `lode tx …` and `lode query …`: clients of a node's gRPC API.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use eyre::{bail, eyre, WrapErr};
use lode_state::Address;

use super::HomeArg;
use crate::{
    devnet,
    keys::KeyFile,
    services::grpc::pb::{
        self, query_service_client::QueryServiceClient, tx_service_client::TxServiceClient,
    },
};

/// Default node URL: node 0 of `lode devnet`, or a `lode init` home.
pub const DEFAULT_NODE: &str = "http://127.0.0.1:9090";

#[derive(Debug, Subcommand)]
pub(super) enum TxCommand {
    /// Transfer tokens.
    Send(SendArgs),
}

#[derive(Debug, Args)]
pub(super) struct SendArgs {
    #[command(flatten)]
    home: HomeArg,
    /// Sender: a key file path, or a key name in `<home>/keys` or in the default devnet's node0 keys.
    #[arg(long)]
    from: String,
    /// Recipient `lode1…` address.
    #[arg(long)]
    to: String,
    /// Amount in base units.
    #[arg(long)]
    amount: u128,
    /// Fee in base units.
    #[arg(long, default_value_t = 10_000)]
    fee: u128,
    /// The node's gRPC URL.
    #[arg(long, env = "LODE_NODE", default_value = DEFAULT_NODE)]
    node: String,
    /// Wait until the tx is committed and print its result.
    #[arg(long)]
    wait: bool,
}

#[derive(Debug, Subcommand)]
pub(super) enum QueryCommand {
    /// An account's balance and nonce.
    Account(AccountArgs),
    /// The node's status: height, app hash, validators, peers.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub(super) struct AccountArgs {
    /// `lode1…` address.
    address: String,
    /// The node's gRPC URL.
    #[arg(long, env = "LODE_NODE", default_value = DEFAULT_NODE)]
    node: String,
}

#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    /// The node's gRPC URL.
    #[arg(long, env = "LODE_NODE", default_value = DEFAULT_NODE)]
    node: String,
}

fn find_key(from: &str, home: &Path) -> eyre::Result<KeyFile> {
    let as_path = PathBuf::from(from);
    if as_path.is_file() {
        return KeyFile::load(&as_path);
    }
    for dir in [
        home.join("keys"),
        devnet::node_home(&devnet::default_dir(), 0).join("keys"),
    ] {
        let p = dir.join(format!("{from}.json"));
        if p.is_file() {
            return KeyFile::load(&p);
        }
    }
    bail!(
        "no key file {from:?} (neither a path nor a key in {}/keys or the devnet)",
        home.display()
    )
}

fn runtime() -> eyre::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub(super) fn send(args: &SendArgs) -> eyre::Result<()> {
    let key = find_key(&args.from, &args.home.home)?;
    let signing = key.signing_key()?;
    let to: Address = args
        .to
        .parse()
        .map_err(|e| eyre!("invalid --to address: {e}"))?;
    runtime()?.block_on(async {
        let mut q = QueryServiceClient::connect(args.node.clone())
            .await
            .wrap_err_with(|| format!("cannot connect to {}", args.node))?;
        let status = q.status(pb::StatusRequest {}).await?.into_inner();
        let acct = q
            .account(pb::AccountRequest {
                address: key.address.clone(),
            })
            .await?
            .into_inner();
        let tx = lode_state::tx::sign_send(
            &status.chain_id,
            &signing,
            acct.nonce,
            args.fee,
            &to,
            args.amount,
        );
        let mut t = TxServiceClient::connect(args.node.clone()).await?;
        if args.wait {
            let r = t
                .broadcast_and_wait(pb::BroadcastAndWaitRequest { tx, timeout_ms: 0 })
                .await?
                .into_inner();
            println!("tx hash: {}", hex::encode_upper(&r.tx_hash));
            report("check", r.check.as_ref())?;
            if let Some(res) = r.result.as_ref() {
                println!("committed at height {}", r.height);
                report("result", Some(res))?;
            }
        } else {
            let r = t.broadcast(pb::BroadcastRequest { tx }).await?.into_inner();
            println!("tx hash: {}", hex::encode_upper(&r.tx_hash));
            report("check", r.check.as_ref())?;
        }
        eyre::Ok(())
    })
}

fn report(what: &str, r: Option<&pb::TxResult>) -> eyre::Result<()> {
    let Some(r) = r else { return Ok(()) };
    if r.code == 0 {
        println!("{what}: ok (gas used {})", r.gas_used);
        Ok(())
    } else {
        bail!("{what} failed: code {} ({}) {}", r.code, r.codespace, r.log)
    }
}

pub(super) fn query(cmd: &QueryCommand) -> eyre::Result<()> {
    runtime()?.block_on(async {
        match cmd {
            QueryCommand::Account(a) => {
                let mut q = QueryServiceClient::connect(a.node.clone())
                    .await
                    .wrap_err_with(|| format!("cannot connect to {}", a.node))?;
                let r = q
                    .account(pb::AccountRequest {
                        address: a.address.clone(),
                    })
                    .await?
                    .into_inner();
                println!("address: {}", r.address);
                println!("balance: {}", r.balance);
                println!("nonce:   {}", r.nonce);
                println!("height:  {}", r.height);
            }
            QueryCommand::Status(s) => {
                let mut q = QueryServiceClient::connect(s.node.clone())
                    .await
                    .wrap_err_with(|| format!("cannot connect to {}", s.node))?;
                let r = q.status(pb::StatusRequest {}).await?.into_inner();
                println!("chain id:   {}", r.chain_id);
                println!("moniker:    {}", r.moniker);
                println!("height:     {}", r.latest_height);
                println!("app hash:   {}", hex::encode_upper(&r.app_hash));
                println!("validators: {}", r.validators.len());
                println!("peers:      {}", r.peers.len());
                println!(
                    "mempool:    {} txs, {} bytes",
                    r.mempool_txs, r.mempool_bytes
                );
            }
        }
        eyre::Ok(())
    })
}
