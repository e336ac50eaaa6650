//! A node's life on its own: a second node on the same data dir fails
//! fast, SIGTERM stops it cleanly (even the moment its control socket
//! appears), SIGKILL leaves a socket the next start replaces, and a first
//! run without a cluster makes a development cluster.

use crate::common::{NodeSpec, SOON, TestCluster, TestNode, arg, wait_until};

#[test]
fn mesh_node_lifecycle() {
    let mut cluster = TestCluster::star(1);
    let socket = cluster.node(0).socket.clone();
    let data_dir = cluster.node(0).data_dir.clone();

    // A second node on the same data dir fails fast and names the data dir.
    let second = NodeSpec {
        name: "second".to_owned(),
        data_dir: data_dir.clone(),
        cluster_pub: Some(cluster.cluster_pub.clone()),
        peers: Vec::new(),
        config: None,
        clock_offset: None,
        args: Vec::new(),
    };
    let mut second = TestNode::spawn(cluster.dir.path(), second);
    let mut status = None;
    let ended = wait_until(SOON, || {
        status = second.try_exit();
        status.is_some()
    });
    assert!(ended, "a second node on the same data dir is still running:\n{}", second.log_tail());
    let status = status.expect("exit status");
    assert!(!status.success(), "the second node exited successfully: {status}");
    let log = second.log_text();
    assert!(
        log.contains(arg(&data_dir)) && log.contains("data dir"),
        "the second node's error does not name the data dir {}:\n{log}",
        data_dir.display()
    );
    cluster.node(0).status();

    // SIGTERM stops it cleanly and removes the socket.
    let status = cluster.nodes[0].stop();
    assert!(status.success(), "SIGTERM should end the node with success, got {status}");
    assert!(!socket.exists(), "the control socket {} was left behind", socket.display());
    assert!(cluster.node(0).log_text().contains("stopped"), "the log does not say it stopped");

    // SIGKILL leaves the socket; the next start replaces it.
    cluster.nodes[0].restart();
    cluster.nodes[0].kill();
    assert!(socket.exists(), "expected SIGKILL to leave a stale socket behind");
    cluster.nodes[0].restart();
    assert_eq!(cluster.node(0).status()["name"], "node1");

    // SIGTERM the moment the control socket appears still stops the node
    // cleanly: its handlers are in place before anything is bound.
    let mut early = TestNode::spawn(cluster.dir.path(), cluster.spec("early", &[]));
    let bound = wait_until(SOON, || early.socket.exists() || early.try_exit().is_some());
    assert!(bound, "the node never bound its control socket:\n{}", early.log_tail());
    let status = early.stop();
    assert!(status.success(), "SIGTERM at bind should end the node with success, got {status}");
}

#[test]
fn mesh_first_run_without_cluster_makes_a_development_cluster() {
    let cluster = TestCluster::new();
    let data_dir = cluster.path("fresh");
    let node = TestNode::start(
        cluster.dir.path(),
        NodeSpec {
            name: "fresh".to_owned(),
            data_dir,
            cluster_pub: None,
            peers: Vec::new(),
            config: None,
            clock_offset: None,
            args: Vec::new(),
        },
    );
    let status = node.status();
    assert!(
        status["name"].as_str().is_some_and(|n| !n.is_empty()),
        "a development node should have a name: {status}"
    );
    assert!(
        status["certificate_expires_at_ms"].as_u64().is_some(),
        "a development node should have a certificate expiry: {status}"
    );
    let warned = status["warnings"]
        .as_array()
        .is_some_and(|w| w.iter().any(|w| w.as_str().is_some_and(|w| w.contains("development"))));
    assert!(
        warned || node.log_text().contains("development cluster"),
        "neither the warnings nor the log mention the development cluster: {status}"
    );
    node.call(&["ban", "192.0.2.1"]);
    assert!(node.is_banned("192.0.2.1"), "a development node keeps its own bans");
}
