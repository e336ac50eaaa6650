//! The commands that ask the running node over its control socket: status,
//! peers, ban/unban/allow/disallow, records, trace, sync, revoke-publish.
//! Each prints aligned text for a person, or JSON with `--json`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use banmesh_crdt::Key;
use banmesh_crdt::duration::parse_duration;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::clock::now_ms;
use crate::control::{self, Command, DEFAULT_SOCKET, Response};

mod text;

use text::to_text;
pub(super) use text::{RECORD_HEADER, record_row};

/// Where the node listens and how to print its answer; every command takes it.
#[derive(Debug, Args)]
pub struct Connect {
    /// The node's control socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub(super) socket: PathBuf,
    /// Print the answer as JSON (`records --json` prints an array of records).
    #[arg(long)]
    pub(super) json: bool,
}

/// How long a ban or allow lasts: `--for 2h` or `--for permanent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lasting {
    /// For this long.
    For(Duration),
    /// Until lifted: the node renews the record before it expires.
    Permanent,
}

fn parse_lasting(text: &str) -> Result<Lasting, String> {
    if text.trim() == "permanent" {
        return Ok(Lasting::Permanent);
    }
    parse_duration(text).map(Lasting::For).map_err(|e| format!("{e}, or write permanent"))
}

/// Commands answered by the running node.
#[derive(Debug, Subcommand)]
pub enum ControlCommand {
    /// Show the node's identity, certificate, peers, record counts and warnings.
    #[command(after_help = "Examples:
  banmesh status
  banmesh status --check    # for Nagios or Icinga: exit 0 ok, 1 warning, 2 critical")]
    Status {
        /// Print one line for a monitoring system and exit 0 (healthy), 1
        /// (warning) or 2 (critical), as Nagios plugins do.
        #[arg(long)]
        check: bool,
        #[command(flatten)]
        connect: Connect,
    },
    /// List the peers the node knows, or lift a block (`peers unblock`).
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Examples:
  banmesh peers
  banmesh peers unblock 12D3KooW...    # or an address: banmesh peers unblock 192.0.2.7"
    )]
    Peers {
        #[command(flatten)]
        connect: Connect,
        #[command(subcommand)]
        action: Option<PeersAction>,
    },
    /// Ban an address or network on every node.
    #[command(after_help = "Examples:
  banmesh ban 192.0.2.7 --for 1h --jail sshd --reason \"ssh brute force\"
  banmesh ban 198.51.100.0/24 --for permanent    # renewed until unbanned")]
    Ban {
        /// The address or network (192.0.2.7, 10.0.0.0/24, 2001:db8::/48).
        key: String,
        /// How long: 90s, 15m, 2h, 3d, 1w, or permanent (default: the bantime).
        #[arg(long = "for", value_name = "DURATION|permanent", value_parser = parse_lasting)]
        lasting: Option<Lasting>,
        /// The jail to record.
        #[arg(long, value_name = "J")]
        jail: Option<String>,
        /// Why.
        #[arg(long, value_name = "R")]
        reason: Option<String>,
        #[command(flatten)]
        connect: Connect,
    },
    /// Lift the bans on exactly this address or network, from every origin.
    Unban {
        /// The address or network.
        key: String,
        #[command(flatten)]
        connect: Connect,
    },
    /// Never ban an address or network (nor anything inside it).
    Allow {
        /// The address or network.
        key: String,
        /// How long: a duration or permanent (default: the cluster's max_ttl).
        #[arg(long = "for", value_name = "DURATION|permanent", value_parser = parse_lasting)]
        lasting: Option<Lasting>,
        #[command(flatten)]
        connect: Connect,
    },
    /// Lift the allows on exactly this address or network.
    Disallow {
        /// The address or network.
        key: String,
        #[command(flatten)]
        connect: Connect,
    },
    /// List stored records (all of them unless filtered).
    Records {
        /// Only records on this address or network and on networks covering it.
        #[arg(long, value_name = "X")]
        ip: Option<String>,
        /// Only records from this origin: a certificate name or a public key.
        #[arg(long, value_name = "NAME|KEY")]
        origin: Option<String>,
        /// Only records of this kind.
        #[arg(long, value_name = "K", value_parser = ["ban", "unban", "allow", "disallow"])]
        kind: Option<String>,
        #[command(flatten)]
        connect: Connect,
    },
    /// Show every record deciding an address, and the decision.
    Trace {
        /// The address.
        ip: String,
        #[command(flatten)]
        connect: Connect,
    },
    /// Reconcile with peers now.
    Sync {
        /// Only with this peer id (default: every connected peer).
        #[arg(long, value_name = "ID")]
        peer: Option<String>,
        #[command(flatten)]
        connect: Connect,
    },
    /// Hand a revocation file to the node, which stores and spreads it.
    RevokePublish {
        /// The revocation, as `banmesh keys revoke` wrote it.
        file: PathBuf,
        #[command(flatten)]
        connect: Connect,
    },
}

/// What `banmesh peers` does besides listing.
#[derive(Debug, Subcommand)]
pub enum PeersAction {
    /// Let a blocked peer in again now instead of after its ten minutes
    /// (a peer is blocked when its hello is refused, it sent repeated bad
    /// messages, or it refused this node's hello).
    Unblock {
        /// The peer id, or an address it connects from (every blocked peer there).
        #[arg(value_name = "PEER|ADDR")]
        target: String,
        #[command(flatten)]
        connect: Connect,
    },
}

/// Runs one control command: asks the node and prints its answer.
pub fn run(command: ControlCommand) -> anyhow::Result<()> {
    if let ControlCommand::Status { check: true, connect } = &command {
        super::check::run(&connect.socket);
    }
    let (request, connect) = to_request(command)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if let Command::Records { .. } = request {
        return runtime.block_on(super::listing::run(&connect, request));
    }
    let response = runtime.block_on(control::call(&connect.socket, request))?;
    if let Response::Error { message } = response {
        anyhow::bail!("{message}");
    }
    if connect.json {
        println!("{}", serde_json::to_string_pretty(&to_json(response))?);
    } else {
        print!("{}", to_text(&response, now_ms()));
    }
    Ok(())
}

/// The request for a command; keys are checked here so a typo fails fast,
/// and sent as written so the node can say what it normalised.
fn to_request(command: ControlCommand) -> anyhow::Result<(Command, Connect)> {
    let check = |key: &str| Key::parse(key).map(|_| ());
    let lasting = |lasting: Option<Lasting>| match lasting {
        None => (None, false),
        Some(Lasting::Permanent) => (None, true),
        Some(Lasting::For(d)) => (Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)), false),
    };
    Ok(match command {
        ControlCommand::Status { connect, .. } => (Command::Status, connect),
        ControlCommand::Peers {
            action: Some(PeersAction::Unblock { target, connect }), ..
        } => (Command::Unblock { target }, connect),
        ControlCommand::Peers { connect, action: None } => (Command::Peers, connect),
        ControlCommand::Ban { key, lasting: l, jail, reason, connect } => {
            check(&key)?;
            let (duration_ms, permanent) = lasting(l);
            let ban = Command::Ban { key, duration_ms, permanent, jail, reason };
            (ban, connect)
        }
        ControlCommand::Unban { key, connect } => {
            check(&key)?;
            (Command::Unban { key }, connect)
        }
        ControlCommand::Allow { key, lasting: l, connect } => {
            check(&key)?;
            let (duration_ms, permanent) = lasting(l);
            (Command::Allow { key, duration_ms, permanent }, connect)
        }
        ControlCommand::Disallow { key, connect } => {
            check(&key)?;
            (Command::Disallow { key }, connect)
        }
        ControlCommand::Records { ip, origin, kind, connect } => {
            if let Some(ip) = &ip {
                check(ip)?;
            }
            (Command::Records { ip, origin, kind }, connect)
        }
        ControlCommand::Trace { ip, connect } => {
            check(&ip)?;
            (Command::Trace { ip }, connect)
        }
        ControlCommand::Sync { peer, connect } => (Command::Sync { peer }, connect),
        ControlCommand::RevokePublish { file, connect } => {
            let pem = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read the revocation {}", file.display()))?;
            (Command::RevokePublish { pem }, connect)
        }
    })
}

/// The response's payload as JSON: records and peers as arrays, the rest as
/// objects.
fn to_json(response: Response) -> serde_json::Value {
    let value = |v: Result<serde_json::Value, serde_json::Error>| v.unwrap_or_default();
    match response {
        Response::Status(status) => value(serde_json::to_value(status)),
        Response::Peers(peers) => value(serde_json::to_value(peers)),
        Response::Records(records) => value(serde_json::to_value(records)),
        Response::Trace(trace) => value(serde_json::to_value(trace)),
        Response::Written { record, notes } => json!({"record": record, "notes": notes}),
        Response::Synced { peers } => json!({"peers": peers}),
        Response::Unblocked { peers } => json!({"unblocked": peers}),
        Response::Revoked { node, new } => json!({"node": node, "new": new}),
        Response::Issued(items) => value(serde_json::to_value(items)),
        Response::CertReloaded { name, not_after_ms } => {
            json!({"name": name, "not_after_ms": not_after_ms})
        }
        Response::Skipped { reason } => json!({"skipped": reason}),
        Response::Error { message } => json!({"error": message}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_for_parses_durations_and_permanent() {
        assert_eq!(parse_lasting("permanent"), Ok(Lasting::Permanent));
        assert_eq!(parse_lasting("1h30m"), Ok(Lasting::For(Duration::from_secs(5400))));
        let error = parse_lasting("forever").expect_err("refused");
        assert!(error.contains("permanent"), "{error}");
    }
}
