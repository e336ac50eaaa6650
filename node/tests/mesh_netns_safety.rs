//! Local safety on separate hosts: a node never bans its own addresses
//! (loopback, every interface's, not only those it listens on) nor an
//! enrolled peer's, even while that peer is away and after this node
//! restarts. Each node runs in its own network namespace on a bridge.
//! Needs root and iproute2 (and Debian's fail2ban for the last test).

mod common;

use std::time::Duration;

use common::fail2ban::{Fail2BanServer, applying_config};
use common::netns::Net;
use common::{TestCluster, TestNode, holds_for, wait_until};

/// How long a change gets to show: generous (a busy two-core machine),
/// never a measure of speed.
const LONG: Duration = Duration::from_secs(60);

/// The never-ban list in `node`'s status.
fn never_ban(node: &TestNode) -> Vec<String> {
    let status = node.status();
    let list = status["never_ban"].as_array().cloned().unwrap_or_default();
    list.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect()
}

/// The names of the peers `node` lists as unreachable.
fn unreachable(node: &TestNode) -> Vec<String> {
    let status = node.status();
    let list = status["unreachable"].as_array().cloned().unwrap_or_default();
    list.iter().filter_map(|p| p["name"].as_str().map(str::to_owned)).collect()
}

/// Asserts that `node` never bans `ip` though the mesh bans it.
fn assert_protected(node: &TestNode, ip: &str, when: &str) {
    let list = never_ban(node);
    assert!(list.contains(&ip.to_owned()), "{when}: {} does not list {ip}: {list:?}", node.name);
    let decision = node.decision(ip);
    assert!(
        decision.starts_with("banned") && decision.contains("never banned on this node"),
        "{when}: {} says of {ip}: {decision:?}",
        node.name
    );
}

#[test]
fn netns_never_ban_holds_loopback_and_every_interface_address() {
    let net = Net::new(1);
    let mut cluster = TestCluster::new();
    cluster.start_on_net(&net, None);
    let list = never_ban(cluster.node(0));
    // The node listens on 0.0.0.0 only: its IPv6 address is not a listen
    // address, yet it is this host's.
    let host = net.host(0);
    for entry in ["127.0.0.0/8", "::1", &host.ip4.to_string(), &host.ip6.to_string()] {
        assert!(list.contains(&entry.to_owned()), "never-ban list lacks {entry}: {list:?}");
    }
}

#[test]
fn netns_a_peer_away_stays_never_banned_across_this_nodes_restart() {
    let net = Net::new(3);
    let mut cluster = TestCluster::new();
    cluster.start_on_net(&net, None);
    cluster.wait_for_peers(2);
    let b = net.host(1).ip4.to_string();
    cluster.node_mut(1).stop();
    let gone = wait_until(LONG, || {
        [0, 2].iter().all(|&i| unreachable(cluster.node(i)).contains(&"node2".to_owned()))
    });
    assert!(gone, "node2's absence was not noticed");
    // A mesh ban covering the away peer's address reaches every node, and
    // none applies it.
    cluster.node(0).call(&["ban", &b, "--for", "1h"]);
    let spread = wait_until(LONG, || cluster.node(2).is_banned(&b));
    assert!(spread, "the ban did not reach node3: {}", cluster.node(2).decision(&b));
    assert_protected(cluster.node(0), &b, "node2 away");
    assert_protected(cluster.node(2), &b, "node2 away");
    // node1's list comes from its store after a restart, node2 still away.
    cluster.node_mut(0).stop();
    cluster.node_mut(0).restart();
    assert_protected(cluster.node(0), &b, "node1 restarted");
    // node2 comes back and rejoins.
    cluster.node_mut(1).restart();
    let back = wait_until(LONG, || cluster.node(1).connected_peers().len() == 2);
    assert!(back, "node2 did not rejoin: {:?}", cluster.node(1).peers());
    assert_protected(cluster.node(0), &b, "node2 back");
}

#[test]
fn netns_a_peer_away_never_enters_the_banmesh_jail() {
    let net = Net::new(3);
    let mut cluster = TestCluster::new();
    // A real fail2ban-server (dummy ban action) for node1 only.
    let f2b = Fail2BanServer::start(&cluster.path("f2b-a"));
    let config = applying_config(&cluster.path("a.toml"), &f2b.dir, "");
    let first = net.host(0).mesh_addr();
    for (i, host) in net.hosts.iter().enumerate() {
        let peers = if i == 0 { Vec::new() } else { vec![first.clone()] };
        let mut spec = cluster.spec(&format!("node{}", i + 1), &peers);
        spec.config = (i == 0).then(|| config.clone());
        cluster.start_on(host, spec);
    }
    cluster.wait_for_peers(2);
    let b = net.host(1).ip4.to_string();
    cluster.node_mut(1).stop();
    let gone = wait_until(LONG, || unreachable(cluster.node(0)).contains(&"node2".to_owned()));
    assert!(gone, "node2's absence was not noticed");
    // Issued on node3: node1 learns both bans from the mesh.
    cluster.node(2).call(&["ban", &b, "--for", "1h"]);
    cluster.node(2).call(&["ban", "198.51.100.9", "--for", "1h"]);
    let applied = wait_until(LONG, || f2b.holds("banmesh", "198.51.100.9"));
    assert!(applied, "node1 applied no mesh ban: {}", f2b.banmesh_jail());
    let kept_out = holds_for(Duration::from_secs(3), || !f2b.holds("banmesh", &b));
    assert!(kept_out, "node1 jailed its away peer's address: {}", f2b.banmesh_jail());
}
