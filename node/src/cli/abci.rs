//! `lode abci`: serve the application over the ABCI socket until SIGINT or SIGTERM. The socket is the
//! application's unauthenticated admin interface: only loopback addresses unless `--allow-remote`.

use std::{io::Write, net::SocketAddr};

use clap::Args;
use eyre::WrapErr;
use lode_state::LodeApp;
use tracing::info;

use super::HomeArg;
use crate::services::abci_socket::{check_listen_address, AbciLimits, AbciServer};

#[derive(Debug, Args)]
pub(super) struct AbciArgs {
    #[command(flatten)]
    home: HomeArg,
    /// Address to listen on (port 0 picks a free one); default from config.toml's `[abci] listen`.
    #[arg(long, env = "LODE_ABCI_LISTEN")]
    listen: Option<SocketAddr>,
    /// Serve on a non-loopback address. The ABCI socket is unauthenticated: whoever connects can run
    /// InitChain, FinalizeBlock and Commit. Only for a CometBFT node on another host, behind a firewall or
    /// on a private network.
    #[arg(long, env = "LODE_ABCI_ALLOW_REMOTE")]
    allow_remote: bool,
}

pub(super) fn run(args: &AbciArgs, log_level: Option<&str>) -> eyre::Result<()> {
    let (home, config) = args.home.load_and_init_tracing(log_level)?;
    let listen = args.listen.unwrap_or(config.abci.listen);
    check_listen_address(listen, args.allow_remote)?;

    let data = home.data_dir();
    tracing::info!("{}", config.compute.apply());
    let app = LodeApp::open_with(&data, config.app.options())
        .wrap_err_with(|| format!("cannot open the state database at {}", data.display()))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let limits = AbciLimits {
            max_frame_bytes: config.abci.max_frame_bytes,
            max_connections: config.abci.max_connections,
        };
        let server = AbciServer::bind(listen, app, limits)
            .await
            .wrap_err_with(|| format!("cannot listen on {listen}"))?;
        let local = server.local_addr()?;
        info!(%local, home = %home.root().display(), "abci server listening");
        // Tests and scripts read the bound address from this line.
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "abci listening on {local}")?;
        stdout.flush()?;
        drop(stdout);
        server.run(shutdown_signal()).await?;
        eyre::Ok(())
    })?;
    // The runtime and then the application (and its database) are dropped here, after every request finished.
    info!("lode abci exited cleanly");
    Ok(())
}

/// Completes on the first SIGINT or SIGTERM.
pub(super) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            None
        }
    };
    let term = async {
        match term.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT received, shutting down"),
        () = term => info!("SIGTERM received, shutting down"),
    }
}
