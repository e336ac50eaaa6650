//! A peer's second address is never-ban too: nodes in namespaces with an
//! IPv4 and an IPv6 address each, listening on both (the default listen
//! list), connect over one; an
//! enrolled rogue (a real `banmesh` process) bans every address of the
//! other two. Each node dialled the addresses its peers announced, reached
//! them there, and so never enforces a ban on either address of a peer,
//! while a control ban is enforced. A claim alone is not enough: an address
//! a peer announces but is not reached on stays bannable. Needs root and
//! iproute2 (the first test).

use std::time::Duration;

use super::cluster_with_rogue;
use super::common::netns::Net;
use super::common::{SOON, TestCluster, holds_for, wait_until};
use super::rogue::Rogue;

#[test]
fn netns_a_peers_other_address_is_never_banned_once_reached_there() {
    let net = Net::new(3);
    let mut cluster = TestCluster::new();
    let first = net.host(0).mesh_addr();
    for (i, host) in net.hosts.iter().enumerate() {
        let peers = if i == 0 { Vec::new() } else { vec![first.clone()] };
        cluster.start_on(host, cluster.spec(&format!("node{}", i + 1), &peers));
    }
    cluster.wait_for_peers(2);
    let rogue = cluster.node(2);
    let both = |i: usize| [net.host(i).ip4.to_string(), net.host(i).ip6.to_string()];
    for ip in both(0).iter().chain(&both(1)) {
        rogue.call(&["ban", ip, "--for", "1h"]);
    }
    let control = "198.51.100.77";
    rogue.call(&["ban", control, "--for", "1h"]);

    for (i, other) in [(0, 1), (1, 0)] {
        let node = cluster.node(i);
        let stored = wait_until(SOON, || node.is_banned(control));
        assert!(stored, "{} did not get the rogue's bans", node.name);
        assert!(!node.decision(control).contains("never"), "{}", node.decision(control));
        for ip in both(other) {
            let never = wait_until(SOON, || {
                node.is_banned(&ip) && node.decision(&ip).contains("never banned on this node")
            });
            let peers: Vec<String> =
                node.peers().iter().map(|p| format!("{} {}", p["name"], p["addrs"])).collect();
            assert!(
                never,
                "{} would enforce the ban on its peer's {ip}: {:?}; peers {peers:?}; never-ban {}",
                node.name,
                node.decision(&ip),
                node.status()["never_ban"]
            );
        }
        assert!(node.log_text().contains("peer reached on an address it announced"));
    }
}

/// An enrolled rogue whose hello claims an address it cannot be reached
/// on: the address never becomes never-ban, and a ban on it stays in force.
#[test]
fn an_address_a_peer_only_claims_is_not_never_banned() {
    let (cluster, key) = cluster_with_rogue(2);
    let claimed = "198.18.99.1";
    let rogue = Rogue::claiming(&key, &[claimed]);
    rogue.join(cluster.node(0));
    let node1 = cluster.node(0);
    node1.call(&["ban", claimed, "--for", "1h"]);
    let kept = holds_for(Duration::from_secs(10), || {
        node1.is_banned(claimed) && !node1.decision(claimed).contains("never")
    });
    assert!(kept, "a claimed address became never-ban: {}", node1.decision(claimed));
}
