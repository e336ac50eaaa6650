//! A revoked node learns it is revoked (issue 17, item 2): the peer that
//! refuses its hello as revoked sends the signed revocation with the
//! refusal, so the revoked node stores it, says so in `status` ("this
//! node's key is revoked by the cluster key ...") and stops dialling,
//! where before it redialled its configured peer every few seconds for
//! ever, never knowing why it was refused.

use std::time::Duration;

use super::common::{SOON, TestCluster, TestNode, holds_for, wait_until};
use super::metrics::{Metrics, refused};

/// Longer than a few rounds of the node's redial of configured peers
/// (every 3 s while it has none).
const DIAL_WATCH: Duration = Duration::from_secs(10);
/// What `status` says on a node whose key is revoked.
const REVOKED: &str = "this node's key is revoked by the cluster key";

/// `status` warnings as one string.
fn warnings(node: &TestNode) -> String {
    node.status()["warnings"].to_string()
}

#[test]
fn mesh_revoked_node_is_sent_its_revocation_says_so_and_stops_dialling() {
    let mut cluster = TestCluster::new();
    let (config1, metrics1) = Metrics::config(&cluster, "node1.toml", "");
    let (config2, metrics2) = Metrics::config(&cluster, "node2.toml", "");
    // Only node1 knows node2 is revoked (a file in its `revocations/`).
    let mut first = cluster.spec("node1", &[]);
    first.config = Some(config1);
    let revocations = first.data_dir.join("revocations");
    std::fs::create_dir_all(&revocations).expect("revocations dir");
    let mut second = cluster.spec("node2", &[]);
    second.config = Some(config2);
    cluster.revoke("node2", &revocations.join("node2.revocation"));
    let first = cluster.start(first);
    // node2 dials node1 at a configured address (no peer id): node1 judges
    // node2's hello and refuses it.
    second.peers = vec![cluster.node(first).addr()];
    let second = cluster.start(second);
    let (node1, node2) = (cluster.node(first), cluster.node(second));

    let told = wait_until(SOON, || warnings(node2).contains(REVOKED));
    assert!(told, "node2 never learnt its revocation from node1's refusal: {}", warnings(node2));
    let status = node2.status();
    eprintln!("node2 status warnings once told: {:#}", status["warnings"]);
    let counted = metrics1.value(&refused("revoked"));
    assert!(counted >= 1.0, "node1's /metrics counts no revoked hello: {counted}");
    assert!(
        node2.status()["checks"].to_string().contains("revoked"),
        "node2's health checks do not name the revocation: {}",
        node2.status()["checks"]
    );

    // node2 dials no more: node1 sees no more connections from it (every
    // one was denied, node2 being blocked), nor refuses it again.
    let attempts = || {
        let incoming = metrics1.sum("libp2p_swarm_connections_incoming_total");
        let failed = metrics2.sum("libp2p_swarm_outgoing_connection_error_total");
        (incoming, failed, metrics1.value(&refused("revoked")))
    };
    let before = attempts();
    let quiet = holds_for(DIAL_WATCH, || attempts() == before);
    assert!(
        quiet,
        "node2 still dials: node1's incoming connections, node2's failed dials and node1's \
         revoked refusals went from {before:?} to {:?}",
        attempts()
    );
    assert!(node1.connected_peers().is_empty(), "node1 admitted node2: {:?}", node1.peers());
    eprintln!("node2 told; (incoming on node1, failed dials on node2, refusals) {:?}", attempts());
}
