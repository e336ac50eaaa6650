//! Propagation benchmark: N `banmesh node` processes on loopback, started in
//! a star (every node is told only of node 1), warmed up for 10 s (and until
//! every node has at least 3 connected peers), then B bans issued on random
//! nodes at a fixed rate through the control socket. The latency of a record
//! on a node is the timestamp of that node's `record_applied` log event minus
//! the timestamp of the origin's `record_issued` event (both structured
//! tracing events, µs resolution, one machine clock); the same figure
//! measured from the record's HLC (`issued_at >> 16`, ms) is printed too.
//! Each rate runs on a fresh mesh. Prints figures; asserts nothing.
//!
//! Run: `cargo bench -p banmesh-node --bench propagation`. Environment:
//! `BANMESH_BENCH_NODES` (10), `BANMESH_BENCH_BANS` (1000),
//! `BANMESH_BENCH_RATES` (`50,500`, bans per second),
//! `BANMESH_BENCH_WARMUP_S` (10), `BANMESH_BENCH_KEEP` (set: keep the
//! directory with the logs).

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "propagation/issue.rs"]
mod issue;
#[path = "propagation/logs.rs"]
mod logs;
#[path = "propagation/nodes.rs"]
mod nodes;

use issue::Issued;
use logs::{LogFacts, ms, ms_f, parse_log, pct};
use nodes::{Node, ban_count, bin, cli, connected_peers, free_port, status};

/// Target from the issue: p50 and p99 of issue-to-stored, in ms.
const TARGET_P50_MS: f64 = 20.0;
const TARGET_P99_MS: f64 = 250.0;
/// A (record, node) pair stored later than this most likely came by sync.
const LATE_US: i64 = 5_000_000;
/// How long the bench waits for every node to hold every ban.
const CONVERGE_CAP: Duration = Duration::from_secs(60);
/// Peers each node should have before bans are issued.
const WANT_PEERS: usize = 3;
/// How long, beyond the warm-up, the bench waits for those peers.
const PEER_CAP: Duration = Duration::from_secs(20);
const STOP_GRACE: Duration = Duration::from_secs(10);

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// One run's figures, for the summary table.
struct RunSummary {
    rate: u64,
    bans_ok: usize,
    issue_secs: f64,
    pairs: usize,
    p50: i64,
    p90: i64,
    p99: i64,
    max: i64,
    missing: usize,
    late: usize,
    converge_secs: Option<f64>,
}

async fn run(base: &Path, nodes_n: usize, bans: u64, rate: u64, warmup: Duration) -> RunSummary {
    let dir = base.join(format!("rate{rate}"));
    fs::create_dir_all(&dir).expect("create run dir");
    println!(
        "\n=== {rate} bans/s: {nodes_n} nodes, {bans} bans, fresh mesh in {} ===",
        dir.display()
    );

    cli(&dir, &["keys", "init-cluster", "--out", "c"]);
    let ports: Vec<u16> = (0..nodes_n).map(|_| free_port()).collect();
    let mut nodes = Vec::new();
    for i in 1..=nodes_n {
        let n = format!("n{i}");
        cli(&dir, &["keys", "init", "--out", &n]);
        cli(
            &dir,
            &[
                "keys",
                "enroll",
                "--cluster-key",
                "c/cluster.key",
                "--node-pub",
                &format!("{n}/node.pub"),
                "--name",
                &format!("node{i}"),
                "--out",
                &format!("{n}/node.cert"),
            ],
        );
        let socket = dir.join(format!("{n}.sock"));
        let log = dir.join(format!("{n}.log"));
        let mut cmd = Command::new(bin());
        cmd.current_dir(&dir)
            .args(["node", "--data-dir", &n, "--cluster-pub", "c/cluster.pub", "--listen"])
            .arg(format!("/ip4/127.0.0.1/tcp/{}", ports[i - 1]))
            .arg("--socket")
            .arg(&socket)
            .env("RUST_LOG", "info,libp2p=warn,banmesh::events=debug")
            .stdin(Stdio::null())
            .stdout(File::create(dir.join(format!("{n}.out"))).expect("stdout file"))
            .stderr(File::create(&log).expect("log file"));
        if i > 1 {
            cmd.arg("--peer").arg(format!("/ip4/127.0.0.1/tcp/{}", ports[0]));
        }
        let child = cmd.spawn().expect("spawn banmesh node");
        nodes.push(Node { child, socket, log, started: Instant::now(), stopped: None });
    }
    let mesh_start = Instant::now();

    // Every control socket answers.
    for (i, n) in nodes.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(30);
        while status(&n.socket).await.is_none() {
            assert!(Instant::now() < deadline, "node{} never answered on its socket", i + 1);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Warm-up: at least `warmup`, and every node with WANT_PEERS connected peers.
    let want = WANT_PEERS.min(nodes_n - 1);
    let mut counts;
    loop {
        counts = Vec::new();
        for n in &nodes {
            counts.push(connected_peers(&n.socket).await.unwrap_or(0));
        }
        let elapsed = mesh_start.elapsed();
        if elapsed >= warmup && counts.iter().all(|&c| c >= want) {
            break;
        }
        if elapsed >= warmup + PEER_CAP {
            println!("WARNING: not every node reached {want} connected peers after {elapsed:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "warm-up {:.1} s; connected peers per node: {}",
        mesh_start.elapsed().as_secs_f64(),
        counts
            .iter()
            .enumerate()
            .map(|(i, c)| format!("node{}={c}", i + 1))
            .collect::<Vec<_>>()
            .join(" ")
    );

    // Issue the bans, paced, on random nodes.
    let sockets: Arc<Vec<PathBuf>> = Arc::new(nodes.iter().map(|n| n.socket.clone()).collect());
    let issue_start = Instant::now();
    let Issued { ok, secs: issue_secs } =
        issue::paced(sockets.clone(), bans, rate, 0x0bad_5eed ^ rate).await;

    // Wait until every node holds every ban.
    let wait_start = Instant::now();
    let mut converge_secs = None;
    let mut last;
    let mut last_error = None;
    loop {
        last = Vec::new();
        for s in sockets.iter() {
            match ban_count(s).await {
                Ok(c) => last.push(c),
                Err(e) => {
                    last.push(0);
                    last_error = Some(e);
                }
            }
        }
        if last.iter().all(|&c| c >= ok as u64) {
            converge_secs = Some(issue_start.elapsed().as_secs_f64());
            break;
        }
        if wait_start.elapsed() >= CONVERGE_CAP {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match converge_secs {
        Some(s) => println!(
            "every node holds all {ok} bans {s:.2} s after the first issue ({:.2} s after the last)",
            wait_start.elapsed().as_secs_f64()
        ),
        None => println!(
            "WARNING: not converged after {:.1} s; ban counts {last:?}; last status error: {}",
            wait_start.elapsed().as_secs_f64(),
            last_error.unwrap_or_else(|| "none".to_owned())
        ),
    }

    // What each node refused or dropped (e.g. gossip dropped while its
    // verifier was busy), and its own warnings.
    for (i, s) in sockets.iter().enumerate() {
        if let Some(st) = status(s).await
            && (!st.rejects.is_empty() || !st.warnings.is_empty())
        {
            println!("  node{} rejects {:?} warnings {:?}", i + 1, st.rejects, st.warnings);
        }
    }

    // Stop the nodes: SIGTERM, then wait (kill after a grace period).
    for n in &nodes {
        let _ = Command::new("kill").arg("-TERM").arg(n.child.id().to_string()).status();
    }
    for (i, n) in nodes.iter_mut().enumerate() {
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            match n.child.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() {
                        println!("node{} exited with {status}", i + 1);
                    }
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => {
                    println!("node{} did not stop within {STOP_GRACE:?}; killed", i + 1);
                    let _ = n.child.kill();
                    let _ = n.child.wait();
                    break;
                }
            }
        }
        n.stopped = Some(Instant::now());
    }

    // Parse the logs.
    let facts: Vec<LogFacts> = nodes.iter().map(|n| parse_log(&n.log)).collect();
    let mut origin_of: HashMap<&(String, u64), (usize, i64)> = HashMap::new();
    for (i, f) in facts.iter().enumerate() {
        for (k, &t) in &f.issued {
            origin_of.insert(k, (i, t));
        }
    }
    let mut lat = Vec::new(); // from the record_issued line (µs)
    let mut lat_hlc = Vec::new(); // from issued_at >> 16 (ms resolution)
    let mut per_record_all = Vec::new(); // until stored on every other node
    let (mut missing, mut late) = (0usize, 0usize);
    for (k, &(origin, t_issue)) in &origin_of {
        let t_hlc = ((k.1 >> 16) as i64) * 1000;
        let mut worst = Some(0i64);
        for (j, f) in facts.iter().enumerate() {
            if j == origin {
                continue;
            }
            match f.applied.get(*k) {
                Some(&t) => {
                    let l = t - t_issue;
                    if l > LATE_US {
                        late += 1;
                    }
                    lat.push(l);
                    lat_hlc.push(t - t_hlc);
                    worst = worst.map(|w| w.max(l));
                }
                None => {
                    missing += 1;
                    worst = None;
                }
            }
        }
        if let Some(w) = worst {
            per_record_all.push(w);
        }
    }
    lat.sort_unstable();
    lat_hlc.sort_unstable();
    per_record_all.sort_unstable();
    let expected_pairs = origin_of.len() * (nodes_n - 1);
    println!(
        "records: {} record_issued events in the logs (of {ok} bans written), {} (record, node) pairs expected",
        origin_of.len(),
        expected_pairs
    );
    let row = |name: &str, v: &[i64]| {
        println!(
            "  {name:<44} {:>7} {:>9} {:>9} {:>9} {:>9}",
            v.len(),
            ms(pct(v, 0.5)),
            ms(pct(v, 0.9)),
            ms(pct(v, 0.99)),
            ms(pct(v, 1.0))
        );
    };
    println!(
        "  {:<44} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "latency, ms", "n", "p50", "p90", "p99", "max"
    );
    row("per (record, node), from record_issued line", &lat);
    row("per (record, node), from HLC issued_at (ms)", &lat_hlc);
    row("per record, until on all other nodes", &per_record_all);
    println!(
        "  never arrived: {missing} of {expected_pairs} pairs ({:.3} %); arrived after > 5 s (sync?): {late}",
        if expected_pairs == 0 { 0.0 } else { 100.0 * missing as f64 / expected_pairs as f64 }
    );

    // Log volume and warnings.
    for (i, (n, f)) in nodes.iter().zip(&facts).enumerate() {
        let secs = n.stopped.unwrap_or_else(Instant::now).duration_since(n.started).as_secs_f64();
        println!(
            "  node{:<2} log {:>8} B over {:>5.1} s = {:>7.0} B/s; {} issued, {} applied, {} WARN/ERROR lines",
            i + 1,
            f.bytes,
            secs,
            f.bytes as f64 / secs,
            f.issued.len(),
            f.applied.len(),
            f.warning_count
        );
        for w in &f.warnings {
            println!("      {w}");
        }
    }

    RunSummary {
        rate,
        bans_ok: ok,
        issue_secs,
        pairs: lat.len(),
        p50: pct(&lat, 0.5),
        p90: pct(&lat, 0.9),
        p99: pct(&lat, 0.99),
        max: pct(&lat, 1.0),
        missing,
        late,
        converge_secs,
    }
}

fn main() {
    let nodes_n = env_num("BANMESH_BENCH_NODES", 10).max(2) as usize;
    let bans = env_num("BANMESH_BENCH_BANS", 1000);
    let warmup = Duration::from_secs(env_num("BANMESH_BENCH_WARMUP_S", 10));
    let rates: Vec<u64> = std::env::var("BANMESH_BENCH_RATES")
        .unwrap_or_else(|_| "50,500".to_owned())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .filter(|&r| r > 0)
        .collect();
    let keep = std::env::var_os("BANMESH_BENCH_KEEP").is_some();
    let tmp = tempfile::Builder::new().prefix("banmesh-propagation.").tempdir().expect("tempdir");
    let base = tmp.path().to_owned();
    let command = format!(
        "BANMESH_BENCH_NODES={nodes_n} BANMESH_BENCH_BANS={bans} BANMESH_BENCH_RATES={} \
         BANMESH_BENCH_WARMUP_S={} cargo bench -p banmesh-node --bench propagation",
        rates.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
        warmup.as_secs()
    );
    println!("propagation bench: {command}");

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let summaries: Vec<RunSummary> =
        rates.iter().map(|&rate| rt.block_on(run(&base, nodes_n, bans, rate, warmup))).collect();

    println!(
        "\n=== summary: issue-to-stored latency per (record, node), from record_issued log timestamps ==="
    );
    println!("command: {command}");
    println!(
        "{:>8} {:>6} {:>8} {:>6} {:>8} {:>8} {:>8} {:>9} {:>8} {:>6} {:>10}  target (p50<={TARGET_P50_MS} ms, p99<={TARGET_P99_MS} ms)",
        "bans/s",
        "bans",
        "issue s",
        "pairs",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "missing",
        "late",
        "all on all"
    );
    for s in &summaries {
        let meets = ms_f(s.p50) <= TARGET_P50_MS && ms_f(s.p99) <= TARGET_P99_MS && s.missing == 0;
        println!(
            "{:>8} {:>6} {:>8.2} {:>6} {:>8} {:>8} {:>8} {:>9} {:>8} {:>6} {:>10}  {}",
            s.rate,
            s.bans_ok,
            s.issue_secs,
            s.pairs,
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.max),
            s.missing,
            s.late,
            s.converge_secs.map_or("no".to_owned(), |c| format!("{c:.2} s")),
            if meets { "met" } else { "NOT met" }
        );
    }
    if keep {
        let kept = tmp.keep();
        println!("logs kept in {}", kept.display());
    }
}
