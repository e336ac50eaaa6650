//! An enrolled peer that streams a forged page in the middle of a join
//! (issue 15, "Bad input": a sync peer that sends garbage mid-stream). The
//! joiner checks pages while it fetches the next and stores the one
//! before: the pages before the forged one are kept, the forged page and
//! every page after it are not, and the peer is struck.

use banmesh_crdt::Record;
use banmesh_node::mesh::batch::Batch;
use serde_bytes::ByteBuf;

use super::common::{SOON, TestCluster, now_ms, wait_until};
use super::rogue::{Rogue, RogueKey};
use super::{SyncResponse, bans, keys_of, rejects, rejects_matching, stored_of, stores_all};

/// A page of one batch carrying `records` and the rogue's certificate;
/// `next` numbers the page the rogue answers the following request with.
fn page(key: &RogueKey, records: Vec<Record>, next: Option<u8>) -> SyncResponse {
    let batch = Batch { certs: vec![key.certificate()], revocations: vec![], records };
    SyncResponse::Page {
        batches: vec![ByteBuf::from(batch.encode())],
        next: next.map(|n| (now_ms(), ByteBuf::from(vec![n; 32]))),
        total: Some(150),
    }
}

#[test]
fn sync_stream_with_a_forged_page_keeps_the_pages_before_and_nothing_after() {
    let mut cluster = TestCluster::new();
    cluster.start_star(1, None);
    let key = RogueKey::read(&cluster.enroll("rogue"));
    let before = bans(&key.secret, "198.18.1", 50);
    let mut forged = bans(&key.secret, "198.18.2", 50);
    let mut statement = forged[25].statement().clone();
    statement.meta.reason = "words changed after signing".to_owned();
    forged[25] = Record::new(statement, *forged[25].signature());
    let after = bans(&key.secret, "198.18.3", 50);
    let (before_ips, forged_ips, after_ips) = (keys_of(&before), keys_of(&forged), keys_of(&after));
    let pages =
        vec![page(&key, before, Some(1)), page(&key, forged, Some(2)), page(&key, after, None)];
    let rogue = Rogue::serving(&key, pages);
    rogue.join(cluster.node(0));
    let node = cluster.node(0);
    // The empty node streams from its new peer on its own, or now.
    let _ = node.try_call(&["sync", "--peer", &rogue.peer_id.to_string()]);
    let struck = wait_until(SOON, || rejects_matching(node, "bad batch sent by sync") > 0);
    assert!(struck, "the forged page was not counted as a strike: {}", rejects(node));
    assert!(stores_all(node, &before_ips), "the page before the forged one was not kept");
    assert!(rogue.seen(|s| s.pages_served) >= 2, "the node never asked for the forged page");
    let mut later = forged_ips;
    later.extend(after_ips);
    assert_eq!(stored_of(node, &later), Vec::<String>::new(), "stored from the forged page on");
    let status = node.status();
    assert!(status["record_counts"]["ban"].as_u64().is_some(), "the node stopped answering");
}
