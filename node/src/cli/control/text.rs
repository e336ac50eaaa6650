//! The control commands' answers as text for a person: status, peers,
//! written records, traces and the other short answers (`--json` prints
//! them as the node sent them instead).

use banmesh_keys::time::format_rfc3339;

use crate::cli::show::relative;
use crate::cli::table::table;
use crate::control::views::NftablesView;
use crate::control::{IssuedView, PeerView, RecordView, Response, StatusView, TraceView};

/// The response as text for a person.
pub(super) fn to_text(response: &Response, now: u64) -> String {
    match response {
        Response::Status(status) => status_text(status, now),
        Response::Peers(peers) if peers.is_empty() => "no peers\n".to_owned(),
        Response::Peers(peers) => peers_table(peers, now),
        Response::Written { record, notes } => written_text(record, notes, now),
        Response::Records(records) => crate::cli::listing::text(records, now),
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
        ("digest", s.digest.clone().unwrap_or_else(|| "unknown (the set is being read at start or streamed in, or the store is unreadable)".to_owned())),
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

pub(in crate::cli) const RECORD_HEADER: [&str; 8] =
    ["KEY", "KIND", "ORIGIN", "ISSUED", "EXPIRES", "STRIKES", "JAIL", "VALID"];

pub(in crate::cli) fn record_row(r: &RecordView, now: u64) -> Vec<String> {
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
