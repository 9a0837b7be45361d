//! `lode testnet init` and `lode devnet`: local multi-validator networks.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use eyre::WrapErr;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::devnet::{self, TestnetSpec};
use crate::services::grpc::pb::{self, query_service_client::QueryServiceClient};

#[derive(Debug, Subcommand)]
pub(super) enum TestnetCommand {
    /// Create the homes of an N-validator network sharing one genesis, on loopback ports.
    Init(TestnetInitArgs),
}

#[derive(Debug, Args)]
pub(super) struct TestnetInitArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Directory to create the homes in (`node0`, `node1`, …).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    net: NetArgs,
}

/// Settings shared by `testnet init` and `devnet`.
#[derive(Debug, Clone, Args)]
pub(super) struct NetArgs {
    /// Chain id.
    #[arg(long, env = "LODE_CHAIN_ID", default_value = "lode-devnet-1")]
    chain_id: String,
    /// Funded dev accounts (keys in node0's keys directory).
    #[arg(long, default_value_t = 4)]
    dev_accounts: usize,
    /// First port: node i listens on base+10i (consensus), +1 (gossip), +2 (gRPC), +3 (ABCI); 0 picks free
    /// ports. The default puts node 0's gRPC on 9090.
    #[arg(long, default_value_t = 9088)]
    base_port: u16,
    /// Consensus propose timeout in milliseconds (prevote/precommit get half of it). An idle chain makes an
    /// empty block every half of this; blocks with transactions come as fast as the validators vote.
    #[arg(long, default_value_t = 1000)]
    timeout_propose_ms: u64,
}

impl NetArgs {
    fn spec(&self, validators: usize) -> TestnetSpec {
        TestnetSpec {
            chain_id: self.chain_id.clone(),
            validators,
            dev_accounts: self.dev_accounts,
            base_port: self.base_port,
            timeout_propose_ms: self.timeout_propose_ms,
        }
    }
}

pub(super) fn run(cmd: &TestnetCommand) -> eyre::Result<()> {
    match cmd {
        TestnetCommand::Init(a) => {
            let nodes = devnet::create(&a.out, &a.net.spec(a.validators))?;
            println!(
                "created {} validator homes under {}",
                nodes.len(),
                a.out.display()
            );
            for n in &nodes {
                println!("  {}  grpc http://{}", n.home.display(), n.grpc);
            }
            print_dev_accounts(&a.out)?;
            Ok(())
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct DevnetArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Directory of the devnet (reused if it exists).
    #[arg(long, default_value_os_t = devnet::default_dir())]
    dir: PathBuf,
    /// Delete the directory first and start from genesis.
    #[arg(long)]
    reset: bool,
    #[command(flatten)]
    net: NetArgs,
}

fn print_dev_accounts(dir: &std::path::Path) -> eyre::Result<()> {
    println!("dev accounts (balance {} each):", devnet::DEV_BALANCE);
    for k in devnet::dev_keys(dir)? {
        println!(
            "  {}  {}  key {}",
            k.name,
            k.address,
            devnet::node_home(dir, 0)
                .join("keys")
                .join(format!("{}.json", k.name))
                .display()
        );
        println!("        private key {}", k.private_key);
    }
    Ok(())
}

/// Sends SIGTERM to every child, waits up to 10 s each, then SIGKILLs the stragglers.
pub(super) fn stop_children(children: &mut [Child]) {
    for c in children.iter() {
        if let Ok(pid) = i32::try_from(c.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for c in children.iter_mut() {
        loop {
            match c.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

pub(super) fn devnet(args: &DevnetArgs) -> eyre::Result<()> {
    if args.reset && args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .wrap_err_with(|| format!("cannot remove {}", args.dir.display()))?;
    }
    let nodes = if devnet::node_home(&args.dir, 0).join("config.toml").exists() {
        println!(
            "reusing devnet at {} (pass --reset to start over)",
            args.dir.display()
        );
        devnet::load(&args.dir)?
    } else {
        std::fs::create_dir_all(&args.dir)?;
        println!("creating devnet at {}", args.dir.display());
        devnet::create(&args.dir, &args.net.spec(args.validators))?
    };
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for n in &nodes {
        let log = std::fs::File::create(n.home.join("node.log"))?;
        let child = Command::new(&exe)
            .arg("start")
            .arg("--home")
            .arg(&n.home)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn();
        match child {
            Ok(c) => children.push(c),
            Err(e) => {
                stop_children(&mut children);
                return Err(e).wrap_err("cannot start a validator");
            }
        }
    }
    println!(
        "started {} validators (logs: <dir>/node<i>/node.log)",
        nodes.len()
    );
    for n in &nodes {
        println!("  {}  grpc http://{}", n.home.display(), n.grpc);
    }
    print_dev_accounts(&args.dir)?;
    println!("try: lode tx send --from dev0 --to <lode1…> --amount 1000 --wait");
    println!("Ctrl-C stops the devnet");

    let url = format!("http://{}", nodes[0].grpc);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let mut last = u64::MAX;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = super::abci::shutdown_signal() => return eyre::Ok(()),
                _ = tick.tick() => {}
            }
            for (i, c) in children.iter_mut().enumerate() {
                if let Ok(Some(status)) = c.try_wait() {
                    eyre::bail!(
                        "validator {i} exited ({status}); see {}",
                        nodes[i].home.join("node.log").display()
                    );
                }
            }
            if let Ok(mut q) = QueryServiceClient::connect(url.clone()).await {
                if let Ok(s) = q.status(pb::StatusRequest {}).await {
                    let s = s.into_inner();
                    if s.latest_height != last {
                        last = s.latest_height;
                        println!(
                            "height {:>6}  app hash {}  mempool {}",
                            s.latest_height,
                            hex::encode_upper(&s.app_hash[..s.app_hash.len().min(8)]),
                            s.mempool_txs
                        );
                    }
                }
            }
        }
    });
    println!("stopping validators…");
    stop_children(&mut children);
    println!("devnet stopped; data kept in {}", args.dir.display());
    result
}

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
pub(super) fn bench(args: &BenchArgs) -> eyre::Result<()> {
    eyre::ensure!(
        args.accounts >= 1 && args.validators >= 1 && args.window >= 1,
        "need accounts and validators"
    );
    let dir = std::env::temp_dir().join(format!("lode-bench-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let spec = TestnetSpec {
        chain_id: "lode-bench-1".into(),
        validators: args.validators,
        dev_accounts: args.accounts,
        base_port: 0,
        timeout_propose_ms: args.timeout_propose_ms,
    };
    let nodes = devnet::create(&dir, &spec)?;
    let keys = devnet::dev_keys(&dir)?;
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for n in &nodes {
        let log = std::fs::File::create(n.home.join("node.log"))?;
        children.push(
            Command::new(&exe)
                .args(["start", "--home"])
                .arg(&n.home)
                .env("RUST_LOG", &args.node_log)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?,
        );
    }
    println!(
        "bench: {} validators, {} accounts, {} transfers, window {}, {:?} api (devnet in {})",
        args.validators,
        args.accounts,
        args.txs,
        args.window,
        args.api,
        dir.display()
    );
    let urls: Vec<String> = nodes.iter().map(|n| format!("http://{}", n.grpc)).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(run_bench(
        urls,
        keys,
        args.txs,
        args.window,
        args.api,
        spec.chain_id.clone(),
    ));
    stop_children(&mut children);
    if args.keep {
        println!("devnet kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn run_bench(
    urls: Vec<String>,
    keys: Vec<crate::keys::KeyFile>,
    total: usize,
    window: usize,
    api: BenchApi,
    chain_id: String,
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
    let end_height = height_of(&urls[0]).await;
    latencies.sort();
    let pct = |p: usize| {
        latencies
            .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let heights = end_height.saturating_sub(start_height).max(1);
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
