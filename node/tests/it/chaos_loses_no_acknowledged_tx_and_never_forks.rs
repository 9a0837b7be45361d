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
//! Not yet covered (see issue 16): network partitions and one-way loss (needs network namespaces), clock
//! skew (the node has no injectable clock offset), equivocating validators, forged sync blocks, flooding
//! gossip peers (the last three have their own tests: `byzantine_proposer`, `malformed_consensus`,
//! `gossip_flood`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lode_state::LodeApp;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::four_validators_commit_a_transfer::{app_hashes_at_common_height, status, Net};
use crate::workload::{assert_verdict, verify, wait_all, Rng, Workload};

/// After the last fault, every node must commit three more heights within this.
const LIVENESS: Duration = Duration::from_secs(30);
/// Validators in the network.
const N: usize = 4;

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
    /// Bound on a restarted node catching up with the others.
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
                catch_up: Duration::from_secs(180),
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
    fn longest_stall(&self, halts: &[(Instant, Instant)]) -> Duration {
        let seen = self.seen.lock().expect("lock");
        seen.windows(2)
            .map(|w| {
                let (a, b) = (w[0].0, w[1].0);
                let mut parts = vec![(a, b)];
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
                    .into_iter()
                    .map(|(x, y)| y.saturating_duration_since(x))
                    .max()
                    .unwrap_or_default()
            })
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
}

impl Chaos {
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

    /// Waits (bounded) until node `i` has the height the others had when it came back.
    async fn catch_up(&self, i: usize) {
        let target = self.monitor.top();
        let within = self.profile.catch_up;
        assert!(
            wait_all(&self.net.grpc[i..=i], target, within).await,
            "node {i} did not catch up to height {target} within {within:?}\n{}",
            self.net.log_tail(i, 60)
        );
    }

    /// SIGKILL a random validator at a random moment (some kills land mid-commit), restart it.
    async fn kill_cycle(&mut self) {
        let i = self.rng.below(N as u64) as usize;
        self.sleep_ms(0, 500).await;
        self.sigkill(i);
        self.sleep_ms(200, 1500).await;
        self.restart(i);
        self.applied("SIGKILL + restart");
        self.catch_up(i).await;
    }

    /// SIGSTOP a random validator for a while, then SIGCONT.
    async fn pause(&mut self) {
        let i = self.rng.below(N as u64) as usize;
        self.signal(i, Signal::SIGSTOP);
        tokio::time::sleep(self.profile.pause_for).await;
        self.signal(i, Signal::SIGCONT);
        self.applied("SIGSTOP / SIGCONT");
        self.catch_up(i).await;
    }

    /// One validator down for a long time; the worst time between heights meanwhile.
    async fn one_down(&mut self) {
        let i = self.rng.below(N as u64) as usize;
        self.sigkill(i);
        let from = Instant::now();
        tokio::time::sleep(self.profile.one_down_for).await;
        let to = Instant::now();
        self.worst_one_down = self.worst_one_down.max(self.monitor.worst_gap(from, to));
        self.restart(i);
        self.applied("1 of 4 down");
        self.catch_up(i).await;
    }

    /// Two validators down: the chain must halt (at most the block in flight commits), then resume.
    async fn two_down(&mut self) {
        let i = self.rng.below(N as u64) as usize;
        let j = (i + 1 + self.rng.below(N as u64 - 1) as usize) % N;
        let start = Instant::now();
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
        self.catch_up(i).await;
        self.catch_up(j).await;
    }

    /// A validator killed, its data and WAL removed, restarted: it re-syncs from genesis.
    async fn wipe(&mut self) {
        let i = self.rng.below(N as u64) as usize;
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
        self.catch_up(i).await;
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
    let stall = chaos.monitor.longest_stall(&chaos.halts);

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
