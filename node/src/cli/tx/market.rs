//! `lode tx market …` (providers and jobs) and `lode tx compute …` (commit, reveal, challenge, fraud proof).
//! The compute commands that need the matrices read them from `.npy` (int8 / int32, C order) or
//! gpu-verify's own format, by file extension.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use eyre::{eyre, WrapErr};
use lode_gpu_verify::{format, matrix::Matrix, verify::Prover, MatrixI32, MatrixI8};
use lode_proto::{market::v1 as mpb, tx::v1 as txpb};
use lode_state::modules::compute::msg::{reveal_msg, ComputeMsg};

use super::{MsgCommand, TxOpts};
use lode_client::tx::TxMsg;

/// Parses `MODEL:MEMORY_MIB:COUNT`, e.g. `H100:81920:8`.
fn device(s: &str) -> Result<mpb::Device, String> {
    let mut it = s.rsplitn(3, ':');
    let (Some(count), Some(mem), Some(model)) = (it.next(), it.next(), it.next()) else {
        return Err(format!("{s:?}: expected MODEL:MEMORY_MIB:COUNT"));
    };
    Ok(mpb::Device {
        model: model.to_string(),
        memory_mib: mem.parse().map_err(|e| format!("memory {mem:?}: {e}"))?,
        count: count.parse().map_err(|e| format!("count {count:?}: {e}"))?,
    })
}

/// A 32-byte id or root, given in hex.
#[derive(Debug, Clone)]
pub(crate) struct Hex32(pub(crate) Vec<u8>);

pub(crate) fn hex32(s: &str) -> Result<Hex32, String> {
    let b = hex::decode(s.trim_start_matches("0x")).map_err(|e| format!("{s:?}: {e}"))?;
    if b.len() != 32 {
        return Err(format!("{s:?}: expected 32 bytes of hex, got {}", b.len()));
    }
    Ok(Hex32(b))
}

#[derive(Debug, Subcommand)]
pub(crate) enum MarketTx {
    /// Register the signer as a GPU provider, bonding `--bond`.
    RegisterProvider {
        #[command(flatten)]
        opts: TxOpts,
        #[arg(long, default_value = "")]
        moniker: String,
        /// A device entry MODEL:MEMORY_MIB:COUNT (repeat for several models).
        #[arg(long = "device", value_parser = device, required = true)]
        devices: Vec<mpb::Device>,
        /// Price per compute unit (10^9 int8 multiply-adds), in base units.
        #[arg(long)]
        ask: u128,
        /// Largest job taken, in CU.
        #[arg(long, default_value_t = 1_000_000)]
        max_job_cu: u64,
        /// At least market.min_bond_per_device × devices.
        #[arg(long)]
        bond: u128,
    },
    /// Change the signer's offer (a new ask counts from the next block).
    UpdateProvider {
        #[command(flatten)]
        opts: TxOpts,
        #[arg(long)]
        ask: Option<u128>,
        /// Replaces the device list.
        #[arg(long = "device", value_parser = device)]
        devices: Vec<mpb::Device>,
        #[arg(long)]
        max_job_cu: Option<u64>,
        #[arg(long)]
        add_bond: Option<u128>,
        #[arg(long)]
        moniker: Option<String>,
    },
    /// Stop offering (no job in flight); the bond unlocks after market.unbonding_blocks.
    UnregisterProvider {
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Post a MatMulI8 job C = A·B with the roots of A (by rows) and B (by columns).
    PostJob {
        #[command(flatten)]
        opts: TxOpts,
        #[command(flatten)]
        job: JobArgs,
    },
    /// Cancel an unmatched job (full refund).
    CancelJob {
        #[command(flatten)]
        opts: TxOpts,
        /// The job id (hex, from `lode query market jobs`).
        #[arg(long, value_parser = hex32)]
        job: Hex32,
    },
    /// Accept a job matched to the signer.
    AcceptJob {
        #[command(flatten)]
        opts: TxOpts,
        /// The job id (hex, from `lode query market jobs`).
        #[arg(long, value_parser = hex32)]
        job: Hex32,
    },
    /// Decline a job matched to the signer (not slashed).
    DeclineJob {
        #[command(flatten)]
        opts: TxOpts,
        /// The job id (hex, from `lode query market jobs`).
        #[arg(long, value_parser = hex32)]
        job: Hex32,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// A job's terms. The roots come from `--a/--b` files or are given in hex.
#[derive(Debug, Args)]
pub(crate) struct JobArgs {
    /// A (m×k, int8): its file, to take m, k and its row root from.
    #[arg(long)]
    a: Option<PathBuf>,
    /// B (k×n, int8): its file, to take n and its column root from.
    #[arg(long)]
    b: Option<PathBuf>,
    #[arg(long)]
    m: Option<u64>,
    #[arg(long)]
    k: Option<u64>,
    #[arg(long)]
    n: Option<u64>,
    /// A's row root (hex), instead of `--a`.
    #[arg(long, value_parser = hex32)]
    a_root: Option<Hex32>,
    /// B's column root (hex), instead of `--b`.
    #[arg(long, value_parser = hex32)]
    b_root: Option<Hex32>,
    #[command(flatten)]
    terms: JobTerms,
}

/// A job's terms: shared by `lode tx market post-job` and `lode job submit`.
#[derive(Debug, Args)]
pub(crate) struct JobTerms {
    /// Tile side T of C's commitment (divides m and n; at most compute.max_tile).
    #[arg(long, default_value_t = 4)]
    pub(crate) tile: u32,
    /// Tiles sampled and recomputed by validators.
    #[arg(long, default_value_t = 16)]
    pub(crate) samples: u32,
    /// Highest price per CU the job pays, in base units.
    #[arg(long)]
    pub(crate) max_price: u128,
    /// Blocks from the match to the commit deadline.
    #[arg(long, visible_alias = "deadline", default_value_t = 100)]
    pub(crate) deadline_blocks: u64,
    /// Lowest provider reputation the job accepts (0..=10000).
    #[arg(long, default_value_t = 0)]
    pub(crate) min_reputation: u32,
    /// On a provider failure, refund instead of re-queueing.
    #[arg(long, visible_alias = "refund", conflicts_with = "requeue")]
    pub(crate) refund_on_failure: bool,
    /// On a provider failure, re-queue the job for another provider (the default).
    #[arg(long)]
    pub(crate) requeue: bool,
}

impl JobTerms {
    /// The `MsgPostJob` for a C = A·B of m×k×n with these terms.
    pub(crate) fn to_msg(
        &self,
        consumer: String,
        (m, k, n): (u64, u64, u64),
        a_root: Vec<u8>,
        b_root: Vec<u8>,
    ) -> mpb::MsgPostJob {
        mpb::MsgPostJob {
            consumer,
            m,
            k,
            n,
            a_root,
            b_root,
            tile: self.tile,
            samples: self.samples,
            max_price_per_cu: self.max_price.to_string(),
            deadline_blocks: self.deadline_blocks,
            min_reputation: self.min_reputation,
            on_failure: if self.refund_on_failure {
                mpb::OnFailure::Refund as i32
            } else {
                mpb::OnFailure::Requeue as i32
            },
        }
    }
}

/// The roots a job commits A (by rows) and B (by columns) to; an error when B's rows are not A's columns.
pub(crate) fn input_roots(a: &MatrixI8, b: &MatrixI8) -> eyre::Result<([u8; 32], [u8; 32])> {
    eyre::ensure!(
        b.rows() == a.cols(),
        "B has {} rows, A has {} columns: C = A·B needs them equal",
        b.rows(),
        a.cols()
    );
    Ok((
        lode_gpu_verify::commit::commit_a(a)?.root(),
        lode_gpu_verify::commit::commit_b(b)?.root(),
    ))
}

/// [`input_roots`], taking Freivalds' `B·r` and `A·(B·r)` from each band of rows while the commitment
/// reads it. `products` is made for A and B's shapes and refuses rows of any other.
pub(crate) fn input_roots_with(
    a: &MatrixI8,
    b: &MatrixI8,
    products: &mut lode_gpu_verify::freivalds::InputProducts,
) -> eyre::Result<([u8; 32], [u8; 32])> {
    use lode_gpu_verify::commit::{commit_a_with, commit_b_with};
    let b_root = commit_b_with(b, |r0, rows| products.add_b_rows(r0, rows))?.root();
    let a_root = commit_a_with(a, |r0, rows| products.add_a_rows(r0, rows))?.root();
    Ok((a_root, b_root))
}

/// Reads an int8 matrix (`.npy` or gpu-verify's format).
pub(crate) fn read_i8(path: &Path) -> eyre::Result<MatrixI8> {
    read(path)
}

/// Reads an int32 matrix (`.npy` or gpu-verify's format).
pub(crate) fn read_i32(path: &Path) -> eyre::Result<MatrixI32> {
    read(path)
}

fn read<T: lode_gpu_verify::matrix::Element>(path: &Path) -> eyre::Result<Matrix<T>> {
    let npy = path.extension().is_some_and(|e| e == "npy");
    let r = if npy {
        format::read_npy(path)
    } else {
        format::read_file(path)
    };
    r.wrap_err_with(|| format!("reading {}", path.display()))
}

impl JobArgs {
    fn to_msg(&self, consumer: String) -> eyre::Result<mpb::MsgPostJob> {
        let (mut m, mut k, mut n) = (self.m, self.k, self.n);
        let mut a_root = self.a_root.clone().map(|h| h.0);
        let mut b_root = self.b_root.clone().map(|h| h.0);
        if let Some(p) = &self.a {
            let a = read_i8(p)?;
            m = Some(a.rows() as u64);
            k = Some(a.cols() as u64);
            a_root = Some(lode_gpu_verify::commit::commit_a(&a)?.root().to_vec());
        }
        if let Some(p) = &self.b {
            let b = read_i8(p)?;
            n = Some(b.cols() as u64);
            if let Some(k) = k {
                eyre::ensure!(
                    b.rows() as u64 == k,
                    "B has {} rows, A has {k} columns",
                    b.rows()
                );
            }
            b_root = Some(lode_gpu_verify::commit::commit_b(&b)?.root().to_vec());
        }
        Ok(self.terms.to_msg(
            consumer,
            (
                m.ok_or_else(|| eyre!("give --a or --m"))?,
                k.ok_or_else(|| eyre!("give --a or --k"))?,
                n.ok_or_else(|| eyre!("give --b or --n"))?,
            ),
            a_root.ok_or_else(|| eyre!("give --a or --a-root"))?,
            b_root.ok_or_else(|| eyre!("give --b or --b-root"))?,
        ))
    }
}

impl MsgCommand for MarketTx {
    fn opts(&self) -> &TxOpts {
        match self {
            MarketTx::RegisterProvider { opts, .. }
            | MarketTx::UpdateProvider { opts, .. }
            | MarketTx::UnregisterProvider { opts }
            | MarketTx::PostJob { opts, .. }
            | MarketTx::CancelJob { opts, .. }
            | MarketTx::AcceptJob { opts, .. }
            | MarketTx::DeclineJob { opts, .. } => opts,
        }
    }

    fn build(&self, signer: &str) -> eyre::Result<txpb::Msg> {
        use txpb::msg::Sum;
        let s = signer.to_owned();
        Ok(TxMsg::into_msg(match self {
            MarketTx::RegisterProvider {
                moniker,
                devices,
                ask,
                max_job_cu,
                bond,
                ..
            } => Sum::MarketRegisterProvider(mpb::MsgRegisterProvider {
                provider: s,
                moniker: moniker.clone(),
                devices: devices.clone(),
                ask_per_cu: ask.to_string(),
                max_job_cu: *max_job_cu,
                bond: bond.to_string(),
            }),
            MarketTx::UpdateProvider {
                ask,
                devices,
                max_job_cu,
                add_bond,
                moniker,
                ..
            } => Sum::MarketUpdateProvider(mpb::MsgUpdateProvider {
                provider: s,
                ask_per_cu: ask.map(|a| a.to_string()).unwrap_or_default(),
                devices: devices.clone(),
                max_job_cu: max_job_cu.unwrap_or(0),
                add_bond: add_bond.map(|a| a.to_string()).unwrap_or_default(),
                moniker: moniker.clone().unwrap_or_default(),
            }),
            MarketTx::UnregisterProvider { .. } => {
                Sum::MarketUnregisterProvider(mpb::MsgUnregisterProvider { provider: s })
            }
            MarketTx::PostJob { job, .. } => Sum::MarketPostJob(job.to_msg(s)?),
            MarketTx::CancelJob { job, .. } => Sum::MarketCancelJob(mpb::MsgCancelJob {
                consumer: s,
                job_id: job.0.clone(),
            }),
            MarketTx::AcceptJob { job, .. } => Sum::MarketAcceptJob(mpb::MsgAcceptJob {
                provider: s,
                job_id: job.0.clone(),
            }),
            MarketTx::DeclineJob { job, reason, .. } => Sum::MarketDeclineJob(mpb::MsgDeclineJob {
                provider: s,
                job_id: job.0.clone(),
                reason: reason.clone(),
            }),
        }))
    }
}

/// The three matrices of a job, for the provider's and the consumer's compute commands.
#[derive(Debug, Args)]
pub(crate) struct Matrices {
    /// A (m×k, int8), `.npy` or gpu-verify's format.
    #[arg(long)]
    a: PathBuf,
    /// B (k×n, int8).
    #[arg(long)]
    b: PathBuf,
    /// C (m×n, int32); computed on the CPU from A and B when omitted.
    #[arg(long)]
    c: Option<PathBuf>,
    /// The job's tile side T.
    #[arg(long, default_value_t = 4)]
    tile: usize,
}

impl Matrices {
    fn prover(&self) -> eyre::Result<Prover> {
        let a = read_i8(&self.a)?;
        let b = read_i8(&self.b)?;
        Ok(match &self.c {
            Some(c) => Prover::new(a, &b, read_i32(c)?, self.tile)?,
            None => Prover::compute(
                &lode_gpu_verify::Engine::new(lode_gpu_verify::Backend::Cpu)?,
                a,
                &b,
                self.tile,
            )?,
        })
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum ComputeTx {
    /// Commit to C by its tile root (from `--output-root`, or computed from the matrices).
    Commit {
        #[command(flatten)]
        opts: TxOpts,
        /// The job id (hex, from `lode query market jobs`).
        #[arg(long, value_parser = hex32)]
        job: Hex32,
        /// The root of C's tile tree (hex); computed from the matrices when omitted.
        #[arg(long, value_parser = hex32)]
        output_root: Option<Hex32>,
        #[command(flatten)]
        matrices: Option<Matrices>,
    },
    /// Reveal tiles (the sampled ones, or an availability challenge's) with their proofs.
    Reveal {
        #[command(flatten)]
        opts: TxOpts,
        /// The job id (hex, from `lode query market jobs`).
        #[arg(long, value_parser = hex32)]
        job: Hex32,
        /// Tile indices, comma-separated (see `lode query market job`).
        #[arg(long, value_delimiter = ',', required = true)]
        tiles: Vec<u64>,
        #[command(flatten)]
        matrices: Matrices,
    },
    /// Ask the provider of a settled job to reveal chosen tiles of C (consumer only, fee applies).
    ChallengeOutput {
        #[command(flatten)]
        opts: TxOpts,
        /// The job id (hex, from `lode query market jobs`).
        #[arg(long, value_parser = hex32)]
        job: Hex32,
        #[arg(long, value_delimiter = ',', required = true)]
        tiles: Vec<u64>,
    },
    /// Prove that element (row, col) of a job's committed C is wrong.
    FraudProof {
        #[command(flatten)]
        opts: TxOpts,
        /// The job id (hex, from `lode query market jobs`).
        #[arg(long, value_parser = hex32)]
        job: Hex32,
        #[arg(long)]
        row: usize,
        #[arg(long)]
        col: usize,
        /// A, B and the provider's C (required here).
        #[command(flatten)]
        matrices: Matrices,
    },
}

fn job32(v: &Hex32) -> eyre::Result<[u8; 32]> {
    v.0.as_slice()
        .try_into()
        .map_err(|_| eyre!("job id must be 32 bytes"))
}

impl MsgCommand for ComputeTx {
    fn opts(&self) -> &TxOpts {
        match self {
            ComputeTx::Commit { opts, .. }
            | ComputeTx::Reveal { opts, .. }
            | ComputeTx::ChallengeOutput { opts, .. }
            | ComputeTx::FraudProof { opts, .. } => opts,
        }
    }

    fn build(&self, signer: &str) -> eyre::Result<txpb::Msg> {
        use lode_proto::compute::v1 as cpb;
        let s = signer.to_owned();
        let addr: lode_state::Address = s.parse().map_err(|e| eyre!("signer address: {e}"))?;
        let domain = match self {
            ComputeTx::Commit {
                job,
                output_root,
                matrices,
                ..
            } => {
                let root = match (output_root, matrices) {
                    (Some(r), _) => r.0.clone(),
                    (None, Some(mx)) => mx.prover()?.c_tree().root().to_vec(),
                    (None, None) => return Err(eyre!("give --output-root or --a/--b/--c")),
                };
                return Ok(cpb::MsgCommitResult {
                    provider: s,
                    job_id: job.0.clone(),
                    output_root: root,
                }
                .into_msg());
            }
            ComputeTx::Reveal {
                job,
                tiles,
                matrices,
                ..
            } => reveal_msg(addr, job32(job)?, &matrices.prover()?, tiles)?,
            ComputeTx::ChallengeOutput { job, tiles, .. } => {
                return Ok(cpb::MsgChallengeOutput {
                    consumer: s,
                    job_id: job.0.clone(),
                    tiles: tiles.clone(),
                }
                .into_msg());
            }
            ComputeTx::FraudProof {
                job,
                row,
                col,
                matrices,
                ..
            } => {
                eyre::ensure!(
                    matrices.c.is_some(),
                    "a fraud proof needs the provider's --c"
                );
                let id = job32(job)?;
                let proof = matrices.prover()?.fraud_proof(id, *row, *col)?;
                ComputeMsg::FraudProof {
                    submitter: addr,
                    job: id,
                    proof: Box::new(proof),
                }
            }
        };
        Ok(txpb::msg::Sum::from(&domain).into_msg())
    }
}
