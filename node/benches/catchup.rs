//! Catching up after a restart, over loopback (issue 15's benchmarks):
//! node1 is filled with N live bans and node2 catches up; then
//!
//! - **restart**: node2 is stopped, node1 issues 1,000 new bans, node2 is
//!   started again: the time from its launch until it holds them, and the
//!   bytes on the two nodes' connections meanwhile (both ways, TCP counters
//!   from `ss`; node2's connections are all new);
//! - **scattered**: node2 is stopped, 1,000 of its records picked at random
//!   through the set are deleted from its store (as if it had missed their
//!   gossip), node2 is started again: time and bytes until it holds them;
//! - **busy join**: two CPU burners (`yes > /dev/null`, nice 0) are started
//!   and an empty node joins node1 and node2: time, peak RSS (VmHWM) of
//!   every node and the sync sessions each counts (no snowball: a handful).
//!
//! Each phase prints the `sync finished` lines the nodes logged meanwhile.
//! Asserts nothing. Run: `cargo bench -p banmesh-node --bench catchup`;
//! `BANMESH_BENCH_RECORDS` (100000), `BANMESH_BENCH_TIMEOUT_S` (600),
//! `BANMESH_BENCH_ONLY` (of `restart`, `scattered`, `busy`, comma-separated:
//! those phases alone).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "util.rs"]
mod util;

use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{TestCluster, TestNode, issue_bans_from};
use util::{bans, bytes_on, env_num, load, vm_hwm_mib};

/// Records written or lost while a node is down.
const MISSED: usize = 1_000;

/// The `sync finished` lines of `node`'s log after byte `from`.
fn sync_lines(node: &TestNode, from: usize) -> Vec<String> {
    let log = node.log_text();
    log.get(from..)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("sync finished") || l.contains("streamed the whole set"))
        .map(|l| l.split_once("banmesh::events").map_or(l, |(_, rest)| rest).trim().to_owned())
        .collect()
}

/// Starts node `i` again and measures until it holds `want` bans: seconds
/// from launch, bytes on both nodes' connections (node `i`'s are all new).
fn catch_up(cluster: &mut TestCluster, i: usize, want: u64, timeout: Duration, what: &str) {
    let ports = [cluster.node(0).port, cluster.node(i).port];
    let logs_from = [cluster.node(0).log_text().len(), cluster.node(i).log_text().len()];
    let launched = Instant::now();
    let node = cluster.node_mut(i);
    node.restart();
    let answering = launched.elapsed().as_secs_f64();
    let held = common::wait_every(Duration::from_millis(50), timeout, || bans(node) >= want);
    let took = launched.elapsed().as_secs_f64();
    // The session's Close and the last acknowledgements.
    thread::sleep(Duration::from_secs(2));
    let bytes = bytes_on(&ports);
    let verdict = if held { "held them" } else { "did NOT hold them" };
    println!(
        "{what}: {verdict} {took:.2} s from launch (control socket answered at \
         {answering:.2} s); {:.0} KB on the connections",
        bytes as f64 / 1e3
    );
    for (node, from) in [0, i].into_iter().zip(logs_from) {
        for line in sync_lines(cluster.node(node), from) {
            println!("  {}: {line}", cluster.node(node).name);
        }
    }
}

/// Deletes `count` records picked at random from the stopped node's store.
fn delete_scattered(node: &TestNode, count: usize) {
    let db = node.data_dir.join("banmesh.db");
    let conn = rusqlite::Connection::open(&db).expect("open the store");
    let deleted = conn
        .execute(
            "DELETE FROM records WHERE id IN (SELECT id FROM records ORDER BY random() LIMIT ?1)",
            [count as i64],
        )
        .expect("delete records");
    println!("deleted {deleted} records at random from {}'s store", node.name);
}

/// A CPU burner at nice 0.
fn burner() -> Child {
    Command::new("sh")
        .args(["-c", "exec yes > /dev/null"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn a CPU burner")
}

fn sync_counters(node: &TestNode) -> String {
    node.try_call(&["status"]).map(|s| s["sync"].to_string()).unwrap_or_default()
}

fn busy_join(cluster: &mut TestCluster, records: u64, timeout: Duration) {
    for node in &cluster.nodes {
        println!("  {} before: sync {}", node.name, sync_counters(node));
    }
    let mut burners = [burner(), burner()];
    thread::sleep(Duration::from_secs(1));
    println!("busy join: 2 CPU burners running, load average {}", load());
    let peers: Vec<String> = cluster.nodes.iter().map(TestNode::addr).collect();
    let spec = cluster.spec("joiner", &peers);
    let joining = Instant::now();
    let joiner = cluster.start(spec);
    let joined = common::wait_every(Duration::from_millis(500), timeout, || {
        bans(cluster.node(joiner)) >= records
    });
    let took = joining.elapsed().as_secs_f64();
    let verdict = if joined { "joined" } else { "did NOT join" };
    println!("busy join: {verdict} in {took:.1} s (load average {})", load());
    thread::sleep(Duration::from_secs(5));
    for burner in &mut burners {
        let _ = burner.kill();
        let _ = burner.wait();
    }
    for node in &cluster.nodes {
        let rss = node.pid().map_or(0.0, vm_hwm_mib);
        println!("  {}: VmHWM {rss:.0} MiB; sync {}", node.name, sync_counters(node));
    }
    for line in sync_lines(cluster.node(joiner), 0) {
        println!("  {line}");
    }
}

fn main() {
    let records = env_num("BANMESH_BENCH_RECORDS", 100_000);
    let timeout = Duration::from_secs(env_num("BANMESH_BENCH_TIMEOUT_S", 600) as u64);
    let only = std::env::var("BANMESH_BENCH_ONLY").unwrap_or_default();
    let runs = |phase: &str| only.is_empty() || only.split(',').any(|p| p.trim() == phase);
    println!("catchup bench: {records} records, load average {}", load());
    let mut cluster = TestCluster::new();
    cluster.start_star(1, None);
    let started = Instant::now();
    issue_bans_from(&cluster.node(0).socket, 0, records);
    println!("filled node1 in {:.1} s", started.elapsed().as_secs_f64());
    let spec = cluster.spec("node2", &[cluster.node(0).addr()]);
    cluster.start(spec);
    assert!(cluster.wait_for_same_digest(timeout), "node2 did not catch up");
    println!("node2 caught up after {:.1} s", started.elapsed().as_secs_f64());
    let mut total = records;
    if runs("restart") {
        cluster.node_mut(1).stop();
        issue_bans_from(&cluster.node(0).socket, total, MISSED);
        total += MISSED;
        catch_up(&mut cluster, 1, total as u64, timeout, "restart, 1,000 new records");
    }
    if runs("scattered") {
        cluster.node_mut(1).stop();
        delete_scattered(cluster.node(1), MISSED);
        catch_up(&mut cluster, 1, total as u64, timeout, "1,000 missing, scattered");
    }
    if runs("busy") {
        busy_join(&mut cluster, total as u64, timeout);
    }
    println!("load average {}", load());
}
