//! The daemon behind `lode provider run`: registers the provider, reconciles its job table with the chain,
//! follows the event stream from the last handled height and drives each job through its steps
//! ([`super::jobs`]), until SIGINT/SIGTERM.
//!
//! One loop owns the table: it handles each block's events (every job an event names is read again from
//! the chain, the source of truth), spawns at most one task per job for what the job needs now
//! ([`JobEntry::action`]), and takes each task's report back over a bounded channel. The table is saved
//! (atomically) whenever it changes and at least every [`SAVE_EVERY`] heights, so a restart resumes the
//! stream close to where it stopped; the reconciliation at start covers anything in between.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eyre::{bail, eyre, WrapErr};
use lode_gpu_verify::{verify::Prover, Backend, Engine};
use lode_state::{address::Address, modules::market::MarketMsg, tx::Msg};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::AbortHandle;

use super::chain::Chain;
use super::config::DeviceEntry;
use super::jobs::{self, Ctx, WorkOutcome};
use super::metrics::metrics;
use super::table::{parse32, Action, JobTable, Stage};
use crate::keys::KeyFile;
use crate::services::grpc::pb::{self, event_service_client::EventServiceClient};

/// The table is saved at least this often (in heights) even when nothing changed.
pub const SAVE_EVERY: u64 = 50;
/// How long a stop waits for due reveals to finish.
const STOP_GRACE: Duration = Duration::from_secs(120);
/// How long the daemon waits for its node at start.
const CONNECT_GRACE: Duration = Duration::from_secs(60);
/// Task reports queued at most (tasks wait when it is full; there is at most one task per job).
const REPORTS: usize = 64;
/// Event types the daemon follows, each filtered on `provider` = this provider.
const EVENT_TYPES: [&str; 11] = [
    "market_job_matched",
    "market_job_accepted",
    "market_job_declined",
    "market_job_settled",
    "market_job_failed",
    "market_provider_slashed",
    "market_holdback_released",
    "compute_committed",
    "compute_challenged",
    "compute_revealed",
    "compute_output_challenged",
];

/// What the provider offers when it registers (and the ask and job size it keeps up to date).
#[derive(Debug, Clone, Default)]
pub struct Offer {
    pub moniker: String,
    pub devices: Vec<DeviceEntry>,
    pub ask: Option<u128>,
    pub max_job_cu: Option<u64>,
    pub bond: Option<u128>,
}

/// Everything `lode provider run` decided from its flags, environment and `provider.toml`.
#[derive(Debug)]
pub struct RunOpts {
    pub key: KeyFile,
    pub node: String,
    pub backend: Backend,
    /// Where the job table lives (`<home>/provider`).
    pub state_dir: PathBuf,
    pub offer: Offer,
    pub metrics_listen: Option<SocketAddr>,
    pub max_memory_mib: u64,
    #[cfg(feature = "provider-faults")]
    pub cheat: Option<super::faults::Cheat>,
    #[cfg(feature = "provider-faults")]
    pub stall_after_accept: bool,
}

/// The daemon's own output: one line per job step on stdout (`job <id> committed …`, stable for scripts
/// and tests), and a status spinner on stderr when it is a terminal.
#[derive(Debug)]
pub struct Output {
    progress: Option<indicatif::ProgressBar>,
}

impl Output {
    fn new() -> Output {
        let progress = std::io::stderr().is_terminal().then(|| {
            let pb = indicatif::ProgressBar::new_spinner();
            pb.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            pb.enable_steady_tick(Duration::from_millis(200));
            pb
        });
        Output { progress }
    }

    /// Prints one line on stdout (above the spinner).
    pub fn line(&self, s: &str) {
        let print = || {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{s}");
            let _ = out.flush();
        };
        match &self.progress {
            Some(pb) => pb.suspend(print),
            None => print(),
        }
    }

    /// `job <id> <what>`, and the same in the log.
    pub fn job(&self, id: &str, what: &str) {
        tracing::info!(job = %id, "{what}");
        self.line(&format!("job {id} {what}"));
    }

    fn status(&self, msg: String) {
        if let Some(pb) = &self.progress {
            pb.set_message(msg);
        }
    }

    fn finish(&self) {
        if let Some(pb) = &self.progress {
            pb.finish_and_clear();
        }
    }
}

/// A task's report.
enum Report {
    Work {
        id: String,
        result: eyre::Result<WorkOutcome>,
    },
    Reveal {
        id: String,
        challenge: bool,
        prover: Option<Arc<Prover>>,
        result: eyre::Result<Vec<u64>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Work,
    Reveal,
}

struct Daemon {
    ctx: Arc<Ctx>,
    dir: PathBuf,
    table: JobTable,
    height: u64,
    saved_height: u64,
    dirty: bool,
    provers: HashMap<String, Arc<Prover>>,
    running: HashMap<String, (Kind, AbortHandle)>,
    /// Jobs a failed task may not retry before this height.
    retry_at: HashMap<String, u64>,
    /// The last chain status seen per job, to print each change once.
    statuses: HashMap<String, String>,
    declined: HashSet<String>,
    /// Jobs whose chain read failed: read again at the next block.
    stale: BTreeSet<String>,
    stopping: bool,
    reports_tx: mpsc::Sender<Report>,
    reports: mpsc::Receiver<Report>,
}

/// Runs the daemon until SIGINT or SIGTERM.
pub async fn run(opts: RunOpts) -> eyre::Result<()> {
    let out = Output::new();
    let chain = connect(&opts.node, opts.key.clone()).await?;
    let me: Address = chain
        .address()
        .parse()
        .map_err(|e| eyre!("key address: {e}"))?;
    let engine = Engine::new(opts.backend)?;
    out.line(&format!(
        "provider {me} on {} (chain {}), computing on {}",
        opts.node,
        chain.chain_id,
        engine.describe()
    ));
    let devices = register(&chain, &opts.offer, &out).await?;
    if let Some(addr) = opts.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .wrap_err_with(|| format!("binding --metrics-listen {addr}"))?;
        let local = listener.local_addr()?;
        metrics();
        tokio::spawn(crate::services::metrics::serve(listener, Arc::new(|| {})));
        out.line(&format!("provider metrics on http://{local}/metrics"));
    }
    let table = JobTable::load(&opts.state_dir, chain.address())?;
    let (reports_tx, reports) = mpsc::channel(REPORTS);
    let ctx = Arc::new(Ctx {
        chain,
        me,
        engine: Arc::new(engine),
        devices: Semaphore::new(usize::try_from(devices.max(1)).unwrap_or(1)),
        max_memory_mib: opts.max_memory_mib,
        out,
        #[cfg(feature = "provider-faults")]
        cheat: opts.cheat,
        #[cfg(feature = "provider-faults")]
        stall_after_accept: opts.stall_after_accept,
    });
    let mut d = Daemon {
        ctx,
        dir: opts.state_dir,
        table,
        height: 0,
        saved_height: 0,
        dirty: true,
        provers: HashMap::new(),
        running: HashMap::new(),
        retry_at: HashMap::new(),
        statuses: HashMap::new(),
        declined: HashSet::new(),
        stale: BTreeSet::new(),
        stopping: false,
        reports_tx,
        reports,
    };
    d.start().await?;
    let r = d.follow().await;
    d.stop().await;
    r
}

/// Connects, retrying while the node is not up yet (bounded by [`CONNECT_GRACE`]).
async fn connect(node: &str, key: KeyFile) -> eyre::Result<Chain> {
    let started = Instant::now();
    loop {
        match Chain::connect(node, key.clone()).await {
            Ok(c) => return Ok(c),
            Err(e) if started.elapsed() < CONNECT_GRACE => {
                tracing::warn!(error = %format!("{e:#}"), "node not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Registers the provider unless it is registered; brings the ask and the job size limit up to the
/// configured ones. Returns the number of devices offered.
async fn register(chain: &Chain, offer: &Offer, out: &Output) -> eyre::Result<u64> {
    let me: Address = chain
        .address()
        .parse()
        .map_err(|e| eyre!("key address: {e}"))?;
    match chain.provider().await? {
        Some(p) => {
            if p.status != "active" {
                // Unregistered (unbonding): no new job comes, but jobs already matched, accepted or committed
                // are still owed (reveals, challenges); serve them rather than leave them to be slashed.
                out.line(&format!(
                    "provider {me} is {} (release at height {}): it takes no new jobs; serving the ones in flight",
                    p.status, p.release_height
                ));
                return Ok(p.devices.iter().map(|d| u64::from(d.count)).sum());
            }
            let chain_ask: u128 = p.ask_per_cu.parse().unwrap_or(0);
            let ask = offer.ask.filter(|a| *a != chain_ask);
            let max_job_cu = offer.max_job_cu.filter(|m| *m != p.max_job_cu);
            if ask.is_some() || max_job_cu.is_some() {
                let msg = Msg::Market(MarketMsg::UpdateProvider {
                    provider: me,
                    ask_per_cu: ask,
                    devices: None,
                    max_job_cu,
                    add_bond: 0,
                    moniker: None,
                });
                let h = chain.send("update provider", &[msg]).await?;
                out.line(&format!(
                    "provider {me} updated at height {h} (ask {}, max_job_cu {})",
                    ask.unwrap_or(chain_ask),
                    max_job_cu.unwrap_or(p.max_job_cu)
                ));
            } else {
                out.line(&format!(
                    "provider {me} already registered (ask {}, max_job_cu {}, bond {})",
                    p.ask_per_cu, p.max_job_cu, p.bond
                ));
            }
            Ok(p.devices.iter().map(|d| u64::from(d.count)).sum())
        }
        None => {
            let (Some(ask), Some(bond)) = (offer.ask, offer.bond) else {
                bail!("{me} is not a registered provider: give --ask and --bond (or `ask` and `bond` in provider.toml) to register it");
            };
            let msg = Msg::Market(MarketMsg::RegisterProvider {
                provider: me,
                moniker: offer.moniker.clone(),
                devices: offer
                    .devices
                    .iter()
                    .map(|d| lode_state::modules::market::Device {
                        model: d.model.clone(),
                        memory_mib: d.memory_mib,
                        count: d.count,
                    })
                    .collect(),
                ask_per_cu: ask,
                max_job_cu: offer.max_job_cu.unwrap_or(1_000_000),
                bond,
            });
            let h = chain.send("register provider", &[msg]).await?;
            out.line(&format!(
                "provider {me} registered at height {h} (ask {ask}, bond {bond}, devices {})",
                offer
                    .devices
                    .iter()
                    .map(|d| format!("{}:{}:{}", d.model, d.memory_mib, d.count))
                    .collect::<Vec<_>>()
                    .join(",")
            ));
            Ok(offer.devices.iter().map(|d| u64::from(d.count)).sum())
        }
    }
}

fn attr<'a>(e: &'a pb::Event, key: &str) -> Option<&'a str> {
    e.attributes
        .iter()
        .find(|a| a.key == key)
        .map(|a| a.value.as_str())
}

impl Daemon {
    fn out(&self) -> &Output {
        &self.ctx.out
    }

    /// Reconciles the table with the chain's list of this provider's jobs and saves it.
    async fn start(&mut self) -> eyre::Result<()> {
        let h0 = self.ctx.chain.height().await?;
        let jobs = self.ctx.chain.my_jobs().await?;
        for j in &jobs {
            self.statuses.insert(hex::encode(&j.id), j.status.clone());
        }
        let r = self.table.reconcile(&jobs)?;
        if self.table.last_height == 0 {
            self.table.last_height = h0;
        }
        self.height = h0;
        for id in &r.added {
            self.out().job(id, "found on chain at start");
        }
        for id in &r.removed {
            tracing::info!(job = %id, "needs nothing more; dropped from the table");
        }
        self.save()?;
        self.out().line(&format!(
            "provider {} ready at height {h0}: {} jobs in the table, following events from height {}",
            self.ctx.me,
            self.table.jobs.len(),
            self.table.last_height + 1
        ));
        self.schedule();
        Ok(())
    }

    fn save(&mut self) -> eyre::Result<()> {
        self.table.save(&self.dir)?;
        self.saved_height = self.table.last_height;
        self.dirty = false;
        metrics().in_table.set(self.table.jobs.len() as i64);
        Ok(())
    }

    fn save_or_log(&mut self) {
        if let Err(e) = self.save() {
            tracing::error!(error = %format!("{e:#}"), "saving the job table failed");
        }
    }

    /// Follows the event stream until a signal; reconnects (resuming after the last handled height) when
    /// the stream breaks.
    async fn follow(&mut self) -> eyre::Result<()> {
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sigint = signal(SignalKind::interrupt())?;
        let filters: Vec<pb::EventFilter> = EVENT_TYPES
            .iter()
            .map(|t| pb::EventFilter {
                r#type: (*t).to_owned(),
                attribute: "provider".into(),
                value: self.ctx.me.to_string(),
            })
            .collect();
        let mut backoff = Duration::from_millis(250);
        loop {
            let from = self.table.last_height + 1;
            let mut client = EventServiceClient::new(self.ctx.chain.channel())
                .max_decoding_message_size(64 << 20);
            let sub = client
                .subscribe(pb::SubscribeRequest {
                    from_height: Some(from),
                    filters: filters.clone(),
                })
                .await;
            match sub {
                Ok(s) => {
                    let mut stream = s.into_inner();
                    loop {
                        tokio::select! {
                            _ = sigterm.recv() => return Ok(()),
                            _ = sigint.recv() => return Ok(()),
                            Some(r) = self.reports.recv() => self.on_report(r).await,
                            msg = stream.message() => match msg {
                                Ok(Some(ev)) => {
                                    backoff = Duration::from_millis(250);
                                    self.on_block(ev).await?;
                                }
                                Ok(None) => {
                                    tracing::warn!("the node ended the event stream; resubscribing");
                                    break;
                                }
                                Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                                    tracing::info!(message = %s.message(), "event stream lagged; resuming");
                                    break;
                                }
                                Err(s) => {
                                    tracing::warn!(code = ?s.code(), message = %s.message(), "event stream broke; reconnecting");
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(s) => {
                    tracing::warn!(code = ?s.code(), message = %s.message(), from, "subscribe failed; retrying");
                }
            }
            let wake = tokio::time::sleep(backoff);
            tokio::pin!(wake);
            loop {
                tokio::select! {
                    _ = sigterm.recv() => return Ok(()),
                    _ = sigint.recv() => return Ok(()),
                    Some(r) = self.reports.recv() => self.on_report(r).await,
                    _ = &mut wake => break,
                }
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// One committed height: read again every job its events name, then start what is due.
    async fn on_block(&mut self, ev: pb::BlockEvent) -> eyre::Result<()> {
        let Some(h) = ev.header.as_ref().map(|h| h.height) else {
            bail!("the node sent a block event without a header");
        };
        let me = self.ctx.me.to_string();
        let mut ids: BTreeSet<String> = std::mem::take(&mut self.stale);
        let events = ev
            .txs
            .iter()
            .flat_map(|t| t.events.iter())
            .chain(ev.events.iter());
        for e in events {
            let Some(job) = attr(e, "job") else { continue };
            if (attr(e, "provider") == Some(me.as_str()) || self.table.jobs.contains_key(job))
                && parse32(job).is_ok()
            {
                ids.insert(job.to_owned());
            }
        }
        for id in ids {
            self.refresh(&id).await;
        }
        self.height = h;
        self.table.last_height = h;
        metrics().height.set(i64::try_from(h).unwrap_or(i64::MAX));
        if self.dirty || h >= self.saved_height + SAVE_EVERY {
            self.save()?;
        }
        self.schedule();
        let m = metrics();
        self.out().status(format!(
            "height {h} · {} jobs · accepted {} committed {} revealed {} settled {} failed {}",
            self.table.jobs.len(),
            m.count("accepted"),
            m.count("committed"),
            m.count("revealed"),
            m.count("settled"),
            m.count("failed"),
        ));
        Ok(())
    }

    /// Reads job `id` from the chain and updates its entry; prints the status when it changed.
    async fn refresh(&mut self, id: &str) {
        let Ok(id32) = parse32(id) else { return };
        let job = match self.ctx.chain.job(&id32).await {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(job = %id, error = %format!("{e:#}"), "reading the job failed; retrying at the next block");
                self.stale.insert(id.to_owned());
                return;
            }
        };
        let before = self.table.jobs.get(id).cloned();
        let after = match &job {
            Some(j) => match self.table.apply_chain(id, j) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(job = %id, error = %format!("{e:#}"), "the chain's job does not parse");
                    None
                }
            },
            None => {
                self.table.jobs.remove(id);
                None
            }
        };
        if before.as_ref() != self.table.jobs.get(id) {
            self.dirty = true;
        }
        let status = job
            .as_ref()
            .map_or("unknown".to_owned(), |j| j.status.clone());
        let ours = job
            .as_ref()
            .is_some_and(|j| j.provider == self.ctx.me.to_string());
        let changed = self.statuses.get(id) != Some(&status);
        if changed && (ours || before.is_some()) {
            self.statuses.insert(id.to_owned(), status.clone());
            if ours {
                // Counted before the line is printed, so whoever reads the line finds the count.
                if status == "settled" {
                    metrics().step("settled");
                }
                self.out().job(id, &format!("now {status}"));
            } else if before.is_some()
                && !self.declined.contains(id)
                && !declined_by(job.as_ref(), &self.ctx.me.to_string())
            {
                let why = job
                    .as_ref()
                    .and_then(|j| {
                        j.history
                            .iter()
                            .rev()
                            .find(|h| h.step == "failed" || h.step == "slashed")
                    })
                    .map(|h| h.detail.clone())
                    .unwrap_or_default();
                metrics().step("failed");
                self.out()
                    .job(id, format!("failed (now {status}) {why}").trim_end());
            }
        }
        if ours && matches!(status.as_str(), "fraud_proven" | "withheld") {
            metrics().step("failed");
        }
        match after {
            Some(Stage::Committed | Stage::Revealing | Stage::Accepted) => {}
            _ => {
                self.provers.remove(id);
            }
        }
        if after.is_none() {
            self.retry_at.remove(id);
            self.declined.remove(id);
            if job
                .as_ref()
                .is_none_or(|j| matches!(j.status.as_str(), "final" | "refunded" | "cancelled"))
            {
                self.statuses.remove(id);
            }
        }
    }

    /// Starts a task for every job that needs one now (while stopping: reveals only).
    fn schedule(&mut self) {
        let due: Vec<(String, Action)> = self
            .table
            .jobs
            .iter()
            .filter(|(id, _)| !self.running.contains_key(*id))
            .filter(|(id, _)| self.retry_at.get(*id).is_none_or(|h| self.height >= *h))
            .filter_map(|(id, e)| e.action(self.height).map(|a| (id.clone(), a)))
            .collect();
        for (id, action) in due {
            let Some(entry) = self.table.jobs.get(&id).cloned() else {
                continue;
            };
            let ctx = self.ctx.clone();
            let tx = self.reports_tx.clone();
            match action {
                Action::Work { accept } => {
                    if self.stopping {
                        continue;
                    }
                    if accept {
                        self.out().job(&id, "matched: fetching inputs");
                    }
                    let job_id = id.clone();
                    let h = tokio::spawn(async move {
                        let result = jobs::work(ctx, job_id.clone(), entry, accept).await;
                        let _ = tx.send(Report::Work { id: job_id, result }).await;
                    });
                    self.running.insert(id, (Kind::Work, h.abort_handle()));
                }
                Action::Reveal { tiles, challenge } => {
                    let cached = self.provers.get(&id).cloned();
                    let job_id = id.clone();
                    let h = tokio::spawn(async move {
                        let prover = match cached {
                            Some(p) => Ok(p),
                            None => jobs::rebuild_prover(&ctx, &job_id, &entry)
                                .await
                                .map(Arc::new),
                        };
                        let report = match prover {
                            Ok(p) => Report::Reveal {
                                id: job_id.clone(),
                                challenge,
                                prover: Some(p.clone()),
                                result: jobs::reveal(ctx, job_id, p, tiles, challenge).await,
                            },
                            Err(e) => Report::Reveal {
                                id: job_id,
                                challenge,
                                prover: None,
                                result: Err(e),
                            },
                        };
                        let _ = tx.send(report).await;
                    });
                    self.running.insert(id, (Kind::Reveal, h.abort_handle()));
                }
            }
        }
    }

    /// A task's report: keep what it produced, read the job again, start what is due next.
    async fn on_report(&mut self, r: Report) {
        let id = match &r {
            Report::Work { id, .. } | Report::Reveal { id, .. } => id.clone(),
        };
        self.running.remove(&id);
        let failed = match r {
            Report::Work { result, .. } => match result {
                Ok(WorkOutcome::Committed(p)) => {
                    self.provers.insert(id.clone(), p);
                    None
                }
                Ok(WorkOutcome::Declined(_)) => {
                    self.declined.insert(id.clone());
                    None
                }
                Err(e) => Some(e),
            },
            Report::Reveal {
                challenge,
                prover,
                result,
                ..
            } => {
                if let Some(p) = prover {
                    if self
                        .table
                        .jobs
                        .get(&id)
                        .is_some_and(|e| e.stage == Stage::Revealing)
                    {
                        self.provers.insert(id.clone(), p);
                    }
                }
                match result {
                    Ok(tiles) => {
                        if challenge {
                            if let Some(e) = self.table.jobs.get_mut(&id) {
                                e.answered.extend(tiles);
                                e.answered.sort_unstable();
                                e.answered.dedup();
                                self.dirty = true;
                            }
                        }
                        None
                    }
                    Err(e) => Some(e),
                }
            }
        };
        if let Some(e) = failed {
            metrics().step("error");
            self.out()
                .job(&id, &format!("error (retrying at the next block): {e:#}"));
            self.retry_at.insert(id.clone(), self.height + 1);
        }
        self.refresh(&id).await;
        if self.dirty {
            self.save_or_log();
        }
        self.schedule();
    }

    /// Stops: abandons computations (a restart resumes them), finishes the reveals that are due, saves.
    async fn stop(&mut self) {
        self.stopping = true;
        self.out().line("provider stopping: finishing due reveals");
        for (kind, h) in self.running.values() {
            if *kind == Kind::Work {
                h.abort();
            }
        }
        self.running.retain(|_, (k, _)| *k == Kind::Reveal);
        self.schedule();
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        let mut sigint = signal(SignalKind::interrupt()).ok();
        while !self.running.is_empty() {
            tokio::select! {
                Some(r) = self.reports.recv() => self.on_report(r).await,
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!("due reveals did not finish within the grace period");
                    break;
                }
                _ = async { match sigint.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending::<()>().await } } => {
                    tracing::warn!("second interrupt: stopping now");
                    break;
                }
            }
        }
        self.save_or_log();
        self.out().finish();
        self.out()
            .line(&format!("provider stopped: {}", metrics().summary()));
    }
}

/// Whether the job's latest end with a provider is a decline this provider sent (not a missed answer): the
/// block event that re-queues it can arrive before the decline task reports back.
fn declined_by(job: Option<&lode_proto::market::v1::Job>, me: &str) -> bool {
    job.and_then(|j| {
        j.history
            .iter()
            .rev()
            .find(|h| matches!(h.step.as_str(), "failed" | "slashed" | "declined"))
    })
    .is_some_and(|h| h.step == "declined" && h.detail.starts_with(&format!("provider {me}: ")))
}
