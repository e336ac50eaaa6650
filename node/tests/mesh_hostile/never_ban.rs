//! An enrolled rogue (a real `banmesh` process in the namespace harness)
//! bans every peer's addresses and the operator's configured networks: the
//! records are valid, so every node stores them, but no node enforces them
//! (never-ban wins): `trace` says so, `status` lists the addresses as
//! never-ban, `/metrics` counts them in `banmesh_never_ban_blocked`, and
//! the nftables backend's sets never hold them, while an ordinary ban of
//! the same rogue is enforced. Needs root, iproute2, nft, python3.

use std::path::PathBuf;
use std::time::Duration;

use super::common::netns::Net;
use super::common::{SOON, TestCluster, TestNode, holds_for, wait_until};
use super::metrics::value_in;

/// The operator's network, in every node's `[safety] never_ban`.
const OPERATOR_NET: &str = "203.0.113.0/24";

/// `nft list set inet banmesh SET` in host `i`'s namespace, or the error.
fn nft_set(net: &Net, i: usize, set: &str) -> String {
    let out = net.host(i).command("nft").args(["list", "set", "inet", "banmesh", set]).output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
        Err(e) => e.to_string(),
    }
}

/// Whether host `i`'s nft sets hold `element` (as an element, not a prefix
/// of a longer one).
fn nft_holds(net: &Net, i: usize, element: &str) -> bool {
    let sets = format!("{} {}", nft_set(net, i, "ban4"), nft_set(net, i, "ban6"));
    sets.split(|c: char| c.is_whitespace() || c == ',' || c == '{' || c == '}')
        .any(|word| word == element)
}

/// Where each node serves `/metrics`, on its own namespace's loopback.
const METRICS: &str = "127.0.0.1:9646";

/// Fetches a URL and prints the body (python3 is there for the gateway's
/// tests; curl need not be).
const FETCH: &str = "import sys, urllib.request; \
    sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=20).read().decode())";

/// The value of `series` in host `i`'s `/metrics` (fetched in its
/// namespace), 0 when absent; panics when it cannot be fetched.
fn metric(net: &Net, i: usize, series: &str) -> f64 {
    let url = format!("http://{METRICS}/metrics");
    let out = net.host(i).command("python3").args(["-c", FETCH, &url]).output();
    let out = out.expect("python3 (apt-get install python3)");
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "GET {url} in host {i}: {error}");
    value_in(&String::from_utf8_lossy(&out.stdout), series)
}

/// A config enforcing with nftables alone, with the operator's network,
/// serving `/metrics`.
fn config(cluster: &TestCluster) -> PathBuf {
    let path = cluster.path("nft-never-ban.toml");
    let text = format!(
        "[enforce]\nbackends = [\"nftables\"]\n[nftables]\nreconcile = \"1s\"\n\
         [safety]\nnever_ban = [\"{OPERATOR_NET}\"]\n[metrics]\nlisten = \"{METRICS}\"\n"
    );
    std::fs::write(&path, text).expect("config");
    path
}

/// Whether `node`'s status lists `entry` as never-ban.
fn lists_never_ban(node: &TestNode, entry: &str) -> bool {
    let status = node.status();
    let list = status["never_ban"].as_array().cloned().unwrap_or_default();
    list.iter().any(|e| e == entry)
}

#[test]
fn netns_enrolled_rogue_banning_every_peer_and_the_operators_network_is_never_enforced() {
    let net = Net::new(3);
    let mut cluster = TestCluster::new();
    let config = config(&cluster);
    cluster.start_on_net(&net, Some(&config));
    cluster.wait_for_peers(2);
    let rogue = cluster.node(2);
    let mut protected: Vec<String> = Vec::new();
    for i in 0..3 {
        protected.push(net.host(i).ip4.to_string());
    }
    protected.push("203.0.113.7".to_owned());
    // The peers listen on IPv4 only: their IPv6 addresses are neither where
    // they connect from nor announced, so never reached, and not never-ban
    // (only a host's own are). Banned too, and what each node does with
    // them is printed; `never_ban_v6.rs` has nodes listening on both.
    let v6: Vec<String> = (0..3).map(|i| net.host(i).ip6.to_string()).collect();
    let blocked = |i| metric(&net, i, "banmesh_never_ban_blocked");
    for i in 0..2 {
        assert_eq!(blocked(i), 0.0, "node{} blocks bans before any was issued", i + 1);
        // Configured, loopback (v4 and v6), its own and its peers' addresses.
        let entries = || metric(&net, i, "banmesh_never_ban_entries");
        let listed = wait_until(SOON, || entries() >= 7.0);
        assert!(listed, "node{} counts {} never-ban entries", i + 1, entries());
    }
    for ip in protected.iter().chain(&v6) {
        rogue.call(&["ban", ip, "--for", "1h"]);
    }
    let wide = rogue.try_call(&["ban", OPERATOR_NET, "--for", "1h"]);
    eprintln!("the rogue's ban on the operator's whole network: {wide:?}");
    // A control: an ordinary ban of the rogue's is enforced everywhere.
    let control = "198.51.100.77";
    rogue.call(&["ban", control, "--for", "1h"]);
    let enforced = wait_until(SOON, || (0..2).all(|i| nft_holds(&net, i, control)));
    assert!(enforced, "the control ban is not in node1's set: {}", nft_set(&net, 0, "ban4"));

    for (i, node) in cluster.nodes[..2].iter().enumerate() {
        let stored = wait_until(SOON, || protected.iter().all(|ip| node.is_banned(ip)));
        assert!(stored, "{} did not store every ban of the rogue", node.name);
        for ip in &protected {
            let decision = node.decision(ip);
            assert!(
                decision.contains("never banned on this node"),
                "{} says of {ip}: {decision:?}",
                node.name
            );
        }
        for entry in [OPERATOR_NET, &net.host(0).ip4.to_string(), &net.host(1).ip4.to_string()] {
            assert!(
                lists_never_ban(node, entry),
                "{} does not list {entry}: {}",
                node.name,
                node.status()["never_ban"]
            );
        }
        let counted = wait_until(SOON, || blocked(i) >= protected.len() as f64);
        assert!(counted, "{}'s /metrics: banmesh_never_ban_blocked {}", node.name, blocked(i));
        let kept_out = holds_for(Duration::from_secs(3), || {
            protected.iter().all(|ip| !nft_holds(&net, i, ip)) && !nft_holds(&net, i, OPERATOR_NET)
        });
        assert!(
            kept_out,
            "{} enforces a never-ban address: {}",
            node.name,
            nft_set(&net, i, "ban4")
        );
        eprintln!("{}: trace {} {:#}", node.name, protected[2], node.trace(&protected[2]));
        for ip in &v6 {
            eprintln!(
                "{} on {ip}: {:?}, in its nft set: {}",
                node.name,
                node.decision(ip),
                nft_holds(&net, i, ip)
            );
        }
    }
}
