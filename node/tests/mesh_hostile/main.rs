//! The mesh against a hostile peer: a libp2p swarm driven by the test itself
//! (a "rogue", built with the node's own `behaviour::build`), enrolled in
//! the cluster or not, that publishes crafted gossip to node1 of a real
//! cluster: a batch with one forged signature, malformed batches, records
//! from the future or from an unknown origin, oversized messages
//! (`oversized.rs`), and sync requests before any hello. Each must be
//! refused, counted and never stored, and node1 must keep serving its
//! honest peers. `gc.rs`: a late
//! copy of a record scheduled GC collected, pushed again, is left out.
//! `identities.rs`, `revoked.rs`, `wrapped.rs` and `wide.rs`: fresh
//! identities in a loop, a revoked node told so, forged records of another
//! origin wrapped in the rogue's gossip, bans wider than the prefix cap,
//! each with what `status` and `/metrics` (`metrics.rs`) show.
//! `before_hello.rs`: a peer whose hello is pending is kept out of gossip.
//! `silent.rs`: fresh identities in a loop that never say hello.

mod before_hello;
#[path = "../common/mod.rs"]
mod common;
mod enrolled;
mod gc;
mod identities;
mod metrics;
mod never_ban;
mod never_ban_v6;
mod oversized;
mod replay;
mod revoked;
mod rogue;
mod sessions;
mod silent;
mod stream_rogue;
mod sync_rogue;
mod wide;
mod wrapped;

use std::collections::HashSet;
use std::time::Duration;

use banmesh_crdt::{Hlc, Key, Kind, Metadata, Origin, Record, Statement};
use banmesh_keys::{SecretKey, files, sign_record};
use banmesh_node::mesh::batch::Batch;
use banmesh_node::mesh::sync::{SyncRequest, SyncResponse};
use common::{SOON, TestCluster, TestNode, holds_for, now_ms, wait_until};
use libp2p::PeerId;
use serde_bytes::ByteBuf;
use serde_json::Value;

use metrics::{Metrics, refused, skipped, star_with_metrics};
use rogue::{Rogue, RogueKey};

/// How long the rogue lets the gossip mesh settle after node1 subscribes.
const MESH_SETTLE: Duration = Duration::from_millis(1500);
/// How long a refused thing is watched for not getting through.
const WATCH: Duration = Duration::from_secs(3);

/// A ban on `ip` signed by `secret`, issued at `issued_ms`, for an hour.
fn ban(secret: &SecretKey, ip: &str, issued_ms: u64, reason: &str) -> Record {
    let statement = Statement {
        key: Key::parse(ip).expect("ip").key,
        kind: Kind::Ban,
        issued_at: Hlc::from_millis(issued_ms),
        expires_at: Some(issued_ms + 3_600_000),
        strikes: 1,
        meta: Metadata {
            jail: "rogue".to_owned(),
            reason: reason.to_owned(),
            source: "test".to_owned(),
        },
        origin: Origin::default(),
    };
    sign_record(secret, statement)
}

/// `count` bans signed by `secret` on `PREFIX.1..`.
fn bans(secret: &SecretKey, prefix: &str, count: usize) -> Vec<Record> {
    let now = now_ms();
    (1..=count).map(|i| ban(secret, &format!("{prefix}.{i}"), now, "valid")).collect()
}

/// The keys of the records `node` stores, as strings.
fn stored_keys(node: &TestNode) -> HashSet<String> {
    node.records().iter().filter_map(|r| r["key"].as_str().map(str::to_owned)).collect()
}

/// Whether `node` stores a record on every one of `ips`.
fn stores_all(node: &TestNode, ips: &[String]) -> bool {
    let keys = stored_keys(node);
    ips.iter().all(|ip| keys.contains(ip))
}

/// Which of `ips` `node` stores.
fn stored_of(node: &TestNode, ips: &[String]) -> Vec<String> {
    let keys = stored_keys(node);
    ips.iter().filter(|ip| keys.contains(*ip)).cloned().collect()
}

/// The keys of `records`, as `records --json` shows them.
fn keys_of(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.key().to_string()).collect()
}

/// The count of refusals in `status --json` whose reason contains `word`.
fn rejects_matching(node: &TestNode, word: &str) -> u64 {
    let status = node.status();
    let Some(rejects) = status["rejects"].as_object() else { return 0 };
    rejects.iter().filter(|(reason, _)| reason.contains(word)).filter_map(|(_, n)| n.as_u64()).sum()
}

/// Every refusal count of `node`, for messages.
fn rejects(node: &TestNode) -> Value {
    node.status()["rejects"].clone()
}

/// A star of `count` nodes with every node connected, and an enrolled rogue
/// key in the same cluster.
fn cluster_with_rogue(count: usize) -> (TestCluster, RogueKey) {
    let (cluster, key, _) = cluster_with_rogue_metrics(count);
    (cluster, key)
}

/// [`cluster_with_rogue`], and node1's `/metrics` endpoint.
fn cluster_with_rogue_metrics(count: usize) -> (TestCluster, RogueKey, Metrics) {
    let (cluster, metrics) = star_with_metrics(count);
    let key = RogueKey::read(&cluster.enroll("rogue"));
    (cluster, key, metrics)
}

/// Waits until every node stores every one of `ips`; panics naming what is
/// missing.
fn wait_stored_everywhere(cluster: &TestCluster, ips: &[String], what: &str) {
    let ok = wait_until(SOON, || cluster.nodes.iter().all(|n| stores_all(n, ips)));
    let missing: Vec<(String, usize)> = cluster
        .nodes
        .iter()
        .map(|n| (n.name.clone(), ips.len() - stored_of(n, ips).len()))
        .collect();
    assert!(ok, "{what} did not reach every node within {SOON:?}: missing per node {missing:?}");
}

#[test]
fn mesh_batch_with_one_bad_signature_is_rejected_whole_and_counted() {
    let (cluster, key) = cluster_with_rogue(3);
    let rogue = Rogue::new(&key, true);
    rogue.join(cluster.node(0));
    let node1 = cluster.node(0);
    let before = rejects_matching(node1, "signature");

    let mut records = bans(&key.secret, "198.18.1", 10);
    let good = ban(&key.secret, "198.18.1.11", now_ms(), "honest words");
    let mut forged = good.statement().clone();
    forged.meta.reason = "words changed after signing".to_owned();
    records.push(Record::new(forged, *good.signature()));
    let bad_ips = keys_of(&records);
    rogue.publish_ok(Batch::of_records(vec![key.certificate()], records).encode());

    let counted = wait_until(SOON, || rejects_matching(node1, "signature") > before);
    assert!(counted, "node1 counts no signature reject: {}", rejects(node1));

    // The control: a valid batch over the same channel reaches every node
    // (one reject does not block), and the rejected batch reached none.
    let control = bans(&key.secret, "198.18.2", 5);
    let control_ips = keys_of(&control);
    rogue.publish_ok(Batch::of_records(vec![key.certificate()], control).encode());
    wait_stored_everywhere(&cluster, &control_ips, "the valid control batch");
    for node in &cluster.nodes {
        let stored = stored_of(node, &bad_ips);
        assert!(
            stored.is_empty(),
            "{} stored records of the rejected batch: {stored:?}",
            node.name
        );
    }
    assert!(
        node1.connected_peers().contains(&rogue.peer_id.to_string()),
        "one reject should not disconnect the rogue: {:?}",
        node1.peers()
    );
    assert_eq!(rejects_matching(node1, "repeated rejects"), 0, "{}", rejects(node1));
}

#[test]
fn mesh_repeated_rejects_block_the_peer() {
    let (cluster, key, metrics) = cluster_with_rogue_metrics(2);
    let rogue = Rogue::new(&key, true);
    let node1_id = rogue.join(cluster.node(0));
    let node1 = cluster.node(0);
    let me = rogue.peer_id.to_string();
    let before = rejects_matching(node1, "malformed");

    // An unknown origin is an Ignore, not a Reject: it must not count.
    let stranger = SecretKey::generate().expect("stranger key");
    rogue.publish_ok(Batch::of_records(Vec::new(), bans(&stranger, "198.18.3", 1)).encode());
    // Garbage, a truncated batch, a batch of an unknown version.
    let garbage: Vec<u8> =
        (0..600u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let valid =
        Batch::of_records(vec![key.certificate()], bans(&key.secret, "198.18.4", 3)).encode();
    let truncated = valid[..valid.len() - 7].to_vec();
    let mut unknown_version = valid.clone();
    unknown_version[0] = 0xee;
    for message in [garbage, truncated, unknown_version] {
        rogue.publish_ok(message);
    }

    let blocked = wait_until(SOON, || {
        rejects_matching(node1, "repeated rejects") > 0 && !rogue.is_connected(&node1_id)
    });
    assert!(
        blocked,
        "node1 did not block the rogue after 3 malformed batches: rejects {}, rogue saw {:?}",
        rejects(node1),
        rogue.seen(|s| format!("{s:?}"))
    );
    assert!(
        rejects_matching(node1, "malformed") >= before + 3,
        "node1 should count 3 malformed batches: {}",
        rejects(node1)
    );
    assert!(
        !node1.connected_peers().contains(&me),
        "node1 still lists the rogue: {:?}",
        node1.peers()
    );
    // What a dashboard sees: the reasons counted, and a blocked peer.
    for (series, least) in [
        (refused("malformed batch"), 3.0),
        (refused("repeated rejects"), 1.0),
        ("banmesh_peers{state=\"blocked\"}".to_owned(), 1.0),
    ] {
        let shown = metrics.value(&series);
        assert!(shown >= least, "/metrics: {series} {shown}, not {least}");
    }

    // A reconnect is refused: the dial fails or its connection closes at once.
    let (errors, closed) = rogue.seen(|s| (s.dial_errors.len(), s.closed));
    rogue.dial(node1);
    let refused =
        wait_until(SOON, || rogue.seen(|s| s.dial_errors.len() > errors || s.closed > closed));
    assert!(
        refused,
        "the redial was neither refused nor closed: {:?}",
        rogue.seen(|s| format!("{s:?}"))
    );
    let kept_out = holds_for(WATCH, || {
        !rogue.is_connected(&node1_id) && !node1.connected_peers().contains(&me)
    });
    assert!(
        kept_out,
        "the blocked rogue got back in: rogue saw {:?}, node1 peers {:?}",
        rogue.seen(|s| format!("{s:?}")),
        node1.peers()
    );
    // Nothing of the rogue's was stored, and node1 still serves node2.
    assert!(
        stored_of(node1, &["198.18.3.1".to_owned(), "198.18.4.1".to_owned()]).is_empty(),
        "node1 stored a refused record: {:?}",
        node1.records()
    );
    cluster.node(1).call(&["ban", "198.18.5.1"]);
    wait_stored_everywhere(&cluster, &["198.18.5.1".to_owned()], "node2's ban");
}

#[test]
fn mesh_future_dated_and_unknown_origin_records_are_ignored_not_stored() {
    let (cluster, key, metrics) = cluster_with_rogue_metrics(2);
    let rogue = Rogue::new(&key, true);
    rogue.join(cluster.node(0));
    let node1 = cluster.node(0);
    let rejects_before = node1.status()["rejects"].clone();

    let future = ban(&key.secret, "198.18.6.1", now_ms() + 10 * 60_000, "from the future");
    rogue.publish_ok(Batch::of_records(vec![key.certificate()], vec![future]).encode());
    let stranger = SecretKey::generate().expect("stranger key");
    let unknown = ban(&stranger, "198.18.6.2", now_ms(), "nobody's");
    rogue.publish_ok(Batch::of_records(Vec::new(), vec![unknown]).encode());

    // Gossip from one peer is judged in order: once the later valid batch is
    // stored, the earlier two have been judged.
    let control = bans(&key.secret, "198.18.7", 3);
    let control_ips = keys_of(&control);
    rogue.publish_ok(Batch::of_records(vec![key.certificate()], control).encode());
    wait_stored_everywhere(&cluster, &control_ips, "the valid batch after the ignored ones");

    let ignored = ["198.18.6.1".to_owned(), "198.18.6.2".to_owned()];
    for node in &cluster.nodes {
        let stored = stored_of(node, &ignored);
        assert!(stored.is_empty(), "{} stored an ignored record: {stored:?}", node.name);
    }
    assert!(
        node1.connected_peers().contains(&rogue.peer_id.to_string()),
        "ignored records must not cost the rogue its connection: {:?}",
        node1.peers()
    );
    assert_eq!(
        node1.status()["rejects"],
        rejects_before,
        "ignored records must not be counted as rejects"
    );
    // Each is counted where the operator sees it, as a skipped record.
    let skipped = node1.status()["skipped"].clone();
    for reason in ["future-dated", "unknown certificate"] {
        assert!(skipped[reason].as_u64().unwrap_or(0) >= 1, "no {reason:?} in {skipped}");
        let shown = metrics.value(&self::skipped(reason));
        assert!(shown >= 1.0, "/metrics counts {shown} {reason:?} records");
    }
}

/// One peer's batch mixing a valid record with records that are void on
/// their own (from the future, of an unknown origin): the valid one is
/// stored and spread, the others skipped, and nobody is penalised.
#[test]
fn mesh_mixed_batch_stores_the_valid_records_and_skips_the_rest() {
    let (cluster, key) = cluster_with_rogue(2);
    let rogue = Rogue::new(&key, true);
    rogue.join(cluster.node(0));
    let node1 = cluster.node(0);
    let rejects_before = node1.status()["rejects"].clone();

    let future = ban(&key.secret, "198.18.8.1", now_ms() + 10 * 60_000, "from the future");
    let stranger = SecretKey::generate().expect("stranger key");
    let unknown = ban(&stranger, "198.18.8.2", now_ms(), "nobody's");
    let valid = bans(&key.secret, "198.18.9", 2);
    let valid_ips = keys_of(&valid);
    let records = vec![future, valid[0].clone(), unknown, valid[1].clone()];
    rogue.publish_ok(Batch::of_records(vec![key.certificate()], records).encode());
    wait_stored_everywhere(&cluster, &valid_ips, "the valid records of a mixed batch");

    let void = ["198.18.8.1".to_owned(), "198.18.8.2".to_owned()];
    for node in &cluster.nodes {
        let stored = stored_of(node, &void);
        assert!(stored.is_empty(), "{} stored a void record: {stored:?}", node.name);
    }
    assert_eq!(node1.status()["rejects"], rejects_before, "a mixed batch is not a reject");
}

#[test]
fn mesh_sync_request_from_pending_peer_is_refused() {
    let cluster = TestCluster::star(1);
    let other = TestCluster::new();
    let key = RogueKey::read(&other.enroll("foreign"));
    let rogue = Rogue::new(&key, false);
    let node1 = cluster.node(0);
    let node1_id: PeerId = node1.peer_id().parse().expect("node1 peer id");
    rogue.dial(node1);
    let connected = wait_until(SOON, || rogue.is_connected(&node1_id));
    assert!(connected, "the rogue could not connect: {:?}", rogue.seen(|s| format!("{s:?}")));

    // Before any hello: the sync request is refused.
    let answer = rogue.sync(
        node1_id,
        SyncRequest::Open { horizon_ms: now_ms(), msg: ByteBuf::from(vec![0x61]), records: false },
    );
    eprintln!("pending peer's sync request answered: {answer:?}");
    match &answer {
        Ok(SyncResponse::Refused { reason }) => {
            assert!(reason.contains("hello"), "refused for another reason: {reason}");
        }
        Ok(other) => panic!("node1 answered a pending peer's sync request: {other:?}"),
        Err(e) => eprintln!("the sync request failed rather than being refused: {e}"),
    }
    let counted = wait_until(SOON, || rejects_matching(node1, "pending") > 0);
    assert!(counted, "node1 counts no sync from a pending peer: {}", rejects(node1));

    // A hello with another cluster's certificate: refused, disconnected.
    rogue.send_hello(node1_id);
    let dropped = wait_until(SOON, || {
        rejects_matching(node1, "cluster") > 0 && !rogue.is_connected(&node1_id)
    });
    assert!(
        dropped,
        "node1 kept the foreign rogue: rejects {}, rogue saw {:?}",
        rejects(node1),
        rogue.seen(|s| format!("{s:?}"))
    );
    assert!(
        node1.connected_peers().is_empty(),
        "node1 lists a connected peer: {:?}",
        node1.peers()
    );
    // node1 still serves its control socket and issues records.
    node1.call(&["ban", "198.18.9.1"]);
    assert!(node1.is_banned("198.18.9.1"), "{}", node1.decision("198.18.9.1"));
}

/// A peer presenting another node's (valid) certificate: the certificate's
/// key is not the connection's PeerId, so the hello is refused, counted, and
/// the peer is dropped.
#[test]
fn mesh_certificate_of_another_key_is_refused() {
    let (cluster, rogue_key) = cluster_with_rogue(2);
    let node1 = cluster.node(0);
    let node1_id: PeerId = node1.peer_id().parse().expect("node1 peer id");
    let node2_cert = files::read_certificate(&cluster.node(1).data_dir.join("node.cert"))
        .expect("node2's certificate");
    let impostor = RogueKey { secret: rogue_key.secret, cert: node2_cert.to_bytes() };
    let rogue = Rogue::new(&impostor, true);
    rogue.dial(node1);
    let refused = wait_until(SOON, || rejects_matching(node1, "not the peer's") > 0);
    assert!(refused, "node1 counts no refusal of a borrowed certificate: {}", rejects(node1));
    // The refusal is counted before the connection closes: wait for the
    // close, then check that it stays closed.
    let gone = wait_until(SOON, || !rogue.is_connected(&node1_id));
    let out = gone && holds_for(Duration::from_secs(2), || !rogue.is_connected(&node1_id));
    assert!(out, "node1 kept the impostor: {:?}", node1.peers());
    assert_eq!(
        node1.connected_peers().len(),
        1,
        "node1 should keep only node2: {:?}",
        node1.peers()
    );
}
