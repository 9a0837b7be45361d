//! `lode blob`: put, get and stat job data (blobs) on a node's `BlobService`.
//!
//! Files are `.npy` (int8 for A and B, int32 for C, C order) or, for any other extension, `lode-gpu-verify`'s
//! own matrix format. `get` writes the matrix in normal orientation (B as k×n) after checking its root.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use eyre::{bail, eyre, WrapErr};
use lode_gpu_verify::{format, Matrix};

use super::client::{connect, find_signer, runtime, Signer, DEFAULT_NODE};
use super::HomeArg;
use crate::blobs::{
    client::BlobClient,
    layout::{self, BlobKind},
    root_from_bytes,
};
use crate::services::grpc::pb::{self, query_service_client::QueryServiceClient};

/// `lode blob …`.
#[derive(Debug, Subcommand)]
pub(super) enum BlobCommand {
    /// Upload a matrix file as a blob (signed by `--from`); prints its root.
    Put(PutArgs),
    /// Download a blob by root, check it against the root, and write it to a file.
    Get(GetArgs),
    /// Show a stored blob's header, size and uploader (exit 1 when the node does not store it).
    Stat(StatArgs),
    /// Benchmark: a fresh two-validator devnet in a temp dir; put an A blob of `--size-mib` (1..=256) on node
    /// 0 and post the job whose A it is (nodes fetch only live jobs' blobs from peers), fetch it from node 0
    /// by a `Get` on node 1 (peer-to-peer), then get it again locally; print MB/s of each.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub(super) struct BenchArgs {
    /// Blob size in MiB (an A of size·256 rows of 4096 bytes).
    #[arg(long, default_value_t = 256)]
    size_mib: usize,
    /// Keep the devnet directory (with each validator's `node.log`).
    #[arg(long)]
    keep: bool,
}

/// The matrix kind, as `--kind` spells it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum KindArg {
    /// A (m×k int8), committed by rows.
    A,
    /// B (k×n int8), committed by columns.
    B,
    /// C (m×n int32), committed by tiles.
    C,
}

#[derive(Debug, Args)]
pub(super) struct PutArgs {
    /// The matrix file (`.npy`, else gpu-verify's format).
    file: PathBuf,
    /// Which matrix of a job this is.
    #[arg(long, value_enum)]
    kind: KindArg,
    /// C only: the tile side T.
    #[arg(long)]
    tile: Option<usize>,
    /// The uploading account: a key name in `<home>/keys` (or the devnet's) or a key file path.
    #[arg(long)]
    from: String,
    #[command(flatten)]
    home: HomeArg,
    /// The node's gRPC URL.
    #[arg(long, env = "LODE_NODE", default_value = DEFAULT_NODE)]
    node: String,
}

#[derive(Debug, Args)]
pub(super) struct GetArgs {
    /// The blob's root (64 hex digits).
    root: String,
    /// Where to write the matrix (`.npy`, else gpu-verify's format); must not exist.
    #[arg(long)]
    out: PathBuf,
    /// The node's gRPC URL.
    #[arg(long, env = "LODE_NODE", default_value = DEFAULT_NODE)]
    node: String,
}

#[derive(Debug, Args)]
pub(super) struct StatArgs {
    /// The blob's root (64 hex digits).
    root: String,
    /// The node's gRPC URL.
    #[arg(long, env = "LODE_NODE", default_value = DEFAULT_NODE)]
    node: String,
}

fn is_npy(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

fn read_matrix<T: lode_gpu_verify::matrix::Element>(path: &Path) -> eyre::Result<Matrix<T>> {
    let m = if is_npy(path) {
        format::read_npy(path)
    } else {
        format::read_file(path)
    };
    m.wrap_err_with(|| format!("cannot read matrix {}", path.display()))
}

fn write_matrix<T: lode_gpu_verify::matrix::Element>(
    path: &Path,
    m: &Matrix<T>,
) -> eyre::Result<()> {
    let bytes = if is_npy(path) {
        format::encode_npy(m)
    } else {
        format::encode(m)
    };
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .wrap_err_with(|| format!("cannot create {}", path.display()))?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .wrap_err_with(|| format!("cannot write {}", path.display()))
}

fn parse_root(s: &str) -> eyre::Result<[u8; 32]> {
    let b = hex::decode(s).map_err(|e| eyre!("root {s:?} is not hex: {e}"))?;
    Ok(root_from_bytes(&b)?)
}

pub(super) fn run(cmd: &BlobCommand) -> eyre::Result<()> {
    if let BlobCommand::Bench(a) = cmd {
        return bench(a);
    }
    runtime()?.block_on(async {
        match cmd {
            BlobCommand::Put(a) => {
                let Signer::Key(key) = find_signer(&a.from, &a.home.home)? else {
                    bail!("--from must be a single key, not a multisig account");
                };
                let channel = connect(&a.node).await?;
                let chain_id = QueryServiceClient::new(channel.clone())
                    .status(pb::StatusRequest {})
                    .await
                    .wrap_err("cannot read the node's status")?
                    .into_inner()
                    .chain_id;
                let mut c = BlobClient::new(channel);
                let root = match a.kind {
                    KindArg::A => {
                        c.put_a(&key, &chain_id, &read_matrix::<i8>(&a.file)?)
                            .await?
                    }
                    KindArg::B => {
                        c.put_b(&key, &chain_id, &read_matrix::<i8>(&a.file)?)
                            .await?
                    }
                    KindArg::C => {
                        let tile = a.tile.ok_or_else(|| eyre!("--kind c needs --tile"))?;
                        c.put_c(&key, &chain_id, &read_matrix::<i32>(&a.file)?, tile)
                            .await?
                    }
                };
                super::emit(serde_json::json!({ "root": hex::encode(root) }), || {
                    println!("{}", hex::encode(root))
                })?;
            }
            BlobCommand::Get(a) => {
                let root = parse_root(&a.root)?;
                let mut c = BlobClient::new(connect(&a.node).await?);
                let (h, bytes) = c.get_blob(&root).await?;
                let (r, k, t) = (dim(h.rows)?, dim(h.cols)?, dim(u64::from(h.tile))?);
                match h.kind {
                    BlobKind::A => write_matrix(&a.out, &layout::a_from_bytes(r, k, &bytes)?)?,
                    BlobKind::B => write_matrix(&a.out, &layout::b_from_bytes(r, k, &bytes)?)?,
                    BlobKind::C => write_matrix(&a.out, &layout::c_from_bytes(r, k, t, &bytes)?)?,
                }
                if super::json_output() {
                    println!(
                        "{}",
                        serde_json::json!({
                            "file": a.out,
                            "root": a.root,
                            "kind": h.kind.name(),
                            "rows": h.rows,
                            "cols": h.cols,
                            "verified": true,
                        })
                    );
                } else {
                    eprintln!(
                        "wrote {} ({}, {}x{}, root verified)",
                        a.out.display(),
                        h.kind.name(),
                        h.rows,
                        h.cols
                    );
                }
            }
            BlobCommand::Stat(a) => {
                let root = parse_root(&a.root)?;
                let mut c = BlobClient::new(connect(&a.node).await?);
                let Some(s) = c.stat(&root).await? else {
                    bail!("blob {} is not stored on {}", a.root, a.node);
                };
                let h = s
                    .blob
                    .as_ref()
                    .map(crate::blobs::layout::BlobHeader::try_from)
                    .transpose()?
                    .ok_or_else(|| eyre!("the node's stat has no header"))?;
                println!(
                    "{}",
                    serde_json::json!({
                        "root": hex::encode(h.root),
                        "kind": h.kind.name(),
                        "rows": h.rows,
                        "cols": h.cols,
                        "tile": h.tile,
                        "leaves": h.leaf_count(),
                        "size_bytes": s.size_bytes,
                        "uploader": s.uploader,
                        "stored_unix": s.stored_unix,
                        "fetched_from": s.fetched_from,
                    })
                );
            }
            BlobCommand::Bench(_) => {}
        }
        Ok(())
    })
}

/// `lode blob bench`.
fn bench(args: &BenchArgs) -> eyre::Result<()> {
    use crate::testnet::TestnetSpec;
    use std::time::{Duration, Instant};
    eyre::ensure!(
        (1..=256).contains(&args.size_mib),
        "--size-mib must be in 1..=256 (A is rows x 4096 bytes, at most the chain's default max_m rows)"
    );
    let spec = TestnetSpec {
        chain_id: "lode-blob-bench-1".into(),
        validators: 2,
        dev_accounts: 1,
        base_port: 0,
        timeout_propose_ms: 300,
        mnemonic: None,
    };
    let net = super::devnet::BenchNet::start("lode-blob-bench", &spec, "info")?;
    let urls = net.urls();
    let key = net
        .keys
        .first()
        .cloned()
        .ok_or_else(|| eyre!("no dev key"))?;
    let rows = args.size_mib * 256;
    let result = runtime()?.block_on(async {
        let a = lode_gpu_verify::MatrixI8::from_fn(rows, 4096, |i, j| {
            (i.wrapping_mul(31) ^ j.wrapping_mul(7)) as i8
        })?;
        let b = lode_gpu_verify::MatrixI8::from_fn(4096, 4, |i, j| (i ^ j) as i8)?;
        let size = (rows * 4096) as f64;
        let connect_retry = |url: String| async move {
            let t = Instant::now();
            loop {
                match connect(&url).await {
                    Ok(c) => return Ok(c),
                    Err(e) if t.elapsed() > Duration::from_secs(60) => return Err(e),
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        };
        let ch0 = connect_retry(urls[0].clone()).await?;
        let mut c0 = BlobClient::new(ch0.clone());
        let mut c1 = BlobClient::new(connect_retry(urls[1].clone()).await?);
        let t = Instant::now();
        let root = c0.put_a(&key, &spec.chain_id, &a).await?;
        let put = t.elapsed().as_secs_f64();
        let b_root = c0.put_b(&key, &spec.chain_id, &b).await?;
        // A node fetches from peers only the data of live jobs: post the job whose A this is.
        let msg = lode_proto::tx::v1::Msg {
            sum: Some(lode_proto::tx::v1::msg::Sum::MarketPostJob(
                lode_proto::market::v1::MsgPostJob {
                    consumer: key.address.clone(),
                    m: rows as u64,
                    k: 4096,
                    n: 4,
                    a_root: root.to_vec(),
                    b_root: b_root.to_vec(),
                    tile: 4,
                    samples: 16,
                    max_price_per_cu: "1".into(),
                    deadline_blocks: 100,
                    min_reputation: 0,
                    on_failure: lode_proto::market::v1::OnFailure::Refund as i32,
                },
            )),
        };
        let posted = loop {
            match super::job::send_one(ch0.clone(), &key, msg.clone(), None).await {
                Ok(p) => break p,
                Err(e) if t.elapsed() > Duration::from_secs(120) => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        };
        eyre::ensure!(
            super::job::event_attr(&posted.events, "market_job_posted", "job").is_some(),
            "the job was not posted"
        );
        // Node 1 fetches the whole blob from node 0 (stat, block roots, blocks checked as they arrive,
        // stored) before it answers a one-row get; retried while it has not seen the job's block or its
        // gossip swarm is still connecting.
        let t = Instant::now();
        let fetch = loop {
            let t1 = Instant::now();
            match c1.get_raw(&root, 0, 1).await {
                Ok(_) => break t1.elapsed().as_secs_f64(),
                Err(e) if t.elapsed() > Duration::from_secs(120) => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let t = Instant::now();
        let back = c1.get_a(&root).await?;
        let get = t.elapsed().as_secs_f64();
        eyre::ensure!(back == a, "node 1 returned another matrix");
        super::emit(
            serde_json::json!({
                "size_mib": args.size_mib,
                "put_mb_s": size / 1e6 / put,
                "p2p_fetch_mb_s": size / 1e6 / fetch,
                "get_mb_s": size / 1e6 / get,
            }),
            || {
                println!(
                    "blob bench, {} MiB A blob on a 2-node loopback devnet: put to node 0 {:.0} MB/s; node 1 fetched it from node 0 over p2p (stat, block roots, blocks verified as they arrive, stored) {:.0} MB/s; get from node 1 (client verifies) {:.0} MB/s",
                    args.size_mib,
                    size / 1e6 / put,
                    size / 1e6 / fetch,
                    size / 1e6 / get
                )
            },
        )?;
        eyre::Ok(())
    });
    net.finish(args.keep);
    result
}

fn dim(v: u64) -> eyre::Result<usize> {
    usize::try_from(v).map_err(|_| eyre!("dimension {v} too large"))
}
