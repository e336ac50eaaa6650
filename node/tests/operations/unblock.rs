//! A node of another cluster dials a node, which refuses its hello, tells
//! it why and blocks it: the refused node logs who refused it and why;
//! `banmesh peers unblock` lifts the block at once, by peer id or by the
//! address the blocked peer connected from.

use serde_json::Value;

use crate::common::{SOON, TestCluster, wait_until};

fn blocked(peers: &[Value], peer_id: &str) -> bool {
    peers.iter().any(|p| p["peer_id"] == peer_id && p["state"] == "blocked")
}

#[test]
fn a_refused_peer_hears_who_refused_it_and_unblock_lets_it_back() {
    let mut cluster = TestCluster::new();
    let web1 = cluster.start(cluster.spec("web1", &[]));
    let other = TestCluster::new();
    let stranger = other.spec("stranger", &[cluster.node(web1).addr()]);
    let stranger = cluster.start(stranger);
    let (web1, stranger) = (cluster.node(web1), cluster.node(stranger));
    let stranger_id = stranger.peer_id();

    let heard = wait_until(SOON, || {
        stranger.log_text().contains("refused by web1 (")
            && stranger.log_text().contains("certificate signed by another cluster")
    });
    assert!(heard, "the stranger did not log who refused it and why:\n{}", stranger.log_tail());
    assert!(wait_until(SOON, || blocked(&web1.peers(), &stranger_id)), "not blocked");

    let answer = web1.call(&["peers", "unblock", &stranger_id]);
    assert_eq!(answer["unblocked"], serde_json::json!([stranger_id]), "{answer}");
    assert!(!blocked(&web1.peers(), &stranger_id), "still blocked: {:?}", web1.peers());
    let again = web1.call(&["peers", "unblock", &stranger_id]);
    assert_eq!(again["unblocked"], serde_json::json!([]), "{again}");

    // The stranger blocked web1 too (it refused its hello): lifted there by
    // address, it dials again, is refused again and blocked again.
    let web1_id = web1.peer_id();
    let by_addr = stranger.call(&["peers", "unblock", "127.0.0.1"]);
    assert_eq!(by_addr["unblocked"], serde_json::json!([web1_id]), "{by_addr}");
    assert!(wait_until(SOON, || blocked(&web1.peers(), &stranger_id)), "not blocked again");

    let bad = web1.try_call(&["peers", "unblock", "web1"]).unwrap_err();
    assert!(bad.contains("invalid peer id \"web1\""), "{bad}");
}
