//! An empty node joining nodes that hold N live records, over loopback:
//! `BANMESH_BENCH_SERVERS` nodes are started, the first is filled with N
//! bans through the control socket and the others catch up; then an empty
//! node is started with every server as `--peer`. Prints the join time
//! (until the joiner holds N records and every node shows the same digest), the
//! peak RSS (VmHWM) of the joiner and the servers, the bytes the servers
//! sent the joiner (TCP counters from `ss`), and the sync sessions each
//! side counts (`status` → `sync`, or the logs' `sync finished` lines on a
//! node without that counter). Then the resident memory (VmRSS) of every
//! node 30 s and 60 s after the join (what is kept once the join is over),
//! and two restarts: the joiner's and the first server's (each holding N
//! records), timed from launch until `status` answers and until a peer is
//! connected, with the restarted node's RSS 10 s later. Last, with
//! `BANMESH_BENCH_IDLE_S`, the mesh left alone that long: each node's CPU
//! use and its RSS at the start and the end. Asserts nothing.
//!
//! Run: `cargo bench -p banmesh-node --bench join`. Environment:
//! `BANMESH_BENCH_RECORDS` (100000), `BANMESH_BENCH_SERVERS` (1),
//! `BANMESH_BENCH_TIMEOUT_S` (600), `BANMESH_BENCH_IDLE_S` (0: no idle
//! phase; the issue's figure is 300 with 2 servers, a 3-node mesh).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "util.rs"]
mod util;

use std::thread;
use std::time::{Duration, Instant};

use common::{TestCluster, TestNode};
use util::{bans, bytes_sent_from, cpu_seconds, env_num, load, vm_hwm_mib, vm_rss_mib};

/// Sync sessions a node counts: its status's `sync` object when it has
/// one, else the `sync finished` lines of its log.
fn sessions(node: &TestNode) -> String {
    let status = node.status();
    match status.get("sync") {
        Some(sync) if !sync.is_null() => sync.to_string(),
        _ => {
            let log = node.log_text();
            let finished = log.matches("sync finished").count();
            let streamed = log.matches("streamed the whole set").count();
            format!("log: {finished} `sync finished`, {streamed} `streamed the whole set`")
        }
    }
}

fn main() {
    let records = env_num("BANMESH_BENCH_RECORDS", 100_000);
    let servers = env_num("BANMESH_BENCH_SERVERS", 1).max(1);
    let timeout = Duration::from_secs(env_num("BANMESH_BENCH_TIMEOUT_S", 600) as u64);
    println!("join bench: {records} records, {servers} server(s), load average {}", load());
    let mut cluster = TestCluster::new();
    cluster.start_star(1, None);
    let started = Instant::now();
    common::issue_bans(&cluster.node(0).socket, records);
    println!("filled node1 in {:.1} s", started.elapsed().as_secs_f64());
    for i in 2..=servers {
        let spec = cluster.spec(&format!("node{i}"), &[cluster.node(0).addr()]);
        cluster.start(spec);
    }
    assert!(cluster.wait_for_same_digest(timeout), "the servers did not converge");
    println!("{servers} server(s) ready after {:.1} s", started.elapsed().as_secs_f64());
    for node in &cluster.nodes {
        let rss = node.pid().map_or(0.0, vm_hwm_mib);
        println!("server {} before the join: VmHWM {rss:.0} MiB", node.name);
    }
    let peers: Vec<String> = cluster.nodes.iter().map(TestNode::addr).collect();
    let sent_before: Vec<u64> = cluster.nodes.iter().map(|n| bytes_sent_from(n.port)).collect();
    let spec = cluster.spec("joiner", &peers);
    let joining = Instant::now();
    let joined_at = util::utc_now();
    let joiner = cluster.start(spec);
    // The digests cover certificates too: compare with the servers' own
    // now that they hold the joiner's.
    // Polled every 500 ms: each status computes the digest over the set.
    let joined = loop {
        if bans(cluster.node(joiner)) >= records as u64
            && cluster.wait_for_same_digest(Duration::ZERO)
        {
            break true;
        }
        if joining.elapsed() > timeout {
            break false;
        }
        thread::sleep(Duration::from_millis(500));
    };
    let took = joining.elapsed().as_secs_f64();
    let sent: u64 = cluster
        .nodes
        .iter()
        .take(servers)
        .zip(&sent_before)
        .map(|(n, before)| bytes_sent_from(n.port).saturating_sub(*before))
        .sum();
    let verdict = if joined { "joined" } else { "did NOT join" };
    println!("{verdict} in {took:.1} s");
    phases(cluster.node(joiner), joined_at);
    println!("bytes sent to the joiner: {:.1} MB", sent as f64 / 1e6);
    // Let a second round (timer ticks) show up in the counters and memory.
    thread::sleep(Duration::from_secs(5));
    for (i, node) in cluster.nodes.iter().enumerate() {
        let role = if i == joiner { "joiner" } else { "server" };
        let rss = node.pid().map_or(0.0, vm_hwm_mib);
        println!("{role} {}: VmHWM {rss:.0} MiB; sessions {}", node.name, sessions(node));
    }
    for after in [30, 60] {
        let at = Duration::from_secs_f64(took) + Duration::from_secs(after);
        thread::sleep(at.saturating_sub(joining.elapsed()));
        let rss: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("{} {:.0} MiB", n.name, n.pid().map_or(0.0, vm_rss_mib)))
            .collect();
        println!("{after} s after the join: VmRSS {}", rss.join(", "));
    }
    restart(&mut cluster, joiner, timeout);
    restart(&mut cluster, 0, timeout);
    let idle_for = Duration::from_secs(env_num("BANMESH_BENCH_IDLE_S", 0) as u64);
    if !idle_for.is_zero() {
        idle(&cluster, idle_for);
    }
    println!("load average {}", load());
}

/// The mesh left alone for `span`, every node holding the set: each node's
/// CPU use over it (share of one core) and its resident memory at the start
/// and the end, with its peak.
fn idle(cluster: &TestCluster, span: Duration) {
    let pids: Vec<u32> = cluster.nodes.iter().map(|n| n.pid().unwrap_or(0)).collect();
    let cpu_before: Vec<f64> = pids.iter().map(|&p| cpu_seconds(p)).collect();
    let rss_before: Vec<f64> = pids.iter().map(|&p| vm_rss_mib(p)).collect();
    println!("idle for {} s, load average {}", span.as_secs(), load());
    thread::sleep(span);
    for (i, node) in cluster.nodes.iter().enumerate() {
        let used = cpu_seconds(pids[i]) - cpu_before[i];
        println!(
            "idle {}: CPU {used:.1} s in {} s ({:.2} % of a core); VmRSS {:.0} -> {:.0} MiB, \
             VmHWM {:.0} MiB",
            node.name,
            span.as_secs(),
            100.0 * used / span.as_secs_f64(),
            rss_before[i],
            vm_rss_mib(pids[i]),
            vm_hwm_mib(pids[i]),
        );
    }
}

/// The joiner's log lines that mark the phases of its join, with the
/// seconds since `since` (UTC, as the log prints it).
fn phases(joiner: &TestNode, since: f64) {
    let marks = ["store opened", "sync set read", "streamed the whole set", "sync finished"];
    for line in joiner.log_text().lines().filter(|l| marks.iter().any(|m| l.contains(m))) {
        let at = util::log_seconds(line).map_or(f64::NAN, |t| t - since);
        let text: String = line.chars().take(160).collect();
        println!("  +{at:.1} s {text}");
    }
}

/// Stops node `i` and starts it again: prints the time from launch until
/// `status` answers and until a peer is connected, and its RSS 10 s later.
fn restart(cluster: &mut TestCluster, i: usize, timeout: Duration) {
    let node = cluster.node_mut(i);
    node.stop();
    let launched = Instant::now();
    node.restart();
    let answered = launched.elapsed().as_secs_f64();
    let connected = common::wait_until(timeout, || !node.connected_peers().is_empty());
    let dialled = launched.elapsed().as_secs_f64();
    let peer = if connected { "a peer connected" } else { "NO peer connected" };
    thread::sleep(Duration::from_secs(10));
    let rss = node.pid().map_or(0.0, vm_rss_mib);
    println!(
        "restart of {}: status answers after {answered:.2} s, {peer} after {dialled:.2} s; \
         VmRSS 10 s later {rss:.0} MiB",
        node.name
    );
    let log = node.log_text();
    for what in ["index built", "sync set read"] {
        if let Some(line) = log.lines().rev().find(|l| l.contains(what)) {
            println!("  {line}");
        }
    }
}
