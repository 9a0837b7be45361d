//! Running `lode provider run` as a child process for the whole-system tests, and putting a job's inputs
//! on a node's blob service. Other tests (the multi-provider and cheating scenarios) reuse these.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lode_gpu_verify::MatrixI8;
use lode_node::blobs::client::BlobClient;
use lode_node::keys::KeyFile;

use crate::four_validators_commit_a_transfer::{status, wait_height, Net};
use crate::governance_on_a_devnet::Cli;
use crate::support::{lode, path_str};

/// A devnet of `validators` for the market tests, with verification windows (in blocks; empty blocks come
/// about every second) short enough for a test, started and past height 2, and the CLI on its node 0.
pub async fn market_devnet(
    dir: &Path,
    validators: usize,
    reveal_blocks: u64,
    fraud_window_blocks: u64,
    unbonding_blocks: u64,
) -> (Net, Cli) {
    let net = Net::start_with_genesis(dir, validators, validators, |g| {
        let p = &mut g["app_state"]["params"];
        p["compute"]["reveal_blocks"] = serde_json::json!(reveal_blocks);
        p["compute"]["fraud_window_blocks"] = serde_json::json!(fraud_window_blocks);
        p["market"]["unbonding_blocks"] = serde_json::json!(unbonding_blocks);
    });
    wait_height(&net, 2).await;
    let cli = Cli {
        home: net.homes[0].clone(),
        node: net.grpc[0].clone(),
    };
    (net, cli)
}

/// A running provider daemon: stdout (its `job <id> <step>` lines) and stderr (its log) go to files in its
/// state directory. SIGKILLed when dropped.
pub struct ProviderDaemon {
    child: Option<Child>,
    pub args: Vec<String>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl ProviderDaemon {
    /// `lode provider run --home HOME --from KEY --node URL --backend cpu --state-dir DIR EXTRA…`, with its
    /// output appended to `DIR/stdout.txt` and `DIR/stderr.txt` (so a restart keeps the earlier lines).
    pub fn start(home: &Path, key: &str, node: &str, state_dir: &Path, extra: &[&str]) -> Self {
        std::fs::create_dir_all(state_dir).expect("state dir");
        let mut args: Vec<String> = [
            "provider",
            "run",
            "--home",
            path_str(home),
            "--from",
            key,
            "--node",
            node,
            "--backend",
            "cpu",
            "--state-dir",
            path_str(state_dir),
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut d = ProviderDaemon {
            child: None,
            args,
            stdout: state_dir.join("stdout.txt"),
            stderr: state_dir.join("stderr.txt"),
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let open = |p: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .expect("output file")
        };
        let child = lode()
            .env("RUST_LOG", "info")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(open(&self.stdout))
            .stderr(open(&self.stderr))
            .spawn()
            .expect("spawn lode provider run");
        self.child = Some(child);
    }

    /// Starts the daemon again with the same arguments less `drop_args` (e.g. a test fault flag).
    pub fn restart_without(&mut self, drop_args: &[&str]) {
        assert!(self.child.is_none(), "restart a stopped daemon");
        self.args.retain(|a| !drop_args.contains(&a.as_str()));
        self.spawn();
    }

    /// Its stdout so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Its stdout and the tail of its log, for failure messages.
    pub fn report(&self) -> String {
        let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "--- provider stdout ---\n{}\n--- provider log (tail) ---\n{}",
            self.output(),
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
    }

    /// Waits (at most `within`) for a stdout line containing every one of `parts`; returns the line.
    pub async fn wait_line(&self, parts: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self
                .output()
                .lines()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return l.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no provider line with {parts:?} within {within:?}\n{}",
                self.report()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit; returns whether it exited with status 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                return s.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ProviderDaemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Uploads A and B to the node at `url`, signed by the key file at `key`; returns their roots.
pub async fn upload_inputs(
    url: &str,
    key: &Path,
    a: &MatrixI8,
    b: &MatrixI8,
) -> ([u8; 32], [u8; 32]) {
    let key = KeyFile::load(key).expect("uploader key");
    let chain_id = status(url).await.expect("status").chain_id;
    let channel = tonic::transport::Channel::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut blobs = BlobClient::new(channel);
    let ra = blobs.put_a(&key, &chain_id, a).await.expect("put A");
    let rb = blobs.put_b(&key, &chain_id, b).await.expect("put B");
    (ra, rb)
}
