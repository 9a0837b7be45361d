//! The `lode` command line: one module per command group.

mod abci;
mod bench;
mod bench_heights;
mod blob;
mod client;
mod devnet;
mod events;
mod init;
mod job;
mod keys;
mod provider;
mod sim;
mod start;
mod testnet;
mod tx;

use std::{io::IsTerminal, path::PathBuf};

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::home::{default_home, Home};

/// Lode: a blockchain for sharing GPU compute.
#[derive(Debug, Parser)]
#[command(name = "lode", version, about, propagate_version = true)]
pub struct Cli {
    /// Log filter (`info`, `debug`, `lode_node=debug,warn`, ...); `RUST_LOG` overrides it.
    #[arg(long, global = true, env = "LODE_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// How results are printed: `text` for people, `json` for scripts (stable field names; one JSON
    /// document per result, one line per item for streams).
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Text, env = "LODE_OUTPUT")]
    pub output: Output,
    #[command(subcommand)]
    command: Command,
}

/// How a command prints its results (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    /// Lines for people.
    #[default]
    Text,
    /// JSON for scripts.
    Json,
}

static OUTPUT: std::sync::OnceLock<Output> = std::sync::OnceLock::new();

/// Whether this process prints JSON (`-o json`).
pub(crate) fn json_output() -> bool {
    OUTPUT.get().copied().unwrap_or_default() == Output::Json
}

/// Prints one result: `value` (pretty JSON) under `-o json`, else runs `text`.
pub(crate) fn emit(value: serde_json::Value, text: impl FnOnce()) -> eyre::Result<()> {
    if json_output() {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        text();
    }
    Ok(())
}

/// A progress or status line for people: stdout under `-o text`, stderr under `-o json` (so stdout stays
/// parseable).
macro_rules! say {
    ($($arg:tt)*) => {
        if $crate::cli::json_output() {
            eprintln!($($arg)*);
        } else {
            println!($($arg)*);
        }
    };
}
pub(crate) use say;

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a node home: config, node and validator keys, a one-validator genesis with a funded dev account.
    Init(init::InitArgs),
    /// Manage key files in the home's `keys/` directory.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Serve the application over the ABCI socket so a CometBFT v0.38 node can drive it.
    Abci(abci::AbciArgs),
    /// Run a validator node: consensus, mempool, gossip and the gRPC API.
    Start(start::StartArgs),
    /// Local multi-validator networks.
    #[command(subcommand)]
    Testnet(testnet::TestnetCommand),
    /// Start a local N-validator devnet (one OS process per validator) with funded dev accounts.
    Devnet(devnet::DevnetArgs),
    /// Build, sign and broadcast transactions.
    #[command(subcommand)]
    Tx(Box<tx::TxCommand>),
    /// Query a node.
    Query(client::QueryArgs),
    /// GPU providers: list and benchmark this machine's devices, run the provider daemon.
    #[command(subcommand)]
    Provider(provider::ProviderCommand),
    /// Job data: put, get and stat blobs (job matrices addressed by their Merkle roots).
    #[command(subcommand)]
    Blob(blob::BlobCommand),
    /// Consumers' GPU jobs: submit (upload, post, follow), check the result in full, get, list, cancel,
    /// validate.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Follow committed blocks and tx results (one JSON line per height), from a past height or live.
    Events(events::EventsArgs),
    /// Load-test a fresh local devnet: signed transfers over gRPC, finalized tx/s and commit latency.
    Bench(bench::BenchArgs),
    /// The long-run benchmark: N heights (20,000 by default) on a fresh four-validator devnet, empty or
    /// lightly loaded; heights/s and CPU seconds per height per node for each tenth of the run.
    BenchHeights(bench_heights::BenchHeightsArgs),
    /// Deterministic simulations of protocol rules (`power`: proof-of-useful-compute voting power).
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// Print a shell completion script: `lode completions bash > /etc/bash_completion.d/lode`, or for zsh
    /// into a directory on `$fpath` as `_lode`, or for fish into `~/.config/fish/completions/lode.fish`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// A command's failure with its own exit status (`lode job` documents its statuses); `main` exits with
/// `code` after printing `message`. Other errors exit with 1.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl Exit {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Exit {
            code,
            message: message.into(),
        }
    }
}

/// `--home`, shared by every command.
#[derive(Debug, Clone, Args)]
pub struct HomeArg {
    /// The node's home directory.
    #[arg(long, env = "LODE_HOME", default_value_os_t = default_home())]
    pub home: PathBuf,
}

impl HomeArg {
    /// The home this argument names.
    /// The home and its `config.toml`, with tracing started at the config's level unless `log_level` is
    /// given. Commands that run a node share this start-up.
    pub(super) fn load_and_init_tracing(
        &self,
        log_level: Option<&str>,
    ) -> eyre::Result<(Home, crate::config::Config)> {
        let home = self.home();
        let config_path = home.config_path();
        eyre::ensure!(
            config_path.exists(),
            "no config at {}; create a home first with `lode init --home {}`",
            config_path.display(),
            home.root().display()
        );
        let config = crate::config::Config::load(&config_path)?;
        init_tracing(log_level.unwrap_or(&config.log.level));
        Ok((home, config))
    }

    pub fn home(&self) -> Home {
        Home::new(&self.home)
    }
}

/// Parses the command line and runs the command.
pub fn run() -> eyre::Result<()> {
    let cli = Cli::parse();
    let _ = OUTPUT.set(cli.output);
    match cli.command {
        Command::Init(args) => {
            init_tracing(cli.log_level.as_deref().unwrap_or("warn"));
            init::run(&args)
        }
        Command::Keys(cmd) => {
            init_tracing(cli.log_level.as_deref().unwrap_or("warn"));
            keys::run(&cmd)
        }
        Command::Abci(args) => abci::run(&args, cli.log_level.as_deref()),
        Command::Start(args) => start::run(&args, cli.log_level.as_deref()),
        Command::Testnet(cmd) => {
            init_tracing(cli.log_level.as_deref().unwrap_or("warn"));
            testnet::run(&cmd)
        }
        Command::Devnet(args) => {
            init_tracing(cli.log_level.as_deref().unwrap_or("warn"));
            devnet::run(&args)
        }
        Command::Tx(cmd) => {
            init_tracing(cli.log_level.as_deref().unwrap_or("warn"));
            tx::run(&cmd)
        }
        Command::Query(cmd) => {
            init_tracing(cli.log_level.as_deref().unwrap_or("warn"));
            client::query(&cmd)
        }
        Command::Provider(cmd) => provider::run(cmd, cli.log_level.as_deref()),
        Command::Blob(cmd) => {
            init_tracing(cli.log_level.as_deref().unwrap_or("warn"));
            blob::run(&cmd)
        }
        Command::Job(cmd) => {
            init_tracing(cli.log_level.as_deref().unwrap_or("warn"));
            job::run(&cmd)
        }
        Command::Events(args) => {
            init_tracing(cli.log_level.as_deref().unwrap_or("warn"));
            events::run(&args)
        }
        Command::Bench(args) => {
            init_tracing(cli.log_level.as_deref().unwrap_or("warn"));
            bench::run(&args)
        }
        Command::BenchHeights(args) => {
            init_tracing(cli.log_level.as_deref().unwrap_or("warn"));
            bench_heights::run(&args)
        }
        Command::Sim(cmd) => sim::run(&cmd),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "lode", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// Installs the global subscriber, logging to stderr (stdout is for command output). `RUST_LOG`, when set,
/// wins over `default_filter`.
fn init_tracing(default_filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
