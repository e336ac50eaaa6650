//! The mesh end to end: real `banmesh node` processes on loopback, started
//! in a star, spreading bans, allows and unbans by gossip, refusing nodes
//! that are not enrolled, from another cluster or revoked, and starting and
//! stopping cleanly. Catch-up (anti-entropy) is not tested here yet.

mod common;
#[path = "mesh/lifecycle.rs"]
mod lifecycle;

use std::time::Duration;

use common::{NodeSpec, SOON, TestCluster, TestNode, arg, holds_for, wait_until};
use serde_json::Value;

/// How long a refused node is watched for not getting through.
const REFUSAL_WATCH: Duration = Duration::from_secs(4);

/// Waits until every node's trace of `ip` satisfies `check`; panics naming
/// the nodes (and their decisions) that do not.
fn wait_all(cluster: &TestCluster, ip: &str, what: &str, check: impl Fn(&TestNode) -> bool) {
    let ok = wait_until(SOON, || cluster.nodes.iter().all(&check));
    let decisions: Vec<String> =
        cluster.nodes.iter().map(|n| format!("{}: {:?}", n.name, n.decision(ip))).collect();
    assert!(ok, "not every node says {ip} is {what} within {SOON:?}: {decisions:?}");
}

/// The count of refusals in `status --json` whose reason contains `word`.
fn rejects_matching(node: &TestNode, word: &str) -> u64 {
    let status = node.status();
    let Some(rejects) = status["rejects"].as_object() else { return 0 };
    rejects.iter().filter(|(reason, _)| reason.contains(word)).filter_map(|(_, n)| n.as_u64()).sum()
}

#[test]
fn mesh_star_of_five_nodes_gets_direct_peers() {
    let cluster = TestCluster::star(5);
    // Each node was given only node1; the others come from hellos.
    cluster.wait_for_peers(3);
}

#[test]
fn mesh_ban_on_one_node_reaches_all() {
    let cluster = TestCluster::star(3);
    cluster.wait_for_peers(2);
    let origin = cluster.node(1).node_key();
    cluster.node(1).call(&["ban", "192.0.2.7", "--reason", "e2e"]);

    let ok = wait_until(SOON, || {
        cluster.nodes.iter().all(|n| {
            n.records_on("192.0.2.7").iter().any(|r| {
                r["kind"] == "ban" && r["origin_key"] == origin.as_str() && r["valid"] == true
            })
        })
    });
    let seen: Vec<(String, Vec<Value>)> =
        cluster.nodes.iter().map(|n| (n.name.clone(), n.records_on("192.0.2.7"))).collect();
    assert!(ok, "node2's ban on 192.0.2.7 is not a valid record on every node: {seen:?}");
    for node in &cluster.nodes {
        let record = &node.records_on("192.0.2.7")[0];
        assert_eq!(record["origin_name"], "node2", "{}: {record}", node.name);
        assert_eq!(record["reason"], "e2e", "{}: {record}", node.name);
    }
    wait_all(&cluster, "192.0.2.7", "banned", |n| n.is_banned("192.0.2.7"));
}

#[test]
fn mesh_allow_of_covering_network_overrides_ban() {
    let cluster = TestCluster::star(3);
    cluster.wait_for_peers(2);
    cluster.node(0).call(&["ban", "10.1.2.3"]);
    wait_all(&cluster, "10.1.2.3", "banned", |n| n.is_banned("10.1.2.3"));

    cluster.node(1).call(&["allow", "10.1.0.0/16"]);
    wait_all(&cluster, "10.1.2.3", "allowed", |n| n.is_allowed("10.1.2.3"));
    let trace = cluster.node(2).trace("10.1.2.3");
    let deciding: Vec<&Value> = trace["records"]
        .as_array()
        .expect("trace records")
        .iter()
        .filter(|r| r["decides"] == true)
        .collect();
    assert!(
        deciding.iter().any(|r| r["kind"] == "allow" && r["key"] == "10.1.0.0/16"),
        "node3's trace should name node2's allow on 10.1.0.0/16 as deciding: {trace}"
    );
}

#[test]
fn mesh_unban_lifts_bans_from_every_origin() {
    let cluster = TestCluster::star(3);
    cluster.wait_for_peers(2);
    cluster.node(0).call(&["ban", "198.51.100.9"]);
    cluster.node(1).call(&["ban", "198.51.100.9"]);
    let both = wait_until(SOON, || {
        cluster.nodes.iter().all(|n| {
            n.records_on("198.51.100.9").iter().filter(|r| r["kind"] == "ban").count() == 2
        })
    });
    assert!(both, "the bans of node1 and node2 did not both reach every node");
    wait_all(&cluster, "198.51.100.9", "banned", |n| n.is_banned("198.51.100.9"));

    cluster.node(2).call(&["unban", "198.51.100.9"]);
    wait_all(&cluster, "198.51.100.9", "not banned", |n| n.is_not_banned("198.51.100.9"));
}

/// Starts `outsider` peering with node1 of a two-node cluster and checks
/// that node1 refuses it: never connected, its ban never arriving (while
/// node2's does), and a refusal whose reason contains `reason_word`.
fn check_refused(mut cluster: TestCluster, outsider: NodeSpec, reason_word: &str) {
    cluster.wait_for_peers(1);
    let outsider = cluster.start(outsider);
    let outsider_id = cluster.node(outsider).peer_id();
    let node1 = cluster.node(0);

    cluster.node(outsider).call(&["ban", "203.0.113.66"]);
    let refused_before = wait_until(SOON, || rejects_matching(node1, reason_word) > 0);
    assert!(
        refused_before,
        "node1's status counts no refusal mentioning {reason_word:?}: {}",
        node1.status()["rejects"]
    );
    let never_connected = holds_for(REFUSAL_WATCH, || {
        !node1.connected_peers().contains(&outsider_id)
            && node1.records_on("203.0.113.66").is_empty()
    });
    assert!(
        never_connected,
        "node1 listed the outsider as connected or stored its ban: peers {:?}, records {:?}",
        node1.peers(),
        node1.records_on("203.0.113.66")
    );

    // The mesh itself works: node2's ban does reach node1.
    cluster.node(1).call(&["ban", "203.0.113.67"]);
    wait_all(&cluster, "203.0.113.67", "banned (node2's ban)", |n| {
        n.name == "outsider" || n.is_banned("203.0.113.67")
    });
    assert!(
        node1.records_on("203.0.113.66").is_empty(),
        "the outsider's ban reached node1: {:?}",
        node1.records_on("203.0.113.66")
    );
}

#[test]
fn mesh_unenrolled_node_is_refused() {
    let cluster = TestCluster::star(2);
    let first = cluster.node(0).addr();
    let outsider = NodeSpec {
        name: "outsider".to_owned(),
        data_dir: cluster.key_only("outsider"),
        cluster_pub: Some(cluster.cluster_pub.clone()),
        peers: vec![first],
        config: None,
        clock_offset: None,
        args: Vec::new(),
    };
    check_refused(cluster, outsider, "enrolled");
}

#[test]
fn mesh_node_from_another_cluster_is_refused() {
    let cluster = TestCluster::star(2);
    let other = TestCluster::new();
    let outsider = NodeSpec {
        name: "outsider".to_owned(),
        data_dir: other.enroll("outsider"),
        cluster_pub: Some(other.cluster_pub.clone()),
        peers: vec![cluster.node(0).addr()],
        config: None,
        clock_offset: None,
        args: Vec::new(),
    };
    check_refused(cluster, outsider, "cluster");
    drop(other);
}

#[test]
fn mesh_revoked_node_is_dropped_and_its_records_stop_counting() {
    let cluster = TestCluster::star(3);
    cluster.wait_for_peers(2);
    let node3_id = cluster.node(2).peer_id();
    cluster.node(2).call(&["ban", "192.0.2.99"]);
    wait_all(&cluster, "192.0.2.99", "banned", |n| n.is_banned("192.0.2.99"));

    let revocation = cluster.path("node3.revocation");
    cluster.revoke("node3", &revocation);
    cluster.node(0).call(&["revoke-publish", arg(&revocation)]);

    let survivors = &cluster.nodes[..2];
    let lifted = wait_until(SOON, || survivors.iter().all(|n| n.is_not_banned("192.0.2.99")));
    let decisions: Vec<String> = survivors.iter().map(|n| n.decision("192.0.2.99")).collect();
    assert!(lifted, "node1 and node2 should no longer ban 192.0.2.99: {decisions:?}");
    let invalid = wait_until(SOON, || {
        survivors.iter().all(|n| {
            let records = n.records_on("192.0.2.99");
            !records.is_empty() && records.iter().all(|r| r["valid"] == false)
        })
    });
    let records: Vec<Vec<Value>> = survivors.iter().map(|n| n.records_on("192.0.2.99")).collect();
    assert!(invalid, "node3's records should be kept but marked valid: false: {records:?}");
    let dropped = wait_until(SOON, || !cluster.node(0).connected_peers().contains(&node3_id));
    assert!(dropped, "node1 still lists revoked node3 as connected: {:?}", cluster.node(0).peers());
    let stays_out =
        holds_for(REFUSAL_WATCH, || !cluster.node(0).connected_peers().contains(&node3_id));
    assert!(stays_out, "revoked node3 reconnected to node1: {:?}", cluster.node(0).peers());
}

#[test]
fn mesh_trace_shows_which_peer_a_record_came_from() {
    let cluster = TestCluster::star(2);
    cluster.wait_for_peers(1);
    let node2_id = cluster.node(1).peer_id();
    cluster.node(1).call(&["ban", "192.0.2.55"]);
    wait_all(&cluster, "192.0.2.55", "banned", |n| n.is_banned("192.0.2.55"));

    let trace = cluster.node(0).trace("192.0.2.55");
    let record = &trace["records"][0];
    assert_eq!(
        record["arrived_from"],
        node2_id.as_str(),
        "node1's trace should say the ban came from node2 (issue 5 item 7): {trace}"
    );
    assert!(
        record["arrived_at_ms"].as_u64().is_some(),
        "node1's trace should say when the ban arrived (issue 5 item 7): {trace}"
    );
}

#[test]
fn mesh_garbage_on_the_mesh_port_leaves_the_node_serving() {
    use std::io::Write as _;

    let cluster = TestCluster::star(2);
    cluster.wait_for_peers(1);
    for _ in 0..20 {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", cluster.node(0).port)) {
            let _ = stream.write_all(&[0xff; 4096]);
        }
    }
    let stays = holds_for(Duration::from_secs(2), || cluster.node(0).connected_peers().len() == 1);
    assert!(stays, "garbage on node1's port disturbed its peer: {:?}", cluster.node(0).peers());
    cluster.node(0).call(&["ban", "192.0.2.200"]);
    wait_all(&cluster, "192.0.2.200", "banned", |n| n.is_banned("192.0.2.200"));
}

/// `--for permanent` is a standing order: with a 20 s `max_ttl`, the ban
/// still holds well past its first record's expiry because the issuing node
/// renews it; an unban from another node lifts the order, and the ban then
/// ends with the last record.
#[test]
fn mesh_permanent_ban_is_renewed_until_unbanned() {
    let mut cluster = TestCluster::new();
    let config = cluster.path("short.toml");
    std::fs::write(
        &config,
        "[cluster]\nmax_ttl = \"20s\"\nskew_bound = \"5s\"\n[bans]\nbantime = \"10s\"\nbantime_maxtime = \"20s\"\n",
    )
    .expect("config");
    cluster.start_star(2, Some(&config));
    cluster.wait_for_peers(1);

    let written = cluster.node(0).call(&["ban", "192.0.2.77", "--for", "permanent"]);
    let first_expiry = written["record"]["expires_at_ms"].as_u64().expect("expiry");
    // Past the first record's expiry, node2 still sees a ban, from a newer record.
    let renewed = wait_until(Duration::from_secs(40), || {
        let trace = cluster.node(1).trace("192.0.2.77");
        trace["until_ms"].as_u64().is_some_and(|until| until > first_expiry + 5_000)
    });
    assert!(renewed, "the permanent ban was not renewed: {}", cluster.node(1).trace("192.0.2.77"));

    cluster.node(1).call(&["unban", "192.0.2.77"]);
    wait_all(&cluster, "192.0.2.77", "not banned", |n| n.is_not_banned("192.0.2.77"));
    // Renewal stops: the ban stays lifted for longer than max_ttl.
    let stays = holds_for(Duration::from_secs(25), || cluster.node(0).is_not_banned("192.0.2.77"));
    assert!(stays, "the lifted order came back: {}", cluster.node(0).trace("192.0.2.77"));
}

/// A node whose clock is 10 minutes ahead (run under `faketime`, Debian's
/// package, which scripts/test.sh installs) is reported by its own status
/// and refuses to issue records; the nodes with right clocks carry on.
#[test]
fn mesh_node_with_a_clock_ten_minutes_off_is_reported_and_refuses_to_issue() {
    assert!(
        std::process::Command::new("faketime").arg("--help").output().is_ok(),
        "this test needs faketime: apt-get install faketime (scripts/test.sh installs it)"
    );
    let mut cluster = TestCluster::star(2);
    let mut skewed = cluster.spec("node3", &[cluster.node(0).addr()]);
    skewed.clock_offset = Some("+10m".to_owned());
    let skewed = cluster.start(skewed);
    cluster.wait_for_peers(2);
    let warned = wait_until(SOON, || {
        cluster.node(skewed).status()["warnings"].to_string().contains("ahead of its peers")
    });
    assert!(warned, "node3's status does not report its clock: {}", cluster.node(skewed).status());
    let refused = cluster.node(skewed).try_call(&["ban", "192.0.2.99"]);
    let error = refused.expect_err("a node 10 minutes off must refuse to issue");
    assert!(error.contains("clock"), "the refusal does not name the clock: {error}");
    // The nodes with right clocks still issue, and agree. (Node3, ten
    // minutes ahead, rightly sees this 3-minute ban as already expired.)
    cluster.node(0).call(&["ban", "192.0.2.98"]);
    let both = wait_until(SOON, || cluster.node(1).is_banned("192.0.2.98"));
    assert!(both, "node2 did not get node1's ban: {}", cluster.node(1).trace("192.0.2.98"));
    for i in 0..2 {
        let warnings = cluster.node(i).status()["warnings"].to_string();
        assert!(!warnings.contains("clock"), "a node with a right clock warns: {warnings}");
    }
}

/// A revocation dropped into a node's `revocations/` directory is loaded at
/// start, voids the revoked node's records there, and reaches the other
/// nodes (through the hello and sync) without any `revoke-publish`.
#[test]
fn mesh_revocation_file_in_the_data_dir_is_loaded_at_start_and_spread() {
    let mut cluster = TestCluster::star(3);
    cluster.wait_for_peers(2);
    cluster.node(2).call(&["ban", "192.0.2.111"]);
    wait_all(&cluster, "192.0.2.111", "banned", |n| n.is_banned("192.0.2.111"));

    cluster.node_mut(1).stop();
    let dir = cluster.node(1).data_dir.join("revocations");
    std::fs::create_dir_all(&dir).expect("revocations dir");
    cluster.revoke("node3", &dir.join("node3.revocation"));
    cluster.node_mut(1).restart();
    let loaded = wait_until(SOON, || cluster.node(1).is_not_banned("192.0.2.111"));
    assert!(loaded, "node2 did not load the revocation: {}", cluster.node(1).trace("192.0.2.111"));
    let spread = wait_until(SOON, || cluster.node(0).is_not_banned("192.0.2.111"));
    assert!(spread, "the revocation did not reach node1: {}", cluster.node(0).trace("192.0.2.111"));
}

#[test]
fn mesh_batch_of_orders_is_issued_in_one_round_and_reaches_every_node() {
    use banmesh_node::control::{Command, OrderSpec, Response, call};
    let cluster = TestCluster::star(2);
    cluster.wait_for_peers(1);
    let order = |kind: &str, key: &str, strikes: u32| OrderSpec {
        kind: kind.to_owned(),
        key: key.to_owned(),
        strikes,
        jail: "sshd".to_owned(),
        reason: "batch".to_owned(),
        source: "web1@10.0.0.5".to_owned(),
        ..OrderSpec::default()
    };
    let orders = vec![
        order("ban", "198.51.100.1", 1),
        order("ban", "not-an-ip", 1),
        order("ban", "198.51.100.2", 3),
        order("frobnicate", "198.51.100.3", 1),
        order("allow", "198.51.100.4", 1),
        // Wider than the certificate's widest prefix (/16 by default): the
        // node refuses it rather than storing what every peer refuses.
        order("ban", "10.0.0.0/8", 1),
    ];
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let response = runtime
        .block_on(call(&cluster.node(0).socket, Command::Issue { orders }))
        .expect("issue call");
    let Response::Issued(items) = response else { panic!("not an Issued answer: {response:?}") };
    let ok: Vec<bool> = items.iter().map(|i| i.id.is_some()).collect();
    assert_eq!(ok, [true, false, true, false, true, false], "{items:?}");
    assert!(items[5].error.as_deref().is_some_and(|e| e.contains("certificate")), "{items:?}");
    assert!(cluster.node(0).records_on("10.0.0.0/8").is_empty(), "a refused record was stored");
    assert!(items[1].error.as_deref().is_some_and(|e| e.contains("not-an-ip")), "{items:?}");
    assert!(items[3].error.as_deref().is_some_and(|e| e.contains("unknown kind")), "{items:?}");
    wait_all(&cluster, "198.51.100.2", "banned", |n| n.is_banned("198.51.100.2"));
    wait_all(&cluster, "198.51.100.4", "allowed", |n| n.is_allowed("198.51.100.4"));
    // keep_longer: a 1 ms ban is left out while this node's 3-strike ban
    // on the key lasts longer; without it, it would replace that ban.
    let mut short = order("ban", "198.51.100.2", 3);
    (short.duration_ms, short.keep_longer) = (Some(1), true);
    let response = runtime
        .block_on(call(&cluster.node(0).socket, Command::Issue { orders: vec![short] }))
        .expect("issue call");
    let Response::Issued(items) = response else { panic!("not an Issued answer: {response:?}") };
    assert!(items[0].skipped.as_deref().is_some_and(|s| s.contains("longer")), "{items:?}");
    assert!(items[0].id.is_none() && items[0].error.is_none(), "{items:?}");
    let on_b = cluster.node(1).records_on("198.51.100.2");
    assert_eq!(on_b.len(), 1, "{on_b:?}");
    assert_eq!(on_b[0]["strikes"], 3, "{on_b:?}");
    assert_eq!(on_b[0]["source"], "web1@10.0.0.5", "{on_b:?}");
}

#[test]
fn mesh_burst_of_full_gossip_messages_arrives_without_a_sync() {
    use banmesh_node::control::{Command, OrderSpec, Response, call};
    // Reconciliation far away, so only gossip can deliver within the test.
    let mut cluster = TestCluster::new();
    let config = cluster.path("slow-sync.toml");
    std::fs::write(&config, "[sync]\ninterval = \"1h\"\n").expect("config");
    cluster.start_star(2, Some(&config));
    cluster.wait_for_peers(1);
    // Let the first reconciliations (each node's, on connect) finish
    // before the burst.
    let synced = |node: &TestNode| node.peers().iter().any(|p| p["last_sync_ms"].is_u64());
    let first_syncs = wait_until(SOON, || cluster.nodes.iter().all(synced));
    assert!(first_syncs, "the syncs on connect did not finish: {:?}", cluster.node(0).peers());
    // 2,000 bans leave node2 (the dialer) as several full 64 KiB messages
    // back to back.
    let orders: Vec<OrderSpec> = (0..2000)
        .map(|i| OrderSpec {
            key: format!("198.18.{}.{}", i / 250, i % 250 + 1),
            duration_ms: Some(3_600_000),
            jail: "sshd".to_owned(),
            reason: "burst".to_owned(),
            source: "cli".to_owned(),
            ..OrderSpec::default()
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let response = runtime
        .block_on(call(&cluster.node(1).socket, Command::Issue { orders }))
        .expect("issue call");
    assert!(matches!(response, Response::Issued(_)), "{response:?}");
    let bans = |node: &TestNode| node.status()["record_counts"]["ban"].as_u64().unwrap_or(0);
    let arrived = wait_until(SOON, || bans(cluster.node(0)) == 2000);
    assert!(arrived, "node1 holds {} of 2000 bans gossiped in one burst", bans(cluster.node(0)));
}
