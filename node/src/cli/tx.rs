//! `lode tx …`: build, sign and broadcast transactions of every module, and the offline multisig flow.
//!
//! Every command builds its message from flags, checks it with the same conversion the chain uses
//! (`Msg::try_from`), signs it with the `--from` key at the account's next nonce and broadcasts it over
//! gRPC. When `--from` names a multisig account, the command instead writes the unsigned tx to `--out`;
//! co-signers add their signatures with `lode tx multisig sign`, and `lode tx multisig broadcast` sends it
//! once the threshold is met.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use eyre::{bail, ensure, eyre, WrapErr};
use lode_proto::{bank::v1 as bankpb, gov::v1 as govpb, nft::v1 as nftpb};
use lode_proto::{staking::v1 as stpb, tx::v1 as txpb};
use lode_state::tx::multisig::{self, MultisigTx};
use lode_state::tx::Msg;

use super::client::{connect, find_signer, report, runtime, Signer, DEFAULT_NODE};
use super::HomeArg;
use crate::services::grpc::pb::{
    self, params_service_client::ParamsServiceClient, query_service_client::QueryServiceClient,
    tx_service_client::TxServiceClient,
};

/// Flags every transaction command shares.
#[derive(Debug, Args)]
pub(super) struct TxOpts {
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
    /// Multisig accounts only: write the unsigned tx (JSON) to this new file for the co-signers.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(super) enum TxCommand {
    /// Transfer tokens.
    Send(SendArgs),
    /// Governance: proposals, deposits, votes.
    #[command(subcommand)]
    Gov(GovTx),
    /// Staking: delegate and undelegate.
    #[command(subcommand)]
    Staking(StakingTx),
    /// NFTs: collections, tokens, approvals and the fixed-price market.
    #[command(subcommand)]
    Nft(NftTx),
    /// Multisig accounts: co-sign an unsigned tx offline, then broadcast it.
    #[command(subcommand)]
    Multisig(MultisigCmd),
}

#[derive(Debug, Args)]
pub(super) struct SendArgs {
    #[command(flatten)]
    opts: TxOpts,
    /// Recipient `lode1…` address.
    #[arg(long)]
    to: String,
    /// Amount in base units.
    #[arg(long)]
    amount: u128,
}

#[derive(Debug, Subcommand)]
pub(super) enum GovTx {
    /// Submit a proposal: exactly one of `--text`, `--param` (repeatable) or `--spend-to` with
    /// `--spend-amount`.
    Submit {
        #[command(flatten)]
        opts: TxOpts,
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Initial deposit in base units.
        #[arg(long, default_value_t = 0)]
        deposit: u128,
        /// A text proposal (no on-chain effect).
        #[arg(long)]
        text: bool,
        /// A parameter change `PATH=JSON`, e.g. `gov.quorum_bps=4000` or `min_gas_price="2"`.
        #[arg(long = "param", value_name = "PATH=JSON")]
        params: Vec<String>,
        /// Treasury spend recipient.
        #[arg(long, requires = "spend_amount")]
        spend_to: Option<String>,
        /// Treasury spend amount in base units.
        #[arg(long, requires = "spend_to")]
        spend_amount: Option<u128>,
    },
    /// Add to a proposal's deposit during its deposit period.
    Deposit {
        #[command(flatten)]
        opts: TxOpts,
        #[arg(long)]
        proposal: u64,
        #[arg(long)]
        amount: u128,
    },
    /// Vote (or change a vote) while the voting period runs.
    Vote {
        #[command(flatten)]
        opts: TxOpts,
        #[arg(long)]
        proposal: u64,
        /// `yes`, `no`, `abstain`, `veto`, or a split vote such as `yes=0.7,no=0.3` (weights sum to 1).
        #[arg(long)]
        option: String,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum StakingTx {
    /// Register the signer as a validator operator with a self-bond.
    CreateValidator {
        #[command(flatten)]
        opts: TxOpts,
        /// The validator's ed25519 consensus public key, hex (default: `<home>/keys/validator_key.json`).
        #[arg(long)]
        consensus_key: Option<String>,
        #[arg(long)]
        moniker: String,
        /// Tokens the operator bonds to itself.
        #[arg(long)]
        self_bond: u128,
    },
    /// Bond tokens to a validator.
    Delegate {
        #[command(flatten)]
        opts: TxOpts,
        /// The validator's operator address.
        #[arg(long)]
        validator: String,
        #[arg(long)]
        amount: u128,
    },
    /// Start unbonding tokens from a validator (paid out after the unbonding period).
    Undelegate {
        #[command(flatten)]
        opts: TxOpts,
        #[arg(long)]
        validator: String,
        #[arg(long)]
        amount: u128,
    },
}

/// A token in a collection.
#[derive(Debug, Args)]
pub(super) struct TokenRef {
    /// Collection id.
    #[arg(long)]
    collection: String,
    /// Token id within the collection.
    #[arg(long)]
    token: String,
}

#[derive(Debug, Subcommand)]
pub(super) enum NftTx {
    /// Create a collection (the signer is its creator).
    Create {
        #[command(flatten)]
        opts: TxOpts,
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        symbol: String,
        #[arg(long, default_value = "")]
        uri: String,
        /// Creator royalty on every sale, in basis points (capped by `nft.max_royalty_bps`).
        #[arg(long, default_value_t = 0)]
        royalty_bps: u32,
        /// 0 = unlimited.
        #[arg(long, default_value_t = 0)]
        max_supply: u64,
        /// Anyone may mint, not only the creator.
        #[arg(long)]
        open_mint: bool,
    },
    /// Mint a token.
    Mint {
        #[command(flatten)]
        opts: TxOpts,
        #[command(flatten)]
        token: TokenRef,
        #[arg(long, default_value = "")]
        uri: String,
        /// Owner of the new token (default: the signer).
        #[arg(long)]
        to: Option<String>,
    },
    /// Transfer a token (as its owner, its approved address or a collection operator).
    Transfer {
        #[command(flatten)]
        opts: TxOpts,
        #[command(flatten)]
        token: TokenRef,
        #[arg(long)]
        to: String,
    },
    /// Approve one address to transfer one token.
    Approve {
        #[command(flatten)]
        opts: TxOpts,
        #[command(flatten)]
        token: TokenRef,
        #[arg(long)]
        spender: String,
        /// Last height the approval is valid at; 0 = no expiry.
        #[arg(long, default_value_t = 0)]
        expiry_height: u64,
    },
    /// Approve (or with `--revoke` remove) an operator for all of the signer's tokens in a collection.
    Operator {
        #[command(flatten)]
        opts: TxOpts,
        #[arg(long)]
        collection: String,
        #[arg(long)]
        operator: String,
        #[arg(long)]
        revoke: bool,
        #[arg(long, default_value_t = 0)]
        expiry_height: u64,
    },
    /// List a token for sale at a fixed price (or update the price).
    List {
        #[command(flatten)]
        opts: TxOpts,
        #[command(flatten)]
        token: TokenRef,
        #[arg(long)]
        price: u128,
    },
    /// Cancel a listing.
    Unlist {
        #[command(flatten)]
        opts: TxOpts,
        #[command(flatten)]
        token: TokenRef,
    },
    /// Buy a listed token at its listed price (refused if the price differs from `--price`).
    Buy {
        #[command(flatten)]
        opts: TxOpts,
        #[command(flatten)]
        token: TokenRef,
        #[arg(long)]
        price: u128,
    },
    /// Burn a token.
    Burn {
        #[command(flatten)]
        opts: TxOpts,
        #[command(flatten)]
        token: TokenRef,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum MultisigCmd {
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
    },
}

fn msg(sum: txpb::msg::Sum) -> txpb::Msg {
    txpb::Msg { sum: Some(sum) }
}

/// Parses a vote option: a single choice or a split `option=weight,…` with decimal weights summing to 1.
pub fn parse_vote(s: &str) -> eyre::Result<Vec<govpb::WeightedVoteOption>> {
    fn option(name: &str) -> eyre::Result<govpb::VoteOption> {
        Ok(match name.trim() {
            "yes" => govpb::VoteOption::Yes,
            "no" => govpb::VoteOption::No,
            "abstain" => govpb::VoteOption::Abstain,
            "veto" | "no_with_veto" => govpb::VoteOption::NoWithVeto,
            other => bail!("unknown vote option {other:?} (yes, no, abstain, veto)"),
        })
    }
    if !s.contains('=') {
        return Ok(vec![govpb::WeightedVoteOption {
            option: option(s)? as i32,
            weight_ppm: 1_000_000,
        }]);
    }
    s.split(',')
        .map(|part| {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| eyre!("split vote part {part:?} is not option=weight"))?;
            Ok(govpb::WeightedVoteOption {
                option: option(name)? as i32,
                weight_ppm: parse_ppm(weight.trim())?,
            })
        })
        .collect()
}

/// A decimal fraction in [0, 1] with at most 6 decimals, as parts per million.
fn parse_ppm(s: &str) -> eyre::Result<u32> {
    let bad = || eyre!("weight {s:?} is not a decimal between 0 and 1 with at most 6 decimals");
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    if frac.len() > 6 || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let int: u32 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let frac: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().map_err(|_| bad())?
    };
    let ppm = int
        .checked_mul(1_000_000)
        .and_then(|i| i.checked_add(frac))
        .ok_or_else(bad)?;
    ensure!(ppm <= 1_000_000, bad());
    Ok(ppm)
}

/// Parses `PATH=JSON` parameter changes.
fn parse_param(s: &str) -> eyre::Result<govpb::ParamChange> {
    let (path, value) = s
        .split_once('=')
        .ok_or_else(|| eyre!("--param {s:?} is not PATH=JSON"))?;
    serde_json::from_str::<serde_json::Value>(value)
        .wrap_err_with(|| format!("--param {path}: value {value:?} is not JSON"))?;
    Ok(govpb::ParamChange {
        path: path.to_owned(),
        value: value.to_owned(),
    })
}

/// The message a command sends, from the signer's address.
fn build<'a>(cmd: &'a TxCommand, signer: &str) -> eyre::Result<(txpb::Msg, &'a TxOpts)> {
    use txpb::msg::Sum;
    let s = signer.to_owned();
    Ok(match cmd {
        TxCommand::Send(a) => (
            msg(Sum::Send(bankpb::MsgSend {
                from: s,
                to: a.to.clone(),
                amount: a.amount.to_string(),
            })),
            &a.opts,
        ),
        TxCommand::Gov(g) => match g {
            GovTx::Submit {
                opts,
                title,
                description,
                deposit,
                text,
                params,
                spend_to,
                spend_amount,
            } => {
                let kinds = usize::from(*text)
                    + usize::from(!params.is_empty())
                    + usize::from(spend_to.is_some());
                ensure!(
                    kinds == 1,
                    "give exactly one of --text, --param or --spend-to/--spend-amount"
                );
                let content = if *text {
                    govpb::proposal_content::Sum::Text(govpb::Text {})
                } else if let (Some(to), Some(amount)) = (spend_to, spend_amount) {
                    govpb::proposal_content::Sum::TreasurySpend(govpb::TreasurySpend {
                        recipient: to.clone(),
                        amount: amount.to_string(),
                    })
                } else {
                    govpb::proposal_content::Sum::ParamChange(govpb::ParamChanges {
                        changes: params
                            .iter()
                            .map(|p| parse_param(p))
                            .collect::<eyre::Result<_>>()?,
                    })
                };
                (
                    msg(Sum::SubmitProposal(govpb::MsgSubmitProposal {
                        proposer: s,
                        title: title.clone(),
                        description: description.clone(),
                        content: Some(govpb::ProposalContent { sum: Some(content) }),
                        initial_deposit: deposit.to_string(),
                    })),
                    opts,
                )
            }
            GovTx::Deposit {
                opts,
                proposal,
                amount,
            } => (
                msg(Sum::GovDeposit(govpb::MsgDeposit {
                    depositor: s,
                    proposal_id: *proposal,
                    amount: amount.to_string(),
                })),
                opts,
            ),
            GovTx::Vote {
                opts,
                proposal,
                option,
            } => (
                msg(Sum::Vote(govpb::MsgVote {
                    voter: s,
                    proposal_id: *proposal,
                    options: parse_vote(option)?,
                })),
                opts,
            ),
        },
        TxCommand::Staking(st) => match st {
            StakingTx::CreateValidator {
                opts,
                consensus_key,
                moniker,
                self_bond,
            } => {
                let key = match consensus_key {
                    Some(hexkey) => {
                        hex::decode(hexkey).map_err(|e| eyre!("--consensus-key is not hex: {e}"))?
                    }
                    None => {
                        let path = opts.home.home().key_path("validator_key");
                        crate::keys::KeyFile::load(&path)?
                            .public_key_bytes()?
                            .to_vec()
                    }
                };
                (
                    msg(Sum::CreateValidator(stpb::MsgCreateValidator {
                        operator: s,
                        consensus_key: key,
                        moniker: moniker.clone(),
                        self_bond: self_bond.to_string(),
                    })),
                    opts,
                )
            }
            StakingTx::Delegate {
                opts,
                validator,
                amount,
            } => (
                msg(Sum::Delegate(stpb::MsgDelegate {
                    delegator: s,
                    validator: validator.clone(),
                    amount: amount.to_string(),
                })),
                opts,
            ),
            StakingTx::Undelegate {
                opts,
                validator,
                amount,
            } => (
                msg(Sum::Undelegate(stpb::MsgUndelegate {
                    delegator: s,
                    validator: validator.clone(),
                    amount: amount.to_string(),
                })),
                opts,
            ),
        },
        TxCommand::Nft(n) => build_nft(n, s)?,
        TxCommand::Multisig(_) => bail!("not a message command"),
    })
}

fn build_nft(n: &NftTx, s: String) -> eyre::Result<(txpb::Msg, &TxOpts)> {
    use txpb::msg::Sum;
    Ok(match n {
        NftTx::Create {
            opts,
            id,
            name,
            symbol,
            uri,
            royalty_bps,
            max_supply,
            open_mint,
        } => (
            msg(Sum::NftCreateCollection(nftpb::MsgCreateCollection {
                creator: s,
                id: id.clone(),
                name: name.clone(),
                symbol: symbol.clone(),
                uri: uri.clone(),
                royalty_bps: *royalty_bps,
                max_supply: *max_supply,
                open_mint: *open_mint,
            })),
            opts,
        ),
        NftTx::Mint {
            opts,
            token,
            uri,
            to,
        } => (
            msg(Sum::NftMint(nftpb::MsgMint {
                owner: to.clone().unwrap_or_else(|| s.clone()),
                minter: s,
                collection: token.collection.clone(),
                token_id: token.token.clone(),
                uri: uri.clone(),
            })),
            opts,
        ),
        NftTx::Transfer { opts, token, to } => (
            msg(Sum::NftTransfer(nftpb::MsgTransfer {
                sender: s,
                collection: token.collection.clone(),
                token_id: token.token.clone(),
                to: to.clone(),
            })),
            opts,
        ),
        NftTx::Approve {
            opts,
            token,
            spender,
            expiry_height,
        } => (
            msg(Sum::NftApprove(nftpb::MsgApprove {
                owner: s,
                collection: token.collection.clone(),
                token_id: token.token.clone(),
                spender: spender.clone(),
                expiry_height: *expiry_height,
            })),
            opts,
        ),
        NftTx::Operator {
            opts,
            collection,
            operator,
            revoke,
            expiry_height,
        } => (
            msg(Sum::NftSetOperator(nftpb::MsgSetOperator {
                owner: s,
                collection: collection.clone(),
                operator: operator.clone(),
                approved: !revoke,
                expiry_height: *expiry_height,
            })),
            opts,
        ),
        NftTx::List { opts, token, price } => (
            msg(Sum::NftList(nftpb::MsgList {
                seller: s,
                collection: token.collection.clone(),
                token_id: token.token.clone(),
                price: price.to_string(),
            })),
            opts,
        ),
        NftTx::Unlist { opts, token } => (
            msg(Sum::NftCancelListing(nftpb::MsgCancelListing {
                seller: s,
                collection: token.collection.clone(),
                token_id: token.token.clone(),
            })),
            opts,
        ),
        NftTx::Buy { opts, token, price } => (
            msg(Sum::NftBuy(nftpb::MsgBuy {
                buyer: s,
                collection: token.collection.clone(),
                token_id: token.token.clone(),
                price: price.to_string(),
            })),
            opts,
        ),
        NftTx::Burn { opts, token } => (
            msg(Sum::NftBurn(nftpb::MsgBurn {
                owner: s,
                collection: token.collection.clone(),
                token_id: token.token.clone(),
            })),
            opts,
        ),
    })
}

/// The `--from` of a message command (without building the message).
fn opts_of(cmd: &TxCommand) -> Option<&TxOpts> {
    match cmd {
        TxCommand::Send(a) => Some(&a.opts),
        TxCommand::Gov(GovTx::Submit { opts, .. } | GovTx::Deposit { opts, .. })
        | TxCommand::Gov(GovTx::Vote { opts, .. })
        | TxCommand::Staking(
            StakingTx::CreateValidator { opts, .. }
            | StakingTx::Delegate { opts, .. }
            | StakingTx::Undelegate { opts, .. },
        )
        | TxCommand::Nft(
            NftTx::Create { opts, .. }
            | NftTx::Mint { opts, .. }
            | NftTx::Transfer { opts, .. }
            | NftTx::Approve { opts, .. }
            | NftTx::Operator { opts, .. }
            | NftTx::List { opts, .. }
            | NftTx::Unlist { opts, .. }
            | NftTx::Buy { opts, .. }
            | NftTx::Burn { opts, .. },
        ) => Some(opts),
        TxCommand::Multisig(_) => None,
    }
}

/// Runs a `lode tx` command.
pub(super) fn run(cmd: &TxCommand) -> eyre::Result<()> {
    if let TxCommand::Multisig(m) = cmd {
        return run_multisig(m);
    }
    let opts = opts_of(cmd).ok_or_else(|| eyre!("not a message command"))?;
    let signer = find_signer(&opts.from, &opts.home.home)?;
    let (pb_msg, opts) = build(cmd, signer.address())?;
    let domain = Msg::try_from(pb_msg).map_err(|e| eyre!("invalid message: {e}"))?;
    runtime()?.block_on(async {
        let channel = connect(&opts.node).await?;
        let mut q = QueryServiceClient::new(channel.clone());
        let status = q.status(pb::StatusRequest {}).await?.into_inner();
        let acct = q
            .account(pb::AccountRequest {
                address: signer.address().to_owned(),
            })
            .await?
            .into_inner();
        let chain = status.chain_id.as_str();
        let params = match opts.fee {
            Some(_) => None,
            None => Some(chain_params(channel.clone()).await?),
        };
        let msgs = [domain];
        match &signer {
            Signer::Key(key) => {
                ensure!(opts.out.is_none(), "--out is for multisig accounts only");
                let signing = key.signing_key()?;
                let sign = |fee| {
                    lode_state::tx::sign_msgs(chain, &signing, acct.nonce, fee, &msgs, &opts.memo)
                };
                let fee = fee_for(opts.fee, params.as_ref(), chain, |f| Ok(sign(f)))?;
                broadcast(channel, sign(fee), opts.wait).await
            }
            Signer::Multisig(m) => {
                let out = opts.out.as_ref().ok_or_else(|| {
                    eyre!(
                        "{} is a multisig account: give --out FILE for the unsigned tx",
                        m.name
                    )
                })?;
                let key = m.key()?;
                let unsigned = |fee| {
                    multisig::unsigned_doc(chain, &key, acct.nonce, fee, &msgs, &opts.memo, 0)
                };
                // Size the fee for the largest tx the co-signers can produce: every slot signed.
                let fee = fee_for(opts.fee, params.as_ref(), chain, |f| {
                    let mut doc = unsigned(f);
                    doc.signatures = vec![hex::encode([0u8; 64]); key.keys.len()];
                    multisig::assemble(&doc).map_err(|e| eyre!("cannot size the fee: {e}"))
                })?;
                let doc = unsigned(fee);
                crate::keys::write_new_json(out, &doc, 0o644, "unsigned tx file")?;
                println!(
                    "unsigned tx for {} (nonce {}) written to {}; needs {} of {} signatures",
                    m.address,
                    acct.nonce,
                    out.display(),
                    m.threshold,
                    m.public_keys.len()
                );
                Ok(())
            }
        }
    })
}

/// The chain's parameters, from the node.
async fn chain_params(channel: tonic::transport::Channel) -> eyre::Result<lode_state::Params> {
    let r = ParamsServiceClient::new(channel)
        .params(lode_proto::query::v1::ParamsRequest {
            module: String::new(),
        })
        .await?
        .into_inner();
    serde_json::from_str(&r.json).wrap_err("the node's parameters do not parse")
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

fn read_doc(path: &Path) -> eyre::Result<MultisigTx> {
    let text = std::fs::read_to_string(path)
        .wrap_err_with(|| format!("cannot read {}", path.display()))?;
    let doc: MultisigTx = serde_json::from_str(&text)
        .wrap_err_with(|| format!("{} is not an unsigned multisig tx", path.display()))?;
    doc.key().map_err(|e| eyre!("{}: {e}", path.display()))?;
    Ok(doc)
}

fn run_multisig(cmd: &MultisigCmd) -> eyre::Result<()> {
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
            println!(
                "signed by {}: {} of {} needed signatures",
                key.name,
                doc.signed(),
                threshold
            );
            Ok(())
        }
        MultisigCmd::Broadcast { file, node, wait } => {
            let doc = read_doc(file)?;
            let tx = multisig::assemble(&doc).map_err(|e| eyre!("cannot assemble: {e}"))?;
            runtime()?.block_on(async { broadcast(connect(node).await?, tx, *wait).await })
        }
    }
}

/// Broadcasts an encoded tx and prints its hash and results.
pub(super) async fn broadcast(
    channel: tonic::transport::Channel,
    tx: Vec<u8>,
    wait: bool,
) -> eyre::Result<()> {
    let mut t = TxServiceClient::new(channel);
    if wait {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vote_options_parse_single_and_split() {
        let one = parse_vote("veto").expect("veto");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].option, govpb::VoteOption::NoWithVeto as i32);
        assert_eq!(one[0].weight_ppm, 1_000_000);
        let split = parse_vote("yes=0.7, no=.3").expect("split");
        assert_eq!(
            split.iter().map(|o| o.weight_ppm).collect::<Vec<_>>(),
            [700_000, 300_000]
        );
        for bad in [
            "maybe",
            "yes=1.5",
            "yes=0.1234567",
            "yes=",
            "yes=-1",
            "yes=0.5,no",
        ] {
            assert!(parse_vote(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn param_changes_must_carry_json_values() {
        let p = parse_param("gov.quorum_bps=4000").expect("param");
        assert_eq!(
            (p.path.as_str(), p.value.as_str()),
            ("gov.quorum_bps", "4000")
        );
        assert!(parse_param("gov.quorum_bps").is_err());
        assert!(parse_param("min_gas_price=not json").is_err());
    }
}
