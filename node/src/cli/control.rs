//! The commands that ask the running node over its control socket: status,
//! peers, ban/unban/allow/disallow, records, trace, sync, revoke-publish.
//! Each prints aligned text for a person, or JSON with `--json`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use banmesh_crdt::Key;
use banmesh_crdt::duration::parse_duration;
use banmesh_keys::time::format_rfc3339;
use clap::{Args, Subcommand};
use serde_json::json;

use super::show::relative;
use super::table::table;
use crate::clock::now_ms;
use crate::control::views::NftablesView;
use crate::control::{
    self, Command, DEFAULT_SOCKET, IssuedView, PeerView, RecordView, Response, StatusView,
    TraceView,
};

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

/// The response as text for a person.
fn to_text(response: &Response, now: u64) -> String {
    match response {
        Response::Status(status) => status_text(status, now),
        Response::Peers(peers) if peers.is_empty() => "no peers\n".to_owned(),
        Response::Peers(peers) => peers_table(peers, now),
        Response::Written { record, notes } => written_text(record, notes, now),
        Response::Records(records) => super::listing::text(records, now),
        Response::Trace(trace) => trace_text(trace, now),
        Response::Unblocked { peers } if peers.is_empty() => "no blocked peer matches\n".to_owned(),
        Response::Unblocked { peers } => format!("unblocked: {}\n", peers.join(", ")),
        Response::Synced { peers } if peers.is_empty() => "no peer to reconcile with\n".to_owned(),
        Response::Synced { peers } => {
            format!("reconciled with {} peer(s): {}\n", peers.len(), peers.join(", "))
        }
        Response::Revoked { node, new: true } => {
            format!("revocation of {node} stored; spreading it to the mesh\n")
        }
        Response::Revoked { node, new: false } => {
            format!("the node already held the revocation of {node}\n")
        }
        Response::Issued(items) => issued_text(items),
        Response::CertReloaded { name, not_after_ms } => {
            format!("reloaded the certificate {name}, valid until {}\n", when(now, *not_after_ms))
        }
        Response::Skipped { reason } => format!("nothing to do: {reason}\n"),
        Response::Error { message } => format!("error: {message}\n"),
    }
}

fn issued_text(items: &[IssuedView]) -> String {
    let failed: Vec<String> = items
        .iter()
        .filter_map(|i| i.error.as_ref().map(|e| format!("  {}: {e}\n", i.key)))
        .collect();
    format!(
        "issued {} of {} record(s)\n{}",
        items.len() - failed.len(),
        items.len(),
        failed.concat()
    )
}

fn status_text(s: &StatusView, now: u64) -> String {
    let join = |items: &[String]| {
        if items.is_empty() { "none".to_owned() } else { items.join(", ") }
    };
    let counts = |map: &std::collections::BTreeMap<String, u64>| {
        let parts: Vec<String> = map.iter().map(|(k, n)| format!("{k} {n}")).collect();
        join(&parts)
    };
    let certificate = match s.certificate_expires_at_ms {
        Some(at) => format!("expires {}", when(now, at)),
        None => {
            "none: enroll this node (`banmesh keys enroll`); peers refuse it until then".to_owned()
        }
    };
    let lines = [
        ("node", format!("{} ({})", s.name.as_deref().unwrap_or("unnamed"), s.peer_id)),
        ("node key", s.node_key.clone()),
        ("certificate", certificate),
        ("cluster key", s.cluster_key.clone()),
        ("listening", join(&s.listen_addrs)),
        ("gossip mesh", crate::mesh::discovery::summary(&s.discovery)),
        ("enforce", if s.enforce { "yes" } else { "no (observe only)" }.to_owned()),
        ("clock offset", offset(s.clock_offset_ms)),
        ("records", counts(&s.record_counts)),
        ("rejects", counts(&s.rejects)),
        ("skipped", counts(&s.skipped)),
        ("never ban", join(&s.never_ban)),
        ("digest", s.digest.clone().unwrap_or_else(|| "unknown (store unreadable)".to_owned())),
        (
            "unreachable",
            join(
                &s.unreachable
                    .iter()
                    .map(|p| p.name.clone().unwrap_or_else(|| p.peer_id.clone()))
                    .collect::<Vec<_>>(),
            ),
        ),
        (
            "fail2ban",
            match &s.fail2ban {
                Some(f) => format!(
                    "{} in the banmesh jail; {} missed bans published since start; {} pardoned locally",
                    f.applied, f.published, f.pardoned
                ),
                None => "not applied ([fail2ban] apply = false)".to_owned(),
            },
        ),
        (
            "gc",
            match s.gc.last_run_ms {
                Some(at) => format!(
                    "last run {}: {} records collected; {} since start",
                    when(now, at),
                    s.gc.last_collected,
                    s.gc.total_collected
                ),
                None => "not run yet".to_owned(),
            },
        ),
    ];
    let mut out: String =
        lines.iter().map(|(l, v)| format!("{:<14}{v}\n", format!("{l}:"))).collect();
    out.push_str(&crate::cli::sync_status::lines(&s.sync));
    if let Some(g) = &s.gateway {
        let plural = if g.tokens == 1 { "" } else { "s" };
        out.push_str(&format!("gateway:      {} ({} token{plural})\n", g.listen, g.tokens));
    }
    if let Some(n) = &s.nftables {
        out.push_str(&nftables_text(n, now));
    }
    if s.peers.is_empty() {
        out.push_str("peers:        none\n");
    } else {
        out.push_str("peers:\n");
        out.extend(peers_table(&s.peers, now).lines().map(|l| format!("  {l}\n")));
    }
    if !s.warnings.is_empty() {
        out.push_str("warnings:\n");
        out.extend(s.warnings.iter().map(|w| format!("  - {w}\n")));
    }
    out
}

/// The nftables backend: its table, last reconcile, error, then per set
/// its elements and what its counter dropped.
fn nftables_text(n: &NftablesView, now: u64) -> String {
    let reconciled = n.last_reconcile_ms.map_or("not yet".to_owned(), |at| when(now, at));
    let state = match &n.last_error {
        Some(e) => format!("failing: {e}"),
        None => "ok".to_owned(),
    };
    let mut out = format!(
        "nftables:     {}, last reconcile {reconciled}, {state}, {} pardoned locally\n",
        n.table, n.pardoned
    );
    for set in &n.sets {
        let dropped = if set.name.starts_with("allow") {
            "accepted first".to_owned()
        } else {
            format!("dropped {} packets, {} bytes", set.packets, set.bytes)
        };
        out.push_str(&format!("  {:<8}{:>8} elements, {dropped}\n", set.name, set.elements));
    }
    out
}

fn peers_table(peers: &[PeerView], now: u64) -> String {
    let rows = peers.iter().map(|p| {
        vec![
            p.peer_id.clone(),
            p.name.clone().unwrap_or_else(|| "-".to_owned()),
            p.state.as_str().to_owned(),
            p.last_sync_ms.map_or_else(|| "never".to_owned(), |at| when(now, at)),
            offset(p.clock_offset_ms),
            p.addrs.join(" "),
        ]
    });
    table(&["PEER", "NAME", "STATE", "LAST SYNC", "OFFSET", "ADDRESSES"], rows)
}

fn written_text(record: &RecordView, notes: &[String], now: u64) -> String {
    let mut out = format!("stored {} on {}", record.kind, record.key);
    if let Some(at) = record.expires_at_ms {
        out.push_str(&format!(" until {}", when(now, at)));
    }
    out.push_str(&format!("\nrecord id: {}\n", record.id));
    out.extend(notes.iter().map(|n| format!("note: {n}\n")));
    out
}

pub(super) const RECORD_HEADER: [&str; 8] =
    ["KEY", "KIND", "ORIGIN", "ISSUED", "EXPIRES", "STRIKES", "JAIL", "VALID"];

pub(super) fn record_row(r: &RecordView, now: u64) -> Vec<String> {
    vec![
        r.key.clone(),
        r.kind.clone(),
        origin(r),
        when(now, r.issued_at_ms),
        r.expires_at_ms.map_or_else(|| "-".to_owned(), |at| when(now, at)),
        r.strikes.to_string(),
        dash(&r.jail),
        if r.valid { "yes" } else { "no" }.to_owned(),
    ]
}

fn trace_text(trace: &TraceView, now: u64) -> String {
    let mut out = format!("address:  {}\ndecision: {}", trace.address, trace.decision);
    if let Some(at) = trace.until_ms {
        out.push_str(&format!(" until {}", when(now, at)));
    }
    out.push('\n');
    for line in &trace.enforced {
        out.push_str(&format!("enforced: {line}\n"));
    }
    if trace.records.is_empty() {
        out.push_str("no records on this address or on a network covering it\n");
        return out;
    }
    let rows = trace.records.iter().map(|entry| {
        let r = &entry.record;
        let mut row = vec![if entry.decides { "*" } else { "" }.to_owned()];
        row.extend(record_row(r, now));
        row.push(r.arrived_at_ms.map_or_else(|| "-".to_owned(), |at| when(now, at)));
        row.push(r.arrived_from.clone().unwrap_or_else(|| "here".to_owned()));
        row
    });
    let mut header = vec!["DECIDES"];
    header.extend(RECORD_HEADER);
    header.extend(["ARRIVED", "FROM"]);
    out.push_str(&table(&header, rows));
    out
}

/// `2026-11-25T13:05:09Z (in 3m)`.
fn when(now: u64, at: u64) -> String {
    format!("{} ({})", format_rfc3339(at), relative(now, at))
}

fn offset(ms: Option<i64>) -> String {
    ms.map_or_else(|| "unknown".to_owned(), |ms| format!("{ms:+} ms"))
}

fn origin(r: &RecordView) -> String {
    r.origin_name.clone().unwrap_or_else(|| r.origin_key.chars().take(16).collect())
}

fn dash(text: &str) -> String {
    if text.is_empty() { "-" } else { text }.to_owned()
}

/// Left-aligned columns separated by two spaces, header first.
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
