//! Gossip waits for the hello: a peer connected to node1 whose hello is
//! still pending (here an enrolled rogue that has not said it yet, so only
//! the missing hello keeps it out) is not told node1 takes the topic,
//! receives none of node1's gossip, cannot publish to node1 and is never in
//! node1's gossip mesh; once its hello is accepted, gossip flows both ways.

use std::time::Instant;

use banmesh_node::mesh::batch::Batch;
use libp2p::PeerId;

use super::common::{SOON, TestNode, holds_for, wait_until};
use super::rogue::Rogue;
use super::{WATCH, bans, cluster_with_rogue, keys_of, stored_of, stores_all};

/// node1's gossip mesh links, from `status`.
fn links(node: &TestNode) -> u64 {
    node.status()["discovery"]["mesh_peers"].as_u64().unwrap_or(0)
}

#[test]
fn mesh_peer_before_its_hello_gets_no_gossip_sends_none_and_is_never_grafted() {
    let (cluster, key) = cluster_with_rogue(1);
    let node1 = cluster.node(0);
    let node1_id: PeerId = node1.peer_id().parse().expect("node1 peer id");
    // The rogue runs gossip with node1 from the first moment (it does not
    // wait for hellos) but says no hello until told.
    let rogue = Rogue::new(&key, false);
    rogue.dial(node1);
    let connected = wait_until(SOON, || rogue.is_connected(&node1_id));
    assert!(connected, "the rogue could not connect: {:?}", rogue.seen(|s| format!("{s:?}")));

    for i in 1..=3 {
        node1.call(&["ban", &format!("198.18.40.{i}")]);
    }
    let early = bans(&key.secret, "198.18.41", 3);
    let batch = Batch { certs: vec![key.certificate()], revocations: Vec::new(), records: early };
    let sent = rogue.publish(batch.encode());
    let kept_out = holds_for(WATCH, || {
        rogue.seen(|s| !s.subscribed.contains(&node1_id) && s.gossip_received == 0)
            && links(node1) == 0
            && rogue.is_connected(&node1_id)
    });
    assert!(
        kept_out,
        "a peer whose hello is pending was let into gossip: rogue saw {:?}, node1 has {} links",
        rogue.seen(|s| format!("{s:?}")),
        links(node1)
    );
    assert!(sent.is_err(), "the rogue could publish to node1 before its hello");
    let early_ips = keys_of(&batch.records);
    let stored = stored_of(node1, &early_ips);
    assert!(stored.is_empty(), "node1 stored gossip sent before the hello: {stored:?}");

    // Its hello accepted, the rogue is told node1 takes the topic and gets
    // its gossip, and its own is taken.
    let asked = Instant::now();
    rogue.send_hello(node1_id);
    let me = rogue.peer_id.to_string();
    let admitted = wait_until(SOON, || {
        rogue.seen(|s| s.subscribed.contains(&node1_id)) && node1.connected_peers().contains(&me)
    });
    assert!(
        admitted,
        "the rogue's hello did not let it in: {:?}",
        rogue.seen(|s| format!("{s:?}"))
    );
    eprintln!("hello sent -> node1's subscription seen: {:?}", asked.elapsed());
    node1.call(&["ban", "198.18.40.9"]);
    let heard = wait_until(SOON, || rogue.seen(|s| s.gossip_received > 0));
    assert!(heard, "the admitted rogue got no gossip from node1");
    eprintln!("hello sent -> first gossip from node1: {:?}", asked.elapsed());
    let late = bans(&key.secret, "198.18.42", 3);
    let ips = keys_of(&late);
    let batch = Batch { certs: vec![key.certificate()], revocations: Vec::new(), records: late };
    rogue.publish_ok(batch.encode());
    let stored = wait_until(SOON, || stores_all(node1, &ips));
    assert!(stored, "node1 did not store the admitted rogue's gossip");
}
