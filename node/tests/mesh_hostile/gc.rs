//! Scheduled GC with short cluster durations: records past the GC rule's
//! horizon leave every node's store on schedule (status counts them), and
//! a late copy of a collected record, pushed again by the rogue, is left
//! out and changes no decision.

use std::time::Duration;

use banmesh_crdt::{Hlc, Key, Kind, Metadata, Origin, Record, Statement};
use banmesh_keys::{SecretKey, sign_record};
use banmesh_node::mesh::batch::Batch;

use super::common::{SOON, TestCluster, TestNode, wait_until};
use super::rogue::{Rogue, RogueKey};
use super::{now_ms, stored_keys};

/// Short cluster durations: a record is collected 18 s after its issue
/// (max_ttl + retention + skew_bound), and GC runs every second.
const SHORT: &str = "[cluster]\nmax_ttl = \"15s\"\nretention = \"2s\"\nskew_bound = \"1s\"\n\
    [bans]\nbantime = \"3s\"\nbantime_maxtime = \"15s\"\nallowed_duration = \"1s\"\n\
    known_duration = \"1s\"\n[store]\ngc_interval = \"1s\"\n";

/// How long a test waits for GC: the 18 s horizon and then some.
const GC_WAIT: Duration = Duration::from_secs(18 + 20);

/// A ban on `ip` signed by `secret`, issued now, for `for_ms`.
fn short_ban(secret: &SecretKey, ip: &str, for_ms: u64) -> Record {
    let issued_ms = now_ms();
    let statement = Statement {
        key: Key::parse(ip).expect("ip").key,
        kind: Kind::Ban,
        issued_at: Hlc::from_millis(issued_ms),
        expires_at: Some(issued_ms + for_ms),
        strikes: 1,
        meta: Metadata {
            jail: "rogue".to_owned(),
            reason: "gc".to_owned(),
            source: "test".to_owned(),
        },
        origin: Origin::default(),
    };
    sign_record(secret, statement)
}

/// The stored bans `status` counts on `node`.
fn ban_count(node: &TestNode) -> u64 {
    node.status()["record_counts"]["ban"].as_u64().unwrap_or(0)
}

#[test]
fn gc_collects_on_schedule_and_a_late_copy_changes_nothing() {
    let mut cluster = TestCluster::new();
    let config = cluster.path("short.toml");
    std::fs::write(&config, SHORT).expect("write config");
    cluster.start_star(2, Some(&config));
    cluster.wait_for_peers(1);
    let key = RogueKey::read(&cluster.enroll("rogue"));
    let rogue = Rogue::new(&key, true);
    rogue.join(cluster.node(0));
    let (node1, node2) = (cluster.node(0), cluster.node(1));

    node1.call(&["ban", "192.0.2.51", "--for", "3s"]);
    let late = short_ban(&key.secret, "192.0.2.50", 3_000);
    rogue.publish_ok(Batch::of_records(vec![key.certificate()], vec![late.clone()]).encode());
    let both = ["192.0.2.50", "192.0.2.51"];
    let stored = wait_until(SOON, || {
        cluster.nodes.iter().all(|n| {
            let keys = stored_keys(n);
            both.iter().all(|ip| keys.contains(*ip))
        })
    });
    assert!(stored, "the two bans did not reach both nodes within {SOON:?}");
    for node in [node1, node2] {
        assert_eq!(ban_count(node), 2, "{}: {}", node.name, node.status());
    }

    // On schedule, with nothing but time passing: both records go.
    let collected = wait_until(GC_WAIT, || {
        cluster.nodes.iter().all(|n| {
            let gc = &n.status()["gc"];
            gc["total_collected"].as_u64() >= Some(2) && gc["last_run_ms"].is_u64()
        })
    });
    let reports: Vec<_> = cluster.nodes.iter().map(|n| n.status()["gc"].clone()).collect();
    assert!(collected, "GC did not collect the two bans within {GC_WAIT:?}: {reports:?}");
    for node in [node1, node2] {
        assert_eq!(ban_count(node), 0, "{}: {}", node.name, node.status());
        assert!(node.records().is_empty(), "{} still lists {:?}", node.name, node.records());
        assert!(node.is_not_banned("192.0.2.50"), "{}: {}", node.name, node.trace("192.0.2.50"));
    }

    // The rogue sends the collected record again, beside a fresh one.
    let fresh = short_ban(&key.secret, "192.0.2.60", 15_000);
    let batch = Batch::of_records(vec![key.certificate()], vec![late, fresh]);
    rogue.publish_ok(batch.encode());
    let arrived =
        wait_until(SOON, || cluster.nodes.iter().all(|n| stored_keys(n).contains("192.0.2.60")));
    assert!(arrived, "the fresh ban beside the late copy did not arrive within {SOON:?}");
    for node in [node1, node2] {
        let keys = stored_keys(node);
        assert!(!keys.contains("192.0.2.50"), "{} stored the late copy again: {keys:?}", node.name);
        assert!(node.is_not_banned("192.0.2.50"), "{}: {}", node.name, node.trace("192.0.2.50"));
        assert_eq!(ban_count(node), 1, "{}: {}", node.name, node.status());
    }
}
