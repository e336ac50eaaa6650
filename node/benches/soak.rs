//! Soak (issue 17, item 4): 5 nodes in network namespaces under a steady
//! stream of bans, 10 % of one host's packets dropped (nftables `numgen` in
//! its namespace: this kernel has no `sch_netem`), and one node restarted
//! every 2 minutes, for 30 minutes. Prints, per minute, each node's RSS,
//! open files, threads, store size (file + WAL) and record count, and the
//! propagation p50/p99 of probe bans (one a second, on a rotating node,
//! polled on the others every 50 ms); at the end, after the load stops,
//! whether the digests are equal and how many acknowledged live bans some
//! node lacks (records lost: must be 0). Asserts nothing.
//!
//! Run as root: `cargo bench -p banmesh-node --bench soak`. Environment:
//! `BANMESH_SOAK_MINUTES` (30), `BANMESH_SOAK_RATE` (bans/s, 1000),
//! `BANMESH_SOAK_RESTART_S` (120), `BANMESH_SOAK_LOSS` (percent, 10).
//! Bans last 2 minutes; `cluster.max_ttl` is 5 minutes and `retention` 3,
//! so GC (every minute) may collect a record 8.5 minutes after its issue
//! (`Params::collectable_after_ms`) and the store reaches a steady size of
//! about 9 minutes of bans. (With the default 5-week `max_ttl` nothing is
//! collected within a run and the store grows with every ban.)

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use banmesh_node::control::client;
use banmesh_node::control::protocol::{Command as Wire, OrderSpec, Response};
use common::TestCluster;
use common::netns::Net;

const NODES: usize = 5;
const BAN_MS: u64 = 120_000;
/// How long after the load stops the nodes have to agree.
const SETTLE: Duration = Duration::from_secs(300);

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned()
}

fn key(i: u64) -> String {
    format!("10.{}.{}.{}", 100 + i / 65_536, (i / 256) % 256, i % 256)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Bans on the nodes in turn, `rate` a second in tenths; returns the
/// acknowledged (key index, issued at) pairs when `stop` is set.
fn ingest(sockets: Vec<PathBuf>, rate: u64, stop: Arc<AtomicBool>) -> Vec<(u64, Instant)> {
    let rt = runtime();
    let per_tick = (rate / 10).max(1);
    let mut acked = Vec::new();
    let mut next = 0u64;
    let mut tick = Instant::now();
    for turn in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let socket = &sockets[turn % sockets.len()];
        let first = next;
        next += per_tick;
        let orders = (first..next)
            .map(|i| OrderSpec {
                kind: "ban".into(),
                key: key(i),
                duration_ms: Some(BAN_MS),
                ..OrderSpec::default()
            })
            .collect();
        let call = client::call_within(socket, Wire::Issue { orders }, Duration::from_secs(5));
        if let Ok(Response::Issued(items)) = rt.block_on(call) {
            let now = Instant::now();
            let ok = items.iter().zip(first..).filter(|(item, _)| item.id.is_some());
            acked.extend(ok.map(|(_, i)| (i, now)));
        }
        tick += Duration::from_millis(100);
        thread::sleep(tick.saturating_duration_since(Instant::now()));
    }
    acked
}

/// One probe ban a second on a rotating node; each other node polled every
/// 50 ms until it holds it (at most 60 s). Latencies in ms, by minute.
fn probe(
    sockets: Vec<PathBuf>,
    start: Instant,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Vec<(u64, u64)>>>,
) {
    let rt = runtime();
    for n in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let began = Instant::now();
        let ip = format!("10.250.{}.{}", (n / 256) % 256, n % 256);
        let origin = (n as usize) % sockets.len();
        let ban = Wire::Ban {
            key: ip.clone(),
            duration_ms: Some(BAN_MS),
            permanent: false,
            jail: None,
            reason: None,
        };
        if !matches!(
            rt.block_on(client::call_within(&sockets[origin], ban, Duration::from_secs(5))),
            Ok(Response::Written { .. })
        ) {
            thread::sleep(Duration::from_secs(1));
            continue;
        }
        let issued = Instant::now();
        let mut waiting: Vec<usize> = (0..sockets.len()).filter(|i| *i != origin).collect();
        while !waiting.is_empty() && issued.elapsed() < Duration::from_secs(60) {
            waiting.retain(|&i| {
                let trace = client::call_within(&sockets[i], Wire::Trace { ip: ip.clone() }, Duration::from_secs(2));
                let held = matches!(rt.block_on(trace), Ok(Response::Trace(t)) if t.decision.starts_with("banned"));
                if held {
                    let minute = issued.duration_since(start).as_secs() / 60;
                    let ms = issued.elapsed().as_millis() as u64;
                    out.lock().unwrap_or_else(|e| e.into_inner()).push((minute, ms));
                }
                !held
            });
            thread::sleep(Duration::from_millis(50));
        }
        thread::sleep(Duration::from_secs(1).saturating_sub(began.elapsed()));
    }
}

fn proc_field(pid: u32, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with(name)).unwrap_or("");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// One line per node: RSS, peak, open files, threads, store size, records.
fn report_nodes(cluster: &TestCluster) {
    for i in 0..NODES {
        let node = cluster.node(i);
        let Some(pid) = node.pid() else {
            println!("  node{}: down", i + 1);
            continue;
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
        let db = node.data_dir.join("banmesh.db");
        let wal = node.data_dir.join("banmesh.db-wal");
        let records = node.try_call(&["status"]).ok().map(|s| {
            s["record_counts"]
                .as_object()
                .map_or(0, |c| c.values().filter_map(|v| v.as_u64()).sum())
        });
        println!(
            "  node{}: rss {} MiB (peak {} MiB), {fds} fds, {} threads, store {:.1} MiB + wal {:.1} MiB, {} records",
            i + 1,
            proc_field(pid, "VmRSS") >> 10,
            proc_field(pid, "VmHWM") >> 10,
            proc_field(pid, "Threads"),
            file_len(&db) as f64 / 1048576.0,
            file_len(&wal) as f64 / 1048576.0,
            records.map_or_else(|| "?".to_owned(), |n| n.to_string()),
        );
    }
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report_minute(minute: u64, latencies: &Mutex<Vec<(u64, u64)>>) {
    let mut of: Vec<u64> = latencies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(m, _)| *m == minute)
        .map(|(_, ms)| *ms)
        .collect();
    of.sort_unstable();
    println!(
        "minute {minute}: propagation p50 {} ms, p99 {} ms over {} (probe, node) pairs; load {}",
        pct(&of, 0.5),
        pct(&of, 0.99),
        of.len(),
        load()
    );
}

/// Drops `percent` % of host `i`'s packets both ways.
fn lossy(net: &Net, i: usize, percent: u64) {
    let rules = format!(
        "table inet soakloss {{\n\
         chain rx {{ type filter hook input priority -300; numgen random mod 100 < {percent} drop; }}\n\
         chain tx {{ type filter hook output priority -300; numgen random mod 100 < {percent} drop; }}\n}}\n"
    );
    let status = net
        .host(i)
        .command("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().expect("stdin").write_all(rules.as_bytes())?;
            child.wait()
        });
    assert!(
        matches!(status, Ok(s) if s.success()),
        "nft loss rules (apt-get install nftables): {status:?}"
    );
}

fn main() {
    common::netns::require_root_and_iproute2();
    let minutes = env_num("BANMESH_SOAK_MINUTES", 30);
    let rate = env_num("BANMESH_SOAK_RATE", 1000);
    let restart_every = Duration::from_secs(env_num("BANMESH_SOAK_RESTART_S", 120));
    let loss = env_num("BANMESH_SOAK_LOSS", 10);
    println!(
        "soak: {NODES} nodes, {rate} bans/s, {loss} % loss on node{NODES}, a restart every {restart_every:?}, {minutes} min; load {}",
        load()
    );

    let net = Net::new(NODES);
    let mut cluster = TestCluster::new();
    let config = cluster.path("soak.toml");
    std::fs::write(
        &config,
        "[cluster]\nmax_ttl = \"5m\"\nretention = \"3m\"\n[bans]\nbantime = \"2m\"\nbantime_maxtime = \"5m\"\n\
         allowed_duration = \"1m\"\nknown_duration = \"1m\"\n[store]\ngc_interval = \"1m\"\n",
    )
    .expect("config");
    cluster.start_on_net(&net, Some(&config));
    lossy(&net, NODES - 1, loss);
    cluster.wait_for_peers(2);
    let sockets: Vec<PathBuf> = (0..NODES).map(|i| cluster.node(i).socket.clone()).collect();

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let ingest_thread = {
        let (sockets, stop) = (sockets.clone(), stop.clone());
        thread::spawn(move || ingest(sockets, rate, stop))
    };
    let probe_thread = {
        let (sockets, stop, out) = (sockets.clone(), stop.clone(), latencies.clone());
        thread::spawn(move || probe(sockets, start, stop, out))
    };
    println!("start:");
    report_nodes(&cluster);
    let restarts = AtomicU64::new(0);
    let mut next_restart = start + restart_every;
    for minute in 0..minutes {
        let end = start + Duration::from_secs(60 * (minute + 1));
        while Instant::now() < end {
            if Instant::now() >= next_restart {
                let n = restarts.fetch_add(1, Ordering::Relaxed);
                let index = 1 + (n as usize) % (NODES - 1);
                let node = cluster.node_mut(index);
                if n.is_multiple_of(2) {
                    node.stop();
                } else {
                    node.kill();
                }
                node.restart();
                next_restart += restart_every;
            }
            thread::sleep(Duration::from_millis(200));
        }
        report_minute(minute, &latencies);
        println!("  restarts so far: {}", restarts.load(Ordering::Relaxed));
        report_nodes(&cluster);
    }
    stop.store(true, Ordering::Relaxed);
    let acked = ingest_thread.join().expect("ingest thread");
    let _ = probe_thread.join();
    // Bans issued in the last 90 s of the load: live, and kept by GC for
    // minutes more, so every node must hold them.
    let live: Vec<String> = acked
        .iter()
        .filter(|(_, at)| at.elapsed() < Duration::from_millis(BAN_MS - 30_000))
        .map(|(i, _)| key(*i))
        .collect();
    let settle = Instant::now();
    let same = cluster.wait_for_same_digest(SETTLE);
    println!(
        "load stopped: {} bans acknowledged; digests equal: {same} after {:.1} s",
        acked.len(),
        settle.elapsed().as_secs_f64()
    );
    // Each node asked, key by key, for every tenth live acknowledged ban
    // (the whole store is a million records by now; `trace` reads one key).
    let rt = runtime();
    for i in 0..NODES {
        let socket = &cluster.node(i).socket;
        let lost = live
            .iter()
            .step_by(10)
            .filter(|ip| {
                let trace = Wire::Trace { ip: (*ip).clone() };
                let answer =
                    rt.block_on(client::call_within(socket, trace, Duration::from_secs(5)));
                !matches!(answer, Ok(Response::Trace(t)) if !t.records.is_empty())
            })
            .count();
        println!(
            "  node{}: {lost} of {} live acknowledged bans (every tenth) missing",
            i + 1,
            live.len().div_ceil(10)
        );
    }
    println!("end:");
    report_nodes(&cluster);
}
