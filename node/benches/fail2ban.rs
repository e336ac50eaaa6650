//! Fail2Ban benchmark, against real `fail2ban-server`s in a temporary dir
//! (Debian's configuration, `banaction = dummy`):
//!
//! 1. 10,000 addresses into the `banmesh` jail with the applier's batched
//!    `set banmesh banip IP...` (500 a call, `fail2ban::Client`), then out
//!    with batched `unbanip`; versus one `fail2ban-client set banmesh banip
//!    IP` process per address, the old client's way (500 measured, the rate
//!    extrapolated to 10,000).
//! 2. End to end: a failed-login line written to A's log until the ban is in
//!    B's `banmesh` jail (two nodes, each with its Fail2Ban, default
//!    `[fail2ban]` settings but `apply = true`), median of a few runs.
//! 3. The per-ban cost of the hand-over: `banmesh fail2ban ban` as the
//!    action runs it, one process per ban, against a live node.
//!
//! Run: `cargo bench -p banmesh-node --bench fail2ban`. Environment:
//! `BANMESH_BENCH_F2B_N` (10000), `BANMESH_BENCH_F2B_SINGLE` (500),
//! `BANMESH_BENCH_F2B_RUNS` (5), `BANMESH_BENCH_F2B_HANDOVERS` (100).
//! Prints figures; asserts only that the work was done.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use banmesh_crdt::Key;
use banmesh_node::config::{Config, Overrides};
use banmesh_node::fail2ban::Client;
use common::fail2ban::Fail2BanServer;
use common::{TestCluster, arg, bin, wait_until};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// The `n`-th address of a /16 reserved for one part of the bench.
fn addr(second: u8, n: usize) -> Ipv4Addr {
    let n = u16::try_from(n).expect("at most 65,536 addresses");
    let [hi, lo] = n.to_be_bytes();
    Ipv4Addr::new(10, second, hi, lo)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn batched_versus_single(n: usize, single: usize) {
    let tmp = tempfile::Builder::new().prefix("bm-f2b-bench.").tempdir().expect("tempdir");
    let server = Fail2BanServer::start(&tmp.path().join("f2b"));
    let toml = format!("[fail2ban]\nconfig_dir = \"{}\"\n", server.dir.display());
    let config = Config::from_toml(&toml, "bench", &Overrides::default()).expect("config");
    let client = Client::new(&config.fail2ban);
    let keys: Vec<Key> = (0..n).map(|i| Key::from_addr(addr(100, i).into())).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");

    let started = Instant::now();
    rt.block_on(client.set("banmesh", "banip", &keys, 500)).expect("batched banip");
    let ban_s = started.elapsed().as_secs_f64();
    let held = server.jail("banmesh").len();
    assert_eq!(held, n, "the jail does not hold every address");
    let started = Instant::now();
    rt.block_on(client.set("banmesh", "unbanip", &keys, 500)).expect("batched unbanip");
    let unban_s = started.elapsed().as_secs_f64();
    assert!(server.jail("banmesh").is_empty(), "the jail kept addresses");

    let started = Instant::now();
    for i in 0..single {
        let ip = addr(101, i).to_string();
        let out = server.client(&["set", "banmesh", "banip", &ip]);
        assert!(out.status.success(), "single banip failed");
    }
    let single_s = started.elapsed().as_secs_f64();
    assert_eq!(server.jail("banmesh").len(), single, "single bans missing");
    let per_single = single_s / single as f64;
    println!("\n=== {n} addresses into the banmesh jail (banaction dummy) ===");
    println!(
        "batched banip (500 a call, {} calls): {ban_s:.2} s = {:.0} addresses/s",
        n.div_ceil(500),
        n as f64 / ban_s
    );
    println!("batched unbanip: {unban_s:.2} s = {:.0} addresses/s", n as f64 / unban_s);
    println!(
        "one fail2ban-client per address: {single} measured in {single_s:.2} s = {:.1} addresses/s, {:.1} ms each; {n} extrapolated: {:.0} s",
        1.0 / per_single,
        per_single * 1000.0,
        per_single * n as f64
    );
    println!("batched is {:.0}x faster", per_single * n as f64 / ban_s);
}

/// Two hosts: A publishes (its sshd reads a log), B applies.
fn end_to_end_and_handover(runs: usize, handovers: usize) {
    let mut cluster = TestCluster::new();
    let mut servers = Vec::new();
    for name in ["a", "b"] {
        let dir = cluster.path(&format!("f2b-{name}"));
        let socket = cluster.path(&format!("{name}.sock"));
        let server = Fail2BanServer::start_publishing(&dir, &socket, "");
        let config = cluster.path(&format!("{name}.toml"));
        let toml = format!("[fail2ban]\napply = true\nconfig_dir = \"{}\"\n", server.dir.display());
        std::fs::write(&config, toml).expect("config");
        servers.push(server);
        let peers: Vec<String> = cluster.nodes.first().map(|a| vec![a.addr()]).unwrap_or_default();
        let mut spec = cluster.spec(name, &peers);
        spec.config = Some(config);
        cluster.start(spec);
    }
    cluster.wait_for_peers(1);
    let (a, b) = (&servers[0], &servers[1]);
    let mut latencies = Vec::new();
    for run in 0..runs {
        let ip = addr(102, run).to_string();
        let started = Instant::now();
        a.fail_logins("auth.log", &ip, 2);
        let arrived = wait_until(Duration::from_secs(60), || b.holds("banmesh", &ip));
        assert!(arrived, "run {run}: the ban did not reach B");
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    println!("\n=== failed login in A's log to the ban in B's banmesh jail ===");
    println!(
        "{runs} runs, median {:.0} ms (each: {}); includes Fail2Ban's polling of the log (about 1 s) and B's applier, which follows its index at most once a second",
        median(latencies.clone()),
        latencies.iter().map(|l| format!("{l:.0}")).collect::<Vec<_>>().join(", ")
    );

    let socket = cluster.node(0).socket.clone();
    let mut each = Vec::new();
    let started = Instant::now();
    for i in 0..handovers {
        let ip = addr(103, i).to_string();
        let t = Instant::now();
        let out = Command::new(bin())
            .args(["fail2ban", "ban", "--socket", arg(&socket), "--timeout", "2s", "--ip", &ip])
            .args(["--jail", "sshd", "--bantime", "600", "--failures", "5", "--bancount", "1"])
            .output()
            .expect("banmesh fail2ban ban");
        assert!(out.status.success(), "hand-over failed: {}", String::from_utf8_lossy(&out.stderr));
        each.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let total = started.elapsed().as_secs_f64();
    println!("\n=== hand-over: banmesh fail2ban ban, one process per ban ===");
    println!(
        "{handovers} bans in {total:.2} s: median {:.1} ms, max {:.1} ms per ban ({:.0} bans/s in sequence)",
        median(each.clone()),
        each.iter().copied().fold(0.0, f64::max),
        handovers as f64 / total
    );
}

fn main() {
    common::fail2ban::require_fail2ban();
    let n = env_num("BANMESH_BENCH_F2B_N", 10_000);
    let single = env_num("BANMESH_BENCH_F2B_SINGLE", 500);
    let runs = env_num("BANMESH_BENCH_F2B_RUNS", 5);
    let handovers = env_num("BANMESH_BENCH_F2B_HANDOVERS", 100);
    println!(
        "fail2ban bench: BANMESH_BENCH_F2B_N={n} BANMESH_BENCH_F2B_SINGLE={single} \
         BANMESH_BENCH_F2B_RUNS={runs} BANMESH_BENCH_F2B_HANDOVERS={handovers} \
         cargo bench -p banmesh-node --bench fail2ban"
    );
    batched_versus_single(n, single);
    end_to_end_and_handover(runs, handovers);
}
