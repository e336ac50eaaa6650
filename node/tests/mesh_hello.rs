//! The hello end to end: a refused node is told why, and says so in its
//! log and `status`. Two nodes with different cluster constants refuse each
//! other; a revoked node learns that every peer refuses it, and why.

mod common;

use std::time::Duration;

use common::{SOON, TestCluster, TestNode, holds_for, wait_until};

/// How long refused nodes are watched for not getting through.
const REFUSAL_WATCH: Duration = Duration::from_secs(4);

/// `status` warnings as one string.
fn warnings(node: &TestNode) -> String {
    node.status()["warnings"].to_string()
}

/// Waits until `node`'s status warns that every peer refuses its hello with
/// a reason containing `reason`.
fn wait_for_refusal_warning(node: &TestNode, reason: &str) {
    let warned = wait_until(SOON, || {
        let w = warnings(node);
        w.contains("every peer refuses this node's hello") && w.contains(reason)
    });
    assert!(
        warned,
        "{} does not warn that it is refused ({reason}): {}",
        node.name,
        warnings(node)
    );
}

/// Node2's config says `max_ttl = 2w`, node1 runs with the default 5w:
/// node1 refuses node2's hello and tells it why; neither becomes ready, and
/// both name the difference (node1 in its log and rejects, node2 in its log
/// and status, in its own terms).
#[test]
fn mesh_hello_nodes_with_other_cluster_constants_refuse_each_other_and_say_why() {
    let mut cluster = TestCluster::new();
    let config = cluster.path("short-ttl.toml");
    std::fs::write(&config, "[cluster]\nmax_ttl = \"2w\"\n[bans]\nbantime_maxtime = \"2w\"\n")
        .expect("write config");
    let first = cluster.spec("node1", &[]);
    let first = cluster.start(first);
    let mut other = cluster.spec("node2", &[cluster.node(first).addr()]);
    other.config = Some(config);
    let other = cluster.start(other);
    let (node1, node2) = (cluster.node(first), cluster.node(other));

    wait_for_refusal_warning(node2, "cluster constants differ: max_ttl 2w here, 5w there");
    let counted = wait_until(SOON, || {
        node1.status()["rejects"]["cluster constants differ"].as_u64().unwrap_or(0) > 0
    });
    assert!(counted, "node1 counts no refusal: {}", node1.status()["rejects"]);
    let apart = holds_for(REFUSAL_WATCH, || {
        node1.connected_peers().is_empty() && node2.connected_peers().is_empty()
    });
    assert!(apart, "a node admitted the other: {:?} / {:?}", node1.peers(), node2.peers());
    let logged = node1.log_text();
    assert!(
        logged.contains("cluster constants differ: max_ttl 5w here, 2w there"),
        "node1's log does not name the difference:\n{}",
        node1.log_tail()
    );
    assert!(
        node2.log_text().contains("max_ttl 2w here, 5w there"),
        "node2's log does not name the difference:\n{}",
        node2.log_tail()
    );
}

/// Node2 is revoked, and only node1 knows it (a file in its
/// `revocations/`): node1 refuses node2's hello as revoked, and node2's
/// status says every peer refuses it, and why.
#[test]
fn mesh_hello_revoked_node_is_told_why_every_peer_refuses_it() {
    let mut cluster = TestCluster::new();
    let first = cluster.spec("node1", &[]);
    let revocations = first.data_dir.join("revocations");
    std::fs::create_dir_all(&revocations).expect("revocations dir");
    let revoked = cluster.spec("node2", &[]);
    cluster.revoke("node2", &revocations.join("node2.revocation"));
    let first = cluster.start(first);
    let mut revoked = revoked;
    revoked.peers = vec![cluster.node(first).addr()];
    let revoked = cluster.start(revoked);
    wait_for_refusal_warning(cluster.node(revoked), "revoked");
    assert!(
        cluster.node(revoked).connected_peers().is_empty(),
        "the revoked node is connected: {:?}",
        cluster.node(revoked).peers()
    );
}

/// A revocation learnt only from a hello is stored like any other: node2 is
/// revoked and only node1 knows it. Node1 dials node2, so node2 judges
/// node1's hello first, accepts it and learns its own revocation from it;
/// node1 then refuses node2, so no gossip or sync passes between them.
/// After a restart with no peer up, node2 still knows it is revoked: the
/// revocation is in its store, not only in memory.
#[test]
fn mesh_hello_revocation_learnt_from_a_hello_is_stored_and_survives_a_restart() {
    let mut cluster = TestCluster::new();
    let mut first = cluster.spec("node1", &[]);
    let revocations = first.data_dir.join("revocations");
    std::fs::create_dir_all(&revocations).expect("revocations dir");
    let revoked = cluster.spec("node2", &[]);
    cluster.revoke("node2", &revocations.join("node2.revocation"));
    let revoked = cluster.start(revoked);
    first.peers = vec![cluster.node(revoked).addr()];
    let first = cluster.start(first);
    let knows = || {
        warnings(cluster.node(revoked)).contains("this node's key is revoked by the cluster key")
    };
    assert!(
        wait_until(SOON, knows),
        "node2 never learnt its revocation from node1's hello: {}",
        warnings(cluster.node(revoked))
    );
    cluster.node_mut(first).stop();
    cluster.node_mut(revoked).stop();
    cluster.node_mut(revoked).restart();
    assert!(
        warnings(cluster.node(revoked)).contains("this node's key is revoked by the cluster key"),
        "node2 forgot at restart the revocation a hello taught it: {}",
        warnings(cluster.node(revoked))
    );
}
