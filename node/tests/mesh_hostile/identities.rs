//! A peer that opens each connection with a fresh libp2p identity (issue
//! 17, item 2): every one is refused at its hello (not enrolled) and blocked
//! ten minutes, so a loop of them would grow the block list without end.
//! The list is capped (`MAX_BLOCKED`, the oldest block lifted first): the
//! node keeps serving, holds at most the cap, counts every refusal and
//! every early lift, and its honest peers' bans still spread.

use banmesh_keys::SecretKey;
use banmesh_node::mesh::swarm::MAX_BLOCKED;

use super::common::{SOON, TestNode, holds_for, wait_until};
use super::metrics::{refused, star_with_metrics};
use super::rogue::{Rogue, RogueKey};
use super::{WATCH, rejects, rejects_matching};

/// Fresh identities dialled at once, wave after wave.
const WAVE: usize = 16;
/// Identities in all: past the cap, so the oldest blocks must go.
const IDENTITIES: usize = MAX_BLOCKED + 96;

/// `VmRSS` and `VmHWM` of `node`'s process, kB.
pub(super) fn memory_kb(node: &TestNode) -> (u64, u64) {
    let pid = node.pid().expect("node running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_default();
        line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// How many peers `node`'s `status` lists as blocked.
fn blocked_peers(node: &TestNode) -> usize {
    node.peers().iter().filter(|p| p["state"] == "blocked").count()
}

/// One wave: `WAVE` fresh identities dial `node1` and say hello; returns
/// once each was answered (refused) or lost its connection.
fn wave(node1: &TestNode) {
    let rogues: Vec<Rogue> = (0..WAVE)
        .map(|_| {
            let key = RogueKey { secret: SecretKey::generate().expect("key"), cert: Vec::new() };
            let rogue = Rogue::new(&key, true);
            rogue.dial(node1);
            rogue
        })
        .collect();
    for rogue in &rogues {
        let done = wait_until(SOON, || {
            rogue.seen(|s| s.hello_answers > 0 || s.closed > 0 || !s.dial_errors.is_empty())
        });
        assert!(done, "a fresh identity got no answer: {:?}", rogue.seen(|s| format!("{s:?}")));
    }
}

#[test]
fn mesh_fresh_identities_in_a_loop_leave_the_block_list_bounded_and_the_node_serving() {
    let (cluster, metrics) = star_with_metrics(2);
    let (node1, node2) = (cluster.node(0), cluster.node(1));
    let (rss_before, _) = memory_kb(node1);
    let refused_before = rejects_matching(node1, "not enrolled");

    for _ in 0..IDENTITIES.div_ceil(WAVE) {
        wave(node1);
    }
    let sent = IDENTITIES.div_ceil(WAVE) * WAVE;
    // Each is refused at once (and blocked after a grace of 2 s).
    let refusals = wait_until(SOON, || {
        rejects_matching(node1, "not enrolled") >= refused_before + sent as u64
    });
    assert!(refusals, "node1 did not refuse all {sent} identities: {}", rejects(node1));
    let not_enrolled = metrics.value(&refused("not enrolled"));
    assert!(not_enrolled >= sent as f64, "/metrics counts {not_enrolled} refusals of {sent}");

    // The list holds the cap, no more, and `status` and /metrics agree.
    let blocked = || metrics.value("banmesh_peers{state=\"blocked\"}");
    let full = wait_until(SOON, || blocked() >= MAX_BLOCKED as f64);
    assert!(full, "the block list never filled: /metrics {}", metrics.lines("banmesh_peers"));
    let bounded =
        holds_for(WATCH, || blocked_peers(node1) <= MAX_BLOCKED && blocked() <= MAX_BLOCKED as f64);
    assert!(
        bounded,
        "node1 blocks {} peers, /metrics says {}, past the cap {MAX_BLOCKED}",
        blocked_peers(node1),
        metrics.lines("banmesh_peers")
    );
    // Each block past the cap lifted the oldest, counted.
    let lifted = metrics.value(&refused("block list full (oldest block lifted)"));
    assert!(lifted >= (sent - MAX_BLOCKED) as f64, "/metrics counts {lifted} lifted blocks");

    // node1 still serves: node2 stays connected and its bans spread.
    assert!(
        node1.connected_peers().contains(&node2.peer_id()),
        "node1 lost node2 during the loop: {:?}",
        node1.peers()
    );
    node2.call(&["ban", "198.51.100.77", "--for", "1h"]);
    let spread = wait_until(SOON, || node1.is_banned("198.51.100.77"));
    assert!(spread, "node2's ban did not reach node1 after the loop");
    let (rss_after, hwm) = memory_kb(node1);
    eprintln!(
        "{sent} fresh identities: node1 VmRSS {rss_before} kB before, {rss_after} kB after \
         (VmHWM {hwm} kB); blocked {}; {}",
        blocked_peers(node1),
        metrics.lines("banmesh_refused")
    );
}
