//! Sync sessions do the work once: two nodes that connect open one session
//! (the one with the smaller PeerId opens it), and timer ticks during a
//! running session open no second one (they are counted as skipped).

mod common;

use std::time::Duration;

use common::{SOON, TestCluster, TestNode, holds_for, wait_until};
use serde_json::Value;

fn sync_of(node: &TestNode) -> Value {
    node.status()["sync"].clone()
}

fn count(sync: &Value, what: &str) -> u64 {
    sync[what].as_u64().unwrap_or(0)
}

fn running(sync: &Value) -> usize {
    sync["running"].as_array().map_or(0, Vec::len)
}

fn config(cluster: &TestCluster, interval: &str) -> std::path::PathBuf {
    let path = cluster.path("sync.toml");
    std::fs::write(&path, format!("[sync]\ninterval = \"{interval}\"\n")).expect("config");
    path
}

#[test]
fn mesh_two_nodes_connecting_open_exactly_one_session() {
    let mut cluster = TestCluster::new();
    // No timer tick during the test: only the connect opens sessions.
    let config = config(&cluster, "1h");
    cluster.start_star(2, Some(&config));
    cluster.wait_for_peers(1);
    let totals =
        |what: &str| -> u64 { cluster.nodes.iter().map(|n| count(&sync_of(n), what)).sum() };
    let finished = wait_until(SOON, || {
        totals("initiated") >= 1 && cluster.nodes.iter().all(|n| running(&sync_of(n)) == 0)
    });
    assert!(
        finished,
        "no session ran and ended: {:?}",
        cluster.nodes.iter().map(sync_of).collect::<Vec<_>>()
    );
    // A second session (the other side's, or a repeat) would show up here.
    holds_for(Duration::from_secs(3), || totals("initiated") == 1);
    let views: Vec<Value> = cluster.nodes.iter().map(sync_of).collect();
    assert_eq!(totals("initiated"), 1, "sessions opened: {views:?}");
    assert_eq!(totals("answered"), 1, "sessions answered: {views:?}");
    assert_eq!(totals("refused"), 0, "sessions refused: {views:?}");
}

#[test]
fn mesh_timer_tick_during_a_session_opens_no_second() {
    const RECORDS: usize = 40_000;
    let mut cluster = TestCluster::new();
    let config = config(&cluster, "1s");
    cluster.start_star(1, Some(&config));
    common::issue_bans(&cluster.node(0).socket, RECORDS);
    let mut spec = cluster.spec("node2", &[cluster.node(0).addr()]);
    spec.config = Some(config);
    cluster.start(spec);
    let mut most = 0;
    let joined = wait_until(Duration::from_secs(180), || {
        for node in &cluster.nodes {
            most = most.max(running(&sync_of(node)));
        }
        cluster.node(1).status()["record_counts"]["ban"].as_u64() == Some(RECORDS as u64)
    });
    let views: Vec<Value> = cluster.nodes.iter().map(sync_of).collect();
    assert!(joined, "node2 did not catch up: {views:?}");
    assert_eq!(most, 1, "a node ran two sessions with its one peer at once: {views:?}");
    let skipped: u64 = views.iter().map(|v| count(v, "skipped")).sum();
    assert!(skipped >= 1, "no tick came during the join (it was too quick to test): {views:?}");
}
