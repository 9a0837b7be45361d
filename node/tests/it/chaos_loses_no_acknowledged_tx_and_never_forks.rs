//! The chaos harness: four validator processes under a workload of signed transfers (see [`crate::workload`])
//! go through a seeded schedule of faults — SIGKILL and restart of a random validator at a random moment
//! (so some kills land mid-commit), SIGSTOP/SIGCONT, one of four down for a long time, two of four down
//! (the chain must halt, not fork, and resume), a validator wiped and re-synced from genesis — and then:
//!
//! - every tx whose commit a node acknowledged is in the chain at the acknowledged height on every node, and
//!   no tx is in the chain twice;
//! - every node has the same block id and app hash at every height;
//! - every balance and nonce the workload touched equals, to the unit and on every node, what the committed
//!   txs imply, and the supply invariant holds at every node's last height;
//! - once the faults stop, every node commits three more heights within [`LIVENESS`].
//!
//! It prints a table: faults applied, txs acknowledged, lost, forks, longest stall, tx/s.
//!
//! Two profiles, one test: the CI profile (default, a minute or two) and the long one
//! (`LODE_CHAOS=long`: 100 SIGKILL cycles, a minute with one validator down, …), run by hand or nightly:
//!
//! ```text
//! LODE_CHAOS=long cargo nextest run --workspace -E 'test(chaos)' --no-capture
//! ```
//!
//! The seed is printed; `LODE_CHAOS_SEED=<seed>` replays the same schedule (timings still vary).
//!
//! Network partitions and one-way loss (in network namespaces) and clock skew (a test-only clock offset)
//! have their own tests below; equivocating validators, forged sync blocks and flooding gossip peers have
//! theirs elsewhere (`byzantine_proposer`, `malformed_consensus`, `gossip_flood`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lode_node::config::Config;
use lode_state::LodeApp;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::four_validators_commit_a_transfer::{app_hashes_at_common_height, status, Net};
use crate::workload::{assert_verdict, verify, wait_all, Rng, Workload};

/// After the last fault, every node must commit three more heights within this.
const LIVENESS: Duration = Duration::from_secs(30);
/// Validators in the network.
const N: usize = 4;
/// A restarted node that commits no height for this long while behind has stopped catching up.
const STUCK: Duration = Duration::from_secs(60);

/// How much of each fault a run applies.
#[derive(Debug, Clone)]
struct Profile {
    name: &'static str,
    senders: usize,
    max_txs: usize,
    kill_cycles: usize,
    pauses: usize,
    pause_for: Duration,
    one_down_for: Duration,
    two_down_for: Duration,
    wipes: usize,
    /// Bound on a restarted node catching up with the others, in all (see [`STUCK`] for the bound on a
    /// node that stops advancing).
    catch_up: Duration,
}

impl Profile {
    fn from_env() -> Profile {
        match std::env::var("LODE_CHAOS").as_deref() {
            Ok("long") => Profile {
                name: "long",
                senders: 8,
                max_txs: 50_000,
                kill_cycles: 100,
                pauses: 10,
                pause_for: Duration::from_secs(3),
                one_down_for: Duration::from_secs(60),
                two_down_for: Duration::from_secs(20),
                wipes: 3,
                catch_up: Duration::from_secs(900),
            },
            _ => Profile {
                name: "ci",
                senders: 4,
                max_txs: 2_000,
                kill_cycles: 3,
                pauses: 1,
                pause_for: Duration::from_secs(2),
                one_down_for: Duration::from_secs(6),
                two_down_for: Duration::from_secs(4),
                wipes: 1,
                catch_up: Duration::from_secs(90),
            },
        }
    }
}

/// Records the time each new highest height was first seen on any node, polling every 100 ms.
struct Monitor {
    seen: Arc<Mutex<Vec<(Instant, u64)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    fn start(urls: Vec<String>) -> Monitor {
        let seen = Arc::new(Mutex::new(Vec::<(Instant, u64)>::new()));
        let s = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let polls = urls
                    .iter()
                    .map(|u| tokio::time::timeout(Duration::from_millis(500), status(u)));
                let top = futures::future::join_all(polls)
                    .await
                    .into_iter()
                    .filter_map(|r| r.ok().flatten().map(|s| s.latest_height))
                    .max();
                if let Some(top) = top {
                    let mut s = s.lock().expect("lock");
                    if s.last().is_none_or(|&(_, h)| top > h) {
                        s.push((Instant::now(), top));
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Monitor { seen, task }
    }

    fn top(&self) -> u64 {
        self.seen
            .lock()
            .expect("lock")
            .last()
            .map_or(0, |&(_, h)| h)
    }

    /// The longest time between two new heights within `[from, to]`, counting from `from` and up to `to`.
    fn worst_gap(&self, from: Instant, to: Instant) -> Duration {
        let seen = self.seen.lock().expect("lock");
        let mut times: Vec<Instant> = seen
            .iter()
            .map(|&(t, _)| t)
            .filter(|t| *t > from && *t < to)
            .collect();
        times.insert(0, from);
        times.push(to);
        times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    }

    /// The longest time without a new height over the whole run, leaving out the `halts` windows (two of
    /// four down on purpose): a gap that spans a halt counts only its parts outside it.
    fn longest_stall(&self, halts: &[(Instant, Instant)]) -> (Duration, Option<Instant>) {
        let seen = self.seen.lock().expect("lock");
        seen.windows(2)
            .flat_map(|w| {
                let mut parts = vec![(w[0].0, w[1].0)];
                for &(hs, he) in halts {
                    parts = parts
                        .into_iter()
                        .flat_map(|(x, y)| {
                            if y <= hs || x >= he {
                                vec![(x, y)]
                            } else {
                                vec![(x, hs.max(x)), (he.min(y), y)]
                            }
                        })
                        .collect();
                }
                parts
            })
            .map(|(x, y)| (y.saturating_duration_since(x), Some(x)))
            .max()
            .unwrap_or_default()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The network, the schedule's RNG and what was applied.
struct Chaos {
    net: Net,
    rng: Rng,
    profile: Profile,
    monitor: Monitor,
    faults: BTreeMap<&'static str, usize>,
    halts: Vec<(Instant, Instant)>,
    worst_one_down: Duration,
    halt_progress: u64,
    worst_resume: Duration,
    /// The longest re-sync from genesis, and the slowest rate (heights/s).
    resync: Duration,
    resync_rate: f64,
    /// The longest time from a wiped node's restart until it had the chain's current height.
    resync_tip: Duration,
    started: Instant,
    /// When each fault began, and what it was.
    log: Vec<(Instant, String)>,
}

impl Chaos {
    /// Notes the start of a fault, for placing a stall.
    fn begin(&mut self, what: String) {
        self.log.push((Instant::now(), what));
    }

    /// The last fault begun before `at`, and how long before.
    fn fault_before(&self, at: Instant) -> String {
        self.log
            .iter()
            .rev()
            .find(|(t, _)| *t <= at)
            .map_or("none".into(), |(t, what)| {
                format!("{what}, begun {:.1} s before", (at - *t).as_secs_f64())
            })
    }

    fn applied(&mut self, fault: &'static str) {
        *self.faults.entry(fault).or_default() += 1;
    }

    fn sigkill(&mut self, i: usize) {
        if let Some(mut c) = self.net.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn restart(&mut self, i: usize) {
        self.net.children[i] = Some(self.net.spawn(i));
    }

    fn signal(&self, i: usize, signal: Signal) {
        let child = self.net.children[i].as_ref().expect("node running");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        kill(pid, signal).expect("signal");
    }

    async fn sleep_ms(&mut self, lo: u64, hi: u64) {
        let ms = lo + self.rng.below(hi - lo + 1);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// Waits until node `i` has the height the others had when it came back (the time that took is returned:
    /// the re-sync figure), then until it has the chain's current height, so the next fault never finds it
    /// still behind: a node that re-synced from genesis at a few heights/s is far behind the tip by then, and
    /// taking another validator down meanwhile leaves two of four at the tip, which halts the chain (the
    /// ~22 s "stall" of the long runs before this wait). It fails when the node goes [`STUCK`] without
    /// committing a height, or takes longer than the profile's `catch_up` in all (a node re-syncing from
    /// genesis may take a while, but never stops advancing).
    async fn catch_up(&self, i: usize) -> Duration {
        let target = self.monitor.top();
        let within = self.profile.catch_up;
        let started = Instant::now();
        let mut last = (Instant::now(), 0);
        let mut resynced = None;
        loop {
            let h = tokio::time::timeout(Duration::from_secs(2), status(&self.net.grpc[i]))
                .await
                .ok()
                .flatten()
                .map_or(0, |s| s.latest_height);
            if h >= target && resynced.is_none() {
                resynced = Some(started.elapsed());
            }
            let tip = self.monitor.top();
            if let Some(took) = resynced.filter(|_| h >= tip) {
                return took;
            }
            if h > last.1 {
                last = (Instant::now(), h);
            }
            assert!(
                last.0.elapsed() < STUCK && started.elapsed() < within,
                "node {i} did not catch up to height {target} and then the tip ({tip}) (at {h}; {STUCK:?} \
                 without a new height, or over {within:?} in all)\n{}",
                self.net.log_tail(i, 60)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL a random validator at a random moment (some kills land mid-commit), restart it.
    async fn kill_cycle(&mut self) {
        let i = self.rng.below(N as u64) as usize;
        self.sleep_ms(0, 500).await;
        self.begin(format!("SIGKILL node {i}"));
        self.sigkill(i);
        self.sleep_ms(200, 1500).await;
        self.restart(i);
        self.applied("SIGKILL + restart");
        self.catch_up(i).await;
        let n = self.faults["SIGKILL + restart"];
        if n.is_multiple_of(10) {
            self.progress(&format!(
                "{n} SIGKILL cycles, height {}",
                self.monitor.top()
            ));
        }
    }

    /// SIGSTOP a random validator for a while, then SIGCONT.
    async fn pause(&mut self) {
        let i = self.rng.below(N as u64) as usize;
        self.begin(format!("SIGSTOP node {i}"));
        self.signal(i, Signal::SIGSTOP);
        tokio::time::sleep(self.profile.pause_for).await;
        self.signal(i, Signal::SIGCONT);
        self.applied("SIGSTOP / SIGCONT");
        self.catch_up(i).await;
    }

    /// One validator down for a long time; the worst time between heights meanwhile.
    async fn one_down(&mut self) {
        let i = self.rng.below(N as u64) as usize;
        self.begin(format!("node {i} down"));
        self.sigkill(i);
        let from = Instant::now();
        tokio::time::sleep(self.profile.one_down_for).await;
        let to = Instant::now();
        self.worst_one_down = self.worst_one_down.max(self.monitor.worst_gap(from, to));
        self.restart(i);
        self.applied("1 of 4 down");
        self.catch_up(i).await;
        self.progress(&format!(
            "1 of 4 down for {:?}: worst height time {:.2} s",
            self.profile.one_down_for,
            self.worst_one_down.as_secs_f64()
        ));
    }

    /// Two validators down: the chain must halt (at most the block in flight commits), then resume.
    async fn two_down(&mut self) {
        let i = self.rng.below(N as u64) as usize;
        let j = (i + 1 + self.rng.below(N as u64 - 1) as usize) % N;
        let start = Instant::now();
        self.begin(format!("nodes {i} and {j} down"));
        self.sigkill(i);
        self.sigkill(j);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let halted = self.monitor.top();
        tokio::time::sleep(self.profile.two_down_for).await;
        let still = self.monitor.top();
        self.halt_progress = self.halt_progress.max(still.saturating_sub(halted));
        let back = Instant::now();
        self.restart(i);
        self.restart(j);
        self.halts.push((start, back));
        let deadline = back + self.profile.catch_up;
        while self.monitor.top() <= still {
            assert!(
                Instant::now() < deadline,
                "the chain did not resume after two of four came back\n{}",
                self.net.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.worst_resume = self.worst_resume.max(back.elapsed());
        self.applied("2 of 4 down");
        self.progress(&format!(
            "2 of 4 down: +{} heights, resumed after {:.2} s",
            self.halt_progress,
            self.worst_resume.as_secs_f64()
        ));
        self.catch_up(i).await;
        self.catch_up(j).await;
    }

    /// A validator killed, its data and WAL removed, restarted: it re-syncs from genesis.
    async fn wipe(&mut self) {
        let i = self.rng.below(N as u64) as usize;
        self.begin(format!("wipe node {i}"));
        self.sigkill(i);
        // A new disk: the state and blocks (`data/`) and the consensus WAL (`wal/`) are gone; the keys stay.
        for dir in ["data", "wal"] {
            let path = self.net.homes[i].join(dir);
            if path.exists() {
                std::fs::remove_dir_all(&path).expect("wipe");
            }
        }
        self.restart(i);
        self.applied("wipe + resync from genesis");
        let target = self.monitor.top();
        let began = Instant::now();
        let took = self.catch_up(i).await;
        let at_tip = began.elapsed();
        self.resync = self.resync.max(took);
        self.resync_tip = self.resync_tip.max(at_tip);
        self.resync_rate = self
            .resync_rate
            .min(target as f64 / took.as_secs_f64().max(1e-3));
        self.progress(&format!(
            "node {i} re-synced {target} heights from genesis in {:.1} s, at the tip {:.1} s after its restart",
            took.as_secs_f64(),
            at_tip.as_secs_f64()
        ));
    }

    /// A progress line for long runs (the CI profile stays quiet).
    fn progress(&self, what: &str) {
        if self.profile.name == "long" {
            println!(
                "chaos: {:>7.1} s  {what}",
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_under_a_workload_loses_no_acknowledged_tx_and_never_forks() {
    let profile = Profile::from_env();
    let seed = std::env::var("LODE_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!(
        "chaos: profile {}, seed {seed} (LODE_CHAOS_SEED={seed} replays the schedule)",
        profile.name
    );
    let run_started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let net = Net::start_full(dir.path(), N, N, profile.senders, |_| {});
    assert!(
        wait_all(&net.grpc, 2, Duration::from_secs(120)).await,
        "the network did not start\n{}",
        net.logs()
    );
    let workload = Workload::start(&net, profile.senders, profile.max_txs, seed).await;
    let monitor = Monitor::start(net.grpc.clone());
    let mut chaos = Chaos {
        net,
        rng: Rng::new(seed),
        profile: profile.clone(),
        monitor,
        faults: BTreeMap::new(),
        halts: Vec::new(),
        worst_one_down: Duration::ZERO,
        halt_progress: 0,
        worst_resume: Duration::ZERO,
        resync: Duration::ZERO,
        resync_rate: f64::INFINITY,
        resync_tip: Duration::ZERO,
        started: run_started,
        log: Vec::new(),
    };
    workload
        .wait_acked(profile.senders, Duration::from_secs(60))
        .await;

    // The schedule: the long profile's kill cycles are spread between the other faults.
    let spread = profile.kill_cycles / 4;
    for _ in 0..spread {
        chaos.kill_cycle().await;
    }
    for _ in 0..profile.pauses {
        chaos.pause().await;
    }
    for _ in 0..spread {
        chaos.kill_cycle().await;
    }
    chaos.one_down().await;
    for _ in 0..spread {
        chaos.kill_cycle().await;
    }
    chaos.two_down().await;
    for _ in 0..profile.wipes {
        chaos.wipe().await;
    }
    for _ in 0..profile.kill_cycles - 3 * spread {
        chaos.kill_cycle().await;
    }

    // Liveness once the faults stop.
    let faults_stopped = Instant::now();
    let target = chaos.monitor.top() + 3;
    let live = wait_all(&chaos.net.grpc, target, LIVENESS).await;
    let recovered_in = faults_stopped.elapsed();
    assert!(
        live,
        "not every node reached height {target} within {LIVENESS:?} after the faults stopped\n{}",
        chaos.net.logs()
    );
    let before = workload.acked();
    let report = workload.stop().await;
    assert!(report.acked() >= before, "acknowledged txs went missing");
    let verdict = verify(&chaos.net, &report).await;
    let (stall, stall_at) = chaos.monitor.longest_stall(&chaos.halts);
    let stall_where = stall_at.map_or("-".into(), |t| {
        format!(
            "at {:.1} s; last fault: {}",
            (t - run_started).as_secs_f64(),
            chaos.fault_before(t)
        )
    });

    // The supply invariant (and every other module's) at each node's last height, from its database.
    let net = &mut chaos.net;
    net.stop_all();
    let mut invariant_failures = Vec::new();
    for (i, home) in net.homes.iter().enumerate() {
        let app = LodeApp::open(&home.join("data")).expect("open db");
        let record = app.last_commit().expect("initialised");
        if let Err(e) = lode_state::modules::check_invariants(app.store(), record.height) {
            invariant_failures.push(format!("node {i} at height {}: {e}", record.height));
        }
    }
    let (common, hashes) = app_hashes_at_common_height(&net.homes);

    println!(
        "chaos: profile {}, seed {seed}, {N} validators, run {:.1} s",
        profile.name,
        run_started.elapsed().as_secs_f64()
    );
    println!("  {:<34} {:>8}", "fault", "applied");
    for (fault, n) in &chaos.faults {
        println!("  {fault:<34} {n:>8}");
    }
    let rows: Vec<(&str, String)> = vec![
        ("txs acknowledged", report.acked().to_string()),
        ("txs lost", verdict.lost.to_string()),
        ("forks (heights that differ)", verdict.forks.to_string()),
        ("txs committed twice", verdict.twice.to_string()),
        ("balances/nonces wrong", verdict.wrong_balances.to_string()),
        (
            "supply invariant failures",
            invariant_failures.len().to_string(),
        ),
        ("heights compared on every node", verdict.height.to_string()),
        (
            "committed without an ack",
            verdict.unacked_committed.to_string(),
        ),
        ("retried calls", report.retries.to_string()),
        (
            "longest stall (halt excluded)",
            format!("{:.2} s", stall.as_secs_f64()),
        ),
        (
            "worst height time, 1 of 4 down",
            format!("{:.2} s", chaos.worst_one_down.as_secs_f64()),
        ),
        (
            "heights during 2-of-4 halt",
            format!("+{}", chaos.halt_progress),
        ),
        (
            "resume after 2-of-4 halt",
            format!("{:.2} s", chaos.worst_resume.as_secs_f64()),
        ),
        (
            "re-sync from genesis (slowest)",
            format!(
                "{:.1} s, {:.1} h/s, tip {:.1} s",
                chaos.resync.as_secs_f64(),
                chaos.resync_rate,
                chaos.resync_tip.as_secs_f64()
            ),
        ),
        (
            "liveness after faults stop",
            format!(
                "{:.2} s (bound {} s)",
                recovered_in.as_secs_f64(),
                LIVENESS.as_secs()
            ),
        ),
        ("tx/s held", format!("{:.1}", report.tx_per_s())),
    ];
    for (what, value) in rows {
        println!("  {what:<34} {value:>8}");
    }
    println!("  longest stall {stall_where}");

    assert_verdict(&verdict, net);
    assert!(
        invariant_failures.is_empty(),
        "{}",
        invariant_failures.join("\n")
    );
    for (i, hash) in hashes.iter().enumerate() {
        assert_eq!(hash, &hashes[0], "node {i} disagrees at height {common}");
    }
    // At most the block in flight when the second validator died commits during the halt.
    assert!(
        chaos.halt_progress <= 1,
        "the chain advanced {} heights with two of four validators down",
        chaos.halt_progress
    );
    assert!(
        report.acked() > 0 && report.sent.iter().all(|s| s.acked.is_some()),
        "a sender got no answer for its last tx"
    );
}

/// Each validator in its own network namespace, joined to the others by a veth pair on one bridge in this
/// namespace (which the test reaches the nodes' gRPC through). A cut from `a` to `b` is a blackhole route to
/// `b`'s address in `a`'s namespace: `a`'s packets to `b` are dropped in its kernel, so traffic really stops.
/// Everything is removed when dropped.
struct Netns {
    names: Vec<String>,
    bridge: String,
    subnet: u8,
}

/// Runs `ip ARGS…`, returning its error output when it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// Creates `n` namespaces on a bridge, or says why it cannot (not root, no `ip`, no namespaces).
    fn create(n: usize) -> Result<Netns, String> {
        let uid = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| format!("id -u: {e}"))?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("not running as root".into());
        }
        let tag = std::process::id() % 100_000;
        let mut ns = Netns {
            names: Vec::new(),
            bridge: format!("lbr{tag}"),
            // One /24 per test process, so two runs on one machine do not collide.
            subnet: u8::try_from(100 + tag % 100).expect("octet"),
        };
        ip(&["link", "add", &ns.bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", ns.host_ip()),
            "dev",
            &ns.bridge,
        ])?;
        ip(&["link", "set", &ns.bridge, "up"])?;
        for i in 0..n {
            let name = format!("lode{tag}n{i}");
            ip(&["netns", "add", &name])?;
            ns.names.push(name.clone());
            let (host, peer) = (format!("lv{tag}h{i}"), format!("lv{tag}n{i}"));
            ip(&["link", "add", &host, "type", "veth", "peer", "name", &peer])?;
            ip(&["link", "set", &peer, "netns", &name])?;
            ip(&["link", "set", &host, "master", &ns.bridge])?;
            ip(&["link", "set", &host, "up"])?;
            let addr = format!("{}/24", ns.node_ip(i));
            ip(&["-n", &name, "addr", "add", &addr, "dev", &peer])?;
            ip(&["-n", &name, "link", "set", &peer, "up"])?;
            ip(&["-n", &name, "link", "set", "lo", "up"])?;
        }
        Ok(ns)
    }

    fn host_ip(&self) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::new(10, 213, self.subnet, 1)
    }

    fn node_ip(&self, i: usize) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::new(10, 213, self.subnet, 10 + u8::try_from(i).expect("node"))
    }

    /// Drops every packet `from` sends to `to`.
    fn cut(&self, from: usize, to: usize) {
        let dst = format!("{}/32", self.node_ip(to));
        ip(&["-n", &self.names[from], "route", "add", "blackhole", &dst]).expect("cut");
    }

    fn heal(&self, from: usize, to: usize) {
        let dst = format!("{}/32", self.node_ip(to));
        ip(&["-n", &self.names[from], "route", "del", "blackhole", &dst]).expect("heal");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = ip(&["netns", "del", name]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// How much partitioning a run applies.
struct PartitionProfile {
    name: &'static str,
    splits: usize,
    split_for: Duration,
    one_way_for: Duration,
    isolated_for: Duration,
}

impl PartitionProfile {
    fn from_env() -> PartitionProfile {
        match std::env::var("LODE_CHAOS").as_deref() {
            Ok("long") => PartitionProfile {
                name: "long",
                splits: 10,
                split_for: Duration::from_secs(30),
                one_way_for: Duration::from_secs(20),
                isolated_for: Duration::from_secs(20),
            },
            _ => PartitionProfile {
                name: "ci",
                splits: 1,
                split_for: Duration::from_secs(5),
                one_way_for: Duration::from_secs(4),
                isolated_for: Duration::from_secs(4),
            },
        }
    }
}

/// Four validators in network namespaces under the workload: a 2|2 partition (no block may commit, then the
/// chain resumes when it heals), one-way loss from one validator to another and one validator cut off from
/// all (the other three stay live), then the same checks as the chaos run. Needs root and `ip netns`, so it
/// is ignored by default (nextest lists it as skipped) and `scripts/test.sh` runs it where a namespace can
/// be made; run by hand, it fails when namespaces are unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it where `ip netns add` works"]
async fn chaos_partitions_in_network_namespaces_halt_and_heal_without_a_fork() {
    let profile = PartitionProfile::from_env();
    let ns = Netns::create(N).unwrap_or_else(|why| panic!("network namespaces unavailable: {why}"));
    let run_started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut net = Net::start_full(dir.path(), N, 0, 4, |_| {});
    // Every address a node listens on or dials moves to its namespace's address (ports stay).
    let moved = |a: SocketAddr, ip: std::net::Ipv4Addr| SocketAddr::new(ip.into(), a.port());
    let node_of = |a: &SocketAddr, all: &[SocketAddr]| all.iter().position(|p| p == a);
    let consensus: Vec<SocketAddr> = net
        .homes
        .iter()
        .map(|h| {
            Config::load(&h.join("config.toml"))
                .expect("config")
                .p2p
                .listen
        })
        .collect();
    let gossip: Vec<SocketAddr> = net
        .homes
        .iter()
        .map(|h| {
            Config::load(&h.join("config.toml"))
                .expect("config")
                .p2p
                .gossip_listen
        })
        .collect();
    for (i, home) in net.homes.iter().enumerate() {
        let path = home.join("config.toml");
        let mut c = Config::load(&path).expect("config");
        c.p2p.listen = moved(c.p2p.listen, ns.node_ip(i));
        c.p2p.gossip_listen = moved(c.p2p.gossip_listen, ns.node_ip(i));
        c.grpc.listen = moved(c.grpc.listen, ns.node_ip(i));
        for p in c.p2p.persistent_peers.iter_mut() {
            let j = node_of(p, &consensus).expect("a peer of the testnet");
            *p = moved(*p, ns.node_ip(j));
        }
        for p in c.p2p.gossip_peers.iter_mut() {
            let j = node_of(p, &gossip).expect("a gossip peer of the testnet");
            *p = moved(*p, ns.node_ip(j));
        }
        net.grpc[i] = format!("http://{}", c.grpc.listen);
        c.save(&path).expect("save config");
    }
    net.netns = ns.names.clone();
    for i in 0..N {
        net.children[i] = Some(net.spawn(i));
    }
    assert!(
        wait_all(&net.grpc, 2, Duration::from_secs(120)).await,
        "the network in namespaces did not start\n{}",
        net.logs()
    );
    let workload = Workload::start(&net, 4, 2_000, 7).await;
    let monitor = Monitor::start(net.grpc.clone());
    workload.wait_acked(4, Duration::from_secs(60)).await;

    let resumed = |from: u64, within: Duration| {
        let monitor = &monitor;
        async move {
            let deadline = Instant::now() + within;
            while monitor.top() <= from {
                if Instant::now() > deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            true
        }
    };

    // 2|2: neither side has more than 2/3 of the power, so nothing commits until it heals.
    let mut halts = Vec::new();
    let mut split_progress = 0;
    let mut recoveries = Vec::new();
    for _ in 0..profile.splits {
        let start = Instant::now();
        for (a, b) in [(0, 2), (0, 3), (1, 2), (1, 3)] {
            ns.cut(a, b);
            ns.cut(b, a);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let halted = monitor.top();
        tokio::time::sleep(profile.split_for).await;
        let still = monitor.top();
        split_progress = split_progress.max(still.saturating_sub(halted));
        for (a, b) in [(0, 2), (0, 3), (1, 2), (1, 3)] {
            ns.heal(a, b);
            ns.heal(b, a);
        }
        let healed = Instant::now();
        halts.push((start, healed));
        assert!(
            resumed(still, Duration::from_secs(120)).await,
            "the chain did not resume within 120 s of the partition healing\n{}",
            net.logs()
        );
        recoveries.push(healed.elapsed());
    }

    // One-way loss 0 -> 1, then node 3 cut off from everyone: three validators keep committing.
    let mut worst_degraded = Duration::ZERO;
    for (cuts, hold) in [
        (vec![(0, 1)], profile.one_way_for),
        (
            vec![(3, 0), (3, 1), (3, 2), (0, 3), (1, 3), (2, 3)],
            profile.isolated_for,
        ),
    ] {
        for &(a, b) in &cuts {
            ns.cut(a, b);
        }
        let from = Instant::now();
        let before = monitor.top();
        tokio::time::sleep(hold).await;
        let to = Instant::now();
        assert!(
            monitor.top() > before,
            "no height committed while cutting {cuts:?}\n{}",
            net.logs()
        );
        worst_degraded = worst_degraded.max(monitor.worst_gap(from, to));
        for &(a, b) in &cuts {
            ns.heal(a, b);
        }
    }

    let faults_stopped = Instant::now();
    let target = monitor.top() + 3;
    assert!(
        wait_all(&net.grpc, target, Duration::from_secs(120)).await,
        "not every node reached height {target} after the partitions healed\n{}",
        net.logs()
    );
    let recovered_in = faults_stopped.elapsed();
    let report = workload.stop().await;
    let verdict = verify(&net, &report).await;
    let (stall, _) = monitor.longest_stall(&halts);
    net.stop_all();
    let (common, hashes) = app_hashes_at_common_height(&net.homes);

    println!(
        "chaos partitions: profile {}, {N} validators in network namespaces, run {:.1} s",
        profile.name,
        run_started.elapsed().as_secs_f64()
    );
    let worst_recovery = recoveries.iter().max().copied().unwrap_or_default();
    let rows: Vec<(&str, String)> = vec![
        (
            "2|2 partitions",
            format!("{} x {} s", profile.splits, profile.split_for.as_secs()),
        ),
        ("one-way loss, isolated node", "1, 1".to_string()),
        (
            "heights during a 2|2 partition",
            format!("+{split_progress}"),
        ),
        (
            "worst recovery after heal",
            format!("{:.2} s", worst_recovery.as_secs_f64()),
        ),
        (
            "worst height time, degraded",
            format!("{:.2} s", worst_degraded.as_secs_f64()),
        ),
        ("txs acknowledged", report.acked().to_string()),
        ("txs lost", verdict.lost.to_string()),
        ("forks (heights that differ)", verdict.forks.to_string()),
        ("txs committed twice", verdict.twice.to_string()),
        ("balances/nonces wrong", verdict.wrong_balances.to_string()),
        (
            "longest stall (splits excluded)",
            format!("{:.2} s", stall.as_secs_f64()),
        ),
        (
            "liveness after heal",
            format!("{:.2} s", recovered_in.as_secs_f64()),
        ),
        ("tx/s held", format!("{:.1}", report.tx_per_s())),
    ];
    for (what, value) in rows {
        println!("  {what:<34} {value:>10}");
    }
    assert_verdict(&verdict, &net);
    for (i, hash) in hashes.iter().enumerate() {
        assert_eq!(hash, &hashes[0], "node {i} disagrees at height {common}");
    }
    assert!(
        split_progress <= 1,
        "{split_progress} heights committed during a 2|2 partition"
    );
    assert!(
        report.acked() > 0 && report.sent.iter().all(|s| s.acked.is_some()),
        "a sender got no answer for its last tx"
    );
}

/// The consensus address of node `i`'s validator key (the `proposer` of the blocks it proposes).
fn proposer_address(net: &Net, i: usize) -> Vec<u8> {
    let key = lode_node::keys::KeyFile::load(&net.homes[i].join("keys/validator_key.json"))
        .expect("validator key")
        .signing_key()
        .expect("signing key");
    let pk = lode_consensus::types::PublicKey(key.verification_key().to_bytes());
    lode_consensus::Address::from_public_key(&pk).0.to_vec()
}

/// How often a node's log says it refused a proposal for a time ahead of its clock.
fn time_ahead_refusals(net: &Net, i: usize) -> usize {
    std::fs::read_to_string(net.homes[i].join("node.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("rejecting invalid proposal") && l.contains("block_time_ahead"))
        .count()
}

/// One skew phase: node `i` restarted with `offset_ms`, then `heights` new heights on the chain (bounded).
/// Returns the first and last height of the phase, counted once the node had caught up.
async fn skew_phase(
    net: &mut Net,
    monitor: &Monitor,
    i: usize,
    offset_ms: i64,
    heights: u64,
) -> (u64, u64, u64) {
    if let Some(mut c) = net.children[i].take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    // Where the look for blocks of node `i` under its new clock may start from, at the earliest (the
    // monitor may trail the tip, which only makes that look longer).
    let killed_at = monitor.top();
    // The other nodes' committed tip right after the kill, asked directly (the monitor polls, and may trail
    // it by a few heights when blocks are fast). Node `i` may have committed one height more than them (the
    // others decided it but had not committed yet), and a proposal it made for the height after that can
    // still be decided once it is dead: the phase starts past both, at that tip + 3.
    let tip_at_kill = live_tip(&net.grpc, i).await;
    net.clock_offset_ms[i] = offset_ms;
    net.children[i] = Some(net.spawn(i));
    // Back in the validator set's rotation: wait until it has the others' current height, asked afresh each
    // time (or 30 s: a node skewed behind refuses live proposals and may trail, which the phase tolerates).
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let h = tokio::time::timeout(Duration::from_secs(2), status(&net.grpc[i]))
            .await
            .ok()
            .flatten()
            .map_or(0, |s| s.latest_height);
        if h >= live_tip(&net.grpc, i).await.max(monitor.top()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let from = (monitor.top() + 1).max(tip_at_kill + 3);
    let to = from + heights;
    let deadline = Instant::now() + Duration::from_secs(120);
    while monitor.top() < to {
        assert!(
            Instant::now() < deadline,
            "the chain did not commit {heights} heights with node {i} skewed by {offset_ms} ms (at {})\n{}",
            monitor.top(),
            net.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (killed_at, from, to)
}

/// The highest committed height of the nodes other than `except`, each asked now (2 s at most each).
async fn live_tip(grpc: &[String], except: usize) -> u64 {
    let polls = grpc
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != except)
        .map(|(_, u)| tokio::time::timeout(Duration::from_secs(2), status(u)));
    futures::future::join_all(polls)
        .await
        .into_iter()
        .filter_map(|r| r.ok().flatten().map(|s| s.latest_height))
        .max()
        .unwrap_or(0)
}

/// The proposer and time (ns since the epoch) of each block in `from..=to`, read from node `at`.
async fn proposers_and_times(net: &Net, at: usize, from: u64, to: u64) -> Vec<(Vec<u8>, i128)> {
    let ch = crate::workload::channel(&net.grpc[at])
        .await
        .expect("channel");
    let mut out = Vec::new();
    for h in from..=to {
        let deadline = Instant::now() + Duration::from_secs(30);
        let b = loop {
            if let Some(b) = crate::workload::get_block(&ch, h).await {
                break b;
            }
            assert!(Instant::now() < deadline, "node {at} has no block {h}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let header = b.header.expect("header");
        let t = header.time.expect("time");
        out.push((
            header.proposer,
            i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos),
        ));
    }
    out
}

/// Clock skew on one validator under the workload (a test-only offset, `LODE_TEST_CLOCK_OFFSET_MS`):
///
/// - ahead by half of `max_clock_drift_ms`: its proposals are within the bound, accepted and committed;
/// - ahead by three times the bound: every other validator refuses its proposals (`block_time_ahead`), none
///   of its blocks commits, and the other three keep the chain live (its rounds time out to the next
///   proposer);
/// - behind by three times the bound: its own proposals still carry a time after the last block's (BFT
///   time never goes back), but it refuses every other proposer's block as ahead of its clock; the other
///   three are more than 2/3 of the power, so the chain stays live.
///
/// Then the same checks as the chaos run: no acknowledged tx lost, none twice, the same block ids and app
/// hashes on every node, balances and nonces to the unit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_clock_skew_within_the_drift_bound_is_harmless_and_beyond_it_is_refused() {
    const SKEWED: usize = 3;
    const HEIGHTS: u64 = 12;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut net = Net::start_full(dir.path(), N, N, 4, |_| {});
    let drift_ms = Config::load(&net.homes[0].join("config.toml"))
        .expect("config")
        .consensus
        .max_clock_drift_ms;
    let drift = i64::try_from(drift_ms).expect("drift");
    assert!(
        wait_all(&net.grpc, 2, Duration::from_secs(120)).await,
        "the network did not start\n{}",
        net.logs()
    );
    let workload = Workload::start(&net, 4, 2_000, 11).await;
    let monitor = Monitor::start(net.grpc.clone());
    workload.wait_acked(4, Duration::from_secs(60)).await;
    let skewed = proposer_address(&net, SKEWED);
    let refusals_before: usize = (0..N)
        .filter(|&j| j != SKEWED)
        .map(|j| time_ahead_refusals(&net, j))
        .sum();

    // Ahead, within the bound.
    let (killed_at, from, to) = skew_phase(&mut net, &monitor, SKEWED, drift / 2, HEIGHTS).await;
    let within = proposers_and_times(&net, 0, from, to).await;
    let within_by_skewed = within.iter().filter(|(p, _)| *p == skewed).count();
    // Its blocks carry its clock: its first block after the restart is ahead of the previous block (true
    // time) by about the offset. The blocks after that one carry its time too (BFT time never goes back), so
    // the look starts where it was killed: it may propose while it catches up, before `from`.
    let ahead_by = proposers_and_times(&net, 0, killed_at, to)
        .await
        .windows(2)
        .filter(|w| w[1].0 == skewed)
        .map(|w| w[1].1 - w[0].1)
        .max()
        .unwrap_or(0);

    // Ahead, beyond the bound.
    let (_, from, to) = skew_phase(&mut net, &monitor, SKEWED, 3 * drift, HEIGHTS).await;
    let beyond = proposers_and_times(&net, 0, from, to).await;
    let beyond_by_skewed = beyond.iter().filter(|(p, _)| *p == skewed).count();
    let refused: usize = (0..N)
        .filter(|&j| j != SKEWED)
        .map(|j| time_ahead_refusals(&net, j))
        .sum::<usize>()
        - refusals_before;

    // Behind, beyond the bound.
    let own_before = time_ahead_refusals(&net, SKEWED);
    let (_, from, to) = skew_phase(&mut net, &monitor, SKEWED, -3 * drift, HEIGHTS).await;
    let behind = proposers_and_times(&net, 0, from, to).await;
    let behind_by_skewed = behind.iter().filter(|(p, _)| *p == skewed).count();
    let refused_by_skewed = time_ahead_refusals(&net, SKEWED) - own_before;

    // Back to the true clock; everyone catches up.
    net.clock_offset_ms[SKEWED] = 0;
    if let Some(mut c) = net.children[SKEWED].take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    net.children[SKEWED] = Some(net.spawn(SKEWED));
    let target = monitor.top() + 3;
    assert!(
        wait_all(&net.grpc, target, Duration::from_secs(120)).await,
        "not every node reached height {target} after the skew ended\n{}",
        net.logs()
    );
    let report = workload.stop().await;
    let verdict = verify(&net, &report).await;
    net.stop_all();
    let (common, hashes) = app_hashes_at_common_height(&net.homes);

    println!(
        "chaos clock skew: {N} validators, max_clock_drift_ms {drift_ms}, node {SKEWED} skewed"
    );
    let rows: Vec<(String, String)> = vec![
        (
            format!("+{} ms: its blocks / heights", drift / 2),
            format!("{within_by_skewed} / {}", within.len()),
        ),
        (
            "+ its block time over the previous".into(),
            format!("{:.2} s", ahead_by as f64 / 1e9),
        ),
        (
            format!("+{} ms: its blocks / heights", 3 * drift),
            format!("{beyond_by_skewed} / {}", beyond.len()),
        ),
        ("  refusals (block_time_ahead)".into(), refused.to_string()),
        (
            format!("-{} ms: its blocks / heights", 3 * drift),
            format!("{behind_by_skewed} / {}", behind.len()),
        ),
        (
            "  proposals it refused".into(),
            refused_by_skewed.to_string(),
        ),
        ("txs acknowledged".into(), report.acked().to_string()),
        ("txs lost".into(), verdict.lost.to_string()),
        (
            "forks (heights that differ)".into(),
            verdict.forks.to_string(),
        ),
    ];
    for (what, value) in rows {
        println!("  {what:<38} {value:>8}");
    }
    assert_verdict(&verdict, &net);
    for (i, hash) in hashes.iter().enumerate() {
        assert_eq!(hash, &hashes[0], "node {i} disagrees at height {common}");
    }
    assert!(
        within_by_skewed > 0,
        "no block of the validator skewed within the bound committed in {} heights",
        within.len()
    );
    assert!(
        ahead_by >= i128::from(drift / 4) * 1_000_000,
        "the skewed validator's blocks do not carry its clock (at most {ahead_by} ns after the previous)"
    );
    assert_eq!(
        beyond_by_skewed, 0,
        "a block of the validator skewed beyond the bound committed"
    );
    assert!(
        refused > 0,
        "no validator refused the proposals of the validator skewed beyond the bound"
    );
    assert!(
        refused_by_skewed > 0,
        "the validator skewed behind refused no proposal"
    );
}
