//! `banmesh node`: runs the node daemon in the foreground until SIGTERM or
//! SIGINT, logging to stderr (`RUST_LOG` chooses what, else `[log] level`;
//! default `info`; see [`super::logging`]).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use tokio::signal::unix::{Signal, SignalKind, signal};
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
        // The handlers are installed before the daemon starts: its control
        // socket answers from another thread as soon as it is bound, and a
        // SIGTERM sent then must stop the node cleanly, not kill it.
        let signals = Signals::install();
        let shutdown = CancellationToken::new();
        let node = daemon::run(config, source, shutdown.clone());
        tokio::pin!(node);
        tokio::select! {
            result = &mut node => result,
            () = signals.wait() => {
                tracing::info!("stopping");
                shutdown.cancel();
                node.await
            }
        }
    })?;
    Ok(())
}

/// The signals that stop the node, and SIGHUP. SIGHUP never stops the node:
/// the gateway, when on, reloads its tokens on it (its own handler);
/// otherwise it is ignored rather than fatal, so `systemctl reload` is
/// always safe.
struct Signals(Option<[Signal; 3]>);

impl Signals {
    /// Installs the handlers now, so a signal that comes before [`Self::wait`]
    /// is first polled is kept rather than acted on by the default action.
    fn install() -> Self {
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(term), Ok(int), Ok(hangup)) => Signals(Some([term, int, hangup])),
            _ => Signals(None),
        }
    }

    /// Waits for SIGTERM or SIGINT.
    async fn wait(self) {
        let Some([mut term, mut int, mut hangup]) = self.0 else {
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
}
