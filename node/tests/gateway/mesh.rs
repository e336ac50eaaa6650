//! Two gateways on two nodes: a ban issued on node B through the CLI shows
//! in node A's gateway, a ban added through A's gateway in B's, and once
//! synced both return the same lists with the same ids; a revoked
//! origin's records leave the lists.

use serde_json::Value;

use crate::common::{SOON, TestCluster, wait_until};
use crate::{Gw, seed};

/// The items of one list.
fn list(gw: &Gw, path: &str) -> Vec<Value> {
    gw.items(path)
}

#[test]
fn gateway_two_nodes_serve_the_same_lists_and_ids() {
    let mut cluster = TestCluster::new();
    let settings = seed("1h", 24, "2m", "48h");
    let a = Gw::start(&mut cluster, "node1", &[], &settings, None);
    let first = cluster.node(a.node).addr();
    let b = Gw::start(&mut cluster, "node2", &[first], &settings, None);
    cluster.wait_for_peers(1);

    cluster.node(b.node).call(&["ban", "192.0.2.50", "--for", "1h", "--jail", "sshd"]);
    assert!(
        wait_until(SOON, || a.item("/get_ips", "192.0.2.50").is_some()),
        "a CLI ban on node2 never showed in node1's gateway"
    );
    let item = a.item("/get_ips", "192.0.2.50").unwrap();
    assert_eq!(item["jail"], "sshd");
    assert_eq!(item["block_count"], 1);

    a.add(&["198.51.100.7", "2001:db8::7"]);
    assert_eq!(b.post("/allow_ip", &serde_json::json!({"ip": "192.0.2.50"})).status, 200);
    let same = || {
        ["/get_ips", "/get_allowed_ips", "/get_known_ips"]
            .iter()
            .all(|path| list(&a, path) == list(&b, path))
    };
    assert!(
        wait_until(SOON, same),
        "the gateways disagree:\n{:?}\n{:?}",
        list(&a, "/get_ips"),
        list(&b, "/get_ips")
    );
    let blocked = list(&a, "/get_ips");
    let ips: Vec<&str> = blocked.iter().map(|i| i["ip_address"].as_str().unwrap()).collect();
    assert_eq!(ips, ["198.51.100.7", "2001:db8::7"]);
    assert_eq!(blocked[0]["reported_by"], "web1@127.0.0.1");
    assert_eq!(list(&b, "/get_allowed_ips")[0]["ip_address"], "192.0.2.50");
    assert_eq!(a.get("/get_ips?page=1&page_size=1"), b.get("/get_ips?page=1&page_size=1"));
}

#[test]
fn gateway_drops_a_revoked_origins_records() {
    let mut cluster = TestCluster::new();
    let a = Gw::start(&mut cluster, "node1", &[], &seed("1h", 24, "2m", "48h"), None);
    let first = cluster.node(a.node).addr();
    let spec = cluster.spec("node2", &[first]);
    let b = cluster.start(spec);
    cluster.wait_for_peers(1);
    cluster.node(b).call(&["ban", "192.0.2.77", "--for", "1h"]);
    a.add(&["192.0.2.78"]);
    assert!(
        wait_until(SOON, || a.item("/get_ips", "192.0.2.77").is_some()),
        "node2's ban never showed"
    );

    let revocation = cluster.path("node2.revocation");
    cluster.revoke("node2", &revocation);
    cluster.node(a.node).call(&["revoke-publish", crate::common::arg(&revocation)]);
    assert!(
        wait_until(SOON, || a.item("/get_ips", "192.0.2.77").is_none()),
        "a revoked origin's ban is still listed"
    );
    assert!(a.item("/get_ips", "192.0.2.78").is_some(), "node1's own ban must stay");
}
