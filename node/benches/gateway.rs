//! Gateway benchmark (issue 6, item 5): one release `banmesh node` serving
//! the Fail2BanSync API on loopback, loaded with 100,000 live bans through
//! the control socket (`Command::Issue` batches), then measured by its own
//! load generator (tokio, plain HTTP/1.1 keep-alive over `TcpStream`):
//!
//! - `GET /get_ips?page=N&per_page=200`, N cycling over every page, on 16
//!   connections for 10 s: requests/s, p50, p99;
//! - the same while a writer posts 100 fresh addresses every 250 ms (the
//!   lists change, as they do with many clients and expiring bans);
//! - the unpaged `GET /get_ips`, without and with gzip: median time of 5 to
//!   the last byte, and the body size as sent; then as the first request
//!   after a change pays for it (the gateway renders a list once per
//!   snapshot);
//! - `POST /add_ips` of 500 fresh addresses: median time of 5, and the
//!   view rebuilds they caused (from the node's log);
//! - `GET /v1/decisions?limit=200`, walked by cursor on 16 connections;
//! - the dashboard's data calls on 16 connections: `/v1/counts`, recent
//!   activity (`/v1/decisions?state=all&since=...&order=newest&limit=20`, since a day
//!   ago: every record; since the load: the few thousand posted since),
//!   `/v1/status`, `/v1/peers`, `/v1/explain/IP`;
//! - the peak memory (VmHWM) while 64 clients read `GET
//!   /get_ips?search_ip=.` at once;
//! - the unpaged body compressed at gzip levels 1, 6 and 9 (size, time);
//! - memory: the gateway node's `VmRSS` and `VmHWM` after the load (idle)
//!   and at the end, beside a node without a gateway loaded alike (the
//!   difference is what the gateway holds per record).
//!
//! Prints the figures beside the issue's targets and the old server's
//! figures; asserts nothing but that the answers are 200/201.
//!
//! Run: `cargo bench -p banmesh-node --bench gateway`. Environment:
//! `BANMESH_BENCH_RECORDS` (100000), `BANMESH_BENCH_SECONDS` (10),
//! `BANMESH_BENCH_CONNECTIONS` (16), `BANMESH_BENCH_LOG` (the node's
//! `RUST_LOG`; by default warnings and the view's rebuild times),
//! `BANMESH_BENCH_MEMORY_ONLY` (set: load, print the memory figures and
//! stop, for a run at 1,000,000), `BANMESH_BENCH_BARE` (`0`: no node
//! without a gateway beside), `BANMESH_BENCH_KEEP` (set: keep the
//! directory with the node's log).

use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "gateway/conn.rs"]
mod conn;
#[path = "gateway/gzip.rs"]
mod gzip;
#[path = "gateway/memory.rs"]
mod memory;
#[path = "gateway/native.rs"]
mod native;

use banmesh_node::control::client::call_within;
use banmesh_node::control::protocol::{Command as Ctl, MAX_ISSUE_BATCH, OrderSpec, Response};
use conn::Conn;

const TOKEN: &str = "bench-token";
const PER_PAGE: u64 = 200;
const REPEATS: usize = 5;
const ADD_BATCH: usize = 500;
/// While the second paged run reads, a writer posts this many addresses...
const WRITE_BATCH: usize = 100;
/// ...this often.
const WRITE_EVERY: Duration = Duration::from_millis(250);
const CALL_LIMIT: Duration = Duration::from_secs(120);

/// Targets from the issue, and the old server's figures from SEED-API.md.
const TARGET_RPS: f64 = 5_000.0;
const TARGET_P99_MS: f64 = 20.0;
const TARGET_UNPAGED_S: f64 = 0.15;
const OLD_RPS: f64 = 26.0;
const OLD_UNPAGED_S: f64 = 0.45;
const OLD_ADD_MS: f64 = 40.0;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_banmesh"))
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// The `i`th address of 10.0.0.0/8 (`offset` picks another /8).
fn address(offset: u32, i: u64) -> String {
    let n = (offset << 24) | (u32::try_from(i).expect("fits") + 1);
    std::net::Ipv4Addr::from(n).to_string()
}

/// The node under test; stopped with SIGTERM when dropped.
struct Node {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    gateway: u16,
}

impl Node {
    /// A node in `dir`, with a gateway when `gateway`.
    fn start(dir: &Path, gateway: bool) -> Node {
        fs::create_dir_all(dir).expect("node dir");
        let seed = dir.join("serverconfig.ini");
        let ini = format!("[DEFAULT]\nbantime = 1h\n[api_tokens]\nbench = {TOKEN}\n");
        fs::write(&seed, ini).expect("write seed config");
        let (socket, log, port) = (dir.join("node.sock"), dir.join("node.log"), free_port());
        let log_file = File::create(&log).expect("log file");
        let mut command = Command::new(bin());
        command
            .args(["node", "--data-dir"])
            .arg(dir.join("data"))
            .arg("--listen")
            .arg(format!("/ip4/127.0.0.1/tcp/{}", free_port()))
            .arg("--socket")
            .arg(&socket);
        if gateway {
            command
                .arg("--gateway")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--seed-config")
                .arg(&seed);
        }
        let filter = "warn,banmesh_node::gateway::view=debug";
        let child = command
            .env("RUST_LOG", std::env::var("BANMESH_BENCH_LOG").unwrap_or_else(|_| filter.into()))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file.try_clone().expect("clone log")))
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("start banmesh node");
        Node { child, socket, log, gateway: port }
    }

    /// Waits until the control socket answers.
    async fn ready(&self) {
        let ready = Instant::now() + Duration::from_secs(30);
        while call_within(&self.socket, Ctl::Status, CALL_LIMIT).await.is_err() {
            assert!(Instant::now() < ready, "the node did not start: see {}", self.log.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issues `count` one-hour bans in batches of [`MAX_ISSUE_BATCH`].
async fn load(socket: &Path, count: u64) {
    let mut next = 0;
    while next < count {
        let end = (next + MAX_ISSUE_BATCH as u64).min(count);
        issue(socket, 10, next..end).await;
        next = end;
    }
}

/// Bans the addresses `range` of `net`.0.0.0/8 for an hour in one Issue.
async fn issue(socket: &Path, net: u32, range: std::ops::Range<u64>) {
    let orders = range
        .map(|i| OrderSpec {
            key: address(net, i),
            duration_ms: Some(3_600_000),
            strikes: 1 + u32::try_from(i % 3).expect("small"),
            jail: ["sshd", "nginx", "postfix"][usize::try_from(i % 3).expect("small")].to_owned(),
            reason: "bench".to_owned(),
            source: "bench@127.0.0.1".to_owned(),
            ..OrderSpec::default()
        })
        .collect();
    match call_within(socket, Ctl::Issue { orders }, CALL_LIMIT).await {
        Ok(Response::Issued(items)) => {
            let failed = items.iter().filter(|i| i.error.is_some()).count();
            assert_eq!(failed, 0, "{failed} bans failed: {:?}", items.first());
        }
        other => panic!("issue failed: {other:?}"),
    }
}

/// Waits until the gateway answers and lists `want` bans.
async fn wait_for_total(port: u16, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(mut conn) = Conn::open(port).await
            && let Ok(reply) = conn.request("GET", "/get_ips?page=1&per_page=1", false, b"").await
        {
            let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
            if json["total"].as_u64() == Some(want) {
                return;
            }
            last = format!("{} {}", reply.status, json["total"]);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the gateway never listed {want} bans (last: {last})");
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// A body of `count` fresh addresses of `net`.0.0.0/8, numbered from `first`.
fn add_body(net: u32, first: u64, count: usize) -> Vec<u8> {
    let ips: Vec<String> = (first..first + count as u64).map(|i| address(net, i)).collect();
    serde_json::to_vec(&serde_json::json!({"ips": ips, "jail": "bench"})).expect("encode")
}

/// Posts [`WRITE_BATCH`] fresh addresses every [`WRITE_EVERY`] until
/// `until`, as clients and expiries keep changing the lists; returns the
/// number of posts.
async fn writer(port: u16, until: Instant) -> u64 {
    let mut conn = Conn::open(port).await.expect("connect");
    let mut posts = 0;
    while Instant::now() < until {
        let body = add_body(12, posts * WRITE_BATCH as u64, WRITE_BATCH);
        let reply = conn.request("POST", "/add_ips", false, &body).await.expect("add_ips");
        assert_eq!(reply.status, 201, "add_ips: {}", String::from_utf8_lossy(&reply.body));
        posts += 1;
        tokio::time::sleep(WRITE_EVERY).await;
    }
    posts
}

/// `connections` connections asking pages in turn for `seconds`, with a
/// writer changing the lists meanwhile when `writes`.
async fn paged(port: u16, connections: u64, seconds: u64, pages: u64, writes: bool) {
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let posting = writes.then(|| tokio::spawn(writer(port, until)));
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..connections {
        tasks.spawn(async move {
            let mut conn = Conn::open(port).await.expect("connect");
            let (mut latencies, mut errors, mut page) = (Vec::new(), 0u64, c * 31);
            while Instant::now() < until {
                page += 1;
                let path = format!("/get_ips?page={}&per_page={PER_PAGE}", page % pages + 1);
                let start = Instant::now();
                match conn.request("GET", &path, false, b"").await {
                    Ok(reply) if reply.status == 200 => latencies.push(start.elapsed()),
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        conn = Conn::open(port).await.expect("reconnect");
                    }
                }
            }
            (latencies, errors)
        });
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    while let Some(done) = tasks.join_next().await {
        let (latencies, e) = done.expect("load task");
        all.extend(latencies);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let writes = match posting {
        Some(task) => format!(
            ", while {} posts of {WRITE_BATCH} addresses (one per {} ms) changed the lists",
            task.await.expect("writer"),
            WRITE_EVERY.as_millis()
        ),
        None => String::new(),
    };
    all.sort();
    let rps = all.len() as f64 / elapsed;
    let (p50, p99) = (pct(&all, 0.50), pct(&all, 0.99));
    println!(
        "paged   GET /get_ips?page=N&per_page={PER_PAGE}, {connections} connections, {elapsed:.1} s: \
         {} requests, {errors} errors{writes}",
        all.len()
    );
    println!(
        "        {rps:.0} requests/s   (target >= {TARGET_RPS:.0}: {}; old server {OLD_RPS:.0})",
        verdict(rps >= TARGET_RPS)
    );
    println!(
        "        p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms   (target p99 <= {TARGET_P99_MS:.0} ms: {}; \
         old server p99 2-5 s)",
        ms(p50),
        ms(p99),
        ms(all.last().copied().unwrap_or_default()),
        verdict(ms(p99) <= TARGET_P99_MS)
    );
}

/// The whole list, [`REPEATS`] times on one connection.
async fn unpaged(port: u16, gzip: bool) {
    let mut conn = Conn::open(port).await.expect("connect");
    let (mut times, mut size, mut encoded) = (Vec::new(), 0, false);
    for _ in 0..REPEATS {
        let start = Instant::now();
        let reply = conn.request("GET", "/get_ips", gzip, b"").await.expect("unpaged get_ips");
        times.push(start.elapsed());
        assert_eq!(reply.status, 200, "unpaged get_ips");
        (size, encoded) = (reply.body.len(), reply.gzip);
    }
    let all: Vec<String> = times.iter().map(|t| format!("{:.3}", t.as_secs_f64())).collect();
    let median = median(times).as_secs_f64();
    let label = if gzip { "gzip " } else { "plain" };
    println!(
        "unpaged GET /get_ips ({label}): median {median:.3} s of {REPEATS} [{}], body {:.2} MB{}   \
         (target <= {TARGET_UNPAGED_S} s: {}; old server {OLD_UNPAGED_S} s)",
        all.join(" "),
        size as f64 / 1e6,
        if gzip && !encoded { " NOT gzip-encoded" } else { "" },
        verdict(median <= TARGET_UNPAGED_S)
    );
}

/// The whole list as the first request after a change pays for it (the
/// gateway renders it once per snapshot): [`REPEATS`] times, post one
/// fresh address, let the view rebuild, then time the list.
async fn unpaged_after_change(port: u16, gzip: bool) {
    let mut conn = Conn::open(port).await.expect("connect");
    let mut times = Vec::new();
    for round in 0..REPEATS {
        let body = add_body(13, (round + if gzip { REPEATS } else { 0 }) as u64, 1);
        let reply = conn.request("POST", "/add_ips", false, &body).await.expect("add_ips");
        assert_eq!(reply.status, 201, "add_ips: {}", String::from_utf8_lossy(&reply.body));
        tokio::time::sleep(Duration::from_millis(600)).await;
        let start = Instant::now();
        let reply = conn.request("GET", "/get_ips", gzip, b"").await.expect("unpaged get_ips");
        times.push(start.elapsed());
        assert_eq!(reply.status, 200, "unpaged get_ips");
    }
    let all: Vec<String> = times.iter().map(|t| format!("{:.3}", t.as_secs_f64())).collect();
    let median = median(times).as_secs_f64();
    let label = if gzip { "gzip " } else { "plain" };
    println!(
        "unpaged GET /get_ips ({label}), first after a change: median {median:.3} s of {REPEATS} \
         [{}]   (target <= {TARGET_UNPAGED_S} s: {})",
        all.join(" "),
        verdict(median <= TARGET_UNPAGED_S)
    );
}

/// [`REPEATS`] Issue calls of [`ADD_BATCH`] fresh bans on the control
/// socket: what an `add_ips` costs the node task, without HTTP or the view.
async fn issue_direct(socket: &Path) {
    let mut times = Vec::new();
    for round in 0..REPEATS as u64 {
        let first = round * ADD_BATCH as u64;
        let start = Instant::now();
        issue(socket, 14, first..first + ADD_BATCH as u64).await;
        times.push(start.elapsed());
    }
    let all: Vec<String> = times.iter().map(|t| format!("{:.1}", ms(*t))).collect();
    println!(
        "        for comparison, Issue of {ADD_BATCH} bans on the control socket: median {:.1} ms \
         of {REPEATS} [{}]",
        ms(median(times)),
        all.join(" ")
    );
}

/// [`REPEATS`] posts of [`ADD_BATCH`] fresh addresses, and the view
/// rebuilds they caused (each post waits for its own).
async fn add_ips(port: u16, log: &Path) {
    let mark = memory::log_mark(log);
    let mut conn = Conn::open(port).await.expect("connect");
    let mut times = Vec::new();
    for round in 0..REPEATS {
        let body = add_body(11, (round * ADD_BATCH) as u64, ADD_BATCH);
        let start = Instant::now();
        let reply = conn.request("POST", "/add_ips", false, &body).await.expect("add_ips");
        times.push(start.elapsed());
        assert_eq!(reply.status, 201, "add_ips: {}", String::from_utf8_lossy(&reply.body));
    }
    let all: Vec<String> = times.iter().map(|t| format!("{:.1}", ms(*t))).collect();
    println!(
        "POST /add_ips of {ADD_BATCH} fresh addresses: median {:.1} ms of {REPEATS} [{}]   \
         (old server {OLD_ADD_MS:.0} ms)",
        ms(median(times)),
        all.join(" ")
    );
    let mut rebuilds = memory::rebuild_times(log, mark);
    rebuilds.sort_by(f64::total_cmp);
    let shown: Vec<String> = rebuilds.iter().map(|t| format!("{t:.2}")).collect();
    println!(
        "        view rebuilds meanwhile: median {:.2} ms of {} [{}]",
        rebuilds.get(rebuilds.len() / 2).copied().unwrap_or(f64::NAN),
        rebuilds.len(),
        shown.join(" ")
    );
}

/// A node without a gateway, loaded with `records` bans like the one
/// under test: its memory, for the difference the gateway makes.
async fn bare_node(dir: &Path, records: u64) -> (u64, u64) {
    let node = Node::start(&dir.join("bare"), false);
    node.ready().await;
    load(&node.socket, records).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    memory::report("node without a gateway, idle after the load", node.child.id(), records)
}

fn main() {
    let records = env_num("BANMESH_BENCH_RECORDS", 100_000).max(1);
    let seconds = env_num("BANMESH_BENCH_SECONDS", 10);
    let connections = env_num("BANMESH_BENCH_CONNECTIONS", 16);
    let memory_only = std::env::var_os("BANMESH_BENCH_MEMORY_ONLY").is_some();
    let bare = env_num("BANMESH_BENCH_BARE", 1) != 0;
    let dir = tempfile::Builder::new().prefix("bm-gw-bench").tempdir().expect("tempdir");
    let node = Node::start(&dir.path().join("gateway"), true);
    let pid = node.child.id();
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        node.ready().await;
        println!(
            "gateway benchmark: one release node, {records} live bans, loopback, {} CPUs",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let start = Instant::now();
        load(&node.socket, records).await;
        let issued = start.elapsed();
        wait_for_total(node.gateway, records).await;
        println!(
            "loaded {records} bans in {:.1} s (Issue batches of {MAX_ISSUE_BATCH}); listed by the \
             gateway after {:.1} s",
            issued.as_secs_f64(),
            start.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (rss, _) = memory::report("gateway node, idle after the load", pid, records);
        if bare {
            let (bare_rss, _) = bare_node(dir.path(), records).await;
            println!(
                "        the gateway holds {:.1} MB more ({:.0} bytes/record)",
                rss.saturating_sub(bare_rss) as f64 / 1e6,
                rss.saturating_sub(bare_rss) as f64 / records as f64
            );
        }
        if memory_only {
            return;
        }
        let loaded_at = banmesh_keys::time::format_rfc3339(
            u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0),
        );
        let pages = records.div_ceil(PER_PAGE);
        paged(node.gateway, connections, seconds, pages, false).await;
        paged(node.gateway, connections, seconds, pages, true).await;
        native::decisions(node.gateway, connections, seconds).await;
        let ip = address(10, 7);
        native::dashboard(node.gateway, connections, seconds, &loaded_at, &ip).await;
        memory::searches(node.gateway, pid).await;
        unpaged(node.gateway, false).await;
        unpaged(node.gateway, true).await;
        unpaged_after_change(node.gateway, false).await;
        unpaged_after_change(node.gateway, true).await;
        gzip::levels(node.gateway).await;
        add_ips(node.gateway, &node.log).await;
        issue_direct(&node.socket).await;
        memory::report("gateway node at the end (lists rendered, writes done)", pid, records);
    });
    let warnings = fs::read_to_string(&node.log).unwrap_or_default();
    // The node makes its key and a development cluster at start: expected.
    let expected = ["made a new node key", "development cluster"];
    let warnings: Vec<&str> = warnings
        .lines()
        .filter(|l| l.contains(" WARN ") && !expected.iter().any(|e| l.contains(e)))
        .take(5)
        .collect();
    if !warnings.is_empty() {
        println!("node warnings:\n  {}", warnings.join("\n  "));
    }
    drop(node);
    if std::env::var_os("BANMESH_BENCH_KEEP").is_some() {
        println!("kept {}", dir.keep().display());
    }
}
