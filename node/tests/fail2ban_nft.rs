//! Network bans through a real firewall: a `fail2ban-server` in a network
//! namespace of its own (so the host's firewall is never touched) with the
//! shipped `banmesh` jail and its nftables action, and with one of Debian's
//! stock nftables actions, whose sets cannot hold networks. Needs root,
//! iproute2, nftables and fail2ban (scripts/test.sh installs them).

mod common;

use common::fail2ban::{Fail2BanServer, applying_config};
use std::time::Duration;

use common::{SOON, TestCluster, holds_for, wait_until};

#[test]
fn fail2ban_nft_network_bans_through_the_shipped_action_are_in_the_kernel_set() {
    let mut cluster = TestCluster::new();
    let server = Fail2BanServer::start_in_netns(&cluster.path("fail2ban"), None);
    let config = applying_config(
        &cluster.path("apply.toml"),
        &server.dir,
        "interval = \"1s\"\n[safety]\nnever_ban = [\"10.62.1.1\"]\n",
    );
    cluster.start_star(1, Some(&config));
    let node = cluster.node(0);
    node.call(&["ban", "10.62.0.0/24", "--for", "1h"]);
    // Inside the /24: an nftables interval set refuses the overlap, and
    // the /24 blocks it anyway.
    node.call(&["ban", "10.62.0.7", "--for", "1h"]);
    // Split around the never-ban address into 10.62.1.0 and 10.62.1.2/31.
    node.call(&["ban", "10.62.1.0/30", "--for", "1h"]);
    node.call(&["ban", "2001:db8:62::/48", "--for", "1h"]);
    let in_kernel = wait_until(SOON, || {
        let (v4, v6) = (server.nft_set("ip"), server.nft_set("ip6"));
        ["10.62.0.0/24", "10.62.1.0,", "10.62.1.2/31"].iter().all(|e| v4.contains(e))
            && v6.contains("2001:db8:62::/48")
    });
    let sets = || format!("{}{}", server.nft_set("ip"), server.nft_set("ip6"));
    assert!(in_kernel, "the networks are not in the kernel's sets: {}", sets());
    assert!(!sets().contains("10.62.1.1"), "a never-ban address is blocked: {}", sets());
    // Counted once the round that applied them has ended.
    let counted = wait_until(SOON, || node.status()["fail2ban"]["applied"] == 4);
    let status = node.status();
    assert!(counted, "{status}");
    assert!(!status["warnings"].to_string().contains("fail2ban:"), "{}", status["warnings"]);
    let log = std::fs::read_to_string(server.dir.join("f2b.log")).unwrap_or_default();
    assert!(!log.contains("Failed to execute ban"), "an action failed in Fail2Ban:\n{log}");
}

#[test]
fn fail2ban_nft_a_stock_action_that_cannot_hold_networks_is_warned_about_not_counted() {
    let mut cluster = TestCluster::new();
    let server =
        Fail2BanServer::start_in_netns(&cluster.path("fail2ban"), Some("nftables-allports"));
    let config = applying_config(&cluster.path("apply.toml"), &server.dir, "interval = \"1s\"\n");
    cluster.start_star(1, Some(&config));
    let node = cluster.node(0);
    node.call(&["ban", "10.63.1.1", "--for", "1h"]);
    node.call(&["ban", "10.63.0.0/24", "--for", "1h"]);
    // One status from a round that saw both bans (the network came last).
    let mut status = serde_json::Value::Null;
    let warned = wait_until(SOON, || {
        status = node.status();
        let warnings = status["warnings"].to_string();
        warnings.contains("action nftables-allports cannot hold networks")
            && warnings.contains("10.63.0.0/24")
    });
    assert!(warned, "status does not say the action cannot hold networks: {}", status["warnings"]);
    assert_eq!(status["fail2ban"]["applied"], 1, "the network was counted: {status}");
    let address = wait_until(SOON, || server.nft_set("ip").contains("10.63.1.1"));
    assert!(address, "the address is not in the kernel's set: {}", server.nft_set("ip"));
    assert!(!server.holds("banmesh", "10.63.0.0/24"), "{}", server.banmesh_jail());
}

#[test]
fn fail2ban_nft_an_address_unbanned_from_the_mesh_jail_by_hand_is_a_local_pardon() {
    let mut cluster = TestCluster::new();
    let server = Fail2BanServer::start_in_netns(&cluster.path("fail2ban"), None);
    let config = applying_config(&cluster.path("apply.toml"), &server.dir, "interval = \"1s\"\n");
    cluster.start_star(1, Some(&config));
    let node = cluster.node(0);
    node.call(&["ban", "10.64.0.1", "--for", "1h"]);
    node.call(&["ban", "10.64.0.2", "--for", "1h"]);
    let both = || server.holds("banmesh", "10.64.0.1") && server.holds("banmesh", "10.64.0.2");
    assert!(wait_until(SOON, both), "{}", server.banmesh_jail());
    let held =
        wait_until(SOON, || node.trace("10.64.0.1")["enforced"].to_string().contains("jail holds"));
    assert!(held, "{}", node.trace("10.64.0.1"));

    // The operator unbans one by hand: it stays out, pardoned here only.
    let out = server.client(&["set", "banmesh", "unbanip", "10.64.0.1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pardoned = || node.status()["fail2ban"]["pardoned"].as_u64();
    assert!(wait_until(SOON, || pardoned() == Some(1)), "{}", node.status());
    let out_of_jail = || !server.holds("banmesh", "10.64.0.1");
    assert!(
        holds_for(Duration::from_secs(4), out_of_jail),
        "banned again: {}",
        server.banmesh_jail()
    );
    assert!(!server.nft_set("ip").contains("10.64.0.1,"), "{}", server.nft_set("ip"));
    assert!(server.holds("banmesh", "10.64.0.2"), "{}", server.banmesh_jail());
    let enforced = node.trace("10.64.0.1")["enforced"].to_string();
    assert!(enforced.contains("pardoned"), "{enforced}");
    assert_eq!(node.records_on("10.64.0.1").len(), 1, "the pardon reached the records");

    // A new ban on it (a later end) is applied again, its pardon gone.
    node.call(&["ban", "10.64.0.1", "--for", "2h"]);
    assert!(wait_until(SOON, || server.holds("banmesh", "10.64.0.1")), "{}", server.banmesh_jail());
    assert!(wait_until(SOON, || pardoned() == Some(0)), "{}", node.status());
}
