//! `lode devnet`: start a local N-validator network (one `lode start` process per validator, homes laid
//! out by `lode testnet init`'s code) with funded dev accounts, and report its height until Ctrl-C.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use eyre::WrapErr;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::testnet::{print_dev_accounts, NetArgs};
use crate::services::grpc::pb::{self, query_service_client::QueryServiceClient};
use crate::testnet;

#[derive(Debug, Args)]
pub(super) struct DevnetArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Directory of the devnet (reused if it exists).
    #[arg(long, default_value_os_t = testnet::default_dir())]
    dir: PathBuf,
    /// Delete the directory first and start from genesis.
    #[arg(long)]
    reset: bool,
    #[command(flatten)]
    net: NetArgs,
}

/// A throwaway devnet for a benchmark (`lode bench`, `lode blob bench`): created in a fresh directory under
/// the system temp dir, one `lode start` child process of this binary per validator, each logging to
/// `<home>/node.log`. [`BenchNet::finish`] stops them and removes the directory unless kept.
pub(super) struct BenchNet {
    /// The devnet's directory.
    pub dir: PathBuf,
    /// The validators.
    pub nodes: Vec<testnet::TestnetNode>,
    /// The funded dev accounts' keys.
    pub keys: Vec<crate::keys::KeyFile>,
    children: Vec<Child>,
}

impl BenchNet {
    /// Creates `spec`'s devnet in `<temp>/<prefix>-<pid>` and starts its validators with `RUST_LOG=log`.
    pub(super) fn start(
        prefix: &str,
        spec: &testnet::TestnetSpec,
        log: &str,
    ) -> eyre::Result<Self> {
        Self::start_with(prefix, spec, log, |_| {})
    }

    /// [`BenchNet::start`], with `tweak` applied to every validator's config before it starts.
    pub(super) fn start_with(
        prefix: &str,
        spec: &testnet::TestnetSpec,
        log: &str,
        tweak: impl Fn(&mut crate::config::Config),
    ) -> eyre::Result<Self> {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let nodes = testnet::create(&dir, spec)?;
        for n in &nodes {
            let path = n.home.join("config.toml");
            let mut config = crate::config::Config::load(&path)?;
            tweak(&mut config);
            config.save(&path)?;
        }
        let keys = testnet::dev_keys(&dir)?;
        let exe = std::env::current_exe()?;
        let mut net = Self {
            dir,
            nodes,
            keys,
            children: Vec::new(),
        };
        for n in &net.nodes {
            let out = std::fs::File::create(n.home.join("node.log"))?;
            let child = Command::new(&exe)
                .args(["start", "--home"])
                .arg(&n.home)
                .env("RUST_LOG", log)
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn();
            match child {
                Ok(c) => net.children.push(c),
                Err(e) => {
                    net.finish(false);
                    return Err(e.into());
                }
            }
        }
        Ok(net)
    }

    /// The validators' gRPC URLs.
    pub(super) fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("http://{}", n.grpc))
            .collect()
    }

    /// The validators' process ids, in node order.
    pub(super) fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// CPU seconds (user + system) the validators and this process have used so far: what a benchmark
    /// spends, read before and after its timed part. A validator whose `/proc` entry cannot be read counts 0.
    pub(super) fn cpu_seconds(&self) -> f64 {
        let ticks = ticks_per_second();
        self.pids()
            .into_iter()
            .chain(std::iter::once(std::process::id()))
            .map(|pid| cpu_seconds(pid, ticks).unwrap_or(0.0))
            .sum()
    }

    /// Stops the validators; removes the directory unless `keep` (then says where it is).
    pub(super) fn finish(mut self, keep: bool) {
        stop_children(&mut self.children);
        if keep {
            super::say!("devnet kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
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

/// Starts (or restarts) the devnet under `--dir` and reports its height until SIGINT or SIGTERM.
/// A devnet made by an older `lode` may hold a genesis this version refuses (e.g. before genesis validators
/// were staking validators): say so, and how to start over, instead of starting validators that exit at once.
fn check_reusable(dir: &std::path::Path) -> eyre::Result<()> {
    let home = crate::home::Home::new(testnet::node_home(dir, 0));
    let problem = match lode_genesis::Genesis::load(home.genesis_path()) {
        Err(e) => Some(e.to_string()),
        Ok(g) => {
            let issues = g.validate();
            (!issues.is_empty()).then(|| {
                issues
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        }
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(eyre::eyre!(
            "the devnet at {} was made by another version of lode and this one refuses its genesis ({p}); \
             start over with --reset (this deletes its chain and keys)",
            dir.display()
        )),
    }
}

pub(super) fn run(args: &DevnetArgs) -> eyre::Result<()> {
    if args.reset && args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .wrap_err_with(|| format!("cannot remove {}", args.dir.display()))?;
    }
    let nodes = if testnet::node_home(&args.dir, 0)
        .join("config.toml")
        .exists()
    {
        super::say!(
            "reusing devnet at {} (pass --reset to start over)",
            args.dir.display()
        );
        let nodes = testnet::load(&args.dir)?;
        check_reusable(&args.dir)?;
        if !args.dir.join(testnet::MANIFEST).exists() {
            // Made before devnets described themselves: its dev keys' origin is unknown.
            testnet::write_manifest(&args.dir, None)?;
        }
        nodes
    } else {
        std::fs::create_dir_all(&args.dir)?;
        super::say!("creating devnet at {}", args.dir.display());
        testnet::create(&args.dir, &args.net.spec(args.validators))?
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
    super::emit(super::testnet::manifest(&args.dir)?, || {
        println!(
            "started {} validators (logs: <dir>/node<i>/node.log)",
            nodes.len()
        );
        for n in &nodes {
            println!("  {}  grpc http://{}", n.home.display(), n.grpc);
        }
    })?;
    if !super::json_output() {
        print_dev_accounts(&args.dir)?;
        println!("explorer: http://{}/explorer/", nodes[0].grpc);
        println!("try: lode tx send --from dev0 --to <lode1…> --amount 1000 --wait");
        println!("Ctrl-C stops the devnet");
    }

    let url = format!("http://{}", nodes[0].grpc);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let mut last = u64::MAX;
        // A spinner (on a terminal only) until the first block, which takes a few seconds.
        let spinner =
            indicatif::ProgressBar::new_spinner().with_message("waiting for the first block");
        spinner.enable_steady_tick(Duration::from_millis(120));
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
                    if s.latest_height != last && s.latest_height > 0 {
                        last = s.latest_height;
                        spinner.finish_and_clear();
                        if super::json_output() {
                            println!(
                                "{}",
                                serde_json::json!({
                                    "height": s.latest_height,
                                    "app_hash": hex::encode_upper(&s.app_hash),
                                    "mempool_txs": s.mempool_txs,
                                })
                            );
                        } else {
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
        }
    });
    super::say!("stopping validators…");
    stop_children(&mut children);
    super::say!("devnet stopped; data kept in {}", args.dir.display());
    result
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
pub(super) fn cpu_seconds(pid: u32, ticks_per_second: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_second)
}

pub(super) fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_of_this_process_are_read_from_proc() {
        let ticks = ticks_per_second();
        assert!(ticks >= 1.0);
        let before = cpu_seconds(std::process::id(), ticks).expect("own stat");
        // Spin until the process has used 0.1 s of CPU. A fixed wall-clock spin failed on a loaded machine
        // (two cores shared with compilers got this thread < 0.1 s of CPU in 300 ms); the wall clock only
        // bounds the loop.
        let t = Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after - before < 0.1 && t.elapsed() < Duration::from_secs(30) {
            for _ in 0..1_000_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            after = cpu_seconds(std::process::id(), ticks).expect("own stat");
        }
        std::hint::black_box(x);
        assert!(after - before >= 0.1, "{before} -> {after}");
    }
}
