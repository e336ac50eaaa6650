//! A node's start-up at scale (issue 15, "fast start"), over loopback:
//! node1 is filled with N bans of its own through the control socket and
//! node2 catches up from it; then node1 is restarted, three times after a
//! clean stop (SIGTERM) and once after `kill -9`. For each start it prints
//! the time from launch until `status` answers, until node2 is connected
//! again and until the index is whole (enforcement can start), node1's
//! own start-up lines (the time each phase took), and its peak and
//! resident memory (VmHWM, VmRSS) 10 s later. Last, node1's store is
//! turned back into a schema version 4 file (as a node of before the
//! clean-close marker left it) and started once more: the one-time
//! migration to version 5 (and the integrity check such a file gets).
//! Asserts nothing.
//!
//! Run: `cargo bench -p banmesh-node --bench start`. Environment:
//! `BANMESH_BENCH_RECORDS` (100000), `BANMESH_BENCH_TIMEOUT_S` (600),
//! `BANMESH_BENCH_PEER` (1; 0 starts no node2). The node inherits the
//! environment: `MALLOC_ARENA_MAX=2 cargo bench ...` measures glibc with
//! two malloc arenas.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "util.rs"]
mod util;

use std::thread;
use std::time::{Duration, Instant};

use common::{TestCluster, TestNode};
use util::{env_num, load, vm_hwm_mib, vm_rss_mib};

/// Log lines that tell how the start went.
const START_LINES: [&str; 6] = [
    "store opened",
    "index built",
    "integrity",
    "banmesh node started",
    "index ready",
    "schema migrated",
];

/// Whether the index is whole: the log line of this build that says so
/// (`index ready`), or of builds that build it before `status` answers.
fn index_whole(log: &str) -> bool {
    log.contains("index ready") || log.contains("store opened and index built")
}

/// Starts node1 again after `how` and prints what its start took.
fn start(cluster: &mut TestCluster, peer: bool, how: &str, timeout: Duration) {
    let node = cluster.node_mut(0);
    let log_from = node.log_text().len();
    let launched = Instant::now();
    node.restart();
    let answered = launched.elapsed().as_secs_f64();
    // A second `status` at once: what the first one cost beyond it is
    // what the node does for the first `status` after a start.
    let asked = Instant::now();
    node.status();
    let again = asked.elapsed().as_secs_f64();
    let tail = |node: &TestNode| node.log_text().get(log_from..).unwrap_or_default().to_owned();
    let mut connected = None;
    let mut whole = None;
    common::wait_every(Duration::from_millis(20), timeout, || {
        if connected.is_none() && (!peer || !node.connected_peers().is_empty()) {
            connected = Some(launched.elapsed().as_secs_f64());
        }
        if whole.is_none() && index_whole(&tail(node)) {
            whole = Some(launched.elapsed().as_secs_f64());
        }
        connected.is_some() && whole.is_some()
    });
    let secs = |t: Option<f64>| t.map_or_else(|| "never".to_owned(), |t| format!("{t:.2} s"));
    println!(
        "start after {how}: status answered {answered:.2} s (the next status {again:.2} s), \
         peer connected {}, index whole {} (from launch; load average {})",
        if peer { secs(connected) } else { "-".to_owned() },
        secs(whole),
        load()
    );
    thread::sleep(Duration::from_secs(10));
    let pid = node.pid().unwrap_or(0);
    let (hwm, rss) = (vm_hwm_mib(pid), vm_rss_mib(pid));
    println!("  10 s later: VmHWM {hwm:.0} MiB, VmRSS {rss:.0} MiB");
    for line in tail(node).lines().filter(|l| START_LINES.iter().any(|s| l.contains(s))) {
        let line = line.split_once(" banmesh").map_or(line, |(_, rest)| rest).trim();
        println!("  {line}");
    }
}

/// Turns a stopped node's store back into the schema version 4 file a
/// node of before version 5 left: the origin index without `issued_at`,
/// no `meta` table (so no clean-close marker).
fn to_schema_v4(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).expect("open the store");
    conn.execute_batch(
        "DROP INDEX records_origin;
         CREATE INDEX records_origin ON records (origin);
         DROP TABLE meta;
         PRAGMA user_version = 4;",
    )
    .expect("turn the store back into version 4");
}

fn main() {
    let records = env_num("BANMESH_BENCH_RECORDS", 100_000);
    let timeout = Duration::from_secs(env_num("BANMESH_BENCH_TIMEOUT_S", 600) as u64);
    let peer = env_num("BANMESH_BENCH_PEER", 1) != 0;
    let arenas = std::env::var("MALLOC_ARENA_MAX").unwrap_or_else(|_| "unset".to_owned());
    println!("start bench: {records} records, MALLOC_ARENA_MAX {arenas}, load average {}", load());
    let mut cluster = TestCluster::new();
    cluster.start_star(1, None);
    let started = Instant::now();
    common::issue_bans(&cluster.node(0).socket, records);
    println!("filled node1 in {:.1} s", started.elapsed().as_secs_f64());
    if peer {
        let spec = cluster.spec("node2", &[cluster.node(0).addr()]);
        cluster.start(spec);
        assert!(cluster.wait_for_same_digest(timeout), "node2 did not catch up");
        println!("node2 caught up after {:.1} s", started.elapsed().as_secs_f64());
    }
    for round in 1..=3 {
        cluster.node_mut(0).stop();
        start(&mut cluster, peer, &format!("a clean stop ({round})"), timeout);
    }
    cluster.node_mut(0).kill();
    start(&mut cluster, peer, "kill -9", timeout);
    cluster.node_mut(0).stop();
    let back = Instant::now();
    to_schema_v4(&cluster.node(0).data_dir.join("banmesh.db"));
    println!("store turned back into schema version 4 in {:.1} s", back.elapsed().as_secs_f64());
    start(&mut cluster, peer, "a stop on schema version 4", timeout);
    println!("load average {}", load());
}
