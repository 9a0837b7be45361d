//! `lode provider probe|bench|run`: the devices this machine would offer, their measured speed, and the
//! provider daemon (`crate::provider`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use eyre::{bail, eyre};
use lode_gpu_verify::{verify::Prover, Backend, Engine, MatrixI8};

use super::client::{find_signer, Signer, DEFAULT_NODE};
use super::HomeArg;
use crate::provider::config::{
    host_memory_mib, merge_devices, parse_backend, probe, DeviceEntry, ProviderConfig,
};
use crate::provider::daemon::{self, Offer, RunOpts};

#[derive(Debug, Subcommand)]
pub(super) enum ProviderCommand {
    /// List the devices a provider on this machine would offer (CUDA devices; the CPU when there is none).
    Probe {
        #[arg(long, default_value = "auto", value_parser = parse_backend)]
        backend: Backend,
    },
    /// Measure each device's speed in CU/s (10^9 int8 multiply-adds per second) with a real int8 GEMM, and
    /// suggest `ask` and `max_job_cu`.
    Bench(BenchArgs),
    /// Run the provider daemon: register, take matched jobs, compute, commit, reveal; until SIGINT/SIGTERM.
    Run(Box<RunArgs>),
}

#[derive(Debug, Args)]
pub(super) struct BenchArgs {
    #[arg(long, default_value = "auto", value_parser = parse_backend)]
    backend: Backend,
    /// Side N of the N×N×N product measured (default: 1024 on the CPU, 8192 on a GPU).
    #[arg(long)]
    size: Option<usize>,
    /// Timed repetitions (after one warm-up).
    #[arg(long, default_value_t = 5)]
    reps: u32,
    /// What a device-hour costs you, in base units: the suggested ask covers it.
    #[arg(long, default_value_t = 3_600_000)]
    hour_cost: u128,
    /// The longest a job should take on one device: the suggested `max_job_cu`.
    #[arg(long, default_value_t = 60)]
    job_seconds: u64,
}

#[derive(Debug, Args)]
pub(super) struct RunArgs {
    #[command(flatten)]
    home: HomeArg,
    /// The provider's key: a name in `<home>/keys`, or a key file.
    #[arg(long)]
    from: String,
    /// The node's gRPC URL (its blob service and event stream are used too).
    #[arg(long, env = "LODE_NODE")]
    node: Option<String>,
    /// auto (CUDA when present, else the CPU), cuda or cpu.
    #[arg(long, value_parser = parse_backend)]
    backend: Option<Backend>,
    /// provider.toml (default: `<home>/provider.toml` when it exists).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Registration only: the provider's display name.
    #[arg(long)]
    moniker: Option<String>,
    /// Registration only: a device entry MODEL:MEMORY_MIB:COUNT (repeat; default: what `probe` finds).
    #[arg(long = "device", value_parser = DeviceEntry::parse)]
    devices: Vec<DeviceEntry>,
    /// Price per CU in base units (registers with it; an ask different from the chain's is updated).
    #[arg(long)]
    ask: Option<u128>,
    /// Largest job taken, in CU (default at registration: 1,000,000).
    #[arg(long)]
    max_job_cu: Option<u64>,
    /// Registration only: the bond (at least market.min_bond_per_device × devices).
    #[arg(long)]
    bond: Option<u128>,
    /// Serve `GET /metrics` (Prometheus text) on this address.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Jobs needing more host memory than this (MiB) are declined (default: 3/4 of the host's memory).
    #[arg(long)]
    max_memory_mib: Option<u64>,
    /// Where the job table lives (default: `<home>/provider`).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Test-only fault (feature `provider-faults`): corrupt-tiles=F, one-element or withhold.
    #[cfg(feature = "provider-faults")]
    #[arg(long, hide = true)]
    cheat: Option<crate::provider::faults::Cheat>,
    /// Test-only fault (feature `provider-faults`): stop working once a job is accepted (for a SIGKILL there).
    #[cfg(feature = "provider-faults")]
    #[arg(long, hide = true)]
    stall_after_accept: bool,
}

/// Runs a `lode provider` command.
pub(super) fn run(cmd: ProviderCommand, log_level: Option<&str>) -> eyre::Result<()> {
    if !matches!(cmd, ProviderCommand::Run(_)) {
        super::init_tracing(log_level.unwrap_or("warn"));
    }
    match cmd {
        ProviderCommand::Probe { backend } => {
            let devices = probe(backend)?;
            super::emit(
                devices
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "id": d.id,
                            "model": d.entry.model,
                            "memory_mib": d.entry.memory_mib,
                            "count": d.entry.count,
                            "detail": d.detail,
                        })
                    })
                    .collect(),
                || {
                    for d in &devices {
                        println!(
                            "{}\t{}:{}:{}\t{}",
                            d.id, d.entry.model, d.entry.memory_mib, d.entry.count, d.detail
                        );
                    }
                },
            )
        }
        ProviderCommand::Bench(args) => bench(&args),
        ProviderCommand::Run(args) => run_daemon(*args, log_level),
    }
}

/// A deterministic int8 matrix (xorshift), so every run measures the same product.
fn pseudo_random(rows: usize, cols: usize, seed: u64) -> eyre::Result<MatrixI8> {
    let mut x = seed | 1;
    Ok(MatrixI8::from_fn(rows, cols, |_, _| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 56) as u8 as i8
    })?)
}

fn bench(args: &BenchArgs) -> eyre::Result<()> {
    eyre::ensure!(args.reps > 0, "--reps must be at least 1");
    let mut results = Vec::new();
    for d in probe(args.backend)? {
        let cpu = d.id == "cpu";
        let engine = Engine::new(if cpu { Backend::Cpu } else { Backend::Cuda })?;
        let n = args.size.unwrap_or(if cpu { 1024 } else { 8192 });
        let a = pseudo_random(n, n, 1)?;
        let b = pseudo_random(n, n, 2)?;
        let cu = (n as f64).powi(3) / 1e9;
        super::say!("device {}: {} ({})", d.id, d.entry.model, engine.describe());
        engine.gemm(&a, &b)?;
        let mut times: Vec<Duration> = Vec::with_capacity(args.reps as usize);
        for _ in 0..args.reps {
            let t = Instant::now();
            engine.gemm(&a, &b)?;
            times.push(t.elapsed());
        }
        times.sort();
        let best = times[0].as_secs_f64();
        let median = times[times.len() / 2].as_secs_f64();
        let rate = cu / median.max(1e-9);
        super::say!(
            "  gemm {n}x{n}x{n}: best {best:.4} s, median {median:.4} s -> {rate:.1} CU/s (median), {:.1} CU/s (best)",
            cu / best.max(1e-9)
        );
        // What a job costs beyond the product: committing to A, B and C (the provider's Merkle trees).
        let t = Instant::now();
        let prover = Prover::compute(&engine, a, &b, 4)?;
        let job = t.elapsed().as_secs_f64();
        drop(prover);
        let job_rate = cu / job.max(1e-9);
        super::say!("  job (gemm + commitments, T = 4): {job:.4} s -> {job_rate:.1} CU/s");
        let max_job_cu = (job_rate * args.job_seconds as f64).floor().max(1.0) as u64;
        let per_hour = (job_rate * 3600.0).max(1.0);
        let ask = ((args.hour_cost as f64) / per_hour).ceil().max(1.0) as u128;
        super::say!(
            "  suggested: max_job_cu = {max_job_cu} ({} s per job), ask = {ask} per CU ({} per device-hour / {per_hour:.0} CU per hour)",
            args.job_seconds, args.hour_cost
        );
        results.push(serde_json::json!({
            "device": d.id,
            "model": d.entry.model,
            "size": n,
            "gemm_median_s": median,
            "gemm_best_s": best,
            "gemm_cu_per_s": rate,
            "job_s": job,
            "job_cu_per_s": job_rate,
            "suggested_max_job_cu": max_job_cu,
            "suggested_ask_per_cu": ask.to_string(),
        }));
    }
    if super::json_output() {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(())
}

fn run_daemon(args: RunArgs, log_level: Option<&str>) -> eyre::Result<()> {
    let home = args.home.home();
    let (config_path, required) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (home.root().join("provider.toml"), false),
    };
    let file = ProviderConfig::load(&config_path, required)?;
    super::init_tracing(log_level.unwrap_or("info"));
    let key = match find_signer(&args.from, &args.home.home)? {
        Signer::Key(k) => k,
        Signer::Multisig(m) => bail!(
            "{} is a multisig account: a provider signs with one key",
            m.name
        ),
    };
    let backend = match (&args.backend, &file.backend) {
        (Some(b), _) => *b,
        (None, Some(s)) => parse_backend(s).map_err(|e| eyre!("provider.toml: {e}"))?,
        (None, None) => Backend::Auto,
    };
    let devices = if !args.devices.is_empty() {
        merge_devices(&args.devices)
    } else if !file.devices.is_empty() {
        merge_devices(&file.devices)
    } else {
        merge_devices(
            &probe(backend)?
                .into_iter()
                .map(|d| d.entry)
                .collect::<Vec<_>>(),
        )
    };
    let amount = |flag: Option<u128>,
                  f: &Option<crate::provider::config::Amount>|
     -> eyre::Result<Option<u128>> {
        match (flag, f) {
            (Some(v), _) => Ok(Some(v)),
            (None, Some(a)) => a.value().map(Some),
            (None, None) => Ok(None),
        }
    };
    let offer = Offer {
        moniker: args
            .moniker
            .clone()
            .or(file.moniker.clone())
            .unwrap_or_else(|| "lode-provider".into()),
        devices,
        ask: amount(args.ask, &file.ask)?,
        max_job_cu: args.max_job_cu.or(file.max_job_cu),
        bond: amount(args.bond, &file.bond)?,
    };
    let opts = RunOpts {
        key,
        node: args
            .node
            .clone()
            .or(file.node.clone())
            .unwrap_or_else(|| DEFAULT_NODE.to_owned()),
        backend,
        state_dir: args
            .state_dir
            .clone()
            .unwrap_or_else(|| home.root().join("provider")),
        offer,
        metrics_listen: args.metrics_listen.or(file.metrics_listen),
        max_memory_mib: args
            .max_memory_mib
            .or(file.max_memory_mib)
            .or_else(|| host_memory_mib().map(|m| m / 4 * 3))
            .unwrap_or(4096),
        #[cfg(feature = "provider-faults")]
        cheat: args.cheat,
        #[cfg(feature = "provider-faults")]
        stall_after_accept: args.stall_after_accept,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let r = rt.block_on(daemon::run(opts));
    // A computation abandoned at a stop runs on a blocking thread: do not wait for it.
    rt.shutdown_timeout(Duration::from_secs(1));
    r
}
