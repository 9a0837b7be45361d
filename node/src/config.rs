//! `config.toml`: the node's settings. Every field has a default, unknown fields are errors. Precedence is
//! command line > `LODE_*` environment variable > this file > default.

use std::{net::SocketAddr, path::Path};

use eyre::{ensure, WrapErr};
use serde::{Deserialize, Serialize};

/// The node configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Human-readable node name; `lode init` also uses it as the validator's name in genesis.
    pub moniker: String,
    /// Logging.
    pub log: LogConfig,
    /// The ABCI socket server (`lode abci`).
    pub abci: AbciConfig,
    /// Peer-to-peer networking (`lode start`): the consensus swarm and the mempool gossip swarm.
    pub p2p: P2pConfig,
    /// The gRPC API (`lode start`).
    pub grpc: GrpcConfig,
    /// Prometheus metrics (`lode start`).
    pub metrics: MetricsConfig,
    /// Mempool limits.
    pub mempool: MempoolConfig,
    /// Consensus timeouts and block limits.
    pub consensus: ConsensusConfig,
    /// The state machine.
    pub app: AppConfig,
    /// Verification of marketplace jobs.
    pub compute: ComputeConfig,
    /// The blob service (job data).
    pub blobs: BlobsConfig,
    /// Reporting double signs this node sees.
    pub evidence: EvidenceConfig,
}

/// `[evidence]`: double-sign evidence this node sees (two conflicting votes of one validator, verified by the
/// consensus engine) is submitted to the chain as `MsgSubmitDoubleSign`, signed by a key of this home.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvidenceConfig {
    /// Submit the evidence this node sees.
    pub report: bool,
    /// The key in `<home>/keys/` that signs and pays for the evidence txs (its account needs the fee).
    /// `lode testnet init` homes hold the validator's operator key, `operator`; `lode init` homes use
    /// `dev0`. A missing key turns reporting off with a warning at start.
    pub key: String,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        Self {
            report: true,
            key: "operator".to_owned(),
        }
    }
}

/// `[blobs]`: the blob service (job inputs and outputs, `lode blob`, `BlobService`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlobsConfig {
    /// Serve `BlobService` and the blob exchange with peers. Off: every blob RPC answers `UNAVAILABLE`.
    pub enable: bool,
    /// Largest blob accepted (`Put`) or fetched from a peer, in bytes. Default 1 GiB.
    pub max_blob_bytes: u64,
    /// Most bytes of stored blobs one uploading account may hold at once. Default 4 GiB.
    pub quota_bytes_per_account: u64,
    /// Most bytes of blobs this node stores at once, over all accounts and fetched copies, transfers in
    /// progress included; past it `RESOURCE_EXHAUSTED`. Default 32 GiB.
    pub max_total_bytes: u64,
    /// The smallest committed balance (base units) an uploading account must hold; an address that is not
    /// an account on chain is refused whatever this says (`PERMISSION_DENIED`). Default 1: any funded
    /// account.
    pub min_uploader_balance: u64,
    /// A blob is deleted this many seconds after every job referencing it is final. Default one day.
    pub retention_s: u64,
    /// A blob no job references is deleted this many seconds after it was stored. Default one hour.
    pub unreferenced_grace_s: u64,
    /// Farthest in the future a `Put` signature's expiry may be, in seconds. Default 600.
    pub max_signature_age_s: u64,
    /// Seconds between garbage-collection passes. Default 60.
    pub gc_interval_s: u64,
    /// Most transfers (`Put`s, `Get`s served, fetches from peers) in progress at once; past it
    /// `RESOURCE_EXHAUSTED`. Default 16.
    pub max_concurrent_transfers: u32,
}

impl Default for BlobsConfig {
    fn default() -> Self {
        Self {
            enable: true,
            max_blob_bytes: 1 << 30,
            quota_bytes_per_account: 4 << 30,
            max_total_bytes: 32 << 30,
            min_uploader_balance: 1,
            retention_s: 24 * 3600,
            unreferenced_grace_s: 3600,
            max_signature_age_s: 600,
            gc_interval_s: 60,
            max_concurrent_transfers: 16,
        }
    }
}

/// Where this node recomputes revealed tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ComputeBackend {
    /// The CPU (the default on validators): always available.
    #[default]
    Cpu,
    /// CUDA; the node falls back to the CPU (and logs why) when no usable GPU is found.
    Cuda,
    /// CUDA when a usable GPU is found, else the CPU.
    Auto,
}

/// `[compute]`: verification of revealed tiles. Verdicts are identical on every backend (exact integer
/// products); the choice changes speed only, and a GPU failure falls back to the CPU, never to a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ComputeConfig {
    pub backend: ComputeBackend,
}

impl ComputeConfig {
    /// Selects this process's verification backend; returns a line for the log.
    pub fn apply(&self) -> String {
        use lode_gpu_verify::Backend;
        let b = match self.backend {
            ComputeBackend::Cpu => Backend::Cpu,
            ComputeBackend::Cuda => Backend::Cuda,
            ComputeBackend::Auto => Backend::Auto,
        };
        match lode_state::modules::compute::verdict::set_backend(b) {
            Ok(d) => format!("verification backend: {d}"),
            Err(e) => format!(
                "verification backend {:?} unavailable ({e}); using the CPU",
                self.backend
            ),
        }
    }
}

/// State-machine settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// Check every module's invariants (supply, bonded pool, gov deposits) at the end of every block and
    /// halt with a report instead of committing a block that breaks one. Costs a scan of all accounts,
    /// bonds and deposits per block. Default: false (`lode init`); `lode devnet` and `lode testnet init`
    /// write true.
    pub check_invariants: bool,
}

impl AppConfig {
    /// The application options this section selects.
    pub fn options(&self) -> lode_state::app::AppOptions {
        lode_state::app::AppOptions {
            check_invariants: self.check_invariants,
        }
    }
}

/// Peer-to-peer settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct P2pConfig {
    /// TCP address of the consensus (Malachite) swarm.
    pub listen: SocketAddr,
    /// Consensus swarm addresses of the peers to keep connected.
    pub persistent_peers: Vec<SocketAddr>,
    /// TCP address of the mempool gossip swarm.
    pub gossip_listen: SocketAddr,
    /// Gossip swarm addresses of the peers to keep connected.
    pub gossip_peers: Vec<SocketAddr>,
    /// Most inbound gossip connections at once (established and being set up); more are refused.
    pub gossip_max_peers: u32,
}

/// Prometheus metrics (`GET /metrics`, see `services::metrics`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address to serve `/metrics` on; unset: no metrics server. `lode testnet init` and `lode devnet` set it.
    pub listen: Option<SocketAddr>,
}

/// gRPC settings: the address and the bounds on what clients can hold (see `services::grpc::ApiLimits`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    /// Address to serve `lode.node.v1` on.
    pub listen: SocketAddr,
    /// Most client connections at once; one more is accepted and closed at once.
    pub max_connections: usize,
    /// Most HTTP/2 streams (calls) one connection may have open at once.
    pub max_concurrent_streams_per_connection: u32,
    /// Most requests served at once; past it a request fails at once with RESOURCE_EXHAUSTED.
    pub max_inflight_requests: usize,
    /// Most `BroadcastAndWait` calls waiting for their commit at once; past it RESOURCE_EXHAUSTED.
    pub max_waiting: usize,
    /// Longest wait a client may ask for (`BroadcastAndWait`, `BroadcastStream` txs); longer asks are capped.
    pub max_wait_ms: u64,
    /// Most open `BroadcastStream`s; past it opening one fails with RESOURCE_EXHAUSTED.
    pub max_broadcast_streams: usize,
    /// Most admitted txs one `BroadcastStream` waits on; past it its txs are refused until some commit.
    pub max_stream_pending: usize,
    /// A `BroadcastStream` whose client reads no event for this long (while events wait for it) is closed;
    /// an `EventService` subscription whose queue stays full this long is ended (RESOURCE_EXHAUSTED).
    pub stream_stall_timeout_ms: u64,
    /// Most open `EventService` subscriptions; past it subscribing fails with RESOURCE_EXHAUSTED.
    pub max_subscriptions: usize,
    /// Events (one per height) queued for one subscriber before it counts as stalled.
    pub subscription_buffer: usize,
    /// Web pages (origins, e.g. `http://localhost:5173`) allowed to call the API from a browser over
    /// gRPC-web; `["*"]` allows any page. Empty (the default): browsers may not call it; gRPC-web from
    /// other clients works either way.
    pub cors_origins: Vec<String>,
    /// Serve the block explorer page at `/explorer/` on this address (it calls the API from the same
    /// origin, so it needs no `cors_origins` entry).
    pub explorer: bool,
}

impl GrpcConfig {
    /// The browser origins allowed to call the API, checked: each is `*` (alone) or a `scheme://host[:port]`
    /// origin with an `http` or `https` scheme and nothing after the authority.
    pub fn cors(&self) -> eyre::Result<crate::services::grpc::CorsOrigins> {
        crate::services::grpc::CorsOrigins::parse(&self.cors_origins)
    }

    /// The API's limits.
    pub fn limits(&self) -> crate::services::grpc::ApiLimits {
        crate::services::grpc::ApiLimits {
            max_connections: self.max_connections,
            max_concurrent_streams_per_connection: self.max_concurrent_streams_per_connection,
            max_inflight_requests: self.max_inflight_requests,
            max_waiting: self.max_waiting,
            max_wait: std::time::Duration::from_millis(self.max_wait_ms),
            max_broadcast_streams: self.max_broadcast_streams,
            max_stream_pending: self.max_stream_pending,
            stream_stall_timeout: std::time::Duration::from_millis(self.stream_stall_timeout_ms),
            max_subscriptions: self.max_subscriptions,
            subscription_buffer: self.subscription_buffer,
        }
    }
}

/// Mempool limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MempoolConfig {
    /// Most txs held; beyond it broadcasts fail with RESOURCE_EXHAUSTED ("mempool full").
    pub max_txs: usize,
    /// Most bytes held.
    pub max_bytes: u64,
    /// Largest single tx.
    pub max_tx_bytes: usize,
    /// Most pending txs of one sender; beyond it its broadcasts fail with RESOURCE_EXHAUSTED. When the pool is
    /// full, a tx paying more per byte evicts the cheapest other sender's last pending tx.
    pub max_txs_per_sender: usize,
}

/// Consensus settings (milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsensusConfig {
    /// Waiting for a proposal.
    pub timeout_propose_ms: u64,
    /// Waiting for prevotes.
    pub timeout_prevote_ms: u64,
    /// Waiting for precommits.
    pub timeout_precommit_ms: u64,
    /// Added per round to each timeout.
    pub timeout_delta_ms: u64,
    /// Maximum bytes of txs per block.
    pub max_block_tx_bytes: u64,
    /// How far ahead of the local clock a proposal's time may be.
    pub max_clock_drift_ms: u64,
    /// Value sync (catch-up of lagging nodes).
    pub value_sync: bool,
    /// With an empty mempool, the proposer waits until this long after the previous block for a transaction
    /// before proposing an empty block (capped at half of `timeout_propose_ms`); 0 never waits.
    pub empty_block_interval_ms: u64,
    /// In round 0, with transactions waiting but less than `max_block_tx_bytes` of them and the mempool not
    /// at its own limit, the proposer waits until this long after the previous block for more (capped at
    /// half of `timeout_propose_ms`): fewer, fuller blocks under load. Later rounds, and 0, propose at once.
    pub min_block_interval_ms: u64,
}

impl Default for P2pConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 26656)),
            persistent_peers: Vec::new(),
            gossip_listen: SocketAddr::from(([127, 0, 0, 1], 26657)),
            gossip_peers: Vec::new(),
            gossip_max_peers: 64,
        }
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        let l = crate::services::grpc::ApiLimits::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            max_connections: l.max_connections,
            max_concurrent_streams_per_connection: l.max_concurrent_streams_per_connection,
            max_inflight_requests: l.max_inflight_requests,
            max_waiting: l.max_waiting,
            max_wait_ms: l.max_wait.as_millis() as u64,
            max_broadcast_streams: l.max_broadcast_streams,
            max_stream_pending: l.max_stream_pending,
            stream_stall_timeout_ms: l.stream_stall_timeout.as_millis() as u64,
            max_subscriptions: l.max_subscriptions,
            subscription_buffer: l.subscription_buffer,
            cors_origins: Vec::new(),
            explorer: true,
        }
    }
}

impl Default for MempoolConfig {
    fn default() -> Self {
        Self {
            max_txs: 10_000,
            max_bytes: 64 * 1024 * 1024,
            max_tx_bytes: 1024 * 1024,
            max_txs_per_sender: 512,
        }
    }
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        Self {
            timeout_propose_ms: 3_000,
            timeout_prevote_ms: 1_000,
            timeout_precommit_ms: 1_000,
            timeout_delta_ms: 500,
            max_block_tx_bytes: 4 * 1024 * 1024,
            max_clock_drift_ms: 10_000,
            value_sync: true,
            empty_block_interval_ms: 1_000,
            min_block_interval_ms: 100,
        }
    }
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `lode_node=debug,info`. `RUST_LOG` overrides it.
    pub level: String,
}

/// ABCI socket server settings. The socket is the application's unauthenticated admin interface: `lode abci`
/// refuses a non-loopback `listen` unless given `--allow-remote`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AbciConfig {
    /// Address to listen on; CometBFT's `proxy_app` points here (`tcp://127.0.0.1:26658`).
    pub listen: SocketAddr,
    /// Largest accepted request frame in bytes; a longer frame closes its connection.
    pub max_frame_bytes: usize,
    /// Most connections served at once (CometBFT opens four); one more is closed at once.
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            moniker: "lode-node".to_owned(),
            log: LogConfig::default(),
            abci: AbciConfig::default(),
            p2p: P2pConfig::default(),
            grpc: GrpcConfig::default(),
            metrics: MetricsConfig::default(),
            mempool: MempoolConfig::default(),
            consensus: ConsensusConfig::default(),
            app: AppConfig::default(),
            compute: ComputeConfig::default(),
            blobs: BlobsConfig::default(),
            evidence: EvidenceConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
        }
    }
}

impl Default for AbciConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 26658)),
            max_frame_bytes: 64 * 1024 * 1024,
            max_connections: 16,
        }
    }
}

/// Largest count a config key may set (connections, requests, queue lengths): far above any machine's
/// need, far below what a semaphore or a queue can hold.
const MAX_COUNT: usize = 1 << 24;
/// Largest `mempool.max_tx_bytes`: a tx must fit a gossip message (its size plus an envelope).
const MAX_TX_BYTES: usize = 64 << 20;
/// Largest `abci.max_frame_bytes`.
const MAX_FRAME_BYTES: usize = 1 << 30;

impl Config {
    /// Reads `path`.
    pub fn load(path: &Path) -> eyre::Result<Self> {
        let text = crate::home::read_text(path)
            .wrap_err_with(|| format!("cannot read config {}", path.display()))?;
        Self::from_toml(&text).wrap_err_with(|| format!("invalid config {}", path.display()))
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> eyre::Result<Self> {
        let config: Self = toml::from_str(text)?;
        config.grpc.cors().wrap_err("grpc.cors_origins")?;
        config.check_bounds()?;
        Ok(config)
    }

    /// Refuses counts the node could not start with (a semaphore's permits) or that overflow where they are
    /// used, naming the key. Zero is allowed: the node refuses every request of that kind.
    fn check_bounds(&self) -> eyre::Result<()> {
        let g = &self.grpc;
        let m = &self.mempool;
        let a = &self.abci;
        for (key, value, max) in [
            ("grpc.max_connections", g.max_connections, MAX_COUNT),
            (
                "grpc.max_inflight_requests",
                g.max_inflight_requests,
                MAX_COUNT,
            ),
            ("grpc.max_waiting", g.max_waiting, MAX_COUNT),
            (
                "grpc.max_broadcast_streams",
                g.max_broadcast_streams,
                MAX_COUNT,
            ),
            ("grpc.max_stream_pending", g.max_stream_pending, MAX_COUNT),
            ("grpc.max_subscriptions", g.max_subscriptions, MAX_COUNT),
            ("grpc.subscription_buffer", g.subscription_buffer, MAX_COUNT),
            ("mempool.max_txs", m.max_txs, MAX_COUNT),
            (
                "mempool.max_txs_per_sender",
                m.max_txs_per_sender,
                MAX_COUNT,
            ),
            ("mempool.max_tx_bytes", m.max_tx_bytes, MAX_TX_BYTES),
            ("abci.max_connections", a.max_connections, MAX_COUNT),
            ("abci.max_frame_bytes", a.max_frame_bytes, MAX_FRAME_BYTES),
        ] {
            ensure!(value <= max, "{key} = {value} is over its limit of {max}");
        }
        Ok(())
    }

    /// Writes the configuration to `path` as TOML.
    pub fn save(&self, path: &Path) -> eyre::Result<()> {
        let text = toml::to_string_pretty(self)?;
        std::fs::write(path, text)
            .wrap_err_with(|| format!("cannot write config {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_defaults() {
        assert_eq!(Config::from_toml("").ok(), Some(Config::default()));
    }

    #[test]
    fn the_defaults_round_trip_through_toml() {
        let text = toml::to_string_pretty(&Config::default()).expect("toml");
        assert_eq!(Config::from_toml(&text).ok(), Some(Config::default()));
    }

    #[test]
    fn counts_the_node_could_not_start_with_are_refused_with_the_key() {
        for (section, key, value) in [
            ("grpc", "max_inflight_requests", i64::MAX.to_string()),
            ("grpc", "max_subscriptions", (1u64 << 62).to_string()),
            ("grpc", "subscription_buffer", (MAX_COUNT + 1).to_string()),
            ("mempool", "max_tx_bytes", i64::MAX.to_string()),
            ("mempool", "max_txs", i64::MAX.to_string()),
            ("abci", "max_frame_bytes", (MAX_FRAME_BYTES + 1).to_string()),
        ] {
            let err =
                Config::from_toml(&format!("[{section}]\n{key} = {value}\n")).expect_err("refused");
            assert!(
                format!("{err:#}").contains(&format!("{section}.{key}")),
                "{err:#}"
            );
        }
        let at_limit = format!("[mempool]\nmax_tx_bytes = {MAX_TX_BYTES}\n");
        assert!(Config::from_toml(&at_limit).is_ok());
        // Zero refuses every request of its kind, as before.
        assert!(Config::from_toml("[grpc]\nmax_inflight_requests = 0\n").is_ok());
    }

    #[test]
    fn a_config_with_a_bad_cors_origin_is_refused_with_the_key() {
        let ok =
            Config::from_toml("[grpc]\ncors_origins = [\"http://localhost:5173\"]\n").expect("ok");
        assert_eq!(ok.grpc.cors_origins, ["http://localhost:5173"]);
        let err =
            Config::from_toml("[grpc]\ncors_origins = [\"localhost/x\"]\n").expect_err("refused");
        assert!(format!("{err:#}").contains("grpc.cors_origins"), "{err:#}");
    }

    #[test]
    fn the_invariant_check_is_off_by_default_and_an_app_section_turns_it_on() {
        assert!(!Config::default().app.check_invariants);
        let c = Config::from_toml("[app]\ncheck_invariants = true\n").expect("parse");
        assert!(c.app.options().check_invariants);
        assert!(Config::from_toml("[app]\ncheck_invariant = true\n").is_err());
    }

    #[test]
    fn the_grpc_limits_default_to_the_apis_and_convert_back() {
        let c = GrpcConfig::default();
        assert_eq!(c.limits(), crate::services::grpc::ApiLimits::default());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(Config::from_toml("[abci]\nlisten = \"127.0.0.1:1\"\nport = 3\n").is_err());
        assert!(Config::from_toml("colour = \"blue\"\n").is_err());
    }

    #[test]
    fn a_partial_section_keeps_the_other_defaults() {
        let c = Config::from_toml("[abci]\nlisten = \"0.0.0.0:9\"\n").expect("valid");
        assert_eq!(c.abci.listen, SocketAddr::from(([0, 0, 0, 0], 9)));
        assert_eq!(
            c.abci.max_frame_bytes,
            AbciConfig::default().max_frame_bytes
        );
        assert_eq!(c.log, LogConfig::default());
    }
}
