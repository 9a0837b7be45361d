//! `lode job …`: the consumer's side of a GPU job. `submit` computes the input roots locally, uploads A and B
//! to the node's blob service, posts the job and (with `--wait`) follows its lifecycle on the event stream;
//! `result` downloads C (checked against the committed output root), checks all of it with Freivalds against
//! A and B, and on a wrong result localizes one element and submits a fraud proof by itself. An unavailable C
//! becomes an availability challenge. `get`, `list`, `cancel` and `validate` complete the set.
//!
//! Exit statuses (see [`Exit`]): 0 success, 1 any error (bad input, node unreachable, tx refused), 2 the
//! provider's C is wrong (fraud proof submitted, or not when it could not be), 3 C is unavailable (availability
//! challenge submitted), 4 the job ended without a result (refunded, cancelled, withheld, fraud proven), 5
//! `--wait` timed out.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use clap::{Args, Subcommand};
use eyre::{bail, eyre, WrapErr};
use lode_gpu_verify::{
    challenge::{challenge_indices, escape_probability},
    format, freivalds,
    verify::Prover,
    MatrixI32, MatrixI8,
};
use lode_proto::{market::v1 as mpb, tx::v1 as txpb};
use lode_state::{
    modules::{
        compute::msg::ComputeMsg,
        market::msg::{check_job, JobSpec},
    },
    tx::Msg,
    Params,
};
use rand_core::RngCore;
use tonic::transport::Channel;

use super::{
    client::{connect, find_signer, runtime, NodeArg, PageArgs, Signer},
    tx::{
        chain_params,
        market::{hex32, input_roots, input_roots_with, read_i8, Hex32, JobTerms},
        send_and_wait, sign_with_key, Committed,
    },
    Exit, HomeArg,
};
use crate::{
    blobs::client::BlobClient,
    keys::KeyFile,
    services::grpc::pb::{
        self, event_service_client::EventServiceClient,
        market_query_service_client::MarketQueryServiceClient,
        query_service_client::QueryServiceClient,
    },
    testnet,
};

/// Exit status: the provider's C is wrong.
pub const EXIT_WRONG_RESULT: u8 = 2;
/// Exit status: C could not be downloaded; an availability challenge was submitted.
pub const EXIT_UNAVAILABLE: u8 = 3;
/// Exit status: the job ended without a result (refunded, cancelled, withheld, fraud proven).
pub const EXIT_NO_RESULT: u8 = 4;
/// Exit status: `--wait` ran past `--timeout`.
pub const EXIT_TIMEOUT: u8 = 5;

/// Freivalds trials over C: each accepts a wrong C with probability at most 2⁻³², so together at most
/// 2⁻⁶⁴ (see `freivalds`).
const FREIVALDS_TRIALS: u32 = freivalds::DEFAULT_TRIALS;

/// Fractions of corrupted tiles the escape table of `submit` and `validate` shows.
const ESCAPE_FRACTIONS: [f64; 4] = [0.001, 0.01, 0.1, 0.5];

/// The job events `--wait` follows (the node takes at most 16 filters).
const JOB_EVENTS: [&str; 16] = [
    "market_job_posted",
    "market_job_matched",
    "market_job_accepted",
    "market_job_declined",
    "compute_committed",
    "compute_challenged",
    "compute_revealed",
    "market_job_settled",
    "market_job_failed",
    "market_provider_slashed",
    "market_job_requeued",
    "market_job_refunded",
    "market_job_cancelled",
    "compute_output_challenged",
    "compute_fraud_proven",
    "market_holdback_released",
];

#[derive(Debug, Subcommand)]
pub(super) enum JobCommand {
    /// Upload A and B, post C = A·B with a max price, print the job id and the sampling odds; with `--wait`,
    /// follow the job to its end and check the result like `result`.
    Submit(SubmitArgs),
    /// Download a settled job's C, check all of it with Freivalds against A and B, and write it to `--out`.
    /// A wrong C gets a fraud proof (exit 2); an unavailable C an availability challenge (exit 3).
    Result(ResultArgs),
    /// One job: its terms, status, provider and history.
    Get {
        /// The job id (hex).
        #[arg(value_parser = hex32)]
        job: Hex32,
        /// Print the job as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Jobs of a consumer, of a provider, or in a state (exactly one of the three).
    List {
        #[arg(long, default_value = "")]
        consumer: String,
        #[arg(long, default_value = "")]
        provider: String,
        /// open, matched, accepted, committed, revealing, settled, final, refunded, cancelled, fraud_proven,
        /// withheld.
        #[arg(long, default_value = "")]
        state: String,
        /// Print the page as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Cancel a job no provider has taken yet (full refund of the escrow).
    Cancel {
        /// The job id (hex).
        #[arg(value_parser = hex32)]
        job: Hex32,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Check A and B and the job's terms against the chain's limits before paying: shapes, tile, samples,
    /// CU cap, reveal size. Uses the node's parameters when it answers, the defaults otherwise.
    Validate(ValidateArgs),
}

/// The signing key and the node, for the commands that send a tx.
#[derive(Debug, Args)]
pub(super) struct KeyArgs {
    #[command(flatten)]
    home: HomeArg,
    /// Signer: a key name in `<home>/keys` (or the default devnet's node0 keys) or a key file path.
    #[arg(long)]
    from: String,
    /// Fee in base units. Default: the chain's minimum.
    #[arg(long)]
    fee: Option<u128>,
    #[command(flatten)]
    node: NodeArg,
}

impl KeyArgs {
    fn key(&self) -> eyre::Result<KeyFile> {
        match find_signer(&self.from, &self.home.home)? {
            Signer::Key(k) => Ok(k),
            Signer::Multisig(m) => bail!(
                "{} is a multisig account: `lode job` signs with one key (post a multisig job with `lode tx market post-job --out`)",
                m.name
            ),
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct SubmitArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// A (m×k, int8): `.npy` or gpu-verify's format.
    #[arg(long)]
    a: PathBuf,
    /// B (k×n, int8).
    #[arg(long)]
    b: PathBuf,
    #[command(flatten)]
    terms: JobTerms,
    /// Follow the job to its end, then download and check C as `result` does.
    #[arg(long)]
    wait: bool,
    /// With `--wait`: where to write the checked C (`.npy`, or gpu-verify's format for other extensions).
    #[arg(long, requires = "wait")]
    out: Option<PathBuf>,
    /// With `--wait`: give up after this many seconds (exit 5).
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// Seconds to wait for C's download before treating it as unavailable.
    #[arg(long, default_value_t = 120)]
    fetch_timeout: u64,
}

#[derive(Debug, Args)]
pub(super) struct ResultArgs {
    /// The job id (hex).
    #[arg(value_parser = hex32)]
    job: Hex32,
    /// Where to write the checked C (`.npy`, or gpu-verify's format for other extensions).
    #[arg(long)]
    out: Option<PathBuf>,
    /// A, when it is at hand (else it is downloaded from the blob service by the job's root).
    #[arg(long)]
    a: Option<PathBuf>,
    /// B, when it is at hand.
    #[arg(long)]
    b: Option<PathBuf>,
    #[command(flatten)]
    home: HomeArg,
    /// Who signs a fraud proof or an availability challenge: default, the job's consumer when its key is in
    /// `<home>/keys` or the default devnet.
    #[arg(long)]
    from: Option<String>,
    /// Seconds to wait for C's download before treating it as unavailable.
    #[arg(long, default_value_t = 120)]
    fetch_timeout: u64,
    #[command(flatten)]
    node: NodeArg,
}

#[derive(Debug, Args)]
pub(super) struct ValidateArgs {
    /// A (m×k, int8).
    #[arg(long)]
    a: PathBuf,
    /// B (k×n, int8).
    #[arg(long)]
    b: PathBuf,
    /// Tile side T of C's commitment.
    #[arg(long, default_value_t = 4)]
    tile: u32,
    /// Tiles sampled and recomputed by validators.
    #[arg(long, default_value_t = 16)]
    samples: u32,
    /// Blocks from the match to the commit deadline.
    #[arg(long, visible_alias = "deadline", default_value_t = 100)]
    deadline_blocks: u64,
    /// The price per CU, to show the escrow.
    #[arg(long)]
    max_price: Option<u128>,
    #[command(flatten)]
    node: NodeArg,
}

/// Runs a `lode job` command.
pub(super) fn run(cmd: &JobCommand) -> eyre::Result<()> {
    match cmd {
        JobCommand::Validate(args) => runtime()?.block_on(validate(args)),
        JobCommand::Submit(args) => runtime()?.block_on(submit(args)),
        JobCommand::Result(args) => runtime()?.block_on(async {
            let channel = connect(&args.node.node).await?;
            let id = job_id(&args.job)?;
            let job = fetch_job(channel.clone(), &id).await?;
            let key = match &args.from {
                Some(from) => Some(
                    KeyArgs {
                        home: args.home.clone(),
                        from: from.clone(),
                        fee: None,
                        node: args.node.clone(),
                    }
                    .key()?,
                ),
                None => consumer_key(&args.home.home, &job.consumer),
            };
            let inputs = Inputs {
                a: args.a.as_deref(),
                b: args.b.as_deref(),
                a_matrix: None,
                b_matrix: None,
            };
            check_result(
                channel,
                &id,
                job,
                inputs,
                key.as_ref(),
                args.out.as_deref(),
                Duration::from_secs(args.fetch_timeout),
            )
            .await?;
            if super::json_output() {
                println!(
                    "{}",
                    serde_json::json!({ "job": hex::encode(id), "checked": true, "out": args.out })
                );
            }
            Ok(())
        }),
        JobCommand::Get { job, json, node } => runtime()?.block_on(async {
            let id = job_id(job)?;
            let j = fetch_job(connect(&node.node).await?, &id).await?;
            if *json || super::json_output() {
                println!("{}", serde_json::to_string_pretty(&j)?);
            } else {
                print_job(&j);
            }
            Ok(())
        }),
        JobCommand::List {
            consumer,
            provider,
            state,
            json,
            page,
            node,
        } => runtime()?.block_on(async {
            let set = [consumer, provider, state]
                .iter()
                .filter(|s| !s.is_empty())
                .count();
            if set != 1 {
                bail!("give exactly one of --consumer, --provider and --state");
            }
            let r = MarketQueryServiceClient::new(connect(&node.node).await?)
                .jobs(mpb::JobsRequest {
                    consumer: consumer.clone(),
                    provider: provider.clone(),
                    status: state.clone(),
                    pagination: page.request()?,
                })
                .await
                .map_err(|s| eyre!("jobs query: {:?}: {}", s.code(), s.message()))?
                .into_inner();
            if *json || super::json_output() {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(());
            }
            for j in &r.jobs {
                super::say!(
                    "{}  {:<12} {}x{}x{}  {} CU  {}",
                    hex::encode(&j.id),
                    j.status,
                    j.m,
                    j.k,
                    j.n,
                    j.cu,
                    if j.provider.is_empty() {
                        "-"
                    } else {
                        &j.provider
                    }
                );
            }
            if let Some(p) = r.pagination.as_ref().filter(|p| !p.next_key.is_empty()) {
                super::say!("next page: --page-key {}", hex::encode(&p.next_key));
            }
            Ok(())
        }),
        JobCommand::Cancel { job, key } => runtime()?.block_on(async {
            let id = job_id(job)?;
            let signer = key.key()?;
            let channel = connect(&key.node.node).await?;
            let msg = txpb::Msg {
                sum: Some(txpb::msg::Sum::MarketCancelJob(mpb::MsgCancelJob {
                    consumer: signer.address.clone(),
                    job_id: id.to_vec(),
                })),
            };
            let c = send_one(channel, &signer, msg, key.fee).await?;
            let refunded = event_attr(&c.events, "market_job_cancelled", "refunded");
            super::emit(
                serde_json::json!({
                    "job": hex::encode(id),
                    "status": "cancelled",
                    "height": c.height,
                    "refunded": refunded,
                }),
                || {
                    println!(
                        "job {} cancelled at height {}: {} refunded",
                        hex::encode(id),
                        c.height,
                        refunded.unwrap_or("?")
                    )
                },
            )
        }),
    }
}

fn job_id(h: &Hex32) -> eyre::Result<[u8; 32]> {
    h.0.as_slice()
        .try_into()
        .map_err(|_| eyre!("a job id is 32 bytes"))
}

/// Signs one message with `key`, sends it and waits for its commit.
pub(super) async fn send_one(
    channel: Channel,
    key: &KeyFile,
    msg: txpb::Msg,
    fee: Option<u128>,
) -> eyre::Result<Committed> {
    let domain = Msg::try_from(msg).map_err(|e| eyre!("invalid message: {e}"))?;
    let tx = sign_with_key(channel.clone(), key, &[domain], fee, "", false).await?;
    send_and_wait(channel, tx.bytes).await
}

/// The value of `attr` of the first event of type `ty`.
pub(super) fn event_attr<'a>(events: &'a [pb::Event], ty: &str, attr: &str) -> Option<&'a str> {
    events
        .iter()
        .filter(|e| e.r#type == ty)
        .flat_map(|e| &e.attributes)
        .find(|a| a.key == attr)
        .map(|a| a.value.as_str())
}

/// A job from the node; NOT_FOUND is a clear error.
async fn fetch_job(channel: Channel, id: &[u8; 32]) -> eyre::Result<mpb::Job> {
    let r = MarketQueryServiceClient::new(channel)
        .job(mpb::JobRequest {
            job_id: id.to_vec(),
        })
        .await
        .map_err(|s| match s.code() {
            tonic::Code::NotFound => eyre!("no job {}", hex::encode(id)),
            c => eyre!("job query: {c:?}: {}", s.message()),
        })?
        .into_inner();
    r.job
        .ok_or_else(|| eyre!("the node returned no job {}", hex::encode(id)))
}

fn print_job(j: &mpb::Job) {
    super::say!("job        {}", hex::encode(&j.id));
    super::say!("status     {}", j.status);
    super::say!("consumer   {}", j.consumer);
    super::say!(
        "shape      {}x{}x{} (m×k×n), {} CU, tile {}, {} samples",
        j.m,
        j.k,
        j.n,
        j.cu,
        j.tile,
        j.samples
    );
    super::say!("max price  {} per CU", j.max_price_per_cu);
    if !j.provider.is_empty() {
        super::say!("provider   {} at {} per CU", j.provider, j.price_per_cu);
    }
    if !j.output_root.is_empty() {
        super::say!("output     {}", hex::encode(&j.output_root));
    }
    if j.deadline_height > 0 {
        super::say!("deadline   height {}", j.deadline_height);
    }
    for h in &j.history {
        super::say!("  {:>8}  {:<18} {}", h.height, h.step, h.detail);
    }
}

/// The chain's parameters from the node when it answers within 3 s, else the defaults (and which it was).
async fn params_or_default(node: &str) -> (Params, String) {
    let fetched = tokio::time::timeout(Duration::from_secs(3), async {
        let channel = connect(node).await?;
        chain_params(channel).await
    })
    .await;
    match fetched {
        Ok(Ok(p)) => (p, format!("the limits of the chain at {node}")),
        Ok(Err(e)) => (
            Params::default(),
            format!("the default limits ({node}: {e:#})"),
        ),
        Err(_) => (
            Params::default(),
            format!("the default limits ({node} did not answer)"),
        ),
    }
}

/// Checks a job's shape and terms as the chain's CheckTx would; returns its CU.
fn check_terms(
    a: &MatrixI8,
    b: &MatrixI8,
    terms: &JobSpecTerms,
    params: &Params,
) -> eyre::Result<([u8; 32], [u8; 32], u64)> {
    let (a_root, b_root) = input_roots(a, b)?;
    let spec = JobSpec {
        m: a.rows() as u64,
        k: a.cols() as u64,
        n: b.cols() as u64,
        a_root,
        b_root,
        tile: terms.tile,
        samples: terms.samples,
        max_price_per_cu: terms.max_price.unwrap_or(0),
        deadline_blocks: terms.deadline_blocks,
        min_reputation: terms.min_reputation,
        refund_on_failure: false,
    };
    let cu = check_job(&spec, params).map_err(|e| eyre!("the chain would refuse this job: {e}"))?;
    Ok((a_root, b_root, cu))
}

/// The terms `check_terms` needs (shared by `validate` and `submit`).
struct JobSpecTerms {
    tile: u32,
    samples: u32,
    max_price: Option<u128>,
    deadline_blocks: u64,
    min_reputation: u32,
}

/// Prints the chance that a provider corrupting a fraction f of the tiles escapes the sample.
fn print_escape_table(m: u64, n: u64, tile: u32, samples: u32) {
    let t = u64::from(tile.max(1));
    let tiles = (m / t).saturating_mul(n / t);
    super::say!(
        "sampling: validators recompute {samples} of C's {tiles} tiles; a provider corrupting a fraction f of them escapes with (1-f)^{samples}:"
    );
    let cells: Vec<String> = ESCAPE_FRACTIONS
        .iter()
        .map(|f| {
            let p = (1.0 - f).powi(i32::try_from(samples).unwrap_or(i32::MAX));
            format!("f = {}%: {}", f * 100.0, percent(p))
        })
        .collect();
    super::say!("  {}", cells.join("   "));
    super::say!(
        "  one wrong tile escapes with {}; the full Freivalds check of C by `lode job result` (and `submit --wait`) catches it and sends a fraud proof",
        percent(escape_probability(tiles, 1, u64::from(samples)))
    );
}

fn percent(p: f64) -> String {
    let pc = p * 100.0;
    if pc >= 99.95 {
        format!("{pc:.3}%")
    } else if pc >= 1.0 {
        format!("{pc:.1}%")
    } else {
        format!("{pc:.2e}%")
    }
}

async fn validate(args: &ValidateArgs) -> eyre::Result<()> {
    let a = read_i8(&args.a)?;
    let b = read_i8(&args.b)?;
    let (params, source) = params_or_default(&args.node.node).await;
    let terms = JobSpecTerms {
        tile: args.tile,
        samples: args.samples,
        max_price: args.max_price,
        deadline_blocks: args.deadline_blocks,
        min_reputation: 0,
    };
    super::say!("checked against {source}");
    let (a_root, b_root, cu) = check_terms(&a, &b, &terms, &params)?;
    let (m, k, n) = (a.rows() as u64, a.cols() as u64, b.cols() as u64);
    super::say!("A: {m}x{k} int8, row root {}", hex::encode(a_root));
    super::say!("B: {k}x{n} int8, column root {}", hex::encode(b_root));
    super::say!(
        "C: {m}x{n} int32 in {}x{} tiles; {cu} CU",
        args.tile,
        args.tile
    );
    if let Some(price) = args.max_price {
        let escrow = price
            .checked_mul(u128::from(cu))
            .and_then(|p| {
                p.checked_add(
                    params
                        .market
                        .protocol_fee_per_cu
                        .checked_mul(u128::from(cu))?,
                )
            })
            .ok_or_else(|| eyre!("the escrow of {cu} CU at {price} overflows"))?;
        super::say!("escrow at most {escrow} (max price × CU + protocol fee)");
    }
    print_escape_table(m, n, args.tile, args.samples);
    super::say!("ok: the chain would accept this job");
    if super::json_output() {
        println!(
            "{}",
            serde_json::json!({
                "valid": true,
                "shape": [m, k, n],
                "a_root": hex::encode(a_root),
                "b_root": hex::encode(b_root),
                "cu": cu,
            })
        );
    }
    Ok(())
}

async fn submit(args: &SubmitArgs) -> eyre::Result<()> {
    let started = Instant::now();
    let key = args.key.key()?;
    let a = read_i8(&args.a)?;
    let b = read_i8(&args.b)?;
    let channel = connect(&args.key.node.node).await?;
    let params = chain_params(channel.clone()).await?;
    let terms = JobSpecTerms {
        tile: args.terms.tile,
        samples: args.terms.samples,
        max_price: Some(args.terms.max_price),
        deadline_blocks: args.terms.deadline_blocks,
        min_reputation: args.terms.min_reputation,
    };
    let t = Instant::now();
    let (a_root, b_root, cu) = check_terms(&a, &b, &terms, &params)?;
    let (m, k, n) = (a.rows() as u64, a.cols() as u64, b.cols() as u64);
    super::say!(
        "roots: A {} B {} ({} ms); {m}x{k}x{n} is {cu} CU",
        hex::encode(a_root),
        hex::encode(b_root),
        t.elapsed().as_millis()
    );

    let status = QueryServiceClient::new(channel.clone())
        .status(pb::StatusRequest {})
        .await
        .map_err(|s| eyre!("status: {:?}: {}", s.code(), s.message()))?
        .into_inner();
    let t = Instant::now();
    let mut blobs = BlobClient::new(channel.clone());
    let up_a = blobs
        .put_a(&key, &status.chain_id, &a)
        .await
        .wrap_err("uploading A")?;
    let up_b = blobs
        .put_b(&key, &status.chain_id, &b)
        .await
        .wrap_err("uploading B")?;
    eyre::ensure!(
        up_a == a_root && up_b == b_root,
        "the node stored A and B under other roots than computed here"
    );
    let upload = t.elapsed();
    super::say!(
        "uploaded A and B ({} bytes) in {} ms",
        a.data().len() + b.data().len(),
        upload.as_millis()
    );

    let msg = txpb::Msg {
        sum: Some(txpb::msg::Sum::MarketPostJob(args.terms.to_msg(
            key.address.clone(),
            (m, k, n),
            a_root.to_vec(),
            b_root.to_vec(),
        ))),
    };
    let posted = send_one(channel.clone(), &key, msg, args.key.fee).await?;
    let id_hex = event_attr(&posted.events, "market_job_posted", "job")
        .ok_or_else(|| eyre!("the post-job tx committed without a market_job_posted event"))?
        .to_owned();
    let id = job_id(&hex32(&id_hex).map_err(|e| eyre!("job id in the event: {e}"))?)?;
    super::say!(
        "job {id_hex} posted at height {} (escrow {}) at {:.2} s",
        posted.height,
        event_attr(&posted.events, "market_job_posted", "escrow").unwrap_or("?"),
        started.elapsed().as_secs_f64()
    );
    print_escape_table(m, n, args.terms.tile, args.terms.samples);
    if !args.wait {
        super::say!("follow it with `lode job get {id_hex}`; check its result with `lode job result {id_hex} --out C.npy`");
        if super::json_output() {
            println!(
                "{}",
                serde_json::json!({
                    "job": id_hex,
                    "status": "posted",
                    "height": posted.height,
                    "a_root": hex::encode(a_root),
                    "b_root": hex::encode(b_root),
                    "cu": cu,
                })
            );
        }
        return Ok(());
    }

    let deadline = started + Duration::from_secs(args.timeout);
    let end = follow(channel.clone(), &id, posted.height, started, deadline).await?;
    match end {
        Followed::Settled => {
            let job = fetch_job(channel.clone(), &id).await?;
            let inputs = Inputs {
                a: None,
                b: None,
                a_matrix: Some(a),
                b_matrix: Some(b),
            };
            check_result(
                channel,
                &id,
                job,
                inputs,
                Some(&key),
                args.out.as_deref(),
                Duration::from_secs(args.fetch_timeout),
            )
            .await?;
            super::say!("total {:.2} s", started.elapsed().as_secs_f64());
            if super::json_output() {
                println!(
                    "{}",
                    serde_json::json!({
                        "job": id_hex,
                        "status": "settled",
                        "checked": true,
                        "out": args.out,
                        "seconds": started.elapsed().as_secs_f64(),
                    })
                );
            }
            Ok(())
        }
        Followed::Ended(status) => Err(Exit::new(
            EXIT_NO_RESULT,
            format!("job {id_hex} ended {status} without a result"),
        )
        .into()),
    }
}

/// How a followed job ended.
enum Followed {
    Settled,
    Ended(String),
}

/// Follows a job on the event stream from `from` (inclusive), printing each step with the time since
/// `started`, until it settles or ends without a result. A stream the node ends because this client fell
/// behind is resumed from the next height; other stream errors are errors.
async fn follow(
    channel: Channel,
    id: &[u8; 32],
    from: u64,
    started: Instant,
    deadline: Instant,
) -> eyre::Result<Followed> {
    let id_hex = hex::encode(id);
    let filters: Vec<pb::EventFilter> = JOB_EVENTS
        .iter()
        .map(|t| pb::EventFilter {
            r#type: (*t).to_owned(),
            attribute: "job".to_owned(),
            value: id_hex.clone(),
        })
        .collect();
    let mut client = EventServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let mut next = from;
    let timed_out = || {
        Exit::new(
            EXIT_TIMEOUT,
            format!("job {id_hex} still running after --timeout; follow it with `lode job get {id_hex}`"),
        )
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut stream = tokio::time::timeout(
            left,
            client.subscribe(pb::SubscribeRequest {
                from_height: Some(next),
                filters: filters.clone(),
            }),
        )
        .await
        .map_err(|_| timed_out())?
        .map_err(|s| eyre!("subscribe: {:?}: {}", s.code(), s.message()))?
        .into_inner();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = tokio::time::timeout(left, stream.message())
                .await
                .map_err(|_| timed_out())?;
            let block = match msg {
                Ok(Some(b)) => b,
                Ok(None) => {
                    // The node ended the stream (restart, load): subscribe again from where it stopped.
                    eprintln!("the node ended the event stream; resuming at height {next}");
                    break;
                }
                Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                    eprintln!("{}; resuming at height {next}", s.message());
                    break;
                }
                Err(s) => bail!("event stream: {:?}: {}", s.code(), s.message()),
            };
            let height = block.header.as_ref().map_or(next, |h| h.height);
            next = height.saturating_add(1);
            let events = block
                .txs
                .iter()
                .flat_map(|t| &t.events)
                .chain(&block.events)
                .filter(|e| {
                    JOB_EVENTS.contains(&e.r#type.as_str())
                        && e.attributes
                            .iter()
                            .any(|a| a.key == "job" && a.value == id_hex)
                });
            let mut terminal = false;
            for e in events {
                super::say!(
                    "[{:>7.2}s] height {height}: {}",
                    started.elapsed().as_secs_f64(),
                    describe(e)
                );
                terminal |= matches!(
                    e.r#type.as_str(),
                    "market_job_settled"
                        | "market_job_refunded"
                        | "market_job_cancelled"
                        | "compute_fraud_proven"
                        | "market_job_failed"
                );
            }
            if terminal {
                // The job's state after this block decides (a failure may be followed by a re-queue).
                let j = fetch_job(channel.clone(), id).await?;
                match j.status.as_str() {
                    "settled" | "final" => return Ok(Followed::Settled),
                    "refunded" | "cancelled" | "fraud_proven" | "withheld" => {
                        return Ok(Followed::Ended(j.status))
                    }
                    _ => {}
                }
            }
        }
    }
}

/// One lifecycle event as a line for people.
fn describe(e: &pb::Event) -> String {
    let attr = |k: &str| {
        e.attributes
            .iter()
            .find(|a| a.key == k)
            .map_or("?", |a| a.value.as_str())
    };
    match e.r#type.as_str() {
        "market_job_posted" => format!("posted: {} CU, escrow {}", attr("cu"), attr("escrow")),
        "market_job_matched" => format!(
            "matched to {} at {} per CU (accept by height {})",
            attr("provider"),
            attr("price_per_cu"),
            attr("accept_deadline")
        ),
        "market_job_accepted" => format!(
            "accepted by {} (commit by height {})",
            attr("provider"),
            attr("commit_deadline")
        ),
        "market_job_declined" => format!("declined by {}: {}", attr("provider"), attr("reason")),
        "compute_committed" => format!("committed: output root {}", attr("output_root")),
        "compute_challenged" => format!(
            "challenged: tiles {} (reveal by height {})",
            attr("tiles"),
            attr("reveal_deadline")
        ),
        "compute_revealed" => format!(
            "revealed tiles {}: {}",
            attr("tiles"),
            attr("verdict").replace('_', " ")
        ),
        "market_job_settled" => format!(
            "settled: {} paid, {} held back, {} fee burned, {} refunded; fraud window to height {}",
            attr("paid"),
            attr("holdback"),
            attr("fee_burned"),
            attr("refunded"),
            attr("fraud_window_end")
        ),
        "market_job_failed" => format!("failed: {}: {}", attr("provider"), attr("reason")),
        "market_provider_slashed" => format!(
            "provider {} slashed {} ({} to {})",
            attr("provider"),
            attr("amount"),
            attr("to_amount"),
            attr("to")
        ),
        "market_job_requeued" => "re-queued for another provider".to_owned(),
        "market_job_refunded" => format!("refunded {}", attr("amount")),
        "market_job_cancelled" => format!("cancelled, {} refunded", attr("refunded")),
        "compute_output_challenged" => format!(
            "availability challenge: tiles {} (answer by height {})",
            attr("tiles"),
            attr("answer_deadline")
        ),
        "compute_fraud_proven" => format!(
            "fraud proven: {}; holdback {} to the consumer",
            attr("reason"),
            attr("holdback_to_consumer")
        ),
        "market_holdback_released" => format!("holdback {} released", attr("amount")),
        other => other.to_owned(),
    }
}

/// Where `check_result` takes A and B from: files, matrices in memory, or (neither) the blob service.
struct Inputs<'a> {
    a: Option<&'a Path>,
    b: Option<&'a Path>,
    a_matrix: Option<MatrixI8>,
    b_matrix: Option<MatrixI8>,
}

/// A key in `<home>/keys` or the default devnet whose address is `address`.
fn consumer_key(home: &Path, address: &str) -> Option<KeyFile> {
    [
        home.join("keys"),
        testnet::node_home(&testnet::default_dir(), 0).join("keys"),
    ]
    .iter()
    .filter(|d| d.is_dir())
    .filter_map(|d| crate::keys::list(d).ok())
    .flatten()
    .find(|k| k.address == address)
}

/// A 32-byte root from a job field.
fn root32(b: &[u8], what: &str) -> eyre::Result<[u8; 32]> {
    b.try_into()
        .map_err(|_| eyre!("the job's {what} is {} bytes, not 32", b.len()))
}

/// Whether an error (anywhere in its chain) is a gRPC NOT_FOUND, UNAVAILABLE or DEADLINE_EXCEEDED: the
/// blob is not to be had, as opposed to a bad answer.
fn is_unavailable(e: &eyre::Report) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<tonic::Status>().is_some_and(|s| {
            matches!(
                s.code(),
                tonic::Code::NotFound | tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
            )
        })
    })
}

/// Downloads and checks a settled job's C; see `lode job result`.
async fn check_result(
    channel: Channel,
    id: &[u8; 32],
    job: mpb::Job,
    inputs: Inputs<'_>,
    key: Option<&KeyFile>,
    out: Option<&Path>,
    fetch_timeout: Duration,
) -> eyre::Result<()> {
    let id_hex = hex::encode(id);
    let in_window = match job.status.as_str() {
        "settled" => true,
        "final" => false,
        "fraud_proven" | "withheld" | "refunded" | "cancelled" => {
            return Err(Exit::new(
                EXIT_NO_RESULT,
                format!("job {id_hex} is {}: it has no result", job.status),
            )
            .into())
        }
        other => bail!(
            "job {id_hex} is {other}: its result can be checked once it settles (`lode job get {id_hex}`)"
        ),
    };
    let out_root = root32(&job.output_root, "output root")?;
    let (a_root, b_root) = (
        root32(&job.a_root, "A root")?,
        root32(&job.b_root, "B root")?,
    );
    let mut blobs = BlobClient::new(channel.clone());

    // A and B: the consumer's own, checked against the job's roots.
    let a = match (inputs.a_matrix, inputs.a) {
        (Some(m), _) => m,
        (None, Some(p)) => read_i8(p)?,
        (None, None) => blobs
            .get_a_for(&a_root, job.m, job.k)
            .await
            .wrap_err("downloading A")?,
    };
    let b = match (inputs.b_matrix, inputs.b) {
        (Some(m), _) => m,
        (None, Some(p)) => read_i8(p)?,
        (None, None) => blobs
            .get_b_for(&b_root, job.k, job.n)
            .await
            .wrap_err("downloading B")?,
    };
    // The check's secret seed, drawn now: C is committed (its root is on chain, and the download is checked
    // against it), so reading A, B and C after the draw changes nothing for soundness. Every product the
    // check needs is taken while another pass has the rows in cache: `B·r` and `A·(B·r)` while A and B
    // are checked against the job's roots (`freivalds::InputProducts`), `C·r` while C is converted from
    // its tiles (`freivalds::CProducts`).
    let mut seed = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut seed);
    let size = |v: u64| usize::try_from(v).map_err(|_| eyre!("dimension {v} too large"));
    let (m, n) = (size(job.m)?, size(job.n)?);
    eyre::ensure!(
        (a.rows(), b.cols(), b.rows()) == (m, n, a.cols()),
        "A ({}x{}) and B ({}x{}) given here are not the job's inputs (its C is {m}x{n})",
        a.rows(),
        a.cols(),
        b.rows(),
        b.cols()
    );
    let mut inputs = freivalds::InputProducts::new(m, a.cols(), n, &seed, FREIVALDS_TRIALS)?;
    let (ra, rb) = input_roots_with(&a, &b, &mut inputs)?;
    eyre::ensure!(
        ra == a_root && rb == b_root,
        "A and B given here are not the job's inputs (their roots differ from the job's)"
    );
    let mut products = freivalds::CProducts::new(m, n, &seed, FREIVALDS_TRIALS)?;
    let t = Instant::now();
    let fetched = match tokio::time::timeout(
        fetch_timeout,
        blobs.get_c_shaped_with_products(&out_root, (job.m, job.n, job.tile), &mut products),
    )
    .await
    {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) if is_unavailable(&e) => Err(format!("{e:#}")),
        Ok(Err(e)) => return Err(e.wrap_err("downloading C")),
        Err(_) => Err(format!("no answer within {} s", fetch_timeout.as_secs())),
    };
    let c = match fetched {
        Ok(c) => c,
        Err(why) => return challenge_availability(channel, id, &job, key, &why, in_window).await,
    };
    super::say!(
        "downloaded C ({}x{} int32, root {} checked, C·r for Freivalds taken on the way) in {} ms",
        c.rows(),
        c.cols(),
        hex::encode(out_root),
        t.elapsed().as_millis()
    );

    // The products were taken while A, B and C were read; what is left is comparing them.
    let report = freivalds::check_all(&inputs, &products)?;
    if report.accepted() {
        super::say!(
            "C checked in full: Freivalds, {FREIVALDS_TRIALS} trials over A, B and C as they were read (a wrong C passes with probability at most 2^-{})",
            FREIVALDS_TRIALS * freivalds::TRIAL_ESCAPE_LOG2
        );
        if let Some(out) = out {
            write_c(out, &c)?;
            super::say!("C written to {}", out.display());
        }
        return Ok(());
    }
    super::say!(
        "C is WRONG: Freivalds rejected {} row(s)",
        report.suspect_rows.len()
    );
    let (row, col, claimed, correct) =
        freivalds::find_wrong_element(&a, &b, &c, &seed, FREIVALDS_TRIALS)?.ok_or_else(|| {
            eyre!("Freivalds rejected C but no wrong element was found in the suspect rows")
        })?;
    super::say!("C[{row}][{col}] is {claimed}; A·B has {correct}");
    let wrong = |what: String| -> eyre::Report { Exit::new(EXIT_WRONG_RESULT, what).into() };
    if !in_window {
        return Err(wrong(format!(
            "job {id_hex}'s C is wrong at [{row}][{col}], but its fraud window has closed: no fraud proof can be sent"
        )));
    }
    let Some(key) = key else {
        return Err(wrong(format!(
            "job {id_hex}'s C is wrong at [{row}][{col}]; no key to sign a fraud proof (give --from)"
        )));
    };
    let tile = usize::try_from(job.tile).map_err(|_| eyre!("tile out of range"))?;
    let proof = Prover::new(a, &b, c, tile)?.fraud_proof(*id, row, col)?;
    let submitter: lode_state::Address =
        key.address.parse().map_err(|e| eyre!("key address: {e}"))?;
    let domain = ComputeMsg::FraudProof {
        submitter,
        job: *id,
        proof: Box::new(proof),
    };
    let msg = txpb::Msg {
        sum: Some((&domain).into()),
    };
    // The result is wrong whether or not the proof lands (the fraud window may have closed meanwhile):
    // say so with the wrong-result status either way.
    let committed = send_one(channel, key, msg, None).await.map_err(|e| {
        wrong(format!(
            "job {id_hex}'s C is wrong at [{row}][{col}]; the fraud proof did not land: {e:#}"
        ))
    })?;
    let slashed = event_attr(&committed.events, "market_provider_slashed", "amount");
    super::say!(
        "fraud proof for C[{row}][{col}] landed at height {} (tx {}): provider {} slashed {}, holdback {} back to the consumer",
        committed.height,
        hex::encode_upper(&committed.hash),
        job.provider,
        slashed.unwrap_or("?"),
        event_attr(&committed.events, "compute_fraud_proven", "holdback_to_consumer").unwrap_or("?")
    );
    Err(wrong(format!(
        "job {id_hex}'s result was wrong; fraud proven on chain"
    )))
}

/// C cannot be downloaded: ask the provider on chain to reveal tiles of it (an unanswered challenge slashes
/// it like a failed sample), then exit 3.
async fn challenge_availability(
    channel: Channel,
    id: &[u8; 32],
    job: &mpb::Job,
    key: Option<&KeyFile>,
    why: &str,
    in_window: bool,
) -> eyre::Result<()> {
    let id_hex = hex::encode(id);
    let unavailable = |what: String| -> eyre::Report { Exit::new(EXIT_UNAVAILABLE, what).into() };
    super::say!("C is not available: {why}");
    if !in_window {
        return Err(unavailable(format!(
            "job {id_hex}'s C is not available and its fraud window has closed"
        )));
    }
    if !job.challenge_tiles.is_empty() {
        return Err(unavailable(format!(
            "job {id_hex}'s C is not available; an availability challenge is already open (deadline height {})",
            job.deadline_height
        )));
    }
    let Some(key) = key else {
        return Err(unavailable(format!(
            "job {id_hex}'s C is not available; no consumer key to challenge it (give --from)"
        )));
    };
    let params = chain_params(channel.clone()).await?;
    let t = u64::from(job.tile.max(1));
    let tiles = (job.m / t).saturating_mul(job.n / t);
    let count = usize::try_from(params.compute.max_challenge_tiles)
        .unwrap_or(usize::MAX)
        .min(usize::try_from(tiles).unwrap_or(usize::MAX))
        .max(1);
    let mut seed = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut seed);
    let chosen = challenge_indices(&seed, id, tiles, count)?;
    let msg = txpb::Msg {
        sum: Some(txpb::msg::Sum::ComputeChallengeOutput(
            lode_proto::compute::v1::MsgChallengeOutput {
                consumer: key.address.clone(),
                job_id: id.to_vec(),
                tiles: chosen.clone(),
            },
        )),
    };
    let committed = send_one(channel, key, msg, None).await?;
    super::say!(
        "availability challenge for tiles {} landed at height {}: the provider must reveal them by height {} or be slashed",
        chosen
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
        committed.height,
        event_attr(&committed.events, "compute_output_challenged", "answer_deadline").unwrap_or("?")
    );
    Err(unavailable(format!(
        "job {id_hex}'s C is not available; availability challenge submitted"
    )))
}

/// Writes C as `.npy` or, for other extensions, gpu-verify's format; refuses to overwrite.
fn write_c(path: &Path, c: &MatrixI32) -> eyre::Result<()> {
    eyre::ensure!(
        !path.exists(),
        "{} exists: give a new file for --out",
        path.display()
    );
    let r = if path.extension().is_some_and(|e| e == "npy") {
        format::write_npy(path, c)
    } else {
        format::write_file(path, c)
    };
    r.wrap_err_with(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_the_chain_would_refuse_is_refused_before_paying() {
        let p = Params::default();
        let a = MatrixI8::from_fn(8, 8, |i, j| (i + j) as i8).expect("a");
        let b = MatrixI8::from_fn(8, 8, |i, j| (i * j) as i8).expect("b");
        let terms = |tile, samples| JobSpecTerms {
            tile,
            samples,
            max_price: Some(1),
            deadline_blocks: 100,
            min_reputation: 0,
        };
        let (_, _, cu) = check_terms(&a, &b, &terms(4, 16), &p).expect("valid job");
        assert_eq!(cu, 1);
        let e = check_terms(&a, &b, &terms(3, 16), &p).expect_err("tile 3 does not divide 8");
        assert!(format!("{e}").contains("refuse"), "{e}");
        assert!(
            check_terms(&a, &b, &terms(4, 1), &p).is_err(),
            "too few samples"
        );
        let short_b = MatrixI8::from_fn(4, 8, |_, _| 1).expect("b");
        let e = check_terms(&a, &short_b, &terms(4, 16), &p).expect_err("k differs");
        assert!(format!("{e}").contains("4 rows"), "{e}");
    }

    #[test]
    fn unavailable_means_not_found_unavailable_or_deadline() {
        let r = eyre::Report::new(tonic::Status::not_found("no blob")).wrap_err("downloading C");
        assert!(is_unavailable(&r));
        let r = eyre::Report::new(tonic::Status::invalid_argument("bad"));
        assert!(!is_unavailable(&r));
        assert!(!is_unavailable(&eyre!("root mismatch")));
    }

    #[test]
    fn percentages_stay_readable_when_tiny() {
        assert_eq!(percent(0.5), "50.0%");
        assert_eq!(percent(0.99976), "99.976%");
        assert_eq!(percent(1e-5), "1.00e-3%");
    }
}
