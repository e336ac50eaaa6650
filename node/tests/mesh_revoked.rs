//! Catch-up after a revocation, end to end: records of a revoked origin,
//! mixed in time with hundreds of valid ones, never keep the valid ones from
//! a new node (issue 11, fault 3). A new node peering with a survivor that
//! knows the revocation is never offered the void records; one peering with
//! a node that was away during the revocation holds every valid record and
//! none of the void ones. (The away node learns the revocation from the new
//! node's hello and stores it, so it may stop offering the void records
//! before its first sync; any it does offer are skipped one by one, counted
//! in `status`, never as rejects.)

mod common;

use std::path::Path;
use std::time::Duration;

use banmesh_node::control::client;
use banmesh_node::control::protocol::{Command, Response};
use common::{NodeSpec, TestCluster, TestNode, arg, wait_until};
use serde_json::Value;

/// Rounds of issuing; each round node1 issues 9 bans, node3 (revoked later)
/// 1 and node2 10, so the revoked origin's records sit between the others'
/// in (`issued_at`, `id`) order, in every batch a sync packs.
const ROUNDS: u32 = 20;
/// Valid records: node1's and node2's.
const VALID: usize = (ROUNDS * 19) as usize;
/// Every record, the revoked origin's included.
const ALL: u64 = (ROUNDS * 20) as u64;
/// How long a node is given to catch up.
const CATCH_UP: Duration = Duration::from_secs(60);

/// Issues `count` bans through `socket` on `10.PREFIX.ROUND.i`.
fn ban_many(socket: &Path, prefix: u32, round: u32, count: u32) {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        for i in 0..count {
            let command = Command::Ban {
                key: format!("10.{prefix}.{round}.{i}"),
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

fn stored(node: &TestNode) -> u64 {
    node.status()["record_counts"]["ban"].as_u64().unwrap_or(0)
}

/// How many of `node`'s records are from the origin named `name`.
fn records_from(node: &TestNode, name: &str) -> usize {
    node.records().iter().filter(|r| r["origin_name"] == name).count()
}

/// The count of records skipped in `status --json` whose reason contains `word`.
fn skipped_matching(node: &TestNode, word: &str) -> u64 {
    let status = node.status();
    let Some(skipped) = status["skipped"].as_object() else { return 0 };
    skipped.iter().filter(|(reason, _)| reason.contains(word)).filter_map(|(_, n)| n.as_u64()).sum()
}

/// Waits until `node` holds every valid record and none of node3's.
fn assert_caught_up(node: &TestNode) {
    let done = wait_until(CATCH_UP, || stored(node) == VALID as u64);
    let status: Value = node.status();
    assert!(
        done,
        "{} holds {} of the {VALID} valid records; rejects {}, skipped {}",
        node.name,
        stored(node),
        status["rejects"],
        status["skipped"]
    );
    assert_eq!(records_from(node, "node3"), 0, "{} stored a revoked origin's record", node.name);
}

#[test]
fn mesh_revoked_origin_never_keeps_valid_records_from_a_new_node() {
    let mut cluster = TestCluster::new();
    let config = cluster.path("fast-sync.toml");
    std::fs::write(&config, "[sync]\ninterval = \"1s\"\n").expect("config");
    cluster.start_star(3, Some(&config));
    cluster.wait_for_peers(2);
    for round in 0..ROUNDS {
        ban_many(&cluster.node(0).socket, 1, round, 9);
        ban_many(&cluster.node(2).socket, 3, round, 1);
        ban_many(&cluster.node(1).socket, 2, round, 10);
    }
    let everywhere = wait_until(CATCH_UP, || cluster.nodes.iter().all(|n| stored(n) == ALL));
    let counts: Vec<u64> = cluster.nodes.iter().map(stored).collect();
    assert!(everywhere, "not every node holds all {ALL} records: {counts:?}");

    // node2 is away while node3 is revoked: it keeps node3's records and
    // knows nothing of the revocation.
    cluster.node_mut(1).stop();
    let revocation = cluster.path("node3.revocation");
    cluster.revoke("node3", &revocation);
    cluster.node(0).call(&["revoke-publish", arg(&revocation)]);
    cluster.node_mut(2).stop();

    // A new node peering with node1, which knows the revocation.
    let mut spec = cluster.spec("node4", &[cluster.node(0).addr()]);
    spec.config = Some(config.clone());
    let node4 = cluster.start(spec);
    assert_caught_up(cluster.node(node4));
    assert_eq!(
        skipped_matching(cluster.node(node4), "revoked"),
        0,
        "node1 offered node4 the revoked origin's records: {}",
        cluster.node(node4).status()["skipped"]
    );
    cluster.node_mut(node4).stop();
    cluster.node_mut(0).stop();

    // A new node that learnt the revocation from its revocations/ directory,
    // peering with node2, which was away and held node3's records.
    let spec = spec_with_revocation(&cluster, "node5", &revocation, &config);
    cluster.node_mut(1).restart();
    let node5 = cluster.start(spec);
    assert_caught_up(cluster.node(node5));
    let rejects = cluster.node(node5).status()["rejects"].clone();
    assert!(
        !rejects.to_string().contains("revoked"),
        "a revoked origin's records were counted as rejects: {rejects}"
    );
}

/// The spec of a new node `name` peering with node2, its data dir holding
/// `revocation` in `revocations/`.
fn spec_with_revocation(
    cluster: &TestCluster,
    name: &str,
    revocation: &Path,
    config: &Path,
) -> NodeSpec {
    let mut spec = cluster.spec(name, &[cluster.node(1).addr()]);
    spec.config = Some(config.to_owned());
    let dir = spec.data_dir.join("revocations");
    std::fs::create_dir_all(&dir).expect("revocations dir");
    std::fs::copy(revocation, dir.join("node3.pem")).expect("copy revocation");
    spec
}
