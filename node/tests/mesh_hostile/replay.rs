//! An enrolled rogue replaying its own superseded records changes nothing
//! (the slot keeps its greatest record, the decision stays), and records
//! dated just inside `skew_bound` (30 s by default) ahead of the clock are
//! stored and spread while those just outside are skipped and counted.

use banmesh_crdt::{Hlc, Key, Kind, Metadata, Origin, Record, Statement};
use banmesh_keys::{SecretKey, sign_record};
use banmesh_node::mesh::batch::Batch;

use super::common::{SOON, holds_for, now_ms};
use super::rogue::Rogue;
use super::{WATCH, ban, cluster_with_rogue, keys_of, stored_of, wait_stored_everywhere};

/// A record of `kind` on `ip` signed by `secret`, issued at `issued_ms`.
fn record(secret: &SecretKey, ip: &str, kind: Kind, issued_ms: u64, ttl_ms: Option<u64>) -> Record {
    let statement = Statement {
        key: Key::parse(ip).expect("ip").key,
        kind,
        issued_at: Hlc::from_millis(issued_ms),
        expires_at: ttl_ms.map(|t| issued_ms + t),
        strikes: u32::from(kind == Kind::Ban),
        meta: Metadata {
            jail: "rogue".to_owned(),
            reason: "replay".to_owned(),
            source: "test".to_owned(),
        },
        origin: Origin::default(),
    };
    sign_record(secret, statement)
}

#[test]
fn mesh_replayed_superseded_records_change_nothing() {
    let (cluster, key) = cluster_with_rogue(2);
    let rogue = Rogue::new(&key, true);
    rogue.join(cluster.node(0));
    let (node1, node2) = (cluster.node(0), cluster.node(1));
    let ip = "198.18.20.1";
    // Not before the rogue's certificate, which was issued just now.
    let t = now_ms();
    let first = record(&key.secret, ip, Kind::Ban, t, Some(3_600_000));
    let second = record(&key.secret, ip, Kind::Ban, t + 1_000, Some(7_200_000));
    let unban = record(&key.secret, ip, Kind::Unban, t + 2_000, None);
    let send = |records: Vec<Record>| {
        rogue.publish_ok(Batch::of_records(vec![key.certificate()], records).encode());
    };
    for r in [&first, &second, &unban] {
        send(vec![r.clone()]);
    }
    let settled = super::common::wait_until(SOON, || {
        cluster.nodes.iter().all(|n| n.records_on(ip).len() == 2 && n.is_not_banned(ip))
    });
    assert!(
        settled,
        "the rogue's ban then unban did not settle: node1 {:?}, node2 {:?}; node1 rejects {} skipped {}",
        node1.records_on(ip),
        node2.records_on(ip),
        node1.status()["rejects"],
        node1.status()["skipped"]
    );
    let before: Vec<_> = cluster.nodes.iter().map(|n| n.records_on(ip)).collect();

    // Replays of both superseded bans and of the unban itself, alone and
    // mixed with a new record (a control that arrives after them).
    send(vec![first.clone(), second.clone()]);
    send(vec![second, first.clone(), unban]);
    let control = ban(&key.secret, "198.18.20.2", now_ms(), "control");
    send(vec![first, control.clone()]);
    wait_stored_everywhere(&cluster, &keys_of(&[control]), "the control after the replays");
    let unchanged = holds_for(WATCH, || {
        cluster
            .nodes
            .iter()
            .zip(&before)
            .all(|(n, b)| n.records_on(ip) == *b && n.is_not_banned(ip))
    });
    assert!(
        unchanged,
        "a replay changed {ip}: node1 {:?}, node2 {:?}",
        node1.trace(ip),
        node2.trace(ip)
    );
    assert!(
        node1.connected_peers().contains(&rogue.peer_id.to_string()),
        "replays are not rejects: {:?}",
        node1.status()["rejects"]
    );
    eprintln!(
        "after the replays: node1 rejects {}, skipped {}",
        node1.status()["rejects"],
        node1.status()["skipped"]
    );
}

#[test]
fn mesh_records_just_inside_skew_bound_are_stored_just_outside_skipped() {
    let (cluster, key, metrics) = super::cluster_with_rogue_metrics(2);
    let rogue = Rogue::new(&key, true);
    rogue.join(cluster.node(0));
    let node1 = cluster.node(0);
    let skipped_before = node1.status()["skipped"]["future-dated"].as_u64().unwrap_or(0);
    let now = now_ms();
    let inside = ban(&key.secret, "198.18.21.1", now + 20_000, "20 s ahead");
    let outside = ban(&key.secret, "198.18.21.2", now + 45_000, "45 s ahead");
    rogue.publish_ok(Batch::of_records(vec![key.certificate()], vec![outside, inside]).encode());
    wait_stored_everywhere(&cluster, &["198.18.21.1".to_owned()], "the record 20 s ahead");
    let out = ["198.18.21.2".to_owned()];
    for node in &cluster.nodes {
        assert!(stored_of(node, &out).is_empty(), "{} stored the record 45 s ahead", node.name);
    }
    let skipped = node1.status()["skipped"]["future-dated"].as_u64().unwrap_or(0);
    assert_eq!(skipped, skipped_before + 1, "{}", node1.status()["skipped"]);
    let shown = metrics.value(&super::skipped("future-dated"));
    assert!(shown >= 1.0, "/metrics counts {shown} future-dated records");
    assert!(node1.is_banned("198.18.21.1"), "{}", node1.decision("198.18.21.1"));
}
