//! `lode tx …`: build, sign and broadcast transactions of every module, and the offline multisig flow. One
//! file per module (`bank.rs`, `staking.rs`, `gov.rs`, `nft.rs`) holds its subcommands and builds their
//! protobuf messages; `multisig.rs` holds the co-signing flow.
//!
//! Every command builds its message from flags, checks it with the same conversion the chain uses
//! (`Msg::try_from`), signs it with the `--from` key at the account's next nonce and broadcasts it over
//! gRPC. When `--from` names a multisig account, the command instead writes the unsigned tx to `--out`;
//! co-signers add their signatures with `lode tx multisig sign`, and `lode tx multisig broadcast` sends it
//! once the threshold is met.

mod bank;
mod gov;
pub(crate) mod market;
mod multisig;
mod nft;
mod staking;

use std::path::PathBuf;

use clap::{Args, Subcommand};
use eyre::{ensure, eyre, WrapErr};
use lode_client::Client;
use lode_proto::tx::v1 as txpb;
use lode_state::tx::{multisig as ms, Msg};

use super::client::{
    connect, events_json, find_signer, report, result_json, runtime, Signer, DEFAULT_NODE,
};
use super::HomeArg;

pub(crate) use lode_client::Committed;

/// Flags every transaction command shares.
#[derive(Debug, Args)]
pub(crate) struct TxOpts {
    #[command(flatten)]
    home: HomeArg,
    /// Signer: a key name in `<home>/keys` (or the default devnet's node0 keys), a key file path, or a
    /// multisig account in `<home>/keys/multisig` (then `--out` is required).
    #[arg(long)]
    from: String,
    /// Fee in base units. Default: the chain's minimum for this tx (gas × `min_gas_price`).
    #[arg(long)]
    fee: Option<u128>,
    /// Memo carried in the tx body.
    #[arg(long, default_value = "")]
    memo: String,
    /// The node's gRPC URL.
    #[arg(long, env = "LODE_NODE", default_value = DEFAULT_NODE)]
    node: String,
    /// Wait until the tx is committed and print its result.
    #[arg(long)]
    wait: bool,
    /// Simulate the signed tx against the node's last commit and print its gas, fee, result and events;
    /// send nothing (no broadcast, no nonce used).
    #[arg(long, conflicts_with = "wait")]
    dry_run: bool,
    /// Multisig accounts only: write the unsigned tx (JSON) to this new file for the co-signers.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(super) enum TxCommand {
    /// Transfer tokens.
    Send(bank::SendArgs),
    /// Governance: proposals, deposits, votes.
    #[command(subcommand)]
    Gov(gov::GovTx),
    /// Staking: delegate and undelegate.
    #[command(subcommand)]
    Staking(staking::StakingTx),
    /// NFTs: collections, tokens, approvals and the fixed-price market.
    #[command(subcommand)]
    Nft(nft::NftTx),
    /// The GPU marketplace: providers and jobs.
    #[command(subcommand)]
    Market(market::MarketTx),
    /// Verification of jobs: commit, reveal, availability challenge, fraud proof.
    #[command(subcommand)]
    Compute(market::ComputeTx),
    /// Multisig accounts: co-sign an unsigned tx offline, then broadcast it.
    #[command(subcommand)]
    Multisig(multisig::MultisigCmd),
}

/// A command that sends one message: each module's subcommands implement it.
trait MsgCommand {
    /// The shared flags (`--from`, `--fee`, ...).
    fn opts(&self) -> &TxOpts;
    /// The message, sent from `signer` (a `lode1…` address).
    fn build(&self, signer: &str) -> eyre::Result<txpb::Msg>;
}

impl TxCommand {
    /// The message command, or None for the multisig flow.
    fn message(&self) -> Option<&dyn MsgCommand> {
        match self {
            TxCommand::Send(c) => Some(c),
            TxCommand::Gov(c) => Some(c),
            TxCommand::Staking(c) => Some(c),
            TxCommand::Nft(c) => Some(c),
            TxCommand::Market(c) => Some(c),
            TxCommand::Compute(c) => Some(c),
            TxCommand::Multisig(_) => None,
        }
    }
}

/// Runs a `lode tx` command.
pub(super) fn run(cmd: &TxCommand) -> eyre::Result<()> {
    let command = match cmd {
        TxCommand::Multisig(m) => return multisig::run(m),
        other => other
            .message()
            .ok_or_else(|| eyre!("not a message command"))?,
    };
    let opts = command.opts();
    let signer = find_signer(&opts.from, &opts.home.home)?;
    let pb_msg = command.build(signer.address())?;
    let domain = Msg::try_from(pb_msg).map_err(|e| eyre!("invalid message: {e}"))?;
    runtime()?.block_on(async {
        let channel = connect(&opts.node).await?;
        let msgs = [domain];
        match &signer {
            Signer::Key(key) => {
                ensure!(opts.out.is_none(), "--out is for multisig accounts only");
                let tx = sign_with_key(channel.clone(), key, &msgs, opts.fee, &opts.memo, opts.dry_run)
                    .await?;
                if opts.dry_run {
                    return dry_run(channel, tx.bytes, &tx.fee.to_string()).await;
                }
                broadcast(channel, tx.bytes, opts.wait).await
            }
            Signer::Multisig(m) => {
                ensure!(
                    !opts.dry_run,
                    "--dry-run needs a signing key: simulate a multisig tx with `lode tx multisig broadcast --dry-run` once it is signed"
                );
                let out = opts.out.as_ref().ok_or_else(|| {
                    eyre!(
                        "{} is a multisig account: give --out FILE for the unsigned tx",
                        m.name
                    )
                })?;
                let (chain, nonce) = Client::new(channel.clone())
                    .chain_and_nonce(signer.address())
                    .await
                    .map_err(raw)?;
                let chain = chain.as_str();
                let params = match opts.fee {
                    Some(_) => None,
                    None => Some(chain_params(channel.clone()).await?),
                };
                let key = m.key()?;
                let unsigned =
                    |fee| ms::unsigned_doc(chain, &key, nonce, fee, &msgs, &opts.memo, 0);
                // Size the fee for the largest tx the co-signers can produce: every slot signed.
                let fee = fee_for(opts.fee, params.as_ref(), chain, |f| {
                    let mut doc = unsigned(f);
                    doc.signatures = vec![hex::encode([0u8; 64]); key.keys.len()];
                    ms::assemble(&doc).map_err(|e| eyre!("cannot size the fee: {e}"))
                })?;
                let doc = unsigned(fee);
                crate::keys::write_new_json(out, &doc, 0o644, "unsigned tx file")?;
                super::emit(
                    serde_json::json!({
                        "account": m.address,
                        "nonce": nonce,
                        "file": out,
                        "threshold": m.threshold,
                        "signers": m.public_keys.len(),
                    }),
                    || {
                        println!(
                            "unsigned tx for {} (nonce {}) written to {}; needs {} of {} signatures",
                            m.address,
                            nonce,
                            out.display(),
                            m.threshold,
                            m.public_keys.len()
                        )
                    },
                )
            }
        }
    })
}

/// A tx signed by one key, ready to send.
pub(crate) struct SignedTx {
    pub(crate) bytes: Vec<u8>,
    pub(crate) fee: u128,
}

/// A client call's error as the CLI prints it: a node's status as tonic shows it, anything else as is.
pub(crate) fn raw(e: lode_client::Error) -> eyre::Report {
    match e {
        lode_client::Error::Status { status, .. } => eyre::Report::new(status),
        e => eyre::Report::new(e),
    }
}

/// Signs `msgs` with `key` at the account's next nonce for the chain the node serves (after its txs pending
/// at the node; at the committed one `for_simulate`, since `Simulate` runs on the last commit), with `fee`
/// or, when None, the chain's minimum fee for the tx, sized here with the state machine's gas rules
/// ([`fee_for`]: the CLI has them, so it needs no `Simulate` round trip). The shared path of `lode tx` and
/// `lode job`.
pub(crate) async fn sign_with_key(
    channel: tonic::transport::Channel,
    key: &crate::keys::KeyFile,
    msgs: &[Msg],
    fee: Option<u128>,
    memo: &str,
    for_simulate: bool,
) -> eyre::Result<SignedTx> {
    let client = Client::new(channel.clone());
    let (chain, nonce) = if for_simulate {
        let chain = client.status().await.map_err(raw)?.chain_id;
        (
            chain,
            client.account(&key.address).await.map_err(raw)?.nonce,
        )
    } else {
        client.chain_and_nonce(&key.address).await.map_err(raw)?
    };
    let params = match fee {
        Some(_) => None,
        None => Some(chain_params(channel).await?),
    };
    let signing = key.signing_key()?;
    let msgs: Vec<txpb::Msg> = msgs.iter().map(txpb::Msg::from).collect();
    let sign = |fee| lode_client::tx::sign_msgs(&chain, &signing, nonce, fee, &msgs, memo);
    let fee = fee_for(fee, params.as_ref(), &chain, |f| Ok(sign(f)))?;
    Ok(SignedTx {
        bytes: sign(fee),
        fee,
    })
}

/// Broadcasts an encoded tx and waits for its commit; an error (with the chain's code and log) when CheckTx
/// refuses it or it fails in its block.
pub(crate) async fn send_and_wait(
    channel: tonic::transport::Channel,
    tx: Vec<u8>,
) -> eyre::Result<Committed> {
    Ok(Client::new(channel).send_and_wait(tx).await?)
}

/// The chain's parameters, from the node.
pub(crate) async fn chain_params(
    channel: tonic::transport::Channel,
) -> eyre::Result<lode_state::Params> {
    let json = Client::new(channel).params_json().await.map_err(raw)?;
    serde_json::from_str(&json).wrap_err("the node's parameters do not parse")
}

/// `--fee`, or the minimum fee of the tx `build` makes: its gas (per message plus per byte) × the min gas
/// price. Sized with a 20-digit placeholder fee, so the real (shorter) tx never needs more.
fn fee_for(
    given: Option<u128>,
    params: Option<&lode_state::Params>,
    chain_id: &str,
    build: impl Fn(u128) -> eyre::Result<Vec<u8>>,
) -> eyre::Result<u128> {
    if let Some(fee) = given {
        return Ok(fee);
    }
    let params = params.ok_or_else(|| eyre!("no chain parameters to size the fee"))?;
    let raw = build(u128::from(u64::MAX))?;
    let tx = lode_state::tx::Tx::check_stateless(&raw, chain_id, params)
        .map_err(|e| eyre!("invalid tx: {e}"))?;
    let (_, min) = tx
        .min_fee(params)
        .map_err(|e| eyre!("cannot size the fee: {e}"))?;
    Ok(min)
}

/// Simulates an encoded tx (`TxService.Simulate`) and prints its gas, fee, result and events; sends nothing.
/// Fails, after printing, when the tx would fail.
pub(super) async fn dry_run(
    channel: tonic::transport::Channel,
    tx: Vec<u8>,
    fee: &str,
) -> eyre::Result<()> {
    let r = Client::new(channel).simulate(tx).await?;
    super::emit(
        serde_json::json!({
            "dry_run": true,
            "height": r.height,
            "tx_hash": hex::encode_upper(&r.tx_hash),
            "gas": r.gas,
            "fee": fee,
            "min_fee": r.min_fee,
            "result": result_json(r.result.as_ref()),
            "events": events_json(&r.events),
        }),
        || {
            println!("dry run against height {} (nothing sent)", r.height);
            println!("tx hash: {}", hex::encode_upper(&r.tx_hash));
            println!("gas:     {}", r.gas);
            println!("fee:     {fee} (minimum {})", r.min_fee);
            for e in &r.events {
                let attrs: Vec<String> = e
                    .attributes
                    .iter()
                    .map(|a| format!("{}={}", a.key, a.value))
                    .collect();
                println!("event:   {} {}", e.r#type, attrs.join(" "));
            }
        },
    )?;
    report("result", r.result.as_ref())
}

/// Broadcasts an encoded tx and prints its hash and results.
pub(super) async fn broadcast(
    channel: tonic::transport::Channel,
    tx: Vec<u8>,
    wait: bool,
) -> eyre::Result<()> {
    let client = Client::new(channel);
    if wait {
        let r = client.broadcast_and_wait(tx, 0).await.map_err(raw)?;
        super::emit(
            serde_json::json!({
                "tx_hash": hex::encode_upper(&r.tx_hash),
                "check": result_json(r.check.as_ref()),
                "height": r.result.is_some().then_some(r.height),
                "result": r.result.as_ref().map(|res| result_json(Some(res))),
            }),
            || println!("tx hash: {}", hex::encode_upper(&r.tx_hash)),
        )?;
        report("check", r.check.as_ref())?;
        if let Some(res) = r.result.as_ref() {
            if !super::json_output() {
                println!("committed at height {}", r.height);
            }
            report("result", Some(res))?;
        }
    } else {
        let r = client.broadcast(tx).await.map_err(raw)?;
        super::emit(
            serde_json::json!({
                "tx_hash": hex::encode_upper(&r.tx_hash),
                "check": result_json(r.check.as_ref()),
            }),
            || println!("tx hash: {}", hex::encode_upper(&r.tx_hash)),
        )?;
        report("check", r.check.as_ref())?;
    }
    Ok(())
}
