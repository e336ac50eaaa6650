//! A peer opening sync sessions in a loop: node1 answers the first and
//! refuses every other while it runs (one session per peer, counted), and
//! keeps serving: its control socket answers and its honest peer still
//! gets its records.

use negentropy::{Negentropy, NegentropyStorageVector};
use serde_bytes::ByteBuf;

use super::common::SOON;
use super::rogue::Rogue;
use super::{SyncRequest, SyncResponse, cluster_with_rogue_metrics, now_ms, wait_until};

/// Negentropy's first message over an empty set.
fn empty_open() -> SyncRequest {
    let mut storage = NegentropyStorageVector::new();
    storage.seal().expect("seal");
    let mut negentropy = Negentropy::owned(storage, 0).expect("negentropy");
    let msg = negentropy.initiate().expect("initiate");
    SyncRequest::Open { horizon_ms: now_ms(), msg: ByteBuf::from(msg), records: false }
}

#[test]
fn mesh_sync_sessions_opened_in_a_loop_are_refused_and_node_keeps_serving() {
    let (cluster, key, metrics) = cluster_with_rogue_metrics(2);
    let rogue = Rogue::new(&key, true);
    let node1 = cluster.node(0);
    let node1_id = rogue.join(node1);
    // The first Open: tried again if node1's timer happens to be in a
    // (short: the rogue refuses it) session with the rogue.
    let first = wait_until(SOON, || {
        matches!(rogue.sync(node1_id, empty_open()), Ok(SyncResponse::Round { .. }))
    });
    assert!(first, "node1 answered no Open from the rogue");
    let (mut opened, mut refused) = (1, 0);
    for _ in 1..30 {
        match rogue.sync(node1_id, empty_open()) {
            Ok(SyncResponse::Round { .. }) => opened += 1,
            Ok(SyncResponse::Refused { reason }) => {
                assert!(reason.contains("in session"), "refused for another reason: {reason}");
                refused += 1;
            }
            other => panic!("unexpected answer: {other:?}"),
        }
    }
    assert_eq!(opened, 1, "node1 opened {opened} sessions for one peer at once");
    assert_eq!(refused, 29);
    let sync = node1.status()["sync"].clone();
    assert!(sync["refused"].as_u64().unwrap_or(0) >= 29, "refusals not counted: {sync}");
    let shown = metrics.value("banmesh_sync_sessions_total{outcome=\"refused\"}");
    assert!(shown >= 29.0, "/metrics counts {shown} refused sessions");
    let with_rogue = sync["running"]
        .as_array()
        .map_or(0, |r| r.iter().filter(|s| s["peer_id"] == rogue.peer_id.to_string()).count());
    assert_eq!(with_rogue, 1, "sessions with the rogue: {sync}");

    // node1 keeps serving: its socket answers, and node2 gets its new ban.
    node1.call(&["ban", "198.18.7.1"]);
    let node2 = cluster.node(1);
    assert!(wait_until(SOON, || node2.is_banned("198.18.7.1")), "{}", node2.decision("198.18.7.1"));
}
