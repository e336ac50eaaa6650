//! Fail2Ban's hand-over while the node serves a huge read: one node holding
//! N live bans (issued through the control socket in batches), then
//! `banmesh fail2ban ban` (the action's command, 2 s limit) timed again and
//! again, first on an idle node, then while `banmesh records --json` dumps
//! every record. Prints p50/p99/max of each and the node's peak RSS
//! (VmHWM); asserts nothing.
//!
//! Run: `cargo bench -p banmesh-node --bench handover`. Environment:
//! `BANMESH_BENCH_RECORDS` (1000000), `BANMESH_BENCH_HANDOVERS` (200).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "util.rs"]
mod util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{TestCluster, arg, bin};
use util::{env_num, load, vm_hwm_mib};

/// Fail2Ban's limit on the hand-over. The command exits 0 when the node
/// does not answer in time (the action must never fail a ban), so a
/// hand-over that took this long is counted as over the limit.
const LIMIT: Duration = Duration::from_secs(2);

/// One hand-over; its time, or `None` when it failed or hit [`LIMIT`].
fn handover(socket: &Path, n: usize) -> Option<Duration> {
    let ip = format!("198.18.{}.{}", n / 250, n % 250 + 1);
    let start = Instant::now();
    let ok = Command::new(bin())
        .args(["fail2ban", "ban", "--socket", arg(socket), "--timeout", "2s", "--ip", &ip])
        .args(["--jail", "sshd", "--bantime", "600", "--failures", "5"])
        .args(["--bancount", "1", "--restored", "0"])
        .output()
        .is_ok_and(|o| o.status.success());
    let took = start.elapsed();
    (ok && took < LIMIT).then_some(took)
}

fn report(what: &str, mut times: Vec<Duration>, failed: usize) {
    times.sort_unstable();
    let at = |p: f64| {
        let i = ((p * times.len() as f64).ceil() as usize).clamp(1, times.len().max(1)) - 1;
        times.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{what}: {} hand-overs, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {failed} over the 2 s limit",
        times.len(),
        at(0.5),
        at(0.99),
        at(1.0),
    );
}

fn main() {
    let records = env_num("BANMESH_BENCH_RECORDS", 1_000_000);
    let count = env_num("BANMESH_BENCH_HANDOVERS", 200);
    println!("handover bench: {records} records, load average {}", load());
    let cluster = TestCluster::star(1);
    let node = cluster.node(0);
    let pid = node.pid().expect("node runs");
    let started = Instant::now();
    common::issue_bans(&node.socket, records);
    let filled = started.elapsed().as_secs_f64();
    println!("filled in {filled:.1} s; node VmHWM {:.0} MiB", vm_hwm_mib(pid));
    let (mut idle, mut failed) = (Vec::new(), 0);
    for n in 0..count {
        match handover(&node.socket, n) {
            Some(t) => idle.push(t),
            None => failed += 1,
        }
    }
    report("idle node", idle, failed);
    let dumping = Arc::new(AtomicBool::new(true));
    let socket: PathBuf = node.socket.clone();
    let flag = dumping.clone();
    let dumper = thread::spawn(move || {
        let mut dumps = 0;
        while flag.load(Ordering::Relaxed) {
            let out = Command::new(bin())
                .args(["records", "--socket", arg(&socket), "--json"])
                .output()
                .expect("banmesh records");
            assert!(out.status.success(), "records failed");
            dumps += 1;
        }
        dumps
    });
    thread::sleep(Duration::from_millis(500));
    let (mut busy, mut failed) = (Vec::new(), 0);
    for n in count..2 * count {
        match handover(&node.socket, n) {
            Some(t) => busy.push(t),
            None => failed += 1,
        }
    }
    dumping.store(false, Ordering::Relaxed);
    let dumps = dumper.join().expect("dumper");
    report("while `records --json` dumps every record", busy, failed);
    let hwm = vm_hwm_mib(pid);
    println!("{dumps} full dump(s) ran; node VmHWM {hwm:.0} MiB; load average {}", load());
}
