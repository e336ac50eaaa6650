//! A rogue that is a real, enrolled `banmesh` process (issue 17, item 2):
//! its records are valid, so the mesh stores and spreads them; what contains
//! it is the operator's view (`trace` names it) and revoking its key, after
//! which every node leaves its records out and the decisions it overrode are
//! back. And a rogue flooding valid bans far past the per-origin rate: the
//! others delay it, lose none of its records, and still spread the honest
//! origins' bans.

use std::path::Path;
use std::time::{Duration, Instant};

use super::common::{SOON, TestCluster, TestNode, arg, holds_for, issue_bans, wait_until};
use super::metrics::{Metrics, refused};
use serde_json::Value;

/// A bound for slow convergence on a busy two-core machine: generous,
/// never a measure of speed.
const LONG: Duration = Duration::from_secs(120);

/// The `/metrics` series of blocked peers.
const BLOCKED: &str = "banmesh_peers{state=\"blocked\"}";

/// The honest bans the rogue lifts.
const HONEST: [&str; 3] = ["198.51.100.1", "198.51.100.2", "198.51.100.3"];

/// `node`'s trace entries on exactly `ip` of `kind` from origin `name`.
fn trace_entries(node: &TestNode, ip: &str, kind: &str, name: &str) -> Vec<Value> {
    let trace = node.trace(ip);
    let records = trace["records"].as_array().cloned().unwrap_or_default();
    records
        .into_iter()
        .filter(|r| r["key"] == ip && r["kind"] == kind && r["origin_name"] == name)
        .collect()
}

/// The state `status` gives peer `name` of `node` (`connected`, `blocked`).
fn peer_state(node: &TestNode, name: &str) -> String {
    let peers = node.status()["peers"].as_array().cloned().unwrap_or_default();
    let peer = peers.iter().find(|p| p["name"] == name);
    peer.and_then(|p| p["state"].as_str()).unwrap_or("absent").to_owned()
}

/// What `status` says of peers, records, rejects and skipped records.
fn summary(node: &TestNode) -> String {
    let status = node.status();
    let peers: Vec<String> = status["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            format!("{} {}", p["name"].as_str().unwrap_or("?"), p["state"].as_str().unwrap_or("?"))
        })
        .collect();
    format!(
        "peers {peers:?}, records {}, rejects {}, skipped {}",
        status["record_counts"], status["rejects"], status["skipped"]
    )
}

/// A config file syncing every second, with `extra` appended.
fn fast_sync(cluster: &TestCluster, name: &str, extra: &str) -> std::path::PathBuf {
    let path = cluster.path(name);
    std::fs::write(&path, format!("[sync]\ninterval = \"1s\"\n{extra}")).expect("config");
    path
}

/// Starts `count` nodes `node1..` as [`TestCluster::start_star`] does, each
/// syncing every second with `extra`, node1 also serving `/metrics`.
fn star_fast(cluster: &mut TestCluster, count: usize, extra: &str) -> Metrics {
    let config = fast_sync(cluster, "fast.toml", extra);
    let sync = format!("[sync]\ninterval = \"1s\"\n{extra}");
    let (first, metrics) = Metrics::config(cluster, "node1.toml", &sync);
    let mut spec = cluster.spec("node1", &[]);
    spec.config = Some(first);
    cluster.start(spec);
    for i in 2..=count {
        let mut spec = cluster.spec(&format!("node{i}"), &[cluster.node(0).addr()]);
        spec.config = Some(config.clone());
        cluster.start(spec);
    }
    metrics
}

/// Whether every node but the rogue (the last) bans every one of `ips`.
fn honest_ban_all(cluster: &TestCluster, ips: &[&str]) -> bool {
    let honest = &cluster.nodes[..cluster.nodes.len() - 1];
    honest.iter().all(|n| ips.iter().all(|ip| n.is_banned(ip)))
}

#[test]
fn mesh_enrolled_rogue_unbans_everything_trace_names_it_and_revoking_it_heals() {
    let mut cluster = TestCluster::new();
    let metrics = star_fast(&mut cluster, 3, "");
    cluster.wait_for_peers(2);
    let (node1, node2, rogue) = (cluster.node(0), cluster.node(1), cluster.node(2));
    for ip in &HONEST[..2] {
        node1.call(&["ban", ip, "--for", "1h"]);
    }
    node2.call(&["ban", HONEST[2], "--for", "1h"]);
    let banned =
        wait_until(SOON, || cluster.nodes.iter().all(|n| HONEST.iter().all(|ip| n.is_banned(ip))));
    assert!(banned, "the honest bans did not reach every node");

    // node3 turns rogue: it unbans everything the others banned. Its
    // Unbans are valid records and win everywhere.
    for ip in HONEST {
        rogue.call(&["unban", ip]);
    }
    let lifted = wait_until(SOON, || {
        cluster.nodes.iter().all(|n| HONEST.iter().all(|ip| n.is_not_banned(ip)))
    });
    assert!(
        lifted,
        "the rogue's unbans did not spread: node2 says {:?}",
        node2.decision(HONEST[0])
    );

    // The operator sees who did it: node2's trace holds node3's valid
    // Unban, marked as what decides the address.
    let trace = node2.trace(HONEST[0]);
    eprintln!("node2 trace {} after the rogue's unban: {trace:#}", HONEST[0]);
    let unbans = trace_entries(node2, HONEST[0], "unban", "node3");
    assert_eq!(unbans.len(), 1, "node2's trace lacks node3's unban: {trace}");
    assert_eq!(unbans[0]["valid"], true, "{trace}");
    assert_eq!(
        unbans[0]["decides"], true,
        "node2's trace does not name node3's unban as deciding: {trace}"
    );
    eprintln!("node1 while the rogue rules: {}", summary(node1));

    // Revoking the rogue's key heals every honest node.
    let revocation = cluster.path("node3.revocation");
    cluster.revoke("node3", &revocation);
    let started = Instant::now();
    node1.call(&["revoke-publish", arg(&revocation)]);
    let healed = wait_until(SOON, || honest_ban_all(&cluster, &HONEST));
    assert!(
        healed,
        "the bans are not back after revoking node3: node2 says {:?}",
        node2.decision(HONEST[0])
    );
    eprintln!("healed on every honest node {:?} after revoke-publish", started.elapsed());
    let void = trace_entries(node2, HONEST[0], "unban", "node3");
    assert!(void.iter().all(|r| r["valid"] == false), "node3's unban still counts: {void:?}");
    let blocked =
        wait_until(SOON, || [node1, node2].iter().all(|n| peer_state(n, "node3") == "blocked"));
    assert!(blocked, "status does not show node3 blocked: node1 {}", summary(node1));
    for (series, least) in [(refused("revoked"), 1.0), (BLOCKED.to_owned(), 1.0)] {
        let shown = metrics.value(&series);
        assert!(shown >= least, "node1's /metrics: {series} {shown}, not {least}");
    }

    // What the revoked rogue does now changes nothing.
    let unban = rogue.try_call(&["unban", HONEST[1]]);
    eprintln!("the revoked rogue's unban: {unban:?}");
    let held = holds_for(Duration::from_secs(3), || honest_ban_all(&cluster, &HONEST));
    assert!(
        held,
        "the revoked rogue still lifted a ban: node2 says {:?}",
        node2.decision(HONEST[1])
    );
    eprintln!("node2 after the revocation: {}", summary(node2));
}

/// Records of the rogue's flood.
const FLOOD: usize = 5_000;
/// The per-origin rate of the flood test's nodes, far below the flood.
const RATE: &str = "origin_rate = 200\norigin_burst = 1000\n";

/// `node`'s stored ban count.
fn bans_stored(node: &TestNode) -> u64 {
    node.status()["record_counts"]["ban"].as_u64().unwrap_or(0)
}

/// `VmHWM` (peak resident memory) of `node`'s process, as printed there.
fn peak_rss(node: &TestNode) -> String {
    let pid = node.pid().expect("node running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("VmHWM: ?");
    line.trim_start_matches("VmHWM:").trim().to_owned()
}

/// Issues bans on `ips` through `node`'s control socket.
fn ban_each(node: &TestNode, ips: &[String]) {
    for ip in ips {
        node.call(&["ban", ip, "--for", "1h"]);
    }
}

#[test]
fn mesh_enrolled_rogue_flooding_past_its_rate_is_delayed_never_dropped() {
    let mut cluster = TestCluster::new();
    let metrics = star_fast(&mut cluster, 3, RATE);
    cluster.wait_for_peers(2);
    let (node1, node2, rogue) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let socket: &Path = &rogue.socket;
    let honest: Vec<String> = (10..30).map(|i| format!("198.51.100.{i}")).collect();
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| issue_bans(socket, FLOOD));
        // node1 delays the flood (counted), then node2 bans: its bans
        // reach node1 while the flood is still coming in.
        let delaying = wait_until(LONG, || node1.status()["rejects"].to_string().contains("rate"));
        assert!(delaying, "node1 never delayed the flood: {}", node1.status()["rejects"]);
        let sent = Instant::now();
        ban_each(node2, &honest);
        let spread = wait_until(SOON, || honest.iter().all(|ip| node1.is_banned(ip)));
        assert!(spread, "node2's bans did not reach node1 during the flood");
        eprintln!(
            "node2's 20 bans on node1 {:?} after issuing, during the flood (node1 held {} bans)",
            sent.elapsed(),
            bans_stored(node1)
        );
    });
    let all = (FLOOD + honest.len()) as u64;
    let complete = wait_until(LONG, || [node1, node2].iter().all(|n| bans_stored(n) == all));
    let counts: Vec<u64> = [node1, node2].iter().map(|n| bans_stored(n)).collect();
    assert!(complete, "records lost: node1, node2 hold {counts:?} of {all}");
    eprintln!(
        "flood of {FLOOD} at {RATE:?}: complete on node1 and node2 {:?} after it began; \
         peak RSS node1 {}, node2 {}, rogue {}; node1 rejects {}",
        started.elapsed(),
        peak_rss(node1),
        peak_rss(node2),
        peak_rss(rogue),
        node1.status()["rejects"]
    );
    let delayed = metrics.value(&refused("origin over its rate (delayed)"));
    assert!(delayed >= 1.0, "node1's /metrics counts {delayed} delayed batches");
    assert!(cluster.wait_for_same_digest(LONG), "digests differ after the flood");
}
