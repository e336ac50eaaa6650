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
//! The node and its loading are in `gateway/node.rs`, the compatibility
//! API's runs in `gateway/compat.rs`, the native API's and the dashboard's
//! in `gateway/native.rs`, memory in `gateway/memory.rs`, gzip levels in
//! `gateway/gzip.rs`, the HTTP client in `gateway/conn.rs`.
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

#[path = "gateway/compat.rs"]
mod compat;
#[path = "gateway/conn.rs"]
mod conn;
#[path = "gateway/gzip.rs"]
mod gzip;
#[path = "gateway/memory.rs"]
mod memory;
#[path = "gateway/native.rs"]
mod native;
#[path = "gateway/node.rs"]
mod node;

use banmesh_node::control::client::call_within;
use banmesh_node::control::protocol::{Command as Ctl, MAX_ISSUE_BATCH, OrderSpec, Response};
use compat::*;
use conn::Conn;
use node::*;

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
