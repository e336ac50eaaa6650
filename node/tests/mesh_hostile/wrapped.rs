//! An enrolled rogue's gossip that is valid for itself but wraps another
//! origin's records with a bad signature (issue 17, item 2). DESIGN.md
//! ("Live", "Judge per record") rejects a batch whole for a bad signature:
//! no honest peer could have received it, and gossipsub forwards bytes as
//! received, so a batch cannot be forwarded in part. So the rogue's own
//! valid records in it go too, the batch is counted under `bad signature`,
//! the rogue gets a strike, and three such batches block it. Nothing valid
//! is lost: the other origin's genuine records, and the rogue's own once
//! sent in a clean batch, are stored everywhere (a refusal is never cached).

use banmesh_crdt::Record;
use banmesh_keys::files;
use banmesh_node::mesh::batch::Batch;

use super::common::{SOON, holds_for, now_ms, wait_until};
use super::metrics::{refused, star_with_metrics};
use super::rogue::{Rogue, RogueKey};
use super::{WATCH, ban, bans, keys_of, rejects, rejects_matching, stored_of};

/// `record` with one bit of its signature flipped.
fn forged(record: &Record) -> Record {
    let mut signature = *record.signature();
    signature[7] ^= 0x20;
    Record::new(record.statement().clone(), signature)
}

#[test]
fn mesh_gossip_wrapping_another_origins_records_with_bad_signatures_is_rejected_whole() {
    let (cluster, metrics) = star_with_metrics(3);
    let key = RogueKey::read(&cluster.enroll("rogue"));
    let rogue = Rogue::new(&key, true);
    let node1_id = rogue.join(cluster.node(0));
    let (node1, node2) = (cluster.node(0), cluster.node(1));
    let node2_secret =
        files::read_secret_key(&node2.data_dir.join("node.key")).expect("node2's key");
    let node2_cert =
        files::read_certificate(&node2.data_dir.join("node.cert")).expect("node2's certificate");
    let certs = vec![key.certificate(), node2_cert];
    let bad_signature = refused("bad signature");
    let before = (rejects_matching(node1, "bad signature"), metrics.value(&bad_signature));

    // node2's genuine records, and the rogue's own, in one batch with
    // node2's signatures broken.
    let now = now_ms();
    let genuine: Vec<Record> = (1..=3)
        .map(|i| ban(&node2_secret, &format!("198.18.20.{i}"), now, "node2's own"))
        .collect();
    let own = bans(&key.secret, "198.18.21", 3);
    let mut records = own.clone();
    records.extend(genuine.iter().map(forged));
    rogue.publish_ok(Batch::of_records(certs.clone(), records).encode());
    let counted = wait_until(SOON, || {
        rejects_matching(node1, "bad signature") > before.0
            && metrics.value(&bad_signature) > before.1
    });
    assert!(counted, "node1 counts no bad signature: {}", rejects(node1));
    let all: Vec<String> = keys_of(&own).into_iter().chain(keys_of(&genuine)).collect();
    let none = holds_for(WATCH, || cluster.nodes.iter().all(|n| stored_of(n, &all).is_empty()));
    assert!(none, "a record of the rejected batch was stored: {:?}", node1.records());

    // Nothing valid is lost: the same records, genuine, in a clean batch.
    let mut clean = own.clone();
    clean.extend(genuine.iter().cloned());
    rogue.publish_ok(Batch::of_records(certs.clone(), clean).encode());
    super::wait_stored_everywhere(&cluster, &all, "the genuine records after the forged copies");

    // Two more forged batches: three strikes, and the rogue is blocked.
    let blocked_before = metrics.value("banmesh_peers{state=\"blocked\"}");
    let mut forged_only = Vec::new();
    for round in 0..2 {
        let fresh = ban(&node2_secret, &format!("198.18.22.{}", round + 1), now_ms(), "later");
        forged_only.push(fresh.key().to_string());
        let records = vec![bans(&key.secret, &format!("198.18.{}", 23 + round), 1).remove(0)];
        let records = records.into_iter().chain([forged(&fresh)]).collect();
        rogue.publish_ok(Batch::of_records(certs.clone(), records).encode());
    }
    let blocked = wait_until(SOON, || {
        metrics.value(&refused("repeated rejects")) >= 1.0 && !rogue.is_connected(&node1_id)
    });
    assert!(blocked, "the rogue was not blocked after three forged batches: {}", rejects(node1));
    let shown = metrics.value("banmesh_peers{state=\"blocked\"}");
    assert!(
        shown > blocked_before,
        "/metrics shows {shown} blocked peers, {blocked_before} before"
    );
    assert!(
        metrics.value(&bad_signature) >= before.1 + 3.0,
        "/metrics: {}",
        metrics.lines("banmesh_refused")
    );
    for node in &cluster.nodes {
        let stored = stored_of(node, &forged_only);
        assert!(stored.is_empty(), "{} stored a forged record: {stored:?}", node.name);
    }
    // The honest nodes go on: node2's own ban spreads.
    node2.call(&["ban", "198.18.24.1", "--for", "1h"]);
    super::wait_stored_everywhere(&cluster, &["198.18.24.1".to_owned()], "node2's ban");
    eprintln!(
        "after the wrapped forgeries: node1 rejects {}; /metrics {}",
        rejects(node1),
        metrics.lines("banmesh_refused")
    );
}
