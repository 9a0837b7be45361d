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
    /// Consensus propose timeout in milliseconds (prevote/precommit get half of it).
    #[arg(long, default_value_t = 300)]
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
fn stop_children(children: &mut [Child]) {
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
