//! `banmesh import` of a big list into one real node: N lines of distinct
//! addresses (every 50th a /24 network, DROP-style with a trailing comment),
//! then, into a fresh node, the same size with 10 % bad lines. Prints the
//! time, lines per second, the import's summary, the node's CPU time and
//! peak RSS (VmHWM), and the client's CPU and peak RSS (GNU time, when
//! present); asserts nothing. CPU time says more than the wall time on a
//! shared machine: on two cores, 20 s of wall time is 40 s of CPU at most.
//! First, the latency of single `banmesh ban` calls into a fresh node
//! (each acknowledged once synced to disk).
//!
//! Run: `cargo bench -p banmesh-node --bench import`. Environment:
//! `BANMESH_BENCH_LINES` (1000000), `BANMESH_BENCH_BANS` (200 `ban`
//! calls). A debug build's figures come from
//! `cargo test -p banmesh-node --bench import` (the same program);
//! `BANMESH_BIN` measures another build of `banmesh`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "util.rs"]
mod util;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::{TestCluster, arg, bin};
use util::{cpu_seconds, env_num, load, vm_hwm_mib};

/// `lines` lines; every `bad_every`-th (when not 0) is not an address.
fn list(path: &Path, lines: usize, bad_every: usize) {
    let mut text = String::with_capacity(lines * 16);
    text.push_str("# generated list\n");
    for i in 0..lines {
        if bad_every != 0 && i % bad_every == bad_every - 1 {
            let _ = writeln!(text, "bad-entry-{i}");
        } else if i % 50 == 0 {
            let n = i / 50;
            let _ = writeln!(text, "100.{}.{}.0/24 ; SBL{i}", (n >> 8) & 255, n & 255);
        } else {
            let _ = writeln!(text, "10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        }
    }
    std::fs::write(path, text).expect("write list");
}

fn run(label: &str, lines: usize, bad_every: usize) {
    let cluster = TestCluster::star(1);
    let node = cluster.node(0);
    let path = cluster.path("list.txt");
    list(&path, lines, bad_every);
    let times = cluster.path("client.time");
    // The client's CPU and peak RSS, from GNU time when present.
    let mut command = if Path::new("/usr/bin/time").exists() {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-o", arg(&times), "-f", "client cpu %U s user %S s sys, peak RSS %M kB"]);
        c.arg(bin());
        c
    } else {
        Command::new(bin())
    };
    let pid = node.pid().unwrap_or(0);
    let cpu_before = cpu_seconds(pid);
    let start = Instant::now();
    let output = command
        .args(["import", arg(&path), "--for", "1d", "--socket", arg(&node.socket), "--json"])
        .stderr(std::process::Stdio::null())
        .output()
        .expect("run banmesh import");
    let took = start.elapsed();
    let summary = String::from_utf8_lossy(&output.stdout).split_whitespace().collect::<String>();
    let node_cpu = cpu_seconds(pid) - cpu_before;
    let client = std::fs::read_to_string(&times).unwrap_or_default();
    println!(
        "{label}: {lines} lines in {:.1} s ({:.0} lines/s), {}, node cpu {node_cpu:.1} s, \
         node peak RSS {:.0} MiB; {}; load {}; {summary}",
        took.as_secs_f64(),
        lines as f64 / took.as_secs_f64(),
        output.status,
        vm_hwm_mib(pid),
        client.trim(),
        load(),
    );
}

/// `count` `banmesh ban` calls, one after another, into a fresh node: the
/// whole command's time (process start, connect, sign, commit, answer).
fn ban_latency(count: usize) {
    let cluster = TestCluster::star(1);
    let socket = arg(&cluster.node(0).socket).to_owned();
    let mut took: Vec<f64> = (0..count)
        .map(|i| {
            let ip = format!("10.200.{}.{}", i / 256, i % 256);
            let start = Instant::now();
            let status = Command::new(bin())
                .args(["ban", &ip, "--for", "1h", "--socket", &socket])
                .stdout(std::process::Stdio::null())
                .status()
                .expect("run banmesh ban");
            assert!(status.success(), "banmesh ban {ip}: {status}");
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    took.sort_by(f64::total_cmp);
    let at = |p: f64| took[((took.len() - 1) as f64 * p).round() as usize];
    println!(
        "banmesh ban: {count} calls, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; load {}",
        at(0.5),
        at(0.99),
        at(1.0),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    );
}

fn main() {
    let bans = env_num("BANMESH_BENCH_BANS", 200);
    if bans > 0 {
        ban_latency(bans);
    }
    let lines = env_num("BANMESH_BENCH_LINES", 1_000_000);
    run("clean list", lines, 0);
    run("10 % bad lines", lines, 10);
}
