//! The mesh on separate hosts: each node in its own network namespace on a
//! bridge, with its own address and the default listen address
//! (`/ip4/0.0.0.0` and `/ip6/::`, port 4646), links cut for real. What loopback hides:
//! which address a node advertises and dials, and connections to a host
//! that went away. Needs root and iproute2.

mod common;

use std::time::Duration;

use common::netns::Net;
use common::{SOON, TestCluster, TestNode, wait_until};

/// How long a heal or a partition gets to show: generous (a busy two-core
/// machine), never a measure of speed.
const HEAL: Duration = Duration::from_secs(60);

/// The names of the peers `node` lists as unreachable in `status`.
fn unreachable(node: &TestNode) -> Vec<String> {
    let status = node.status();
    let list = status["unreachable"].as_array().cloned().unwrap_or_default();
    list.iter().filter_map(|p| p["name"].as_str().map(str::to_owned)).collect()
}

/// Waits until every node in `nodes` says `ip` is banned.
fn wait_banned(cluster: &TestCluster, nodes: &[usize], ip: &str) {
    let ok = wait_until(HEAL, || nodes.iter().all(|&i| cluster.node(i).is_banned(ip)));
    let seen: Vec<String> =
        nodes.iter().map(|&i| format!("node{}: {}", i + 1, cluster.node(i).decision(ip))).collect();
    assert!(ok, "{ip} is not banned on every node of {nodes:?}: {seen:?}");
}

#[test]
fn netns_nodes_told_of_one_host_connect_to_each_other_and_spread_bans_without_it() {
    let net = Net::new(4);
    let mut cluster = TestCluster::new();
    cluster.start_on_net(&net, None);
    // Each node was told only of node1; the others are learnt from hellos
    // and must be dialled at their real addresses, not at loopback.
    cluster.wait_for_peers(3);
    net.cut(0);
    cluster.node(1).call(&["ban", "192.0.2.7", "--for", "1h"]);
    wait_banned(&cluster, &[1, 2, 3], "192.0.2.7");
    // Loopback addresses were never passed between hosts.
    for node in &cluster.nodes {
        for peer in node.peers() {
            let addrs = peer["addrs"].to_string();
            assert!(!addrs.contains("/ip4/127."), "{} knows {addrs} for a peer", node.name);
        }
    }
}

#[test]
fn netns_a_cut_host_is_reported_unreachable_and_heals_to_the_same_state() {
    let net = Net::new(3);
    let mut cluster = TestCluster::new();
    cluster.start_on_net(&net, None);
    cluster.wait_for_peers(2);
    net.cut(2);
    // The dead connections are noticed: both sides report the partition.
    let seen = wait_until(SOON, || {
        unreachable(cluster.node(0)).contains(&"node3".to_owned())
            && unreachable(cluster.node(2)).len() == 2
    });
    assert!(
        seen,
        "the cut was not reported: node1 {:?}, node3 {:?}",
        cluster.node(0).status()["unreachable"],
        cluster.node(2).status()["unreachable"]
    );
    // Writes on both sides of the cut.
    cluster.node(0).call(&["ban", "198.51.100.1", "--for", "1h"]);
    cluster.node(2).call(&["ban", "198.51.100.3", "--for", "1h"]);
    assert!(!cluster.wait_for_same_digest(Duration::from_secs(2)), "digests agree across a cut");
    net.heal(2);
    assert!(cluster.wait_for_same_digest(HEAL), "digests differ after the heal");
    wait_banned(&cluster, &[0, 1, 2], "198.51.100.1");
    wait_banned(&cluster, &[0, 1, 2], "198.51.100.3");
    let ok = wait_until(HEAL, || cluster.nodes.iter().all(|n| unreachable(n).is_empty()));
    assert!(ok, "a node still reports peers unreachable after the heal");
    // Requests the cut broke off are not taken for malformed ones.
    for node in &cluster.nodes {
        let rejects = node.status()["rejects"].to_string();
        assert!(
            !rejects.contains("malformed"),
            "{} counts the cut as malformed: {rejects}",
            node.name
        );
    }
}

#[test]
fn netns_a_split_into_two_groups_keeps_each_group_whole_and_heals_to_the_same_state() {
    let mut net = Net::new(4);
    let mut cluster = TestCluster::new();
    cluster.start_on_net(&net, None);
    cluster.wait_for_peers(3);
    net.split(&[&[0, 1], &[2, 3]]);
    // Each side loses the other two and keeps its own.
    let seen = wait_until(SOON, || cluster.nodes.iter().all(|n| unreachable(n).len() == 2));
    let lists: Vec<String> =
        cluster.nodes.iter().map(|n| format!("{}: {:?}", n.name, unreachable(n))).collect();
    assert!(seen, "the split was not reported as two lost peers on every node: {lists:?}");
    cluster.node(0).call(&["ban", "198.51.100.10", "--for", "1h"]);
    cluster.node(3).call(&["ban", "198.51.100.40", "--for", "1h"]);
    // Within a group, gossip still flows.
    wait_banned(&cluster, &[0, 1], "198.51.100.10");
    wait_banned(&cluster, &[2, 3], "198.51.100.40");
    net.join_all();
    assert!(cluster.wait_for_same_digest(HEAL), "digests differ after the split healed");
    wait_banned(&cluster, &[0, 1, 2, 3], "198.51.100.10");
    wait_banned(&cluster, &[0, 1, 2, 3], "198.51.100.40");
}

#[test]
fn netns_nodes_on_ipv6_only_find_each_other_and_spread_bans() {
    let net = Net::new(3);
    let mut cluster = TestCluster::new();
    let first = format!("/ip6/{}/tcp/{}", net.host(0).ip6, common::netns::MESH_PORT);
    for (i, host) in net.hosts.iter().enumerate() {
        let peers = if i == 0 { Vec::new() } else { vec![first.clone()] };
        let mut spec = cluster.spec(&format!("node{}", i + 1), &peers);
        spec.args = vec!["--listen".into(), format!("/ip6/::/tcp/{}", common::netns::MESH_PORT)];
        cluster.start_on(host, spec);
    }
    cluster.wait_for_peers(2);
    cluster.node(2).call(&["ban", "2001:db8::7", "--for", "1h"]);
    wait_banned(&cluster, &[0, 1, 2], "2001:db8::7");
}
