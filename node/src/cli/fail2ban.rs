//! `banmesh fail2ban ban|unban`: what Fail2Ban's `action.d/banmesh.conf`
//! runs. Hands the ban to the local node within a bounded time; when the
//! node is down it says so and exits 0, so Fail2Ban's own ban is not
//! disturbed (the node's reconcile publishes it later).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use banmesh_crdt::duration::parse_duration;
use clap::{Args, Subcommand};

use crate::control::client::{self, ClientError, DEFAULT_SOCKET};
use crate::control::protocol::{Command, Response};

/// The `fail2ban` subcommands.
#[derive(Debug, Subcommand)]
pub enum Fail2BanCommand {
    /// Fail2Ban banned an address here (actionban).
    Ban(BanArgs),
    /// Fail2Ban lifted a ban here (actionunban).
    Unban(UnbanArgs),
}

/// Where the node is and how long to wait for it.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The node's control socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Give up after this long, so Fail2Ban is never held up.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    timeout: Duration,
}

/// Arguments of `fail2ban ban` (Fail2Ban's action tags).
#[derive(Debug, Args)]
pub struct BanArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// `<ip>`.
    #[arg(long)]
    ip: String,
    /// `<name>`, the jail.
    #[arg(long)]
    jail: String,
    /// `<bantime>` in seconds, already escalated by Fail2Ban; -1 for no end.
    #[arg(long, allow_hyphen_values = true, value_parser = parse_bantime)]
    bantime: i64,
    /// `<failures>`.
    #[arg(long, default_value_t = 0)]
    failures: u64,
    /// `<bancount>`.
    #[arg(long, default_value_t = 1)]
    bancount: u32,
    /// `<restored>`: 1 when Fail2Ban restored the ticket at start.
    #[arg(long, default_value_t = 0)]
    restored: u8,
}

/// `<bantime>`: seconds, or -1; other negative values are refused.
fn parse_bantime(text: &str) -> Result<i64, String> {
    let bantime: i64 = text.trim().parse().map_err(|e| format!("{e}"))?;
    crate::fail2ban::check_bantime(bantime)?;
    Ok(bantime)
}

/// Arguments of `fail2ban unban`.
#[derive(Debug, Args)]
pub struct UnbanArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// `<ip>`.
    #[arg(long)]
    ip: String,
    /// `<name>`, the jail.
    #[arg(long)]
    jail: String,
}

/// Runs one `fail2ban` subcommand.
pub fn run(command: Fail2BanCommand) -> anyhow::Result<()> {
    let (node, request) = match command {
        Fail2BanCommand::Ban(a) => (
            a.node,
            Command::Fail2BanBan {
                ip: a.ip,
                jail: a.jail,
                bantime_s: a.bantime,
                failures: a.failures,
                bancount: a.bancount,
                restored: a.restored != 0,
            },
        ),
        Fail2BanCommand::Unban(a) => (a.node, Command::Fail2BanUnban { ip: a.ip, jail: a.jail }),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match runtime.block_on(client::call_within(&node.socket, request, node.timeout)) {
        Ok(Response::Written { record, .. }) => {
            println!("published {} {} to the mesh", record.kind, record.key);
            Ok(())
        }
        Ok(Response::Skipped { reason }) => {
            println!("not published: {reason}");
            Ok(())
        }
        Ok(Response::Error { message }) => bail!("{message}"),
        Ok(other) => bail!("unexpected answer from the node: {}", other.name()),
        Err(e @ (ClientError::NotListening(_) | ClientError::Timeout { .. })) => {
            eprintln!(
                "banmesh: {e}; Fail2Ban's own ban stands and the node's reconcile will publish it"
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
