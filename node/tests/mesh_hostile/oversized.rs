//! Oversized messages from an enrolled rogue: gossip just over the 64 KiB
//! batch limit (refused whole by the decoder), far over it (refused by
//! gossipsub at both ends), and a sync request over the 512 KiB frame limit
//! (refused by the codec); each counted, nothing of it stored, and node1
//! keeps serving its honest peers.

use banmesh_node::mesh::batch::{Batch, MAX_MESSAGE};
use banmesh_node::mesh::sync::{SyncRequest, SyncResponse};
use serde_bytes::ByteBuf;

use super::common::{SOON, holds_for, now_ms, wait_until};
use super::rogue::{Rogue, RogueKey, oversize_swarm};
use super::{
    WATCH, ban, bans, cluster_with_rogue, cluster_with_rogue_metrics, keys_of, rejects,
    rejects_matching, stored_of, stores_all, wait_stored_everywhere,
};

/// A batch of valid bans signed by `key` whose encoding is over `min_len`
/// bytes (record texts make the size up).
fn big_batch(key: &RogueKey, prefix: &str, min_len: usize) -> (Vec<u8>, Vec<String>) {
    let now = now_ms();
    let reason = "x".repeat(400);
    let mut records = Vec::new();
    let mut i = 0u32;
    loop {
        let bytes = Batch::of_records(vec![key.certificate()], records.clone()).encode();
        if bytes.len() > min_len {
            return (bytes, keys_of(&records));
        }
        i += 1;
        let ip = format!("{prefix}.{}.{}", i / 250, i % 250 + 1);
        records.push(ban(&key.secret, &ip, now, &reason));
    }
}

#[test]
fn mesh_oversized_gossip_is_refused() {
    let (cluster, key) = cluster_with_rogue(2);
    let rogue = Rogue::new(&key, true);
    rogue.join(cluster.node(0));
    let node1 = cluster.node(0);
    let before = rejects_matching(node1, "malformed");

    // Over 64 KiB but within gossipsub's 64 KiB + 1 KiB: it travels, and
    // the node's decoder refuses it whole.
    let (just_over, just_over_ips) = big_batch(&key, "198.19", MAX_MESSAGE);
    assert!(just_over.len() < MAX_MESSAGE + 512, "{} bytes", just_over.len());
    rogue.publish_ok(just_over);
    let counted = wait_until(SOON, || rejects_matching(node1, "malformed") > before);
    assert!(
        counted,
        "node1 counted no reject of a {} KiB batch: {}",
        MAX_MESSAGE / 1024,
        rejects(node1)
    );

    // Far over: the node's own stack refuses to send it.
    let (far_over, far_over_ips) = big_batch(&key, "198.19", 100 * 1024);
    let sent = rogue.publish(far_over.clone());
    assert!(
        sent.as_ref().is_err_and(|e| e.contains("TooLarge")),
        "gossipsub on the node's stack should refuse to send {} bytes: {sent:?}",
        far_over.len()
    );
    drop(rogue);

    // A sender that ignores the limit: node1's gossipsub refuses the frame.
    let big = Rogue::with_swarm(oversize_swarm(&key.secret, 1024 * 1024), &key, true);
    big.join(node1);
    big.publish_ok(far_over);
    // Whether the same sender still gets a valid batch through afterwards.
    let after = bans(&key.secret, "198.18.10", 2);
    let after_ips = keys_of(&after);
    big.publish_ok(Batch::of_records(vec![key.certificate()], after).encode());
    // node1 keeps serving: node2's ban still arrives.
    cluster.node(1).call(&["ban", "198.18.8.1"]);
    wait_stored_everywhere(
        &cluster,
        &["198.18.8.1".to_owned()],
        "node2's ban after the oversized frame",
    );
    let none_stored = holds_for(WATCH, || {
        stored_of(node1, &just_over_ips).is_empty() && stored_of(node1, &far_over_ips).is_empty()
    });
    assert!(none_stored, "node1 stored records of an oversized message");
    eprintln!(
        "after the oversized frame: rogue saw {:?}; node1 rejects {}; valid batch after it stored: {}",
        big.seen(|s| format!("{s:?}")),
        rejects(node1),
        stores_all(node1, &after_ips)
    );
}

/// A sync request over the 512 KiB frame limit is refused by the codec,
/// counted, and the node keeps serving.
#[test]
fn mesh_oversized_sync_request_is_refused_and_counted() {
    let (cluster, key, metrics) = cluster_with_rogue_metrics(2);
    let rogue = Rogue::new(&key, true);
    let node1_id = rogue.join(cluster.node(0));
    let huge = SyncRequest::Push { batch: ByteBuf::from(vec![7u8; 600 * 1024]) };
    let answer = rogue.sync(node1_id, huge);
    assert!(!matches!(answer, Ok(SyncResponse::Done)), "node1 took a 600 KiB frame: {answer:?}");
    eprintln!("answer to the oversized request: {answer:?}");
    let counted = wait_until(SOON, || rejects_matching(cluster.node(0), "malformed sync") > 0);
    assert!(counted, "node1 counts no malformed sync request: {}", rejects(cluster.node(0)));
    let shown = metrics.lines("banmesh_refused_total{reason=\"malformed sync");
    assert!(!shown.is_empty(), "/metrics counts no malformed sync request");
    cluster.node(1).call(&["ban", "198.18.7.7"]);
    let served = wait_until(SOON, || cluster.node(0).is_banned("198.18.7.7"));
    assert!(served, "node1 stopped serving after the oversized frame");
}
