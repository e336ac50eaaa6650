//! Catch-up end to end: a node that was stopped while 10,000 records were
//! written elsewhere, and a new empty node, both end up with every record
//! through anti-entropy (negentropy reconciliation), not gossip.

mod common;

use std::path::Path;
use std::time::Duration;

use banmesh_node::control::client;
use banmesh_node::control::protocol::{Command, Response};
use common::{TestCluster, wait_until};

const RECORDS: u32 = 10_000;

/// Issues `count` bans on distinct addresses through the control socket.
fn ban_many(socket: &Path, count: u32) {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        for i in 0..count {
            let key = format!("10.{}.{}.{}", 100 + i / 65_536, (i / 256) % 256, i % 256);
            let command = Command::Ban {
                key,
                duration_ms: Some(3_600_000),
                permanent: false,
                jail: None,
                reason: None,
            };
            match client::call(socket, command).await.expect("control call") {
                Response::Written { .. } => {}
                other => panic!("ban refused: {other:?}"),
            }
        }
    });
}

fn bans(cluster: &TestCluster, index: usize) -> u64 {
    cluster.node(index).status()["record_counts"]["ban"].as_u64().unwrap_or(0)
}

#[test]
fn mesh_stopped_node_and_new_node_catch_up_ten_thousand_records() {
    let mut cluster = TestCluster::star(3);
    cluster.wait_for_peers(2);
    cluster.node_mut(2).stop();
    ban_many(&cluster.node(0).socket, RECORDS);
    let on_node2 = wait_until(Duration::from_secs(60), || bans(&cluster, 1) == u64::from(RECORDS));
    assert!(on_node2, "node2 holds {} of {RECORDS} bans", bans(&cluster, 1));

    // The stopped node missed all of it on gossip; sync brings it back.
    cluster.node_mut(2).restart();
    let caught_up = wait_until(Duration::from_secs(90), || bans(&cluster, 2) == u64::from(RECORDS));
    assert!(caught_up, "the restarted node holds {} of {RECORDS} bans", bans(&cluster, 2));

    // A new, empty node too.
    let first = cluster.node(0).addr();
    let fresh = cluster.spec("node4", &[first]);
    let fresh = cluster.start(fresh);
    let caught_up =
        wait_until(Duration::from_secs(90), || bans(&cluster, fresh) == u64::from(RECORDS));
    assert!(caught_up, "the new node holds {} of {RECORDS} bans", bans(&cluster, fresh));
    let trace = cluster.node(fresh).trace("10.100.39.15");
    assert!(trace["decision"].as_str().unwrap_or("").starts_with("banned"), "{trace}");
}

/// A flood from one enrolled origin is delayed, not dropped: node2 accepts
/// a burst of 1,000 of node1's records, refuses the rest on gossip (counted
/// in its status), and a later sync brings them in. Sync is not held to the
/// origin's rate (10/s here would take 150 s for the rest): it carries the
/// backlog, bounded by its sessions instead.
#[test]
fn mesh_flood_from_one_origin_is_delayed_not_dropped() {
    let mut cluster = TestCluster::new();
    let config = cluster.path("limited.toml");
    std::fs::write(&config, "[sync]\ninterval = \"2s\"\norigin_rate = 10\norigin_burst = 1000\n")
        .expect("config");
    cluster.start_star(2, Some(&config));
    cluster.wait_for_peers(1);

    ban_many(&cluster.node(0).socket, 2_500);
    let delayed = wait_until(Duration::from_secs(30), || {
        cluster.node(1).status()["rejects"].to_string().contains("origin over its rate")
    });
    assert!(delayed, "node2 never limited node1: {}", cluster.node(1).status()["rejects"]);
    let all = wait_until(Duration::from_secs(60), || bans(&cluster, 1) == 2_500);
    assert!(
        all,
        "node2 holds {} of 2500 bans: the flood was dropped, not delayed",
        bans(&cluster, 1)
    );
}
