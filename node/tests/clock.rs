//! A node's clock end to end: one run with the clock a day ahead leaves
//! records a day in the future in the node's store; once the clock is fixed
//! the node must not keep issuing future-dated records that every peer
//! ignores, and must say so.

mod common;

use common::{NodeSpec, SOON, TestCluster, wait_until};

/// Node2 runs once with its clock a day ahead and bans an address; restarted
/// with the right clock, it warns in `status`, issues new records at
/// wall-clock time (its peer takes them), and refuses a record on the key
/// its future-dated ban holds, naming the key.
#[test]
fn clock_a_day_ahead_once_does_not_mute_the_node_after_the_fix() {
    assert!(
        std::process::Command::new("faketime").arg("--help").output().is_ok(),
        "this test needs faketime: apt-get install faketime (scripts/test.sh installs it)"
    );
    let mut cluster = TestCluster::new();
    let first = cluster.spec("node1", &[]);
    let first = cluster.start(first);
    let mut ahead = cluster.spec("node2", &[cluster.node(first).addr()]);
    ahead.clock_offset = Some("+1d".to_owned());
    let data_dir = ahead.data_dir.clone();
    let ahead = cluster.start(ahead);
    cluster.wait_for_peers(1);
    cluster.node(ahead).call(&["ban", "192.0.2.50", "--for", "1h"]);
    cluster.node_mut(ahead).stop();

    let fixed = cluster.start(NodeSpec {
        name: "node2-fixed".to_owned(),
        data_dir,
        cluster_pub: Some(cluster.cluster_pub.clone()),
        peers: vec![cluster.node(first).addr()],
        config: None,
        clock_offset: None,
        args: Vec::new(),
    });
    let warnings = cluster.node(fixed).status()["warnings"].to_string();
    assert!(
        warnings.contains("ahead of the wall clock") && warnings.contains("1d"),
        "the fixed node does not warn of its future-dated records: {warnings}"
    );
    let connected = wait_until(SOON, || !cluster.node(fixed).connected_peers().is_empty());
    assert!(connected, "node2 did not reconnect to node1");
    cluster.node(fixed).call(&["ban", "192.0.2.51", "--for", "1h"]);
    let spread = wait_until(SOON, || cluster.node(first).is_banned("192.0.2.51"));
    assert!(
        spread,
        "node1 ignores node2's new ban (future-dated?): {}",
        cluster.node(first).trace("192.0.2.51")
    );
    let refused = cluster.node(fixed).try_call(&["ban", "192.0.2.50", "--for", "1h"]);
    let error = refused.expect_err("a record after the future-dated one is future-dated too");
    assert!(
        error.contains("192.0.2.50") && error.contains("ahead of the wall clock"),
        "the refusal does not name the key and the clock: {error}"
    );
}
