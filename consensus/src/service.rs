//! Starting consensus: Malachite's engine (its own libp2p swarm, WAL, value sync) plus the bridge task.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use malachitebft_app_channel::app::config::{
    ConsensusConfig as MalachiteConsensus, NodeConfig, ValueSyncConfig,
};
use malachitebft_app_channel::app::types::codec::{Codec, ConsensusCodec, SyncCodec};
use malachitebft_app_channel::app::types::core::LinearTimeouts;
use malachitebft_app_channel::app::types::Keypair;
use malachitebft_app_channel::{
    start_engine, ConsensusContext, EngineHandle, NetworkContext, NetworkIdentity, RequestContext,
    Signer, SyncContext, WalContext,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::abci::{Abci, Mempool};
use crate::bridge::{BlockOutcome, Bridge, BridgeParams};
use crate::codec::LodeCodec;
use crate::context::LodeContext;
use crate::error::{ConsensusError, HaltReport};
use crate::evidence::{DoubleVote, EVIDENCE_CHANNEL};
use crate::peers::PeerKeys;
use crate::signing::{LodeSigner, LodeVerifier};
use crate::store::BlockStore;
use crate::types::{BlockTime, Height, PrivateKey, PublicKey};

/// Consensus timeouts (round 0; each later round adds the delta).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Waiting for a proposal.
    pub propose: Duration,
    /// Waiting for prevotes after seeing +2/3 of any.
    pub prevote: Duration,
    /// Waiting for precommits after seeing +2/3 of any.
    pub precommit: Duration,
    /// Added per round to each of the above.
    pub delta: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            propose: Duration::from_secs(3),
            prevote: Duration::from_secs(1),
            precommit: Duration::from_secs(1),
            delta: Duration::from_millis(500),
        }
    }
}

impl Timeouts {
    fn linear(self) -> LinearTimeouts {
        LinearTimeouts {
            propose: self.propose,
            propose_delta: self.delta,
            prevote: self.prevote,
            prevote_delta: self.delta,
            precommit: self.precommit,
            precommit_delta: self.delta,
            rebroadcast: self
                .propose
                .saturating_add(self.prevote)
                .saturating_add(self.precommit),
            ..LinearTimeouts::default()
        }
    }
}

/// Everything consensus needs from the node's configuration and genesis.
#[derive(Clone, Debug)]
pub struct ConsensusConfig {
    /// Node name in logs and peer identity.
    pub moniker: String,
    /// Chain id (bound into every signature).
    pub chain_id: String,
    /// TCP address of the consensus swarm.
    pub listen_addr: SocketAddr,
    /// Peers to dial and keep connected.
    pub persistent_peers: Vec<SocketAddr>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Directory of Malachite's write-ahead log.
    pub wal_dir: PathBuf,
    /// The validator's consensus key.
    pub signing_key: PrivateKey,
    /// The node's network key: the libp2p identity (peer id) of the consensus swarm, which the consensus
    /// key vouches for with Malachite's validator proof (see [`crate::peers`]). `None` runs the swarm under
    /// the consensus key (homes made before node keys existed).
    pub node_key: Option<PrivateKey>,
    /// Genesis validators: consensus public key and voting power.
    pub genesis_validators: Vec<(PublicKey, u64)>,
    /// Genesis time.
    pub genesis_time: BlockTime,
    /// Genesis application state (JSON), for InitChain on a fresh application.
    pub app_state_bytes: Bytes,
    /// Genesis `initial_height`: the height of the chain's first block (1 for a new chain; higher for a
    /// chain restarted from exported state).
    pub initial_height: u64,
    /// Maximum bytes of transactions per block.
    pub max_block_tx_bytes: u64,
    /// How far ahead of the local clock a proposal's time may be.
    pub max_clock_drift: Duration,
    /// Value sync (catch-up of lagging nodes) on or off.
    pub value_sync: bool,
    /// With an empty mempool, a proposer waits until this long after the previous block for a transaction
    /// before it proposes an empty block (never more than half the propose timeout, so the block still
    /// arrives in time). Zero proposes at once. Like CometBFT's `create_empty_blocks_interval`.
    pub empty_block_interval: Duration,
    /// In round 0, with transactions waiting but less than a full block of them (and the mempool not at its
    /// own limit), a proposer waits until this long after the previous block for more before it proposes
    /// (never more than half the propose timeout; later rounds propose at once). The wait runs in the
    /// bridge's message loop, as the empty-mempool wait always did.
    /// Fewer, fuller blocks under load: each height has a fixed cost (votes, the synced commit, the recheck
    /// of every pending tx) that a fuller block spreads over more txs. Zero proposes at once. Like CometBFT's
    /// `timeout_commit`, but paid only by a proposer with a part-filled block.
    pub min_block_interval: Duration,
    /// Test-only: shifts this node's clock, the time it proposes blocks with and checks proposals' times
    /// against, by this many milliseconds (positive: ahead). Always 0 outside tests, which set it to skew
    /// one validator (`lode start`'s hidden `--test-clock-offset-ms`).
    pub clock_offset_ms: i64,
}

/// A running consensus service.
pub struct Handle {
    decided: watch::Receiver<Height>,
    outcomes: watch::Receiver<Option<Arc<BlockOutcome>>>,
    evidence: Option<mpsc::Receiver<DoubleVote>>,
    halted: watch::Receiver<Option<HaltReport>>,
    bridge: JoinHandle<Result<(), ConsensusError>>,
    engine: EngineHandle,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("decided", &*self.decided.borrow())
            .finish_non_exhaustive()
    }
}

impl Handle {
    /// The last committed height (0 before the first); changes each time a block is committed.
    pub fn decided(&self) -> watch::Receiver<Height> {
        self.decided.clone()
    }

    /// The last committed block's outcome (`None` before the first), updated just before [`Handle::decided`].
    pub fn outcomes(&self) -> watch::Receiver<Option<Arc<BlockOutcome>>> {
        self.outcomes.clone()
    }

    /// Set once, with the report, if the node halted: its application diverged from the chain or could not
    /// execute or commit a decided block. Consensus has stopped by then.
    pub fn halted(&self) -> watch::Receiver<Option<HaltReport>> {
        self.halted.clone()
    }

    /// The double-sign evidence the engine hands the node (see [`crate::evidence`]); `Some` once.
    pub fn take_evidence(&mut self) -> Option<mpsc::Receiver<DoubleVote>> {
        self.evidence.take()
    }

    /// Whether the bridge task has stopped (after a fatal error).
    pub fn is_finished(&self) -> bool {
        self.bridge.is_finished()
    }

    /// Stops the engine and the bridge.
    pub async fn shutdown(self) {
        self.engine.actor.stop(None);
        self.engine.handle.abort();
        self.bridge.abort();
        let _ = self.bridge.await;
        let _ = self.engine.handle.await;
    }
}

#[derive(Clone, Debug)]
struct EngineConfig {
    moniker: String,
    consensus: MalachiteConsensus,
    value_sync: ValueSyncConfig,
}

impl NodeConfig for EngineConfig {
    fn moniker(&self) -> &str {
        &self.moniker
    }
    fn consensus(&self) -> &MalachiteConsensus {
        &self.consensus
    }
    fn consensus_mut(&mut self) -> &mut MalachiteConsensus {
        &mut self.consensus
    }
    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }
    fn value_sync_mut(&mut self) -> &mut ValueSyncConfig {
        &mut self.value_sync
    }
}

fn multiaddr<T: std::str::FromStr>(a: SocketAddr) -> Result<T, ConsensusError> {
    let s = match a {
        SocketAddr::V4(v) => format!("/ip4/{}/tcp/{}", v.ip(), v.port()),
        SocketAddr::V6(v) => format!("/ip6/{}/tcp/{}", v.ip(), v.port()),
    };
    s.parse()
        .map_err(|_| ConsensusError::Config(format!("bad address {a}")))
}

/// Starts consensus: Malachite's engine and the bridge that drives `abci`. Must be called inside a
/// multi-threaded tokio runtime. Returns once the engine is spawned; consensus proceeds in the background.
pub async fn run<A: Abci, S: BlockStore, M: Mempool>(
    config: ConsensusConfig,
    abci: Arc<A>,
    store: Arc<S>,
    mempool: Arc<M>,
) -> Result<Handle, ConsensusError> {
    run_with_network_codec(config, abci, store, mempool, LodeCodec).await
}

/// [`run`] with `codec` for what goes over the network (consensus gossip and sync); the WAL and the
/// validator proof stay on [`LodeCodec`]. Nodes use [`run`]; tests pass a codec that garbles what it sends, to
/// play a peer whose messages are malformed.
pub async fn run_with_network_codec<A, S, M, C>(
    config: ConsensusConfig,
    abci: Arc<A>,
    store: Arc<S>,
    mempool: Arc<M>,
    codec: C,
) -> Result<Handle, ConsensusError>
where
    A: Abci,
    S: BlockStore,
    M: Mempool,
    C: Clone + ConsensusCodec<LodeContext> + SyncCodec<LodeContext>,
{
    let signer = LodeSigner::new(config.signing_key.clone(), config.chain_id.clone());
    let address = signer.address();

    let mut engine_cfg = EngineConfig {
        moniker: config.moniker.clone(),
        consensus: MalachiteConsensus::default(),
        value_sync: ValueSyncConfig {
            enabled: config.value_sync,
            status_update_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            ..ValueSyncConfig::default()
        },
    };
    engine_cfg.consensus.p2p.listen_addr = multiaddr(config.listen_addr)?;
    engine_cfg.consensus.p2p.persistent_peers = config
        .persistent_peers
        .iter()
        .map(|a| multiaddr(*a))
        .collect::<Result<_, _>>()?;

    let network_key = config.node_key.as_ref().unwrap_or(&config.signing_key);
    let keypair = Keypair::ed25519_from_bytes(network_key.to_seed())
        .map_err(|e| ConsensusError::Config(format!("libp2p key: {e}")))?;
    let peer_id = keypair.public().to_peer_id();
    let proof = signer
        .sign_validator_proof(
            config.signing_key.public_key().0.to_vec(),
            peer_id.to_bytes(),
        )
        .await
        .map_err(|e| ConsensusError::Signing(e.to_string()))?;
    let proof_bytes = LodeCodec.encode(&proof)?;
    let identity = NetworkIdentity::new_validator(
        config.moniker.clone(),
        keypair,
        address.to_string(),
        proof_bytes,
    );

    let peer_keys = PeerKeys::new();
    std::fs::create_dir_all(&config.wal_dir)
        .map_err(|e| ConsensusError::Config(format!("wal dir: {e}")))?;
    // Malachite's swarm only logs a failed listen and runs on without a listener, so peers would see
    // "connection refused" from a node that looks alive. Refuse to start instead.
    std::net::TcpListener::bind(config.listen_addr).map_err(|e| {
        ConsensusError::Config(format!(
            "consensus p2p cannot listen on {}: {e}",
            config.listen_addr
        ))
    })?;
    let (mut channels, engine) = start_engine(
        LodeContext,
        engine_cfg,
        WalContext::new(config.wal_dir.join("consensus.wal"), LodeCodec),
        NetworkContext::new(identity, codec),
        ConsensusContext::new_validator(
            address,
            Box::new(LodeVerifier::new(config.chain_id.clone()).with_peer_keys(peer_keys.clone())),
            Box::new(signer.clone()),
        ),
        SyncContext::new(LodeCodec),
        RequestContext::new(100),
    )
    .await
    .map_err(|e| ConsensusError::Engine(format!("{e:#}")))?;

    let (decided_tx, decided_rx) = watch::channel(Height(0));
    let params = BridgeParams {
        chain_id: config.chain_id.clone(),
        genesis_validators: config.genesis_validators.clone(),
        genesis_time: config.genesis_time,
        app_state_bytes: config.app_state_bytes.clone(),
        initial_height: config.initial_height,
        timeouts: config.timeouts.linear(),
        max_block_tx_bytes: config.max_block_tx_bytes,
        max_clock_drift: config.max_clock_drift,
        empty_block_interval: config.empty_block_interval,
        min_block_interval: config.min_block_interval,
        clock_offset_ms: config.clock_offset_ms,
    };
    let (evidence_tx, evidence_rx) = mpsc::channel(EVIDENCE_CHANNEL);
    let (outcomes_tx, outcomes_rx) = watch::channel(None);
    let mut bridge = Bridge::new(
        abci,
        store,
        mempool,
        signer,
        params,
        decided_tx,
        channels.network.clone(),
    )
    .with_peer_keys(peer_keys)
    .with_evidence(evidence_tx)
    .with_outcomes(outcomes_tx);
    let moniker = config.moniker.clone();
    let (halted_tx, halted_rx) = watch::channel(None);
    let task = tokio::spawn(async move {
        while let Some(msg) = channels.consensus.recv().await {
            if let Err(e) = bridge.handle(msg).await {
                error!(%moniker, error = %e, "consensus bridge stopped");
                if let ConsensusError::Halted(report) = &e {
                    let _ = halted_tx.send(Some((**report).clone()));
                }
                return Err(e);
            }
        }
        info!(%moniker, "consensus channel closed");
        Ok(())
    });
    Ok(Handle {
        decided: decided_rx,
        outcomes: outcomes_rx,
        evidence: Some(evidence_rx),
        halted: halted_rx,
        bridge: task,
        engine,
    })
}
