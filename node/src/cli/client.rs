//! `lode query …` and what every client command shares: the node URL, signer lookup, the gRPC channel.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use eyre::{bail, eyre, WrapErr};
use lode_proto::{
    gov::v1 as govpb, market::v1 as mpb, nft::v1 as nftpb, query::v1 as qpb, staking::v1 as stpb,
};
use tonic::transport::Channel;

use crate::{
    keys::{KeyFile, MultisigFile},
    services::grpc::pb,
    testnet,
};

/// Default node URL: node 0 of `lode devnet`, or a `lode init` home.
pub const DEFAULT_NODE: &str = "http://127.0.0.1:9090";

/// Who signs a tx: one key, or a multisig account whose members sign offline.
#[derive(Debug)]
pub(super) enum Signer {
    Key(KeyFile),
    Multisig(MultisigFile),
}

impl Signer {
    pub(super) fn address(&self) -> &str {
        match self {
            Signer::Key(k) => &k.address,
            Signer::Multisig(m) => &m.address,
        }
    }
}

/// Resolves `--from`: a key file path, a key in `<home>/keys`, a multisig account in
/// `<home>/keys/multisig`, or a key of the default devnet's node 0.
pub(super) fn find_signer(from: &str, home: &Path) -> eyre::Result<Signer> {
    let as_path = PathBuf::from(from);
    if as_path.is_file() {
        let text = crate::home::read_text(&as_path)?;
        return if text.contains("\"threshold\"") {
            MultisigFile::load(&as_path).map(Signer::Multisig)
        } else {
            KeyFile::load(&as_path).map(Signer::Key)
        };
    }
    crate::keys::validate_name(from)
        .wrap_err_with(|| format!("--from {from:?} is neither a file nor a key name"))?;
    let multisig = home
        .join("keys")
        .join("multisig")
        .join(format!("{from}.json"));
    if multisig.is_file() {
        return MultisigFile::load(&multisig).map(Signer::Multisig);
    }
    for dir in [
        home.join("keys"),
        testnet::node_home(&testnet::default_dir(), 0).join("keys"),
    ] {
        let p = dir.join(format!("{from}.json"));
        if p.is_file() {
            return KeyFile::load(&p).map(Signer::Key);
        }
    }
    bail!(
        "no key {from:?} (neither a path nor a key in {}/keys, {}/keys/multisig or the devnet)",
        home.display(),
        home.display()
    )
}

pub(super) fn runtime() -> eyre::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// A gRPC channel to `node`.
pub(super) async fn connect(node: &str) -> eyre::Result<Channel> {
    Ok(lode_client::Client::connect(node).await?.channel().clone())
}

/// Prints a tx result (text only: under `-o json` the caller prints it in its document); a non-zero code
/// is an error with the code and log.
pub(super) fn report(what: &str, r: Option<&pb::TxResult>) -> eyre::Result<()> {
    let Some(r) = r else { return Ok(()) };
    if r.code == 0 {
        if !super::json_output() {
            println!("{what}: ok (gas used {})", r.gas_used);
        }
        Ok(())
    } else {
        bail!("{what} failed: code {} ({}) {}", r.code, r.codespace, r.log)
    }
}

/// `--node`, shared by every query.
#[derive(Debug, Clone, Args)]
pub(super) struct NodeArg {
    /// The node's gRPC URL.
    #[arg(long, env = "LODE_NODE", default_value = DEFAULT_NODE)]
    pub(super) node: String,
}

/// Pagination of list queries.
#[derive(Debug, Clone, Args)]
pub(super) struct PageArgs {
    /// Items per page (0 = 100, at most 1000).
    #[arg(long, default_value_t = 0)]
    limit: u32,
    /// The `next_key` (hex) of the previous page.
    #[arg(long, default_value = "")]
    page_key: String,
}

impl PageArgs {
    pub(super) fn request(&self) -> eyre::Result<Option<qpb::PageRequest>> {
        let key = hex::decode(&self.page_key).map_err(|e| eyre!("--page-key is not hex: {e}"))?;
        Ok(Some(qpb::PageRequest {
            key,
            limit: self.limit,
        }))
    }
}

/// `lode query`: what to ask, and whether to prove it.
#[derive(Debug, Args)]
pub(super) struct QueryArgs {
    #[command(subcommand)]
    pub(super) what: QueryCommand,
    #[command(flatten)]
    pub(super) proof: ProofArgs,
}

/// `--prove` and `--height`, taken by every state query (account, params, gov, nft, staking, market).
#[derive(Debug, Clone, Args)]
pub(super) struct ProofArgs {
    /// Ask for an ICS-23 proof of every state entry the answer is built from and verify it against the
    /// app hash of the block at that height (docs/proofs.md); a proof that fails is an error.
    #[arg(long, global = true, env = "LODE_PROVE")]
    pub(super) prove: bool,
    /// Answer at this committed height (0: the latest). Listings (prefix scans) are served at the latest
    /// height only.
    #[arg(id = "at_height", long = "height", global = true, default_value_t = 0)]
    pub(super) height: u64,
}

#[derive(Debug, Subcommand)]
pub(super) enum QueryCommand {
    /// An account's balance and nonce.
    Account {
        /// `lode1…` address.
        address: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// The node's status: height, app hash, validators, peers.
    Status {
        #[command(flatten)]
        node: NodeArg,
    },
    /// A committed tx by hash (hex): height, index, result, events and the raw tx (JSON).
    Tx {
        /// SHA-256 of the tx bytes, hex (as `lode tx` prints it).
        hash: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// The committed txs that touched an account (signed by it or naming it in an event), newest first
    /// (JSON): each as `query tx` prints it, and `next_page` to pass as `--page` for older ones.
    History {
        /// A `lode1…` address.
        address: String,
        /// Txs per page (at most 100).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// `next_page` from the previous page (hex); default: from the newest tx.
        #[arg(long, default_value = "")]
        page: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// A committed block (JSON): header, id, txs with results and events, block events, commit signers.
    Block {
        /// Height; default: the latest.
        height: Option<u64>,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Chain parameters (JSON), all or one module's (`gov`, `staking`, `nft`, `market`, `compute`).
    Params {
        #[arg(default_value = "")]
        module: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Governance: proposals, votes, deposits, treasury.
    #[command(subcommand)]
    Gov(GovQuery),
    /// NFTs: collections, tokens, listings.
    #[command(subcommand)]
    Nft(NftQuery),
    /// Staking: validators and delegations.
    #[command(subcommand)]
    Staking(StakingQuery),
    /// The GPU marketplace: providers, jobs, supply and demand.
    #[command(subcommand)]
    Market(MarketQuery),
}

#[derive(Debug, Subcommand)]
pub(super) enum MarketQuery {
    /// Providers, optionally of one status (active, unbonding).
    Providers {
        #[arg(long, default_value = "")]
        status: String,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        node: NodeArg,
    },
    /// One provider with its reputation and recent jobs.
    Provider {
        address: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Jobs of a consumer, of a provider, or in a status (open, matched, accepted, committed, revealing,
    /// settled, final, refunded, cancelled, fraud_proven, withheld).
    Jobs {
        #[arg(long, default_value = "")]
        consumer: String,
        #[arg(long, default_value = "")]
        provider: String,
        #[arg(long, default_value = "")]
        status: String,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        node: NodeArg,
    },
    /// One job (hex id) with its whole history.
    Job {
        id: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Open jobs and CU, free devices by model, the lowest asks, the last clearing prices.
    Stats {
        #[command(flatten)]
        node: NodeArg,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum GovQuery {
    /// Proposals, optionally of one status (deposit, voting, passed, rejected, failed, expired).
    Proposals {
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        node: NodeArg,
    },
    /// One proposal and its tally.
    Proposal {
        id: u64,
        #[command(flatten)]
        node: NodeArg,
    },
    /// A proposal's votes.
    Votes {
        id: u64,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        node: NodeArg,
    },
    /// A proposal's deposits.
    Deposits {
        id: u64,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        node: NodeArg,
    },
    /// The treasury account and balance.
    Treasury {
        #[command(flatten)]
        node: NodeArg,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum NftQuery {
    /// Every collection.
    Collections {
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        node: NodeArg,
    },
    /// One collection.
    Collection {
        id: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// The tokens an address owns.
    Tokens {
        owner: String,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        node: NodeArg,
    },
    /// One token and its listing.
    Token {
        collection: String,
        id: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Listings, of one collection or all.
    Listings {
        #[arg(long, default_value = "")]
        collection: String,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        node: NodeArg,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum StakingQuery {
    /// Validators and the total bonded.
    Validators {
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        node: NodeArg,
    },
    /// A delegator's delegations and unbonding entries.
    Delegations {
        delegator: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// The epoch and every validator's voting power, split into stake and compute parts.
    Power {
        #[command(flatten)]
        node: NodeArg,
    },
    /// The provider link of a validator operator or a provider, and the provider's consent nonce.
    Link {
        address: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// A validator's liveness record: blocks missed in its window, whether and until when it is jailed.
    SigningInfo {
        /// The validator's operator address.
        operator: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// The double-sign evidence that tombstoned a validator, if any: the offence (height, round, vote
    /// type), when it was punished, what was slashed and who submitted it.
    DoubleSign {
        /// The validator's operator address.
        operator: String,
        #[command(flatten)]
        node: NodeArg,
    },
}

fn proposal_status(s: Option<&str>) -> eyre::Result<govpb::ProposalStatus> {
    use govpb::ProposalStatus as S;
    Ok(match s {
        None => S::Unspecified,
        Some("deposit") => S::DepositPeriod,
        Some("voting") => S::VotingPeriod,
        Some("passed") => S::Passed,
        Some("rejected") => S::Rejected,
        Some("failed") => S::Failed,
        Some("expired") => S::Expired,
        Some(other) => {
            bail!("unknown status {other:?} (deposit, voting, passed, rejected, failed, expired)")
        }
    })
}

/// Prints a response as pretty JSON (bytes as hex, enums by name).
fn print_json(v: &impl serde::Serialize) -> eyre::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// gRPC errors become the CLI's error with the status message (which carries the query code).
fn status_err(s: tonic::Status) -> eyre::Report {
    eyre!("{:?}: {}", s.code(), s.message())
}

/// A client call's error as queries print it: a node's status as [`status_err`], anything else as is.
fn client_err(e: lode_client::Error) -> eyre::Report {
    match e {
        lode_client::Error::Status { status, .. } => status_err(status),
        e => eyre::Report::new(e),
    }
}

/// The client crate over `node`.
async fn client(node: &NodeArg) -> eyre::Result<lode_client::Client> {
    Ok(lode_client::Client::connect(&node.node).await?)
}

pub(super) fn query(args: &QueryArgs) -> eyre::Result<()> {
    let (cmd, opts) = (&args.what, &args.proof);
    let stateful = matches!(
        cmd,
        QueryCommand::Account { .. }
            | QueryCommand::Params { .. }
            | QueryCommand::Gov(_)
            | QueryCommand::Nft(_)
            | QueryCommand::Staking(_)
            | QueryCommand::Market(_)
    );
    if (opts.prove || opts.height != 0) && !stateful {
        bail!("--prove and --height apply to state queries (account, params, gov, nft, staking, market)");
    }
    runtime()?.block_on(async {
        match cmd {
            QueryCommand::Account { address, node } => {
                let r = if opts.prove || opts.height != 0 {
                    let value =
                        state_query(node, opts, "/account", address.clone().into_bytes()).await?;
                    let a = <qpb::Account as prost::Message>::decode(value.as_slice())
                        .wrap_err("the node answered undecodable bytes")?;
                    // A state query at a height knows no mempool: pending is left out below.
                    pb::AccountResponse {
                        address: a.address,
                        balance: a.balance,
                        nonce: a.nonce,
                        height: opts.height,
                        pending_nonce: a.nonce,
                    }
                } else {
                    client(node)
                        .await?
                        .account(address)
                        .await
                        .map_err(client_err)?
                };
                let live = !(opts.prove || opts.height != 0);
                let mut json = serde_json::json!({
                    "address": r.address,
                    "balance": r.balance,
                    "nonce": r.nonce,
                    "height": r.height,
                });
                if live {
                    json["pending_nonce"] = r.pending_nonce.into();
                }
                super::emit(json, || {
                    println!("address: {}", r.address);
                    println!("balance: {}", r.balance);
                    println!("nonce:   {}", r.nonce);
                    if live {
                        println!(
                            "pending: {} (the next nonce after this node's pending txs)",
                            r.pending_nonce
                        );
                    }
                    println!("height:  {}", r.height);
                })?;
            }
            QueryCommand::Status { node } => {
                let r = client(node).await?.status().await.map_err(client_err)?;
                super::emit(
                    serde_json::json!({
                        "chain_id": r.chain_id,
                        "moniker": r.moniker,
                        "node_id": r.node_id,
                        "version": r.version,
                        "latest_height": r.latest_height,
                        "latest_block_time": rfc3339(r.latest_block_time.as_ref()),
                        "catching_up": r.catching_up,
                        "app_hash": hex::encode_upper(&r.app_hash),
                        "validators": r.validators.len(),
                        "peers": r.peers.len(),
                        "mempool_txs": r.mempool_txs,
                        "mempool_bytes": r.mempool_bytes,
                    }),
                    || {
                        println!("chain id:   {}", r.chain_id);
                        println!("moniker:    {}", r.moniker);
                        println!("node id:    {}", r.node_id);
                        println!("version:    {}", r.version);
                        println!("height:     {}", r.latest_height);
                        println!("block time: {}", rfc3339(r.latest_block_time.as_ref()));
                        println!("catching up: {}", r.catching_up);
                        println!("app hash:   {}", hex::encode_upper(&r.app_hash));
                        println!("validators: {}", r.validators.len());
                        println!("peers:      {}", r.peers.len());
                        println!(
                            "mempool:    {} txs, {} bytes",
                            r.mempool_txs, r.mempool_bytes
                        );
                    },
                )?;
            }
            QueryCommand::Params { module, node } => {
                let value = state_query(
                    node,
                    opts,
                    "/params",
                    enc(&qpb::ParamsRequest {
                        module: module.clone(),
                    }),
                )
                .await?;
                let r = <qpb::ParamsResponse as prost::Message>::decode(value.as_slice())
                    .wrap_err("the node answered undecodable bytes")?;
                let v: serde_json::Value = serde_json::from_str(&r.json)?;
                print_json(&v)?;
            }
            QueryCommand::Tx { hash, node } => {
                let hash = parse_hash(hash)?;
                let r = client(node).await?.get_tx(hash).await.map_err(client_err)?;
                print_json(&tx_json(&r))?;
            }
            QueryCommand::History {
                address,
                limit,
                page,
                node,
            } => {
                let page_token = hex::decode(page).map_err(|e| {
                    eyre::eyre!("--page is the hex next_page of a previous page: {e}")
                })?;
                let r = client(node)
                    .await?
                    .accounts()
                    .history(pb::HistoryRequest {
                        address: address.clone(),
                        limit: *limit,
                        page_token,
                    })
                    .await
                    .map_err(status_err)?
                    .into_inner();
                print_json(&serde_json::json!({
                    "address": address,
                    "txs": r.txs.iter().map(tx_json).collect::<Vec<_>>(),
                    "next_page": hex::encode(&r.next_page_token),
                }))?;
            }
            QueryCommand::Block { height, node } => {
                let r = client(node)
                    .await?
                    .get_block(*height)
                    .await
                    .map_err(client_err)?;
                print_json(&block_json(&r))?;
            }
            QueryCommand::Gov(_)
            | QueryCommand::Nft(_)
            | QueryCommand::Staking(_)
            | QueryCommand::Market(_) => {
                let (node, path, data, print) = match cmd {
                    QueryCommand::Gov(g) => gov_ask(g)?,
                    QueryCommand::Nft(n) => nft_ask(n)?,
                    QueryCommand::Staking(s) => staking_ask(s)?,
                    QueryCommand::Market(m) => market_ask(m)?,
                    _ => unreachable!("matched above"),
                };
                print(&state_query(node, opts, path, data).await?)?;
            }
        }
        eyre::Ok(())
    })
}

/// Prints a module query's response (protobuf bytes) as JSON.
fn show<R: prost::Message + Default + serde::Serialize>(value: &[u8]) -> eyre::Result<()> {
    print_json(&R::decode(value).wrap_err("the node answered undecodable bytes")?)
}

/// What a module query command asks: node, path, encoded request, and how to print the answer.
type Ask<'a> = (
    &'a NodeArg,
    &'static str,
    Vec<u8>,
    fn(&[u8]) -> eyre::Result<()>,
);

fn enc(m: &impl prost::Message) -> Vec<u8> {
    m.encode_to_vec()
}

fn gov_ask(g: &GovQuery) -> eyre::Result<Ask<'_>> {
    Ok(match g {
        GovQuery::Proposals { status, page, node } => (
            node,
            "/gov/proposals",
            enc(&govpb::ProposalsRequest {
                status: proposal_status(status.as_deref())? as i32,
                pagination: page.request()?,
            }),
            show::<govpb::ProposalsResponse>,
        ),
        GovQuery::Proposal { id, node } => (
            node,
            "/gov/proposal",
            enc(&govpb::ProposalRequest { id: *id }),
            show::<govpb::ProposalResponse>,
        ),
        GovQuery::Votes { id, page, node } => (
            node,
            "/gov/votes",
            enc(&govpb::VotesRequest {
                proposal_id: *id,
                pagination: page.request()?,
            }),
            show::<govpb::VotesResponse>,
        ),
        GovQuery::Deposits { id, page, node } => (
            node,
            "/gov/deposits",
            enc(&govpb::DepositsRequest {
                proposal_id: *id,
                pagination: page.request()?,
            }),
            show::<govpb::DepositsResponse>,
        ),
        GovQuery::Treasury { node } => (
            node,
            "/gov/treasury",
            enc(&govpb::TreasuryRequest {}),
            show::<govpb::TreasuryResponse>,
        ),
    })
}

fn nft_ask(n: &NftQuery) -> eyre::Result<Ask<'_>> {
    Ok(match n {
        NftQuery::Collections { page, node } => (
            node,
            "/nft/collections",
            enc(&nftpb::CollectionsRequest {
                pagination: page.request()?,
            }),
            show::<nftpb::CollectionsResponse>,
        ),
        NftQuery::Collection { id, node } => (
            node,
            "/nft/collection",
            enc(&nftpb::CollectionRequest { id: id.clone() }),
            show::<nftpb::CollectionResponse>,
        ),
        NftQuery::Tokens { owner, page, node } => (
            node,
            "/nft/tokens_by_owner",
            enc(&nftpb::TokensByOwnerRequest {
                owner: owner.clone(),
                pagination: page.request()?,
            }),
            show::<nftpb::TokensByOwnerResponse>,
        ),
        NftQuery::Token {
            collection,
            id,
            node,
        } => (
            node,
            "/nft/token",
            enc(&nftpb::TokenRequest {
                collection: collection.clone(),
                id: id.clone(),
            }),
            show::<nftpb::TokenResponse>,
        ),
        NftQuery::Listings {
            collection,
            page,
            node,
        } => (
            node,
            "/nft/listings",
            enc(&nftpb::ListingsRequest {
                collection: collection.clone(),
                pagination: page.request()?,
            }),
            show::<nftpb::ListingsResponse>,
        ),
    })
}

fn market_ask(m: &MarketQuery) -> eyre::Result<Ask<'_>> {
    Ok(match m {
        MarketQuery::Providers { status, page, node } => (
            node,
            "/market/providers",
            enc(&mpb::ProvidersRequest {
                status: status.clone(),
                pagination: page.request()?,
            }),
            show::<mpb::ProvidersResponse>,
        ),
        MarketQuery::Provider { address, node } => (
            node,
            "/market/provider",
            enc(&mpb::ProviderRequest {
                address: address.clone(),
            }),
            show::<mpb::ProviderResponse>,
        ),
        MarketQuery::Jobs {
            consumer,
            provider,
            status,
            page,
            node,
        } => (
            node,
            "/market/jobs",
            enc(&mpb::JobsRequest {
                consumer: consumer.clone(),
                provider: provider.clone(),
                status: status.clone(),
                pagination: page.request()?,
            }),
            show::<mpb::JobsResponse>,
        ),
        MarketQuery::Job { id, node } => (
            node,
            "/market/job",
            enc(&mpb::JobRequest {
                job_id: hex::decode(id.trim_start_matches("0x"))
                    .map_err(|e| eyre!("job id is not hex: {e}"))?,
            }),
            show::<mpb::JobResponse>,
        ),
        MarketQuery::Stats { node } => (
            node,
            "/market/stats",
            enc(&mpb::StatsRequest {}),
            show::<mpb::StatsResponse>,
        ),
    })
}

fn staking_ask(s: &StakingQuery) -> eyre::Result<Ask<'_>> {
    Ok(match s {
        StakingQuery::Validators { page, node } => (
            node,
            "/staking/validators",
            enc(&stpb::ValidatorsRequest {
                pagination: page.request()?,
            }),
            show::<stpb::ValidatorsResponse>,
        ),
        StakingQuery::Delegations { delegator, node } => (
            node,
            "/staking/delegations",
            enc(&stpb::DelegationsRequest {
                delegator: delegator.clone(),
            }),
            show::<stpb::DelegationsResponse>,
        ),
        StakingQuery::Power { node } => (
            node,
            "/staking/power",
            enc(&stpb::PowerRequest {}),
            show::<stpb::PowerResponse>,
        ),
        StakingQuery::Link { address, node } => (
            node,
            "/staking/link",
            enc(&stpb::LinkRequest {
                address: address.clone(),
            }),
            show::<stpb::LinkResponse>,
        ),
        StakingQuery::SigningInfo { operator, node } => (
            node,
            "/staking/signing_info",
            enc(&stpb::SigningInfoRequest {
                operator: operator.clone(),
            }),
            show::<stpb::SigningInfoResponse>,
        ),
        StakingQuery::DoubleSign { operator, node } => (
            node,
            "/evidence/double_sign",
            enc(&stpb::DoubleSignRequest {
                operator: operator.clone(),
            }),
            show::<stpb::DoubleSignResponse>,
        ),
    })
}

/// Runs a state query through `QueryService.Query` at `--height`. With `--prove` it verifies the answer
/// ([`crate::proof::verify_answer`]) and that its app hash is the one the chain committed to at that height
/// (the block's `result_app_hash`), and says so; any failure is an error.
async fn state_query(
    node: &NodeArg,
    opts: &ProofArgs,
    path: &str,
    data: Vec<u8>,
) -> eyre::Result<Vec<u8>> {
    let client = client(node).await?;
    if !opts.prove {
        let r = client
            .query_state(path, data, opts.height, false)
            .await
            .map_err(client_err)?;
        return Ok(r.value);
    }
    // The client checks the entries and the block's app hash; the answer's replay over its entries needs
    // the state machine's handlers, so it is the node crate's.
    let proved = client
        .query_proved(path, data.clone(), opts.height)
        .await
        .map_err(client_err)?;
    let r = proved.response;
    crate::proof::verify_answer(path, &data, &r).map_err(|e| eyre!("proof: {e}"))?;
    let compared = if proved.block_checked {
        ""
    } else {
        " (genesis: no block to compare)"
    };
    crate::cli::say!(
        "proof: verified against app hash {} at height {} ({} entries){compared}",
        hex::encode_upper(&r.app_hash),
        r.height,
        r.proofs.len()
    );
    Ok(r.value)
}

/// A tx hash from hex (`0x` prefix and either case accepted).
fn parse_hash(hash: &str) -> eyre::Result<Vec<u8>> {
    let h = hash.strip_prefix("0x").unwrap_or(hash);
    hex::decode(h).map_err(|e| eyre!("tx hash {hash:?} is not hex: {e}"))
}

/// A timestamp as RFC 3339 UTC (empty when absent or out of range).
pub(super) fn rfc3339(t: Option<&prost_types::Timestamp>) -> String {
    let Some(t) = t else { return String::new() };
    let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Events as JSON: `[{"type": …, "attributes": [{"key": …, "value": …}]}]`.
pub(super) fn events_json(events: &[pb::Event]) -> serde_json::Value {
    events
        .iter()
        .map(|e| {
            serde_json::json!({
                "type": e.r#type,
                "attributes": e.attributes.iter().map(|a| serde_json::json!({"key": a.key, "value": a.value})).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// A tx result as JSON fields (code, log, codespace, gas).
pub(super) fn result_json(r: Option<&pb::TxResult>) -> serde_json::Value {
    let r = r.cloned().unwrap_or_default();
    serde_json::json!({
        "code": r.code,
        "log": r.log,
        "codespace": r.codespace,
        "gas_wanted": r.gas_wanted,
        "gas_used": r.gas_used,
    })
}

fn tx_json(r: &pb::GetTxResponse) -> serde_json::Value {
    serde_json::json!({
        "tx_hash": hex::encode_upper(&r.tx_hash),
        "height": r.height,
        "index": r.index,
        "result": result_json(r.result.as_ref()),
        "events": events_json(&r.events),
        "tx": hex::encode(&r.tx),
    })
}

/// A block header as JSON (hashes and addresses as hex, time as RFC 3339).
pub(super) fn header_json(h: Option<&pb::BlockHeader>) -> serde_json::Value {
    let h = h.cloned().unwrap_or_default();
    serde_json::json!({
        "chain_id": h.chain_id,
        "height": h.height,
        "time": rfc3339(h.time.as_ref()),
        "proposer": hex::encode_upper(&h.proposer),
        "last_block_id": hex::encode_upper(&h.last_block_id),
        "tx_root": hex::encode_upper(&h.tx_root),
        "app_hash": hex::encode_upper(&h.app_hash),
    })
}

/// A tx of a block as JSON.
pub(super) fn block_tx_json(t: &pb::BlockTx) -> serde_json::Value {
    let mut v = serde_json::json!({
        "tx_hash": hex::encode_upper(&t.tx_hash),
        "index": t.index,
        "result": result_json(t.result.as_ref()),
        "events": events_json(&t.events),
    });
    if !t.tx.is_empty() {
        v["tx"] = serde_json::Value::String(hex::encode(&t.tx));
    }
    v
}

fn block_json(r: &pb::GetBlockResponse) -> serde_json::Value {
    serde_json::json!({
        "block_id": hex::encode_upper(&r.block_id),
        "header": header_json(r.header.as_ref()),
        "txs": r.txs.iter().map(block_tx_json).collect::<Vec<_>>(),
        "events": events_json(&r.events),
        "result_app_hash": hex::encode_upper(&r.result_app_hash),
        "commit": {
            "round": r.commit_round,
            "signers": r.signers.iter().map(|s| serde_json::json!({
                "address": hex::encode_upper(&s.address),
                "signature": hex::encode_upper(&s.signature),
            })).collect::<Vec<_>>(),
        },
    })
}
