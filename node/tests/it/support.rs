//! Running `lode` as a child process with every wait bounded.

use lode_node::config::Config;
use lode_test_ports::PortBlock;
use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

/// Upper bound for any single step of a test.
pub const STEP: Duration = Duration::from_secs(60);

pub fn lode() -> Command {
    clean_env(Command::new(env!("CARGO_BIN_EXE_lode")))
}

/// `lode` run inside the network namespace `netns` (`ip netns exec NETNS lode …`; needs root). `ip` execs
/// `lode`, so the child's pid is `lode`'s and signals reach it.
pub fn lode_in_netns(netns: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", netns, env!("CARGO_BIN_EXE_lode")]);
    clean_env(cmd)
}

fn clean_env(mut cmd: Command) -> Command {
    // Tests must not see the developer's environment.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LODE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "warn");
    cmd
}

/// Runs `lode ARGS…` to completion (bounded by [`STEP`]) and returns its output.
pub fn run_lode(args: &[&str]) -> Output {
    run_lode_within(args, STEP)
}

/// `lode tx send --dry-run` of `amount` from dev0 to `to` through `node`'s API: asserts it succeeded and
/// returns its stdout.
pub fn dry_run_send(node: &SingleNode, to: &str, amount: &str) -> String {
    let out = run_lode(&[
        "tx",
        "send",
        "--from",
        "dev0",
        "--to",
        to,
        "--amount",
        amount,
        "--home",
        path_str(&node.home),
        "--node",
        &node.url,
        "--dry-run",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `lode ARGS…` to completion, SIGKILLing it and panicking after `within`, and returns its output.
pub fn run_lode_within(args: &[&str], within: Duration) -> Output {
    let child = lode()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lode");
    let (tx, rx) = mpsc::channel();
    let pid = child.id();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(within) {
        Ok(out) => out.expect("wait for lode"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("lode {args:?} did not finish within {within:?}");
        }
    }
}

/// Runs `lode ARGS…`, asserts success and returns stdout.
pub fn lode_ok(args: &[&str]) -> String {
    let out = run_lode(args);
    assert!(
        out.status.success(),
        "lode {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `lode init` on a fresh home.
pub fn init_home(home: &Path) {
    lode_ok(&[
        "init",
        "--home",
        path_str(home),
        "--chain-id",
        "lode-test-1",
    ]);
}

/// `lode init` on a fresh home whose one validator listens on a reserved block of loopback ports (p2p, gossip,
/// gRPC and ABCI on ports 0 to 3 of the block) with a 300 ms propose timeout, then `edit` applied. Keep the
/// block alive while the node runs.
pub fn single_validator_home(home: &Path, edit: impl FnOnce(&mut Config)) -> PortBlock {
    init_home(home);
    let ports = PortBlock::reserve();
    let at = |i| SocketAddr::from(([127, 0, 0, 1], ports.port(i)));
    let path = home.join("config.toml");
    let mut config = Config::load(&path).expect("config");
    config.p2p.listen = at(0);
    config.p2p.gossip_listen = at(1);
    config.grpc.listen = at(2);
    config.abci.listen = at(3);
    config.consensus.timeout_propose_ms = 300;
    edit(&mut config);
    config.save(&path).expect("save config");
    ports
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A running `lode abci`; killed (SIGKILL) when dropped.
pub struct AbciNode {
    child: Child,
    pub addr: SocketAddr,
}

impl AbciNode {
    /// Starts `lode abci` on `home` listening on a free loopback port and waits for its address line.
    pub fn start(home: &Path) -> Self {
        Self::start_with(home, &["--listen", "127.0.0.1:0"])
    }

    /// Starts `lode abci --home HOME ARGS…` and waits for its address line.
    pub fn start_with(home: &Path, args: &[&str]) -> Self {
        let mut child = lode()
            .args(["abci", "--home", path_str(home)])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn lode abci");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("abci listening on ") {
                    let _ = tx.send(addr.trim().parse::<SocketAddr>());
                }
            }
        });
        let mut node = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        match rx.recv_timeout(STEP) {
            Ok(Ok(addr)) => node.addr = addr,
            Ok(Err(e)) => panic!("bad address line: {e}"),
            Err(_) => panic!("lode abci printed no address within {STEP:?}"),
        }
        node
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (e.g. "TERM") and waits for the exit status, bounded by [`STEP`].
    pub fn signal_and_wait(mut self, signal: &str) -> ExitStatus {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} failed");
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "lode abci did not exit within {STEP:?} of SIG{signal}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for AbciNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `f` on another thread and panics if it does not finish within [`STEP`] (the ABCI client has no
/// timeouts of its own).
pub fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(STEP) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} did not finish within {STEP:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// A child process (a `lode start`) killed and reaped when dropped, so a failing test leaves nothing running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running one-validator `lode start` on a fresh home (see [`single_validator_home`]): the child (killed when
/// dropped), its gRPC URL, the home, and what must outlive it (temp dir, port block).
pub struct SingleNode {
    _child: KillOnDrop,
    pub url: String,
    pub home: std::path::PathBuf,
    _ports: PortBlock,
    _dir: tempfile::TempDir,
}

impl SingleNode {
    /// Starts the node with `edit` applied to its config, and waits (bounded by [`STEP`]) until it has
    /// committed height 1. Its log goes to `<home>/node.log`.
    pub async fn start(edit: impl FnOnce(&mut Config)) -> SingleNode {
        Self::start_with_genesis(edit, |_| {}).await
    }

    /// [`SingleNode::start`], with `edit_genesis` applied to `genesis.json` (as JSON) first.
    pub async fn start_with_genesis(
        edit: impl FnOnce(&mut Config),
        edit_genesis: impl FnOnce(&mut serde_json::Value),
    ) -> SingleNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let ports = single_validator_home(&home, edit);
        let genesis_path = home.join("genesis.json");
        let mut genesis: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&genesis_path).expect("genesis")).expect("json");
        edit_genesis(&mut genesis);
        std::fs::write(
            &genesis_path,
            serde_json::to_vec_pretty(&genesis).expect("json"),
        )
        .expect("write genesis");
        let log = std::fs::File::create(home.join("node.log")).expect("log");
        let child = KillOnDrop(
            lode()
                .args(["start", "--home", path_str(&home)])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("spawn lode start"),
        );
        let url = format!("http://127.0.0.1:{}", ports.port(2));
        let node = SingleNode {
            _child: child,
            url,
            home,
            _ports: ports,
            _dir: dir,
        };
        node.wait_height(1).await;
        node
    }

    /// The last committed height, or None while the node does not answer.
    pub async fn height(&self) -> Option<u64> {
        use lode_node::services::grpc::pb;
        let mut q = pb::query_service_client::QueryServiceClient::connect(self.url.clone())
            .await
            .ok()?;
        Some(
            q.status(pb::StatusRequest {})
                .await
                .ok()?
                .into_inner()
                .latest_height,
        )
    }

    /// Waits (bounded by [`STEP`]) until the node has committed `height`.
    pub async fn wait_height(&self, height: u64) {
        let deadline = Instant::now() + STEP;
        while self.height().await.is_none_or(|h| h < height) {
            assert!(
                Instant::now() < deadline,
                "node did not reach height {height} within {STEP:?}: {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of the node's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.home.join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// A gRPC channel to the node.
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Channel::from_shared(self.url.clone())
            .expect("url")
            .connect()
            .await
            .expect("connect")
    }
}

/// One HTTP/1.1 exchange with `url` (`http://host:port`; the request must say `Connection: close`): the status
/// line and headers (lower-cased), and the body with any chunked transfer coding removed. Bounded in time (20 s)
/// and size (8 MiB).
pub async fn http(url: &str, request: &[u8]) -> (String, Vec<u8>) {
    http_within(url, request, Duration::from_secs(20)).await
}

/// [`http`] bounded by `limit` instead of 20 s, for an exchange whose server does slow work before it answers
/// (a WebDriver new session starts a browser).
pub async fn http_within(url: &str, request: &[u8], limit: Duration) -> (String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Whether `raw` holds a whole answer: headers, then `content-length` bytes or a last chunk.
    fn complete(raw: &[u8]) -> bool {
        let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let body = &raw[split + 4..];
        if head.contains("transfer-encoding: chunked") {
            return body.starts_with(b"0\r\n\r\n") || body.ends_with(b"\r\n0\r\n\r\n");
        }
        head.lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .is_some_and(|len| body.len() >= len)
    }
    let addr = url.trim_start_matches("http://");
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(request).await.expect("write");
        // Until the server closes, or the whole body has arrived (some servers, chromedriver among them,
        // keep the connection open whatever the request says).
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = s.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
            assert!(raw.len() <= 8 << 20, "an HTTP answer over 8 MiB");
            if complete(&raw) {
                break;
            }
        }
        raw
    };
    let raw = tokio::time::timeout(limit, exchange)
        .await
        .unwrap_or_else(|_| panic!("the HTTP exchange timed out after {} s", limit.as_secs()));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size line");
            let size = usize::from_str_radix(
                std::str::from_utf8(&rest[..line_end])
                    .expect("ascii")
                    .trim(),
                16,
            )
            .expect("chunk size");
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    (head, body)
}

pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")).map(str::trim))
}
