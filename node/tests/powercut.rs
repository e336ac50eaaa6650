//! Power loss (issue 17, item 5): a node's store is cut at random points
//! during ingest by a preloaded shim (`tests/powercut/shim.rs`) that, at the
//! Nth write, rewinds each store file by a random suffix of its writes since
//! its last `fsync`, as a disk may after a cut, and kills the node. On
//! restart the store must open and pass `banmesh store check`, every ban
//! the node acknowledged before the cut is still in its store (a record
//! issued here is synced before it is acknowledged: no peer may hold it
//! yet), and the node rejoins its peer: every record the peer held at the
//! cut is on both nodes afterwards, so nothing acknowledged is lost.
//!
//! `BANMESH_POWERCUT_SEED` replays one run (its seed is printed); the cut
//! points and suffixes come from it. `BANMESH_POWERCUT_CUTS` sets how many
//! cuts a run makes (8).

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use banmesh_node::control::client;
use banmesh_node::control::protocol::{Command as Wire, OrderSpec, Response};
use common::{SOON, TestCluster, arg, bin, wait_until};

/// Cuts per run, unless `BANMESH_POWERCUT_CUTS` says.
const CUTS: u64 = 8;
/// Bans in one control batch.
const BATCH: usize = 100;

/// Builds the shim with `rustc` into `dir`; panics saying what is missing.
fn build_shim(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/powercut/shim.rs");
    let out = dir.join("libpowercut.so");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let built = Command::new(&rustc)
        .args(["--edition", "2024", "--crate-type", "cdylib", "-O", "-o"])
        .args([arg(&out), arg(&source)])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {rustc} to build the power-cut shim: {e}"));
    assert!(built.status.success(), "the shim: {}", String::from_utf8_lossy(&built.stderr));
    out
}

/// A small xorshift, seeded per run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Issues batches of bans on the node at `socket` until a call fails (the
/// node died); returns the keys it acknowledged.
fn ingest_until_dead(socket: &Path, first: usize) -> Vec<String> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut acked = Vec::new();
    for batch in 0.. {
        let start = first + batch * BATCH;
        let keys: Vec<String> = (start..start + BATCH)
            .map(|i| format!("10.{}.{}.{}", 100 + i / 65_536, (i / 256) % 256, i % 256))
            .collect();
        let orders = keys
            .iter()
            .map(|key| OrderSpec {
                kind: "ban".into(),
                key: key.clone(),
                duration_ms: Some(3_600_000),
                ..OrderSpec::default()
            })
            .collect();
        let call = client::call_within(socket, Wire::Issue { orders }, SOON);
        match runtime.block_on(call) {
            Ok(Response::Issued(items)) => {
                acked.extend(items.iter().filter(|i| i.id.is_some()).map(|i| i.key.clone()))
            }
            _ => return acked,
        }
        assert!(batch < 100_000, "the node was never cut");
    }
    acked
}

fn keys_of(records: &[serde_json::Value]) -> HashSet<String> {
    records.iter().filter_map(|r| r["key"].as_str().map(str::to_owned)).collect()
}

#[test]
fn powercut_store_opens_keeps_every_acknowledged_ban_and_the_mesh_every_gossiped_record() {
    let seed = std::env::var("BANMESH_POWERCUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64 * 2_654_435_761 + 1);
    println!("BANMESH_POWERCUT_SEED={seed}");
    let mut rng = Rng(seed | 1);
    // A node restarted twice a cut soon uses up its peer's session-open
    // burst (8, then one per 5 s); syncing every second retries at once.
    let mut cluster = TestCluster::new();
    let config = cluster.path("powercut.toml");
    fs::write(&config, "[sync]\ninterval = \"1s\"\n").expect("config");
    cluster.start_star(2, Some(&config));
    cluster.wait_for_peers(1);
    let shim = build_shim(&cluster.path(""));
    let mut first = 0;
    let cuts = std::env::var("BANMESH_POWERCUT_CUTS").ok().and_then(|n| n.parse().ok());
    for cut in 0..cuts.unwrap_or(CUTS) {
        let writes = 1 + rng.below(400);
        let node = cluster.node_mut(1);
        let data_dir = node.data_dir.clone();
        node.stop();
        node.env = vec![
            ("LD_PRELOAD".into(), arg(&shim).to_owned()),
            ("BANMESH_POWERCUT_DIR".into(), arg(&data_dir).to_owned()),
            ("BANMESH_POWERCUT_SEED".into(), rng.below(u64::MAX).to_string()),
        ];
        node.restart();
        fs::write(data_dir.join("powercut-arm"), writes.to_string()).expect("arm the cut");
        let acked = ingest_until_dead(&node.socket, first);
        first += acked.len() + BATCH;
        let died = wait_until(SOON, || node.try_exit().is_some());
        assert!(died, "cut {cut}: the node still runs after its control socket failed");
        fs::remove_file(data_dir.join("powercut-arm")).expect("disarm");
        node.env.clear();

        // What the peer holds now was gossiped before the cut.
        let gossiped = keys_of(&cluster.node(0).records());
        let check = Command::new(bin())
            .args(["store", "check", "--data-dir", arg(&data_dir)])
            .output()
            .expect("banmesh store check");
        let report = String::from_utf8_lossy(&check.stdout).into_owned()
            + &String::from_utf8_lossy(&check.stderr);
        assert!(check.status.success(), "cut {cut} after {writes} writes: {report}");

        let node = cluster.node_mut(1);
        node.restart();
        let kept = keys_of(&node.records());
        let lost_locally = acked.iter().filter(|k| !kept.contains(*k)).count();
        let never_gossiped = acked.iter().filter(|k| !gossiped.contains(*k)).count();
        println!(
            "cut {cut} after {writes} writes: {} acknowledged, {lost_locally} not in the \
             store after restart, {never_gossiped} not on the peer at the cut",
            acked.len()
        );
        let lost: Vec<_> = acked.iter().filter(|k| !kept.contains(*k)).take(5).collect();
        assert!(
            lost.is_empty(),
            "cut {cut} after {writes} writes (seed {seed}): {lost_locally} acknowledged bans \
             lost, e.g. {lost:?}"
        );
        assert!(cluster.wait_for_same_digest(SOON), "cut {cut}: the nodes did not converge");
        for index in 0..2 {
            let held = keys_of(&cluster.node(index).records());
            let missing: Vec<_> = gossiped.iter().filter(|k| !held.contains(*k)).collect();
            assert!(missing.is_empty(), "cut {cut}: node {index} lost {missing:?}");
        }
    }
}
