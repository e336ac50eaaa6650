//! The mesh on separate hosts, measured: real `banmesh node` processes, one
//! per network namespace on a bridge (the test harness's `Net`), as root.
//! Prints figures; asserts nothing.
//!
//! 1. Formation: N hosts started at once, each told only of host 1; time
//!    until every node has `min(N - 1, 4)` connected peers (gossipsub's
//!    `mesh_n_low`: full gossip connectivity).
//! 2. Propagation with `tc netem delay` on every host: bans issued on random
//!    nodes; per (record, node) latency from the origin's `record_issued`
//!    log event to the node's `record_applied` (one machine clock).
//! 3. Heal: one host cut for a while, and a three-way split, with bans
//!    issued on every side during the cut; time from heal until every
//!    node's state digest is equal, and how many issued bans some node lacks
//!    then (records lost: must be 0).
//!
//! Run as root: `BANMESH_TEST_LOG=info,libp2p=warn,banmesh::events=debug
//! cargo bench -p banmesh-node --bench netns` (`record_applied` is a debug
//! event: without it the propagation figures are empty). Environment:
//! `BANMESH_BENCH_HOSTS` (10), `BANMESH_BENCH_DELAY_MS` (20),
//! `BANMESH_BENCH_BANS` (200), `BANMESH_BENCH_RATE` (bans a second, issued
//! on random nodes straight through their control sockets; 0, the default,
//! runs `banmesh ban` round the nodes, one every 20 ms after the last answer), `BANMESH_BENCH_CUTS` (`30,150`, seconds),
//! `BANMESH_BENCH_ONLY` (`formation`, `propagation`, `heal` or `split`).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "propagation/issue.rs"]
mod issue;
#[allow(dead_code)]
#[path = "propagation/logs.rs"]
mod logs;
#[allow(dead_code)]
#[path = "propagation/nodes.rs"]
mod nodes;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::netns::Net;
use common::{TestCluster, wait_until};

/// Longest any phase waits for the mesh.
const CAP: Duration = Duration::from_secs(180);

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

fn wanted(phase: &str) -> bool {
    std::env::var("BANMESH_BENCH_ONLY").map_or(true, |only| only == phase)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned()
}

fn main() {
    common::netns::require_root_and_iproute2();
    let hosts = usize::try_from(env_num("BANMESH_BENCH_HOSTS", 10)).unwrap_or(10);
    println!("netns bench: {hosts} hosts, load average {}", load());
    if wanted("formation") {
        formation(hosts);
    }
    if wanted("propagation") {
        propagation(hosts);
    }
    if wanted("heal") {
        let cuts = std::env::var("BANMESH_BENCH_CUTS").unwrap_or_else(|_| "30,150".to_owned());
        for secs in cuts.split(',').filter_map(|s| s.trim().parse::<u64>().ok()) {
            heal_after_cut(Duration::from_secs(secs));
        }
    }
    if wanted("split") {
        heal_after_split();
    }
    println!("done, load average {}", load());
}

/// Starts a node on every host at once (each told only of host 1).
fn spawn_all(net: &Net, cluster: &mut TestCluster) {
    let first = net.host(0).mesh_addr();
    for (i, host) in net.hosts.iter().enumerate() {
        let peers = if i == 0 { Vec::new() } else { vec![first.clone()] };
        let spec = cluster.spec(&format!("node{}", i + 1), &peers);
        let node = common::TestNode::spawn_on(cluster.dir.path(), spec, Some(host.clone()));
        cluster.nodes.push(node);
    }
    for node in &mut cluster.nodes {
        node.wait_ready();
    }
}

fn formation(hosts: usize) {
    let net = Net::new(hosts);
    let mut cluster = TestCluster::new();
    let start = Instant::now();
    spawn_all(&net, &mut cluster);
    let want = (hosts - 1).min(4);
    let ok = wait_until(CAP, || cluster.nodes.iter().all(|n| n.connected_peers().len() >= want));
    let counts: Vec<usize> = cluster.nodes.iter().map(|n| n.connected_peers().len()).collect();
    println!(
        "formation: {hosts} hosts from one bootstrap address: {} to >= {want} peers each ({}), peers {counts:?}",
        if ok { format!("{:.2} s", start.elapsed().as_secs_f64()) } else { "never".to_owned() },
        if ok { "reached" } else { "NOT reached" },
    );
}

fn propagation(hosts: usize) {
    let delay = env_num("BANMESH_BENCH_DELAY_MS", 20);
    let bans = env_num("BANMESH_BENCH_BANS", 200);
    let net = Net::new(hosts);
    let mut delayed = true;
    for i in 0..hosts {
        if let Err(e) = net.netem(i, &["delay", &format!("{delay}ms")]) {
            println!("propagation: no added delay: {e}");
            delayed = false;
            break;
        }
    }
    let delay = if delayed { delay } else { 0 };
    let mut cluster = TestCluster::new();
    spawn_all(&net, &mut cluster);
    let want = (hosts - 1).min(4);
    wait_until(CAP, || cluster.nodes.iter().all(|n| n.connected_peers().len() >= want));
    thread::sleep(Duration::from_secs(3));
    // Paced at `BANMESH_BENCH_RATE` bans a second straight through the
    // control sockets (0: one `banmesh ban` every 20 ms after the previous
    // answer, as before); the rate reached is printed.
    let rate = env_num("BANMESH_BENCH_RATE", 0);
    let issuing = Instant::now();
    let issued = if rate > 0 {
        let sockets: Arc<Vec<_>> =
            Arc::new(cluster.nodes.iter().map(|n| n.socket.clone()).collect());
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        runtime.block_on(issue::paced(sockets, bans, rate, 0x5eed))
    } else {
        for b in 0..bans {
            let ip = format!("198.18.{}.{}", b / 250, b % 250 + 1);
            cluster
                .node(usize::try_from(b).unwrap_or(0) % hosts)
                .call(&["ban", &ip, "--for", "1h"]);
            thread::sleep(Duration::from_millis(20));
        }
        let ok = usize::try_from(bans).unwrap_or(usize::MAX);
        issue::Issued { ok, secs: issuing.elapsed().as_secs_f64() }
    };
    let reached = bans as f64 / issued.secs;
    let want_bans = issued.ok;
    wait_until(CAP, || cluster.nodes.iter().all(|n| n.records().len() >= want_bans));
    let facts: Vec<logs::LogFacts> =
        cluster.nodes.iter().map(|n| logs::parse_log(&n.log)).collect();
    let mut latencies = Vec::new();
    for (origin, f) in facts.iter().enumerate() {
        for (record, issued) in &f.issued {
            for (i, other) in facts.iter().enumerate() {
                if i != origin
                    && let Some(applied) = other.applied.get(record)
                {
                    latencies.push(applied - issued);
                }
            }
        }
    }
    latencies.sort_unstable();
    let expected = want_bans * (hosts - 1);
    println!(
        "propagation: {hosts} hosts, netem delay {delay} ms each way per host, {bans} bans at {reached:.1}/s: p50 {} ms, p99 {} ms, max {} ms over {} of {expected} (record, node) pairs",
        logs::ms(logs::pct(&latencies, 0.5)),
        logs::ms(logs::pct(&latencies, 0.99)),
        logs::ms(latencies.last().copied().unwrap_or(0)),
        latencies.len(),
    );
}

/// Issues `count` bans on `node` (addresses under `prefix`), a few a second.
fn write_bans(
    cluster: &TestCluster,
    node: usize,
    prefix: &str,
    count: u32,
    issued: &mut Vec<String>,
) {
    for i in 0..count {
        let ip = format!("{prefix}.{}", i + 1);
        cluster.node(node).call(&["ban", &ip, "--for", "1h"]);
        issued.push(ip);
        thread::sleep(Duration::from_millis(200));
    }
}

/// Time from now until every digest is equal, and the bans some node lacks.
fn converge(cluster: &TestCluster, issued: &[String]) -> (Option<Duration>, usize) {
    let start = Instant::now();
    let ok = cluster.wait_for_same_digest(CAP);
    let took = ok.then(|| start.elapsed());
    let lost = issued
        .iter()
        .filter(|ip| cluster.nodes.iter().any(|n| n.records_on(ip).is_empty()))
        .count();
    (took, lost)
}

fn report(what: &str, took: Option<Duration>, lost: usize, issued: usize) {
    let took =
        took.map_or_else(|| format!("not within {CAP:?}"), |d| format!("{:.2} s", d.as_secs_f64()));
    println!(
        "{what}: digests equal {took} after the heal; {lost} of {issued} bans lost; load {}",
        load()
    );
}

fn heal_after_cut(cut: Duration) {
    let net = Net::new(3);
    let mut cluster = TestCluster::new();
    spawn_all(&net, &mut cluster);
    wait_until(CAP, || cluster.nodes.iter().all(|n| n.connected_peers().len() >= 2));
    let mut issued = Vec::new();
    let started = Instant::now();
    net.cut(2);
    write_bans(&cluster, 0, "198.19.1", 10, &mut issued);
    write_bans(&cluster, 2, "198.19.3", 10, &mut issued);
    if let Some(rest) = cut.checked_sub(started.elapsed()) {
        thread::sleep(rest);
    }
    net.heal(2);
    let (took, lost) = converge(&cluster, &issued);
    report(
        &format!("heal after a {} s cut of one of 3 hosts", cut.as_secs()),
        took,
        lost,
        issued.len(),
    );
}

fn heal_after_split() {
    let mut net = Net::new(6);
    let mut cluster = TestCluster::new();
    spawn_all(&net, &mut cluster);
    wait_until(CAP, || cluster.nodes.iter().all(|n| n.connected_peers().len() >= 4));
    let mut issued = Vec::new();
    let started = Instant::now();
    net.split(&[&[0, 1], &[2, 3], &[4, 5]]);
    for (side, node) in [0, 2, 4].into_iter().enumerate() {
        write_bans(&cluster, node, &format!("198.19.{}", 10 + side), 10, &mut issued);
    }
    if let Some(rest) = Duration::from_secs(30).checked_sub(started.elapsed()) {
        thread::sleep(rest);
    }
    net.join_all();
    let (took, lost) = converge(&cluster, &issued);
    report("heal after a 30 s three-way split of 6 hosts", took, lost, issued.len());
}
