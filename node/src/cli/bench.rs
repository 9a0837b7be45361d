//! `lode bench`: load-test a fresh local devnet with signed transfers over gRPC and print finalized tx/s
//! and broadcast→commit latency.

use std::time::{Duration, Instant};

use clap::Args;

use super::devnet::BenchNet;
use crate::services::grpc::pb::{self, query_service_client::QueryServiceClient};
use crate::testnet::TestnetSpec;

#[derive(Debug, Args)]
pub(super) struct BenchArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Sending accounts (funded in genesis), spread over the validators' gRPC endpoints.
    #[arg(long, default_value_t = 64)]
    accounts: usize,
    /// Total transfers to send (long enough that filling and draining the window at the ends weigh little).
    #[arg(long, default_value_t = 40_000)]
    txs: usize,
    /// Transfers each account keeps in flight (broadcast, not yet committed), with consecutive nonces.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Consensus propose timeout in milliseconds.
    #[arg(long, default_value_t = 300)]
    timeout_propose_ms: u64,
    /// The validators' `min_block_interval_ms` (how long after the last block a proposer with a part-filled
    /// mempool waits for more; see the config reference). Unset: the node's default.
    #[arg(long)]
    min_block_interval_ms: Option<u64>,
    /// Keep the devnet directory (with each validator's `node.log`) instead of deleting it.
    #[arg(long)]
    keep: bool,
    /// Log filter for the validators (their `node.log`).
    #[arg(long, default_value = "warn")]
    node_log: String,
    /// How each account sends: `stream` (one `BroadcastStream` per account) or `unary` (`Broadcast`, then
    /// `BroadcastAndWait`, two calls per tx).
    #[arg(long, value_enum, default_value_t = BenchApi::Stream)]
    api: BenchApi,
}

/// The client API `lode bench` drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum BenchApi {
    /// `TxService.BroadcastStream`.
    Stream,
    /// `TxService.Broadcast` + `TxService.BroadcastAndWait`.
    Unary,
}

/// `lode bench`: a fresh devnet in a temporary directory, signed transfers from many accounts over gRPC
/// (spread over the validators), then finalized tx/s and broadcast→commit latency. Each account admits its
/// txs in nonce order (`Broadcast`, which returns after CheckTx) and keeps up to `--window` of them in
/// flight; a tx's latency runs from its `Broadcast` to the commit `BroadcastAndWait` reports.
pub(super) fn run(args: &BenchArgs) -> eyre::Result<()> {
    eyre::ensure!(
        args.accounts >= 1 && args.validators >= 1 && args.window >= 1,
        "need accounts and validators"
    );
    let spec = TestnetSpec {
        chain_id: "lode-bench-1".into(),
        validators: args.validators,
        dev_accounts: args.accounts,
        base_port: 0,
        timeout_propose_ms: args.timeout_propose_ms,
        mnemonic: None,
    };
    let net = BenchNet::start_with("lode-bench", &spec, &args.node_log, |c| {
        if let Some(ms) = args.min_block_interval_ms {
            c.consensus.min_block_interval_ms = ms;
        }
    })?;
    super::say!(
        "bench: {} validators, {} accounts, {} transfers, window {}, {:?} api (devnet in {})",
        args.validators,
        args.accounts,
        args.txs,
        args.window,
        args.api,
        net.dir.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(run_bench(
        net.urls(),
        net.keys.clone(),
        args.txs,
        args.window,
        args.api,
        spec.chain_id.clone(),
        || net.cpu_seconds(),
    ));
    net.finish(args.keep);
    result
}

async fn run_bench(
    urls: Vec<String>,
    keys: Vec<crate::keys::KeyFile>,
    total: usize,
    window: usize,
    api: BenchApi,
    chain_id: String,
    cpu_seconds: impl Fn() -> f64,
) -> eyre::Result<()> {
    // Wait until every node serves gRPC and the chain has started.
    let deadline = Instant::now() + Duration::from_secs(60);
    for url in &urls {
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
    let start_height = height_of(&urls[0]).await;
    let recipient = lode_state::tx::address_of(&ed25519_consensus::SigningKey::from([0x42; 32]));
    let per = total.div_ceil(keys.len());
    // Every tx is signed and every client connected before the clock starts: the figure is the chain's,
    // not the client's signing speed.
    let mut prepared = Vec::with_capacity(keys.len());
    for (k, key) in keys.into_iter().enumerate() {
        let n = per.min(total.saturating_sub(k * per)) as u64;
        let signing = key.signing_key()?;
        let txs: Vec<Vec<u8>> = (0..n)
            .map(|nonce| {
                lode_state::tx::sign_send(&chain_id, &signing, nonce, 10_000, &recipient, 1)
            })
            .collect();
        let channel = tonic::transport::Channel::from_shared(urls[k % urls.len()].clone())?
            .connect()
            .await?;
        prepared.push((channel, txs));
    }
    let started = Instant::now();
    let cpu_at_start = cpu_seconds();
    let mut tasks = Vec::new();
    for (channel, txs) in prepared {
        tasks.push(tokio::spawn(async move {
            match api {
                BenchApi::Stream => bench_stream(channel, txs, window).await,
                BenchApi::Unary => bench_unary(channel, txs, window).await,
            }
        }));
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (l, f) = t.await??;
        latencies.extend(l);
        failed += f;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_seconds() - cpu_at_start;
    let end_height = height_of(&urls[0]).await;
    latencies.sort();
    let pct = |p: usize| {
        latencies
            .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let heights = end_height.saturating_sub(start_height).max(1);
    if super::json_output() {
        println!(
            "{}",
            serde_json::json!({
                "committed": latencies.len(),
                "failed": failed,
                "seconds": elapsed.as_secs_f64(),
                "heights": heights,
                "tx_per_s": latencies.len() as f64 / elapsed.as_secs_f64(),
                "latency_p50_ms": pct(50).as_secs_f64() * 1e3,
                "latency_p99_ms": pct(99).as_secs_f64() * 1e3,
                "cpu_seconds": cpu,
                "cpu_us_per_tx": cpu * 1e6 / latencies.len().max(1) as f64,
            })
        );
        return Ok(());
    }
    println!(
        "committed {} txs ({} failed) in {:.2} s over {} heights: {:.0} ms/block, {:.0} txs/block",
        latencies.len(),
        failed,
        elapsed.as_secs_f64(),
        heights,
        elapsed.as_secs_f64() * 1e3 / heights as f64,
        latencies.len() as f64 / heights as f64
    );
    println!(
        "finalized throughput: {:.1} tx/s",
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "broadcast->commit latency: p50 {:.1} ms, p99 {:.1} ms",
        pct(50).as_secs_f64() * 1e3,
        pct(99).as_secs_f64() * 1e3
    );
    println!(
        "cpu: {:.1} us per committed tx ({:.1} s over {:.1} s, validators and client, from /proc)",
        cpu * 1e6 / latencies.len().max(1) as f64,
        cpu,
        elapsed.as_secs_f64()
    );
    Ok(())
}

/// One account over `BroadcastStream`: up to `window` txs sent and not yet committed; a tx's latency runs
/// from its send to its `committed` event. Returns the latencies of the committed txs and the count of the
/// others.
async fn bench_stream(
    channel: tonic::transport::Channel,
    txs: Vec<Vec<u8>>,
    window: usize,
) -> eyre::Result<(Vec<Duration>, usize)> {
    use crate::services::grpc::pb::{
        broadcast_stream_event::Event, tx_service_client::TxServiceClient,
    };
    use futures::SinkExt;
    let (mut requests, outgoing) = futures::channel::mpsc::channel(window.max(1));
    let mut events = TxServiceClient::new(channel)
        .broadcast_stream(outgoing)
        .await?
        .into_inner();
    let n = txs.len();
    let mut txs = txs.into_iter();
    let mut sent_at = Vec::with_capacity(n);
    let (mut lat, mut failed, mut in_flight) = (Vec::with_capacity(n), 0usize, 0usize);
    while lat.len() + failed < n {
        while in_flight < window && sent_at.len() < n {
            let nonce = sent_at.len() as u64;
            let tx = txs.next().unwrap_or_default();
            sent_at.push(Instant::now());
            requests
                .send(pb::BroadcastStreamRequest {
                    tx,
                    id: nonce,
                    timeout_ms: 60_000,
                })
                .await?;
            in_flight += 1;
        }
        let Some(ev) = events.message().await? else {
            eyre::bail!("the node ended the stream early");
        };
        match ev.event {
            Some(Event::Checked(c)) if c.code == 0 => continue,
            Some(Event::Committed(c)) if c.result.as_ref().is_some_and(|r| r.code == 0) => {
                let t = sent_at
                    .get(ev.id as usize)
                    .ok_or_else(|| eyre::eyre!("event for unknown tx {}", ev.id))?;
                lat.push(t.elapsed());
            }
            _ => failed += 1,
        }
        in_flight -= 1;
    }
    Ok((lat, failed))
}

/// One account over unary calls: each tx is admitted with `Broadcast` in nonce order, then waited for with
/// `BroadcastAndWait`; up to `window` are in flight.
async fn bench_unary(
    channel: tonic::transport::Channel,
    txs: Vec<Vec<u8>>,
    window: usize,
) -> eyre::Result<(Vec<Duration>, usize)> {
    let n = txs.len();
    use crate::services::grpc::pb::tx_service_client::TxServiceClient;
    let mut client = TxServiceClient::new(channel.clone());
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(window));
    let mut waiters = tokio::task::JoinSet::new();
    let mut failed = 0usize;
    for (nonce, tx) in txs.into_iter().enumerate() {
        let permit = slots.clone().acquire_owned().await?;
        let t = Instant::now();
        // CheckTx in nonce order; a refusal means every later nonce fails too.
        let admitted = client
            .broadcast(pb::BroadcastRequest { tx: tx.clone() })
            .await
            .is_ok_and(|r| r.get_ref().check.as_ref().is_some_and(|c| c.code == 0));
        if !admitted {
            failed += n - nonce;
            break;
        }
        let mut waiter = TxServiceClient::new(channel.clone());
        waiters.spawn(async move {
            let _slot = permit;
            // Already in the mempool: the server waits for its commit.
            let r = waiter
                .broadcast_and_wait(pb::BroadcastAndWaitRequest {
                    tx,
                    timeout_ms: 60_000,
                })
                .await;
            r.ok()
                .filter(|r| r.get_ref().result.as_ref().is_some_and(|r| r.code == 0))
                .map(|_| t.elapsed())
        });
    }
    let mut lat = Vec::with_capacity(n);
    while let Some(r) = waiters.join_next().await {
        match r? {
            Some(l) => lat.push(l),
            None => failed += 1,
        }
    }
    Ok((lat, failed))
}

async fn height_of(url: &str) -> u64 {
    match QueryServiceClient::connect(url.to_owned()).await {
        Ok(mut q) => q
            .status(pb::StatusRequest {})
            .await
            .map_or(0, |s| s.into_inner().latest_height),
        Err(_) => 0,
    }
}
