//! `banmesh node`: runs the node daemon in the foreground until SIGTERM or
//! SIGINT, logging to stderr (`RUST_LOG` chooses what, else `[log] level`;
//! default `info`; see [`super::logging`]).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigSource, Overrides};
use crate::daemon;

/// Arguments of `banmesh node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The configuration file (default: the built-in defaults, which
    /// `banmesh config example` prints).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Flags that override the configuration file.
    #[command(flatten)]
    overrides: Overrides,
}

/// Runs the node until a signal asks it to stop.
pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    let source = ConfigSource { path: args.config, overrides: args.overrides };
    let config = source.load()?;
    super::logging::init(config.log.level.as_deref());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let node = daemon::run(config, source, shutdown.clone());
        tokio::pin!(node);
        tokio::select! {
            result = &mut node => result,
            () = wait_for_signal() => {
                tracing::info!("stopping");
                shutdown.cancel();
                node.await
            }
        }
    })?;
    Ok(())
}

/// Waits for SIGTERM or SIGINT. SIGHUP never stops the node: the gateway,
/// when on, reloads its tokens on it (its own handler); otherwise it is
/// ignored rather than fatal, so `systemctl reload` is always safe.
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hangup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        // Without signal handlers, wait forever; the process is killed instead.
        std::future::pending::<()>().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            Some(()) = hangup.recv() => tracing::debug!("SIGHUP"),
        }
    }
}
