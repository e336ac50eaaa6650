//! The Fail2BanSync lifecycle with short durations from the seed file
//! (bantime 2s, factor 3, allowed_duration 3s, known_duration 6s): a ban
//! is blocked, then allowed, then known, then gone; allow_ip allows at
//! once; re-adding a known address escalates block_count and bantime; a
//! ban inside a network the CLI allows is listed allowed while that lasts.

use std::time::Duration;

use crate::common::{TestCluster, wait_until};
use crate::{Gw, seed};

const STEP: Duration = Duration::from_secs(10);

fn status_of(gw: &Gw, ip: &str) -> Option<&'static str> {
    [("/get_ips", "blocked"), ("/get_allowed_ips", "allowed"), ("/get_known_ips", "known")]
        .into_iter()
        .find(|(path, _)| gw.item(path, ip).is_some())
        .map(|(_, status)| status)
}

#[test]
fn gateway_lifecycle_follows_the_seed_settings() {
    let mut cluster = TestCluster::new();
    let gw = Gw::start(&mut cluster, "node1", &[], &seed("2s", 3, "3s", "6s"), None);

    gw.add(&["192.0.2.1", "192.0.2.2"]);
    assert_eq!(status_of(&gw, "192.0.2.1"), Some("blocked"));

    // allow_ip: allowed at once, known when the allow window ends, then gone.
    assert_eq!(gw.post("/allow_ip", &serde_json::json!({"ip": "192.0.2.2"})).status, 200);
    assert_eq!(status_of(&gw, "192.0.2.2"), Some("allowed"));
    assert!(gw.item("/get_allowed_ips", "192.0.2.2").unwrap()["allowed_since"].is_string());
    assert!(
        wait_until(STEP, || status_of(&gw, "192.0.2.2") == Some("known")),
        "allow_ip never known"
    );

    // The natural end: allowed for 3s, then known.
    assert!(wait_until(STEP, || status_of(&gw, "192.0.2.1") == Some("allowed")), "never allowed");
    let item = gw.item("/get_allowed_ips", "192.0.2.1").unwrap();
    assert_eq!(item["block_count"], 1);
    assert_eq!(item["allowed_since"], item["blocked_until"]);
    assert!(wait_until(STEP, || status_of(&gw, "192.0.2.1") == Some("known")), "never known");

    // Re-adding a known address bans it again, escalated: 2s * 3 = 6s.
    let added = gw.add(&["192.0.2.1"]);
    assert_eq!(added["added_ips"], serde_json::json!(["192.0.2.1"]));
    let item = gw.item("/get_ips", "192.0.2.1").expect("blocked again");
    assert_eq!(item["block_count"], 2);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(status_of(&gw, "192.0.2.1"), Some("blocked"), "the second ban lasts 6s");
    assert!(
        cluster.node(gw.node).records_on("192.0.2.1").iter().any(|r| r["strikes"] == 2),
        "the record carries strikes 2"
    );

    // A blocked address is not re-banned; a gone one starts again at 1.
    assert_eq!(gw.add(&["192.0.2.1"])["added_ips"], serde_json::json!([]));
    assert!(wait_until(STEP, || status_of(&gw, "192.0.2.2").is_none()), "never gone");
    gw.add(&["192.0.2.2"]);
    assert_eq!(gw.item("/get_ips", "192.0.2.2").unwrap()["block_count"], 1);
}

#[test]
fn gateway_readds_an_address_in_its_allowed_window() {
    let mut cluster = TestCluster::new();
    let gw = Gw::start(&mut cluster, "node1", &[], &seed("1s", 3, "30s", "60s"), None);
    gw.add(&["198.51.100.4"]);
    assert!(wait_until(STEP, || status_of(&gw, "198.51.100.4") == Some("allowed")));
    // The old server skipped this address, letting it back in.
    assert_eq!(gw.add(&["198.51.100.4"])["added_ips"], serde_json::json!(["198.51.100.4"]));
    assert_eq!(gw.item("/get_ips", "198.51.100.4").unwrap()["block_count"], 2);
}

#[test]
fn gateway_lists_a_ban_a_network_allow_frees_as_allowed() {
    let mut cluster = TestCluster::new();
    let gw = Gw::start(&mut cluster, "node1", &[], &seed("1h", 3, "30s", "60s"), None);
    let node = cluster.node(gw.node);
    node.call(&["ban", "198.51.100.7", "--for", "1h", "--jail", "sshd"]);
    node.call(&["ban", "198.51.101.7", "--for", "1h", "--jail", "sshd"]);
    assert!(wait_until(STEP, || status_of(&gw, "198.51.100.7") == Some("blocked")));

    // The index no longer bans .7, so old clients must not be told to.
    node.call(&["allow", "198.51.100.0/24", "--for", "4s"]);
    assert!(
        wait_until(STEP, || status_of(&gw, "198.51.100.7") == Some("allowed")),
        "a ban inside an allowed network is still listed {:?}",
        status_of(&gw, "198.51.100.7")
    );
    let item = gw.item("/get_allowed_ips", "198.51.100.7").unwrap();
    assert_eq!(item["status"], "allowed");
    assert!(item["allowed_since"].is_string());
    assert_eq!(gw.ips("/get_ips"), ["198.51.101.7"]);
    assert_eq!(gw.add(&["198.51.100.7"])["added_ips"], serde_json::json!([]), "add_ips agrees");

    // When the network's Allow ends, the ban shows again.
    assert!(
        wait_until(STEP, || status_of(&gw, "198.51.100.7") == Some("blocked")),
        "never blocked again after the network's Allow ended"
    );
}
