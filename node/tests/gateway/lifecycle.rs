//! The Fail2BanSync lifecycle with short durations from the seed file
//! (bantime 2s, factor 3, allowed_duration 3s, known_duration 6s): a ban
//! is blocked, then allowed, then known, then gone; allow_ip allows at
//! once; re-adding a known address escalates block_count and bantime; a
//! ban inside a network the CLI allows is listed allowed while that lasts.

use std::time::Duration;

use serde_json::Value;

use crate::common::{SOON, TestCluster, now_ms, wait_until};
use crate::{Gw, seed};

/// How long a step gets to happen: generous, as the harness's SOON.
const STEP: Duration = SOON;

fn status_of(gw: &Gw, ip: &str) -> Option<&'static str> {
    [("/get_ips", "blocked"), ("/get_allowed_ips", "allowed"), ("/get_known_ips", "known")]
        .into_iter()
        .find(|(path, _)| gw.item(path, ip).is_some())
        .map(|(_, status)| status)
}

/// Runs `read` and returns what it read if it ended before `until_ms`
/// (Unix ms): a step a few seconds long can only be checked while it
/// lasts, and on a loaded machine a read may end after it.
fn read_before<T>(until_ms: u64, read: impl FnOnce() -> T) -> Option<T> {
    let got = read();
    (now_ms() < until_ms).then_some(got)
}

/// Waits until the list at `path` holds `ip`; returns its item.
fn wait_for_item(gw: &Gw, path: &str, ip: &str) -> Option<Value> {
    let mut item = None;
    wait_until(STEP, || {
        item = gw.item(path, ip);
        item.is_some()
    });
    item
}

#[test]
fn gateway_lifecycle_follows_the_seed_settings() {
    let mut cluster = TestCluster::new();
    let gw = Gw::start(&mut cluster, "node1", &[], &seed("2s", 3, "3s", "6s"), None);

    // Blocked for 2 s from the add, at least.
    let added_at = now_ms();
    gw.add(&["192.0.2.1", "192.0.2.2"]);
    if let Some(status) = read_before(added_at + 2_000, || status_of(&gw, "192.0.2.1")) {
        assert_eq!(status, Some("blocked"));
    }

    // allow_ip: allowed at once (for 3 s), known when the allow window
    // ends, then gone.
    let allowed_at = now_ms();
    assert_eq!(gw.post("/allow_ip", &serde_json::json!({"ip": "192.0.2.2"})).status, 200);
    if let Some(item) = read_before(allowed_at + 3_000, || gw.item("/get_allowed_ips", "192.0.2.2"))
    {
        let item = item.expect("allow_ip lists the address allowed at once");
        assert!(item["allowed_since"].is_string(), "{item}");
    }
    assert!(
        wait_until(STEP, || status_of(&gw, "192.0.2.2") == Some("known")),
        "allow_ip never known"
    );

    // The natural end: allowed for 3s, then known.
    let item = wait_for_item(&gw, "/get_allowed_ips", "192.0.2.1").expect("never allowed");
    assert_eq!(item["block_count"], 1);
    assert_eq!(item["allowed_since"], item["blocked_until"]);
    assert!(wait_until(STEP, || status_of(&gw, "192.0.2.1") == Some("known")), "never known");

    // Re-adding a known address bans it again, escalated: 2s * 3 = 6s.
    let readded_at = now_ms();
    let added = gw.add(&["192.0.2.1"]);
    assert_eq!(added["added_ips"], serde_json::json!(["192.0.2.1"]));
    // A blocked address is not re-banned (while the 6 s last).
    if let Some(again) = read_before(readded_at + 6_000, || gw.add(&["192.0.2.1"])) {
        assert_eq!(again["added_ips"], serde_json::json!([]), "a blocked address was re-added");
    }
    let records = cluster.node(gw.node).records_on("192.0.2.1");
    let second = records.iter().find(|r| r["strikes"] == 2).expect("the record carries strikes 2");
    let ttl = second["expires_at_ms"].as_u64().unwrap() - second["issued_at_ms"].as_u64().unwrap();
    assert_eq!(ttl, 6_000, "the second ban lasts 6s: {second}");
    if let Some(item) = read_before(readded_at + 6_000, || gw.item("/get_ips", "192.0.2.1")) {
        assert_eq!(item.expect("blocked again")["block_count"], 2);
    }

    // A gone one starts again at 1.
    assert!(wait_until(STEP, || status_of(&gw, "192.0.2.2").is_none()), "never gone");
    let readded_at = now_ms();
    gw.add(&["192.0.2.2"]);
    if let Some(item) = read_before(readded_at + 2_000, || gw.item("/get_ips", "192.0.2.2")) {
        assert_eq!(item.expect("blocked again")["block_count"], 1);
    }
    let records = cluster.node(gw.node).records_on("192.0.2.2");
    let last =
        records.iter().filter(|r| r["kind"] == "ban").max_by_key(|r| r["issued_at_ms"].as_u64());
    assert_eq!(last.expect("a ban on 192.0.2.2")["strikes"], 1, "{records:?}");
}

#[test]
fn gateway_readds_an_address_in_its_allowed_window() {
    let mut cluster = TestCluster::new();
    let gw = Gw::start(&mut cluster, "node1", &[], &seed("1s", 3, "30s", "60s"), None);
    gw.add(&["198.51.100.4"]);
    assert!(wait_until(STEP, || status_of(&gw, "198.51.100.4") == Some("allowed")));
    // The old server skipped this address, letting it back in.
    let readded_at = now_ms();
    assert_eq!(gw.add(&["198.51.100.4"])["added_ips"], serde_json::json!(["198.51.100.4"]));
    // Blocked again, escalated to 3 s.
    if let Some(item) = read_before(readded_at + 3_000, || gw.item("/get_ips", "198.51.100.4")) {
        assert_eq!(item.expect("blocked again")["block_count"], 2);
    }
    let records = cluster.node(gw.node).records_on("198.51.100.4");
    assert!(records.iter().any(|r| r["strikes"] == 2), "no escalated ban: {records:?}");
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
    let allowed_at = now_ms();
    node.call(&["allow", "198.51.100.0/24", "--for", "8s"]);
    let item = wait_for_item(&gw, "/get_allowed_ips", "198.51.100.7");
    let item = item.unwrap_or_else(|| {
        panic!(
            "a ban inside an allowed network is still listed {:?}",
            status_of(&gw, "198.51.100.7")
        )
    });
    assert_eq!(item["status"], "allowed");
    assert!(item["allowed_since"].is_string());
    let listed = read_before(allowed_at + 8_000, || {
        (gw.ips("/get_ips"), gw.add(&["198.51.100.7"])["added_ips"].clone())
    });
    if let Some((blocked, added)) = listed {
        assert_eq!(blocked, ["198.51.101.7"]);
        assert_eq!(added, serde_json::json!([]), "add_ips agrees");
    }

    // When the network's Allow ends, the ban shows again.
    assert!(
        wait_until(STEP, || status_of(&gw, "198.51.100.7") == Some("blocked")),
        "never blocked again after the network's Allow ended"
    );
}
