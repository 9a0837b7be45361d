//! `lode start`: run a full validator node: Malachite consensus driving the application in-process, the
//! mempool and its gossip swarm, and the gRPC API, until SIGINT or SIGTERM.
//!
//! Consensus runs on a runtime of its own; the gRPC API and the gossip swarm (the doors clients and peers
//! push load through) run on a second one whose threads, blocking pool included, run at a lower CPU priority
//! (nice +10). However busy clients keep those threads, the consensus actors are scheduled first, so RPC
//! load cannot delay a height.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use eyre::{ensure, eyre, WrapErr};
use lode_consensus::{BlockTime, ConsensusConfig, PrivateKey, PublicKey, Timeouts};
use lode_genesis::{parse_ed25519_public_key, parse_genesis_time, Genesis};
use lode_state::LodeApp;
use tracing::{error, info};

use super::{abci::shutdown_signal, HomeArg};
use crate::{
    blobs::{service::Blobs, store::BlobStore},
    home::{NODE_KEY, VALIDATOR_KEY},
    keys::KeyFile,
    services::{
        block_store::RocksBlockStore,
        evidence::Reporter,
        gossip::{self, GossipConfig},
        grpc::{self, ApiGuards, NodeApi},
        in_process::AppAbci,
        mempool::{Mempool, MempoolLimits},
        metrics,
    },
};

#[derive(Debug, Args)]
pub(super) struct StartArgs {
    #[command(flatten)]
    home: HomeArg,
    /// Test-only: runs this node's consensus clock (the time it proposes blocks with and checks proposals'
    /// times against) this many milliseconds ahead (negative: behind), to test clock skew. Hidden; never
    /// set it on a real validator.
    #[arg(
        long,
        env = "LODE_TEST_CLOCK_OFFSET_MS",
        hide = true,
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    test_clock_offset_ms: i64,
}

pub(super) fn run(args: &StartArgs, log_level: Option<&str>) -> eyre::Result<()> {
    let (home, config) = args.home.load_and_init_tracing(log_level)?;
    let genesis = Genesis::load(home.genesis_path())?;
    let init = genesis.init_chain_request()?;
    let validator_key = KeyFile::load(&home.key_path(VALIDATOR_KEY))?;
    // The node key is the node's network identity (both swarms' peer id). A home made before node keys
    // existed runs its networks under the validator key, as it always did.
    let node_key_path = home.key_path(NODE_KEY);
    let node_key = if node_key_path.exists() {
        Some(KeyFile::load(&node_key_path)?)
    } else {
        tracing::warn!(
            path = %node_key_path.display(),
            "no node key: the networks run under the validator key (create one with `lode keys add node_key`)"
        );
        None
    };
    let network_key = node_key.as_ref().unwrap_or(&validator_key).signing_key()?;

    let mut genesis_validators = Vec::with_capacity(genesis.validators.len());
    for v in &genesis.validators {
        let key = parse_ed25519_public_key(&v.pub_key).map_err(|e| eyre!("genesis: {e}"))?;
        genesis_validators.push((PublicKey(key), v.power));
    }
    let t = parse_genesis_time(&genesis.genesis_time).map_err(|e| eyre!("genesis: {e}"))?;
    if args.test_clock_offset_ms != 0 {
        tracing::warn!(
            offset_ms = args.test_clock_offset_ms,
            "test-only clock offset: this node proposes and checks block times with a shifted clock"
        );
    }
    let c = &config.consensus;
    let consensus_config = ConsensusConfig {
        moniker: config.moniker.clone(),
        chain_id: genesis.chain_id.clone(),
        listen_addr: config.p2p.listen,
        persistent_peers: config.p2p.persistent_peers.clone(),
        timeouts: Timeouts {
            propose: Duration::from_millis(c.timeout_propose_ms),
            prevote: Duration::from_millis(c.timeout_prevote_ms),
            precommit: Duration::from_millis(c.timeout_precommit_ms),
            delta: Duration::from_millis(c.timeout_delta_ms),
        },
        wal_dir: home.root().join("wal"),
        signing_key: PrivateKey::from_seed(validator_key.signing_key()?.to_bytes()),
        node_key: node_key
            .as_ref()
            .map(|_| PrivateKey::from_seed(network_key.to_bytes())),
        genesis_validators,
        genesis_time: BlockTime {
            seconds: t.unix_timestamp(),
            nanos: t.nanosecond(),
        },
        app_state_bytes: init.app_state_bytes.clone(),
        initial_height: genesis.initial_height,
        max_block_tx_bytes: c.max_block_tx_bytes,
        max_clock_drift: Duration::from_millis(c.max_clock_drift_ms),
        value_sync: c.value_sync,
        empty_block_interval: Duration::from_millis(c.empty_block_interval_ms),
        min_block_interval: Duration::from_millis(c.min_block_interval_ms),
        clock_offset_ms: args.test_clock_offset_ms,
    };

    let data = home.data_dir();
    tracing::info!("{}", config.compute.apply());
    let app = LodeApp::open_with(&data, config.app.options())
        .wrap_err_with(|| format!("cannot open the state database at {}", data.display()))?;
    let consensus_runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("consensus")
        .enable_all()
        .build()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("services")
        .max_blocking_threads(SERVICE_BLOCKING_THREADS)
        .on_thread_start(lower_thread_priority)
        .enable_all()
        .build()?;
    let mempool = Arc::new(Mempool::new(
        app.clone(),
        MempoolLimits {
            max_txs: config.mempool.max_txs,
            max_bytes: config.mempool.max_bytes,
            max_tx_bytes: config.mempool.max_tx_bytes,
            max_txs_per_sender: config.mempool.max_txs_per_sender,
        },
    ));
    let blocks = RocksBlockStore::new(app.clone());
    // Spawned from inside the consensus runtime, every consensus task lives there.
    let mut handle = consensus_runtime
        .block_on(lode_consensus::run(
            consensus_config,
            Arc::new(AppAbci::new(app.clone(), mempool.clone())),
            Arc::new(blocks.clone()),
            mempool.clone(),
        ))
        .wrap_err("cannot start consensus")?;
    let decided = handle.decided();
    let outcomes = handle.outcomes();
    let reporter = evidence_reporter(&home, &config.evidence, &app, &mempool, &genesis.chain_id)?;
    let evidence = handle.take_evidence();
    let finished = || handle.is_finished();
    let mut halted = handle.halted();
    let halt_report = handle.halted();
    let metrics_mempool = mempool.clone();
    let served = runtime.block_on(async move {
        let store = if config.blobs.enable {
            let store = BlobStore::open(&data, app.clone(), config.blobs)
                .wrap_err("cannot open the blob store")?;
            crate::blobs::gc::spawn(store.clone());
            Some(store)
        } else {
            None
        };
        let gossip = gossip::spawn_with_blobs(
            GossipConfig {
                listen: config.p2p.gossip_listen,
                peers: config.p2p.gossip_peers.clone(),
                max_message_bytes: config.mempool.max_tx_bytes + 1024,
                max_peers: config.p2p.gossip_max_peers,
            },
            network_key.to_bytes(),
            mempool.clone(),
            store.clone(),
        )
        .wrap_err("cannot start mempool gossip")?;
        let peers = gossip.peers;
        if let (Some(reporter), Some(evidence)) = (reporter, evidence) {
            tokio::spawn(reporter.run(evidence, decided.clone()));
        }
        let blobs = store.map(|s| Blobs::new(s, genesis.chain_id.clone(), Some(gossip.blob_fetcher)));
        let listener = grpc::bind(config.grpc.listen)
            .await
            .wrap_err_with(|| format!("cannot listen on {}", config.grpc.listen))?;
        let local = listener.local_addr()?;
        let api = NodeApi {
            app: app.clone(),
            mempool,
            blocks,
            decided,
            outcomes,
            peers,
            chain_id: genesis.chain_id.clone(),
            moniker: config.moniker.clone(),
            results_cache: Default::default(),
            guards: ApiGuards::new(config.grpc.limits()),
            node_id: libp2p::identity::Keypair::ed25519_from_bytes(network_key.to_bytes())?
            .public()
            .to_peer_id()
            .to_string(),
            last_block_time: Default::default(),
            blobs,
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let cors = config.grpc.cors().wrap_err("grpc.cors_origins")?;
        let server = tokio::spawn(grpc::serve(
            api,
            listener,
            cors,
            crate::services::explorer::ExplorerLayer {
                enabled: config.grpc.explorer,
            },
            async move {
                let _ = stop_rx.await;
            },
            async move {
                // A closed channel (consensus gone without a report) is not a halt.
                if halted.wait_for(Option::is_some).await.is_err() {
                    std::future::pending::<()>().await;
                }
            },
        ));
        let metrics_at = match config.metrics.listen {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .wrap_err_with(|| format!("metrics cannot listen on {addr}"))?;
                let at = listener.local_addr()?;
                let (app, mempool) = (app.clone(), metrics_mempool.clone());
                tokio::spawn(metrics::serve(
                    listener,
                    Arc::new(move || {
                        let m = metrics::metrics();
                        let height = app.last_commit().map_or(0, |r| r.height);
                        m.height.set(i64::try_from(height).unwrap_or(i64::MAX));
                        let (txs, bytes) = mempool.size();
                        m.mempool_txs.set(i64::try_from(txs).unwrap_or(i64::MAX));
                        m.mempool_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
                        m.count_jobs(app.store());
                    }),
                ));
                Some(at)
            }
            None => None,
        };
        info!(grpc = %local, p2p = %config.p2p.listen, home = %home.root().display(), "node started");
        {
            // Tests and scripts read the bound address from this line.
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "grpc listening on {local}")?;
            if let Some(at) = metrics_at {
                writeln!(stdout, "metrics listening on http://{at}/metrics")?;
            }
            stdout.flush()?;
        }
        let watchdog = async {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if finished() {
                    break;
                }
            }
        };
        let mut failed = false;
        tokio::select! {
            () = shutdown_signal() => {}
            () = watchdog => {
                failed = true;
                let report = halt_report.borrow().clone();
                match report {
                    // Halted: stay up, unhealthy, so the operator (and their monitoring) sees why.
                    Some(r) => {
                        error!(
                            height = r.height,
                            expected_app_hash = %r.expected_app_hash.as_deref().map_or_else(|| "unknown".into(), hex::encode),
                            local_app_hash = %hex::encode(&r.local_app_hash),
                            error = %r.error,
                            "node halted; health is NOT_SERVING until it is stopped"
                        );
                        shutdown_signal().await;
                    }
                    None => error!("consensus stopped"),
                }
            }
        }
        let _ = stop_tx.send(());
        match tokio::time::timeout(Duration::from_secs(5), server).await {
            Ok(Ok(Err(e))) => error!(error = %e, "grpc server failed"),
            Ok(Err(e)) => error!(error = %e, "grpc server task failed"),
            _ => {}
        }
        eyre::Ok(failed)
    });
    consensus_runtime.block_on(handle.shutdown());
    runtime.shutdown_timeout(Duration::from_secs(5));
    consensus_runtime.shutdown_timeout(Duration::from_secs(5));
    ensure!(!served?, "consensus stopped; see the log above");
    info!("lode start exited cleanly");
    Ok(())
}

/// The evidence reporter of this home (see [`crate::services::evidence`]), or `None` when reporting is off
/// or its key is missing.
fn evidence_reporter(
    home: &crate::home::Home,
    config: &crate::config::EvidenceConfig,
    app: &LodeApp,
    mempool: &Arc<Mempool>,
    chain_id: &str,
) -> eyre::Result<Option<Reporter>> {
    if !config.report {
        info!("double-sign evidence reporting is off ([evidence] report = false)");
        return Ok(None);
    }
    let path = home.key_path(&config.key);
    if !path.exists() {
        tracing::warn!(path = %path.display(), "no evidence key: double signs this node sees are not reported ([evidence] key)");
        return Ok(None);
    }
    let key = KeyFile::load(&path)?;
    let submitter = lode_state::address::parse_address(&key.address)
        .map_err(|e| eyre!("{}: {e}", path.display()))?;
    Ok(Some(Reporter::new(
        app.clone(),
        mempool.clone(),
        key.signing_key()?,
        submitter,
        chain_id.to_owned(),
    )))
}

/// Blocking threads of the services runtime (CheckTx of clients' and peers' txs, store reads for queries):
/// enough for the API's in-flight bound to be served in parallel, few enough that they cannot crowd the
/// machine's cores.
const SERVICE_BLOCKING_THREADS: usize = 64;

/// Niceness of the services runtime's threads: CFS gives a nice-10 thread about a tenth of the CPU share of a
/// nice-0 (consensus) thread when both want to run.
const SERVICE_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to [`SERVICE_NICE`]. Best effort: a failure is logged once per
/// thread and the thread runs at normal priority.
fn lower_thread_priority() {
    // On Linux `setpriority(PRIO_PROCESS, tid, …)` applies to the one thread `tid`.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    {
        // SAFETY: gettid takes no arguments and cannot fail; setpriority only reads its integer arguments.
        let rc = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, SERVICE_NICE)
        };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a service thread's priority");
        }
    }
}
