//! `lode bench-heights`: the long-run benchmark. Four validators (by default) on a fresh local devnet run
//! for a given number of heights, empty or under a light transfer load, and the command prints, for each
//! tenth of the run, heights per second and the CPU seconds each validator spent per height (from
//! `/proc/<pid>/stat`). A chain whose per-height work grows with its length shows it here: the last tenth
//! slower than the first.

use super::devnet::{cpu_seconds, ticks_per_second, BenchNet};
use std::time::{Duration, Instant};

use clap::Args;
use eyre::WrapErr;

use crate::services::grpc::pb::{self, query_service_client::QueryServiceClient};
use crate::testnet::TestnetSpec;

#[derive(Debug, Args)]
pub(super) struct BenchHeightsArgs {
    /// Heights to run (after the first block).
    #[arg(long, default_value_t = 20_000)]
    heights: u64,
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Transfers per second to send (0: empty blocks). Spread over the validators, one dev account each.
    #[arg(long, default_value_t = 0)]
    load: u32,
    /// Consensus propose timeout in milliseconds (prevote and precommit get two thirds of it, as on the
    /// devnets this was first measured on: 300 / 200 / 200).
    #[arg(long, default_value_t = 300)]
    timeout_propose_ms: u64,
    /// Keep the devnet directory (with each validator's `node.log`) instead of deleting it.
    #[arg(long)]
    keep: bool,
    /// Log filter for the validators (their `node.log`).
    #[arg(long, default_value = "warn")]
    node_log: String,
}

/// One tenth of the run.
#[derive(Debug, Clone, Copy)]
struct Tenth {
    heights: u64,
    seconds: f64,
    /// CPU seconds per height of each validator, averaged over the validators, and of the busiest one.
    cpu_mean: f64,
    cpu_max: f64,
}

pub(super) fn run(args: &BenchHeightsArgs) -> eyre::Result<()> {
    eyre::ensure!(
        args.heights >= 10 && args.validators >= 1,
        "need at least 10 heights and one validator"
    );
    let spec = TestnetSpec {
        chain_id: "lode-bench-heights-1".into(),
        validators: args.validators,
        dev_accounts: args.validators,
        base_port: 0,
        timeout_propose_ms: args.timeout_propose_ms,
        mnemonic: None,
    };
    let net = BenchNet::start_with("lode-bench-heights", &spec, &args.node_log, |c| {
        // Propose at once: the benchmark measures how fast the validators can agree, not a pacing choice.
        c.consensus.empty_block_interval_ms = 0;
        c.consensus.min_block_interval_ms = 0;
        c.consensus.timeout_prevote_ms = args.timeout_propose_ms * 2 / 3;
        c.consensus.timeout_precommit_ms = args.timeout_propose_ms * 2 / 3;
    })?;
    super::say!(
        "bench-heights: {} validators, {} heights, load {} tx/s, propose timeout {} ms (devnet in {})",
        args.validators,
        args.heights,
        args.load,
        args.timeout_propose_ms,
        net.dir.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let result = rt.block_on(measure(
        net.urls(),
        net.pids(),
        net.keys.clone(),
        args.heights,
        args.load,
        spec.chain_id.clone(),
    ));
    net.finish(args.keep);
    let tenths = result?;
    print_summary(&tenths);
    Ok(())
}

fn print_summary(tenths: &[Tenth]) {
    let (Some(first), Some(last)) = (tenths.first(), tenths.last()) else {
        return;
    };
    let rate = |t: &Tenth| t.heights as f64 / t.seconds.max(1e-9);
    let all_heights: u64 = tenths.iter().map(|t| t.heights).sum();
    let all_seconds: f64 = tenths.iter().map(|t| t.seconds).sum();
    let cpu: f64 = tenths
        .iter()
        .map(|t| t.cpu_mean * t.heights as f64)
        .sum::<f64>()
        / all_heights.max(1) as f64;
    super::say!(
        "whole run: {all_heights} heights in {all_seconds:.1} s, {:.1} heights/s, {:.2} ms CPU per height per node",
        all_heights as f64 / all_seconds.max(1e-9),
        cpu * 1e3
    );
    super::say!(
        "last tenth / first tenth: {:.3} heights/s, {:.3} CPU per height",
        rate(last) / rate(first),
        last.cpu_mean / first.cpu_mean.max(1e-12)
    );
}

async fn wait_started(urls: &[String]) -> eyre::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for url in urls {
        loop {
            let ok = match QueryServiceClient::connect(url.clone()).await {
                Ok(mut q) => q
                    .status(pb::StatusRequest {})
                    .await
                    .is_ok_and(|s| s.into_inner().latest_height >= 1),
                Err(_) => false,
            };
            if ok {
                break;
            }
            eyre::ensure!(Instant::now() < deadline, "{url} did not start within 60 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

async fn measure(
    urls: Vec<String>,
    pids: Vec<u32>,
    keys: Vec<crate::keys::KeyFile>,
    heights: u64,
    load: u32,
    chain_id: String,
) -> eyre::Result<Vec<Tenth>> {
    wait_started(&urls).await?;
    let status = QueryServiceClient::connect(urls[0].clone()).await?;
    let height = || {
        let mut s = status.clone();
        async move {
            s.status(pb::StatusRequest {})
                .await
                .map(|r| r.into_inner().latest_height)
                .wrap_err("status of node 0")
        }
    };
    let load_task = (load > 0).then(|| tokio::spawn(send_load(urls.clone(), keys, load, chain_id)));
    let ticks = ticks_per_second();
    let cpu = |pids: &[u32]| -> Vec<f64> {
        pids.iter()
            .map(|p| cpu_seconds(*p, ticks).unwrap_or(0.0))
            .collect()
    };
    let start = height().await?;
    let mut at = (start, Instant::now(), cpu(&pids));
    let mut tenths = Vec::with_capacity(10);
    super::say!(
        "{:>6} {:>14} {:>8} {:>10} {:>22} {:>22}",
        "tenth",
        "heights",
        "seconds",
        "heights/s",
        "CPU ms/height/node",
        "busiest node"
    );
    for k in 1..=10u64 {
        let target = start + heights * k / 10;
        let stall = Instant::now() + Duration::from_secs(120);
        let mut last = at.0;
        loop {
            let h = height().await?;
            if h >= target {
                break;
            }
            if h > last {
                last = h;
            } else {
                eyre::ensure!(
                    Instant::now() < stall,
                    "no new height for 120 s at {h}; see the nodes' logs (--keep)"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let h = height().await?;
        let now = (h, Instant::now(), cpu(&pids));
        let n = now.0.saturating_sub(at.0).max(1);
        let per_node: Vec<f64> = now
            .2
            .iter()
            .zip(&at.2)
            .map(|(b, a)| (b - a) / n as f64)
            .collect();
        let t = Tenth {
            heights: n,
            seconds: now.1.duration_since(at.1).as_secs_f64(),
            cpu_mean: per_node.iter().sum::<f64>() / per_node.len().max(1) as f64,
            cpu_max: per_node.iter().copied().fold(0.0, f64::max),
        };
        super::say!(
            "{:>6} {:>14} {:>8.1} {:>10.1} {:>22.2} {:>22.2}",
            k,
            format!("{}..{}", at.0 + 1, now.0),
            t.seconds,
            t.heights as f64 / t.seconds.max(1e-9),
            t.cpu_mean * 1e3,
            t.cpu_max * 1e3
        );
        tenths.push(t);
        at = now;
    }
    if let Some(t) = load_task {
        t.abort();
    }
    Ok(tenths)
}

/// A light load: `rate` transfers per second in all, from one dev account per validator to that
/// validator's gRPC endpoint, in nonce order; a refused transfer is skipped (its nonce is sent again).
async fn send_load(
    urls: Vec<String>,
    keys: Vec<crate::keys::KeyFile>,
    rate: u32,
    chain_id: String,
) -> eyre::Result<()> {
    use crate::services::grpc::pb::tx_service_client::TxServiceClient;
    let recipient = lode_state::tx::address_of(&ed25519_consensus::SigningKey::from([0x42; 32]));
    let mut senders = Vec::new();
    for (key, url) in keys.iter().zip(&urls) {
        senders.push((
            key.signing_key()?,
            TxServiceClient::connect(url.clone()).await?,
            0u64,
        ));
    }
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut tick = tokio::time::interval(period);
    let mut next = 0usize;
    loop {
        tick.tick().await;
        let n = senders.len();
        let (key, client, nonce) = &mut senders[next % n];
        next += 1;
        let tx = lode_state::tx::sign_send(&chain_id, key, *nonce, 10_000, &recipient, 1);
        let admitted = client
            .broadcast(pb::BroadcastRequest { tx })
            .await
            .is_ok_and(|r| r.get_ref().check.as_ref().is_some_and(|c| c.code == 0));
        if admitted {
            *nonce += 1;
        }
    }
}
