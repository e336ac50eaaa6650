//! nftables benchmark, against the real kernel in a network namespace of
//! its own (as root; the host's firewall is never touched), through the
//! backend's own code path: the element changes (`elements::diff`), their
//! `nft -f -` transactions (`script::batches`, 5,000 changes each) and
//! reading the table back (`nft -j list table`, `kernel::parse`):
//!
//! 1. 100,000 and then 1,000,000 address bans into `ban4` (targets: 1 s
//!    and 10 s);
//! 2. 1,000 networks into `net4` (an interval set);
//! 3. a reconcile of 100,000 elements with 1,000 differences (500 gone,
//!    500 new): read, parse, diff and repair;
//! 4. gossip at 500 bans/s: the backend gets a new target at most every
//!    250 ms (`enforce::GAP`), so 125 bans a transaction into a set already
//!    holding 100,000; how many such transactions a second nft sustains;
//! 5. the same 10,000 bans through the Fail2Ban backend's batched `set
//!    banmesh banip` (500 a call) into a real `fail2ban-server` (`banaction
//!    = dummy`), for the ratio.
//!
//! Run: `cargo bench -p banmesh-node --bench nftables` (as root, with nft
//! and fail2ban). Environment: `BANMESH_BENCH_NFT_BIG` (1000000),
//! `BANMESH_BENCH_NFT_F2B` (10000; 0 skips Fail2Ban). Prints figures and
//! this process's peak RSS (VmHWM); asserts only that the work was done.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Instant;

use banmesh_crdt::Key;
use banmesh_node::clock::now_ms;
use banmesh_node::config::{Config, Overrides};
use banmesh_node::nftables::elements::{self, Elements, Set};
use banmesh_node::nftables::{kernel, script};
use common::fail2ban::Fail2BanServer;

/// The table the bench fills.
const TABLE: &str = "bmbench";
/// Changes per transaction, as `[nftables] batch` by default.
const BATCH: usize = 5_000;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

fn vm_hwm() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmHWM:"));
    line.map_or_else(|| "?".to_owned(), |l| l["VmHWM:".len()..].trim().to_owned())
}

/// A network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("bmnftbench-{}", std::process::id());
        let made = Command::new("ip").args(["netns", "add", &name]).status().expect("ip netns");
        assert!(made.success(), "cannot make namespace {name} (run as root)");
        Netns(name)
    }

    /// `nft ARGS` in it, `input` on its standard input.
    async fn nft(&self, args: &[&str], input: &str) -> String {
        let mut all = vec!["netns", "exec", &self.0, "nft"];
        all.extend_from_slice(args);
        let started = Instant::now();
        let out = kernel::run("ip", &all, input).await;
        let took = started.elapsed().as_secs_f64();
        if took > 5.0 || out.is_err() {
            eprintln!(
                "slow nft {:?} ({} bytes in): {took:.1} s",
                &args[..args.len().min(4)],
                input.len()
            );
        }
        out.expect("nft")
    }

    /// Sends `have` -> `want` as the backend does; seconds taken.
    async fn send(&self, have: &Elements, want: &Elements) -> f64 {
        let started = Instant::now();
        let changes = elements::diff(have, want);
        for text in script::batches(TABLE, &changes, BATCH, now_ms()) {
            self.nft(&["-f", "-"], &text).await;
        }
        started.elapsed().as_secs_f64()
    }

    async fn count(&self, set: &str) -> usize {
        let json = self.nft(&["-j", "list", "set", "inet", TABLE, set], "").await;
        json.matches("\"val\"").count() + json.matches("\"prefix\"").count()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// `n` addresses from 10.0.0.0 + `from` in `ban4`, each banned until an
/// hour after the bench started (one end for all: a reconcile of the same
/// bans finds nothing to renew).
fn addresses(from: usize, n: usize) -> Elements {
    static UNTIL: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let until = *UNTIL.get_or_init(|| now_ms() + 3_600_000);
    let base = u32::from(Ipv4Addr::new(10, 0, 0, 0));
    let key =
        |i: usize| Key::from_addr(Ipv4Addr::from(base + u32::try_from(i).expect("index")).into());
    Elements((from..from + n).map(|i| ((Set::Ban4, key(i)), Some(until))).collect())
}

fn main() {
    let big = env_num("BANMESH_BENCH_NFT_BIG", 1_000_000);
    let f2b = env_num("BANMESH_BENCH_NFT_F2B", 10_000);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let ns = Netns::new();
    let toml = format!("[enforce]\nbackends = [\"nftables\"]\n[nftables]\ntable = \"{TABLE}\"\n");
    let config = Config::from_toml(&toml, "bench", &Overrides::default()).expect("config");
    rt.block_on(async {
        let structure = script::structure(&config.nftables, &kernel::Kernel::default());
        ns.nft(&["-f", "-"], &structure).await;
        let empty = Elements::default();
        for n in [100_000, big] {
            let want = addresses(0, n);
            let took = ns.send(&empty, &want).await;
            // Every transaction went through whole (nft checks nothing
            // cheaper: listing or even `get element` on a set this large
            // takes longer than the whole load).
            println!("{n} address bans into ban4: {took:.2} s ({:.0}/s)", n as f64 / took);
            ns.nft(&["flush", "set", "inet", TABLE, "ban4"], "").await;
        }
        networks(&ns, &empty).await;
        reconcile(&ns).await;
        gossip(&ns).await;
    });
    println!("bench VmHWM {}", vm_hwm());
    drop(ns);
    if f2b > 0 {
        fail2ban(&rt, f2b);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average {}", load.trim());
}

async fn networks(ns: &Netns, empty: &Elements) {
    let base = u32::from(Ipv4Addr::new(10, 0, 0, 0));
    let nets: BTreeMap<_, _> = (0..1_000u32)
        .map(|i| {
            let net = format!("{}/24", Ipv4Addr::from(base + (i << 8)));
            ((Set::Net4, net.parse::<Key>().expect("network")), None)
        })
        .collect();
    let took = ns.send(empty, &Elements(nets)).await;
    assert_eq!(ns.count("net4").await, 1_000, "not all networks in the set");
    println!("1000 networks into net4: {took:.3} s");
}

async fn reconcile(ns: &Netns) {
    ns.nft(&["flush", "set", "inet", TABLE, "net4"], "").await;
    let held = addresses(0, 100_000);
    ns.send(&Elements::default(), &held).await;
    let want = addresses(500, 100_000);
    let started = Instant::now();
    let json = ns.nft(&["-j", "list", "table", "inet", TABLE], "").await;
    let read = started.elapsed().as_secs_f64();
    let kernel = kernel::parse(&json).expect("parse");
    let from_kernel = kernel.elements(now_ms());
    let parsed = started.elapsed().as_secs_f64();
    let changes = elements::diff(&from_kernel, &want);
    let diffed = started.elapsed().as_secs_f64();
    for text in script::batches(TABLE, &changes, BATCH, now_ms()) {
        ns.nft(&["-f", "-"], &text).await;
    }
    let total = started.elapsed().as_secs_f64();
    // More than 1,000 when the dump missed elements of a set the kernel
    // was still resizing (they are added again, harmlessly).
    // Fewer removed when it missed some of the 500 gone (the next
    // reconcile removes them).
    let after = ns.count("ban4").await;
    assert!(changes.len() >= 900 && after >= 100_000, "{} changes, {after}", changes.len());
    println!(
        "reconcile of 100000 elements, 1000 differences ({} changes sent, {after} held after): {total:.2} s (nft -j list {read:.2} s, parse {:.2} s, diff {:.3} s, repair {:.3} s)",
        changes.len(),
        parsed - read,
        diffed - parsed,
        total - diffed
    );
}

async fn gossip(ns: &Netns) {
    // The set holds 100,000 (less the reconcile's 500 removed, plus 500).
    let rounds = 40;
    let mut have = addresses(500, 100_000);
    let started = Instant::now();
    for round in 0..rounds {
        let mut want = have.clone();
        want.0.extend(addresses(200_000 + round * 125, 125).0);
        ns.send(&have, &want).await;
        have = want;
    }
    let each = started.elapsed().as_secs_f64() / rounds as f64;
    println!(
        "gossip, 125 bans a transaction into a set of 100000: {:.1} ms each, {:.0} transactions/s ({:.0} bans/s sustainable; 500 bans/s needs 4/s)",
        each * 1000.0,
        1.0 / each,
        125.0 / each
    );
}

fn fail2ban(rt: &tokio::runtime::Runtime, n: usize) {
    let tmp = tempfile::Builder::new().prefix("bm-nft-bench.").tempdir().expect("tempdir");
    let server = Fail2BanServer::start(&tmp.path().join("f2b"));
    let toml = format!("[fail2ban]\nconfig_dir = \"{}\"\n", server.dir.display());
    let config = Config::from_toml(&toml, "bench", &Overrides::default()).expect("config");
    let client = banmesh_node::fail2ban::Client::new(&config.fail2ban);
    let keys: Vec<Key> = addresses(0, n).0.keys().map(|(_, k)| *k).collect();
    let started = Instant::now();
    rt.block_on(client.set("banmesh", "banip", &keys, 500)).expect("batched banip");
    let took = started.elapsed().as_secs_f64();
    assert_eq!(server.jail("banmesh").len(), n, "not all in the jail");
    println!(
        "{n} address bans through Fail2Ban (set banmesh banip, 500 a call): {took:.2} s ({:.0}/s)",
        n as f64 / took
    );
}
