//! Fresh identities that never say hello (issue 17, item 2): a loop dials
//! node1 with a new libp2p identity every [`EVERY`], for three hello
//! timeouts, and none of them ever says hello (unlike `identities.rs`,
//! whose identities are refused at their hello). node1 closes each
//! connection at its hello timeout (10 s) and blocks the identity, counts
//! each under `hello timeout` in `/metrics`, and its pending connections,
//! open files and memory stay bounded while the loop runs: the silent
//! connections never pile up. Its honest peer stays connected throughout.

use std::collections::VecDeque;
use std::time::Duration;

use banmesh_keys::SecretKey;

use super::common::{SOON, TestNode, wait_until};
use super::identities::memory_kb;
use super::metrics::{refused, star_with_metrics};
use super::rogue::{Rogue, RogueKey};

/// Silent identities in all.
const IDENTITIES: usize = 75;
/// One more every so often: the loop lasts three hello timeouts (30 s).
const EVERY: Duration = Duration::from_millis(400);
/// The most silent connections node1 may hold at once: half of all. Each
/// lives one hello timeout (10 s, 25 identities) and a tick; a node that
/// never closed them would hold all 75 by the end.
const MOST_PENDING: f64 = (IDENTITIES / 2) as f64;
/// How much node1's resident memory may grow over the loop, kB.
const MOST_GROWTH_KB: u64 = 64 * 1024;

/// node1's open files.
fn open_files(node: &TestNode) -> usize {
    let pid = node.pid().expect("node running");
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn mesh_fresh_identities_that_never_say_hello_are_closed_at_the_timeout_and_never_pile_up() {
    let (cluster, metrics) = star_with_metrics(2);
    let (node1, node2) = (cluster.node(0), cluster.node(1));
    let (rss_before, _) = memory_kb(node1);
    let files_before = open_files(node1);
    let timeouts = || metrics.value(&refused("hello timeout"));
    let pending = || metrics.value("banmesh_peers{state=\"pending\"}");
    let timeouts_before = timeouts();

    // Each identity is kept (its swarm running, its connection open) until
    // node1 closes its connection.
    let mut live: VecDeque<Rogue> = VecDeque::new();
    let (mut closed, mut peak_pending, mut peak_files) = (0, 0.0f64, files_before);
    for _ in 0..IDENTITIES {
        let key = RogueKey { secret: SecretKey::generate().expect("key"), cert: Vec::new() };
        let rogue = Rogue::new(&key, false);
        rogue.dial(node1);
        live.push_back(rogue);
        std::thread::sleep(EVERY);
        peak_pending = peak_pending.max(pending());
        peak_files = peak_files.max(open_files(node1));
        let before = live.len();
        live.retain(|r| r.seen(|s| s.closed == 0));
        closed += before - live.len();
    }
    eprintln!(
        "{IDENTITIES} silent identities, one every {EVERY:?}: {closed} closed during the loop; \
         node1 held at most {peak_pending} pending connections and {peak_files} files \
         ({files_before} before)"
    );
    assert!(closed > 0, "node1 closed no silent connection during the loop");
    assert!(
        peak_pending <= MOST_PENDING,
        "node1 held {peak_pending} silent connections at once, more than {MOST_PENDING}"
    );
    assert!(
        peak_files <= files_before + IDENTITIES / 2,
        "node1's open files rose from {files_before} to {peak_files}"
    );

    // Every one is closed in the end, each counted as a hello timeout, and
    // none is left pending.
    for rogue in &live {
        let done = wait_until(SOON, || rogue.seen(|s| s.closed > 0));
        assert!(done, "node1 kept a silent connection: {:?}", rogue.seen(|s| format!("{s:?}")));
        let connected = rogue.seen(|s| s.established);
        assert!(
            connected > 0,
            "a silent identity never connected: {:?}",
            rogue.seen(|s| format!("{s:?}"))
        );
    }
    drop(live);
    let counted = wait_until(SOON, || timeouts() >= timeouts_before + IDENTITIES as f64);
    assert!(
        counted,
        "/metrics counts {} hello timeouts for {IDENTITIES} silent identities: {}",
        timeouts() - timeouts_before,
        metrics.lines("banmesh_refused")
    );
    let drained = wait_until(SOON, || pending() == 0.0);
    assert!(drained, "node1 still lists {} pending peers", pending());
    let (rss_after, hwm) = memory_kb(node1);
    eprintln!(
        "node1 VmRSS {rss_before} kB before, {rss_after} kB after (VmHWM {hwm} kB); {}",
        metrics.lines("banmesh_peers")
    );
    assert!(
        rss_after <= rss_before + MOST_GROWTH_KB,
        "node1's memory grew from {rss_before} kB to {rss_after} kB"
    );

    // node1 still serves: node2 stayed connected and its bans spread.
    assert!(
        node1.connected_peers().contains(&node2.peer_id()),
        "node1 lost node2 during the loop: {:?}",
        node1.peers()
    );
    node2.call(&["ban", "198.51.100.78", "--for", "1h"]);
    let spread = wait_until(SOON, || node1.is_banned("198.51.100.78"));
    assert!(spread, "node2's ban did not reach node1 after the loop");
}
