//! Fail2Ban, for real: the shipped action and jail files pass Debian's
//! `fail2ban-client -t`, and the exact command the action runs hands bans
//! and unbans to a real node. Needs Debian's `fail2ban` (scripts/test.sh
//! installs it).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::fail2ban::{Fail2BanServer, applying_config, fail2ban_config, require_fail2ban};
use common::{SOON, TestCluster, arg, bin, wait_until};

#[test]
fn fail2ban_accepts_the_shipped_action_and_jails() {
    require_fail2ban();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("fail2ban");
    fail2ban_config(&dir);
    let test = Command::new("fail2ban-client")
        .args(["-c", arg(&dir), "-t"])
        .output()
        .expect("fail2ban-client");
    assert!(
        test.status.success(),
        "fail2ban-client -t refused the files: {}",
        String::from_utf8_lossy(&test.stderr)
    );
    let dump = Command::new("fail2ban-client")
        .args(["-c", arg(&dir), "-d"])
        .output()
        .expect("fail2ban-client -d");
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains("['set', 'sshd', 'addaction', 'banmesh']"),
        "sshd does not publish: {dump}"
    );
    assert!(
        !dump.contains("['set', 'banmesh', 'addaction', 'banmesh']"),
        "the banmesh jail would echo mesh bans"
    );
    assert!(
        dump.contains("['set', 'banmesh', 'bantime', '-1']"),
        "the banmesh jail's bans must not end on their own"
    );
    assert!(
        dump.contains("banmesh fail2ban ban --socket"),
        "the action's command is not in the dump"
    );
    assert!(
        dump.contains("['set', 'banmesh', 'addaction', 'banmesh-nftables']")
            && dump.contains("flags interval"),
        "the banmesh jail's action must hold networks (an nftables set with flags interval)"
    );
}

/// Runs the action's command line as Fail2Ban would, with its tags filled in.
fn action(socket: &Path, verb: &str, tags: &[&str]) -> (bool, String) {
    let mut args = vec!["fail2ban", verb, "--socket", arg(socket), "--timeout", "2s"];
    args.extend_from_slice(tags);
    let out = Command::new(bin()).args(&args).output().expect("banmesh");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn fail2ban_action_hands_bans_and_early_unbans_to_the_node() {
    let cluster = TestCluster::star(1);
    let node = cluster.node(0);
    let ban = |ip: &str, jail: &str, bantime: &str, restored: &str| {
        let tags = [
            "--ip",
            ip,
            "--jail",
            jail,
            "--bantime",
            bantime,
            "--failures",
            "5",
            "--bancount",
            "2",
            "--restored",
            restored,
        ];
        action(&node.socket, "ban", &tags)
    };
    let (ok, text) = ban("203.0.113.5", "sshd", "600", "0");
    assert!(ok && text.contains("published ban 203.0.113.5"), "{text}");
    let records = node.records_on("203.0.113.5");
    let record = records.first().expect("the ban is stored");
    assert_eq!(
        (record["jail"].as_str(), record["source"].as_str()),
        (Some("sshd"), Some("fail2ban"))
    );
    assert_eq!(record["strikes"], 2, "Fail2Ban's bancount is kept as strikes");
    let ttl = record["expires_at_ms"].as_u64().unwrap_or(0)
        - record["issued_at_ms"].as_u64().unwrap_or(0);
    assert_eq!(ttl, 600_000, "the ban keeps Fail2Ban's bantime");

    let (ok, text) = ban("203.0.113.6", "sshd", "-1", "0");
    assert!(ok && text.contains("published"), "{text}");
    let ttl = {
        let r = &node.records_on("203.0.113.6")[0];
        r["expires_at_ms"].as_u64().unwrap_or(0) - r["issued_at_ms"].as_u64().unwrap_or(0)
    };
    assert_eq!(ttl, 35 * 86_400_000, "a ban without end lasts max_ttl and is renewed");

    for (ip, jail, restored, why) in [
        ("203.0.113.7", "sshd", "1", "restored"),
        ("203.0.113.8", "banmesh", "0", "never published"),
    ] {
        let (ok, text) = ban(ip, jail, "600", restored);
        assert!(ok && text.contains(why), "{ip}: {text}");
        assert!(node.records_on(ip).is_empty(), "{ip} was published: {text}");
    }

    // An unban by hand, well before the end: published as an Unban.
    let (ok, text) = action(&node.socket, "unban", &["--ip", "203.0.113.5", "--jail", "sshd"]);
    assert!(ok && text.contains("published unban 203.0.113.5"), "{text}");
    assert!(node.is_not_banned("203.0.113.5"), "{}", node.decision("203.0.113.5"));
    // An unban of an address this node never banned: nothing.
    let (ok, text) = action(&node.socket, "unban", &["--ip", "198.51.100.1", "--jail", "sshd"]);
    assert!(ok && text.contains("holds no ban"), "{text}");
    // Bad input from the tags: a clear error, non-zero exit.
    let (ok, text) = ban("not-an-ip", "sshd", "600", "0");
    assert!(!ok && text.contains("invalid IP address"), "{text}");
    let (ok, text) = ban("203.0.113.10", "ssh d;x", "600", "0");
    assert!(!ok && text.contains("invalid jail name"), "{text}");
    assert!(node.records_on("203.0.113.10").is_empty(), "an odd jail name was published");
    assert!(node.status()["peer_id"].is_string(), "the node stopped answering");
}

#[test]
fn fail2ban_a_shorter_ban_or_another_jails_unban_leaves_a_longer_ban_standing() {
    let cluster = TestCluster::star(1);
    let node = cluster.node(0);
    let ban = |jail: &str, bantime: &str| {
        let tags = ["--ip", "203.0.113.20", "--jail", jail, "--bantime", bantime];
        action(&node.socket, "ban", &tags)
    };
    let unban =
        |jail: &str| action(&node.socket, "unban", &["--ip", "203.0.113.20", "--jail", jail]);
    let expiry = || node.records_on("203.0.113.20")[0]["expires_at_ms"].as_u64().unwrap_or(0);
    let (ok, text) = ban("nginx", "86400");
    assert!(ok && text.contains("published"), "{text}");
    let day = expiry();
    // sshd bans the same address for 10 minutes: one Ban per node and key
    // is kept, so publishing it would cut the day-long ban everywhere.
    let (ok, text) = ban("sshd", "600");
    assert!(ok && text.contains("longer"), "{text}");
    assert_eq!(expiry(), day, "the day-long ban was replaced");
    // sshd's ban ends (or is lifted): nginx's ban is not sshd's to lift.
    let (ok, text) = unban("sshd");
    assert!(ok && text.contains("not made by this jail"), "{text}");
    assert!(node.is_banned("203.0.113.20"), "{}", node.decision("203.0.113.20"));
    // nginx's own early unban still lifts it.
    let (ok, text) = unban("nginx");
    assert!(ok && text.contains("published unban"), "{text}");
    assert!(node.is_not_banned("203.0.113.20"), "{}", node.decision("203.0.113.20"));
}

#[test]
fn fail2ban_action_is_harmless_when_the_node_is_down() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let socket = tmp.path().join("none.sock");
    let (ok, text) =
        action(&socket, "ban", &["--ip", "203.0.113.9", "--jail", "sshd", "--bantime", "600"]);
    assert!(ok, "the action must not fail Fail2Ban when the node is down: {text}");
    assert!(text.contains("reconcile will publish it"), "{text}");
}

#[test]
fn fail2ban_mesh_bans_land_in_the_banmesh_jail_and_leave_it() {
    let mut cluster = TestCluster::new();
    let server = Fail2BanServer::start(&cluster.path("fail2ban"));
    let config = applying_config(&cluster.path("apply.toml"), &server.dir, "interval = \"1s\"\n");
    let mut first = cluster.spec("node1", &[]);
    first.config = Some(config);
    cluster.start(first);
    let second = cluster.spec("node2", &[cluster.node(0).addr()]);
    cluster.start(second);
    cluster.wait_for_peers(1);

    let holds = |ip: &str| server.banmesh_jail().split_whitespace().any(|s| s == ip);
    cluster.node(1).call(&["ban", "10.55.0.1", "--for", "1h"]);
    cluster.node(1).call(&["ban", "10.55.0.2", "--for", "1h"]);
    let landed = wait_until(SOON, || holds("10.55.0.1") && holds("10.55.0.2"));
    assert!(landed, "node2's bans are not in node1's banmesh jail: {}", server.banmesh_jail());

    cluster.node(1).call(&["unban", "10.55.0.1"]);
    let lifted = wait_until(SOON, || !holds("10.55.0.1"));
    assert!(lifted, "an unbanned address stayed in the jail: {}", server.banmesh_jail());
    cluster.node(1).call(&["allow", "10.55.0.0/24", "--for", "1h"]);
    let allowed = wait_until(SOON, || !holds("10.55.0.2"));
    assert!(allowed, "an allowed address stayed in the jail: {}", server.banmesh_jail());
    // An address another jail's ignoreip covers is never put in the jail
    // (a manual banip would ignore ignoreip), though the mesh bans it.
    cluster.node(1).call(&["ban", "10.57.0.5", "--for", "1h"]);
    assert!(
        wait_until(SOON, || cluster.node(0).is_banned("10.57.0.5")),
        "the ban did not reach node1"
    );
    let kept_out = common::holds_for(Duration::from_secs(3), || !holds("10.57.0.5"));
    assert!(kept_out, "an ignoreip address was banned: {}", server.banmesh_jail());
    let status = cluster.node(0).status();
    assert!(!status["warnings"].to_string().contains("fail2ban:"), "{}", status["warnings"]);
}

#[test]
fn fail2ban_unreachable_is_reported_in_status_and_the_node_keeps_running() {
    let mut cluster = TestCluster::new();
    let missing = cluster.path("no-fail2ban-here");
    let config = applying_config(&cluster.path("apply.toml"), &missing, "interval = \"1s\"\n");
    cluster.start_star(1, Some(&config));
    let reported =
        wait_until(SOON, || cluster.node(0).status()["warnings"].to_string().contains("fail2ban:"));
    assert!(
        reported,
        "status does not report the failing Fail2Ban: {}",
        cluster.node(0).status()["warnings"]
    );
    cluster.node(0).call(&["ban", "10.56.0.1"]);
    assert!(cluster.node(0).is_banned("10.56.0.1"), "the node stopped working");
}

#[test]
fn fail2ban_errors_name_the_cause_in_status_and_the_node_keeps_running() {
    let mut cluster = TestCluster::new();
    let server = Fail2BanServer::start(&cluster.path("fail2ban"));
    let config = applying_config(&cluster.path("apply.toml"), &server.dir, "interval = \"1s\"\n");
    cluster.start_star(1, Some(&config));
    let node = cluster.node(0);
    let warnings = || node.status()["warnings"].to_string();
    cluster.node(0).call(&["ban", "10.58.0.1", "--for", "1h"]);
    assert!(wait_until(SOON, || server.holds("banmesh", "10.58.0.1")), "{}", server.banmesh_jail());

    // The jail edited away: the error names the file to install.
    assert!(server.client(&["stop", "banmesh"]).status.success(), "cannot stop the jail");
    let named = wait_until(SOON, || warnings().contains("jail.d/banmesh.conf"));
    assert!(named, "status does not name the missing jail: {}", warnings());
    // Fail2Ban down: the socket is gone.
    server.stop();
    let down = wait_until(SOON, || warnings().contains("is fail2ban-server running?"));
    assert!(down, "status does not say Fail2Ban is down: {}", warnings());
    node.call(&["ban", "10.58.0.2", "--for", "1h"]);
    assert!(node.is_banned("10.58.0.2"), "the node stopped working");
    // Back up: the error clears and the jail is brought in line.
    server.launch();
    let healed = wait_until(SOON * 2, || {
        server.holds("banmesh", "10.58.0.2") && !warnings().contains("fail2ban:")
    });
    assert!(healed, "not repaired: jail {}, warnings {}", server.banmesh_jail(), warnings());
}

#[test]
fn fail2ban_observe_only_node_keeps_the_banmesh_jail_empty() {
    let mut cluster = TestCluster::new();
    let server = Fail2BanServer::start(&cluster.path("fail2ban"));
    let config = applying_config(
        &cluster.path("observe.toml"),
        &server.dir,
        "interval = \"1s\"\n[safety]\nenforce = false\n",
    );
    assert!(server.client(&["set", "banmesh", "banip", "10.59.0.9"]).status.success());
    cluster.start_star(1, Some(&config));
    let node = cluster.node(0);
    node.call(&["ban", "10.59.0.1", "--for", "1h"]);
    let emptied = wait_until(SOON, || !server.holds("banmesh", "10.59.0.9"));
    assert!(
        emptied,
        "an observe-only node left its banmesh jail as it was: {}",
        server.banmesh_jail()
    );
    let kept_out =
        common::holds_for(Duration::from_secs(3), || !server.holds("banmesh", "10.59.0.1"));
    assert!(kept_out, "an observe-only node applied a ban: {}", server.banmesh_jail());
    assert!(node.is_banned("10.59.0.1"), "the record is still kept and decided");
}

#[test]
fn fail2ban_jail_filters_choose_what_is_published_and_applied() {
    let mut cluster = TestCluster::new();
    let server = Fail2BanServer::start(&cluster.path("fail2ban"));
    let applying = applying_config(
        &cluster.path("apply.toml"),
        &server.dir,
        "interval = \"1h\"\napply_jails = [\"nginx\"]\n",
    );
    let publishing = cluster.path("publish.toml");
    std::fs::write(&publishing, "[fail2ban]\npublish_jails = [\"sshd\"]\n").expect("config");
    let mut first = cluster.spec("node1", &[]);
    first.config = Some(applying);
    cluster.start(first);
    let mut second = cluster.spec("node2", &[cluster.node(0).addr()]);
    second.config = Some(publishing);
    cluster.start(second);
    cluster.wait_for_peers(1);

    // node2 publishes only its sshd jail's bans.
    let socket = cluster.node(1).socket.clone();
    let tags = |ip: &'static str, jail: &'static str| {
        ["--ip", ip, "--jail", jail, "--bantime", "3600", "--failures", "3"]
    };
    let (ok, text) = action(&socket, "ban", &tags("10.60.0.1", "sshd"));
    assert!(ok && text.contains("published"), "{text}");
    let (ok, text) = action(&socket, "ban", &tags("10.60.0.2", "nginx"));
    assert!(ok && text.contains("publish_jails"), "{text}");
    assert!(cluster.node(1).records_on("10.60.0.2").is_empty(), "an unlisted jail was published");

    // node1 applies only nginx's bans and bans that name no jail. Its
    // interval is an hour: rounds follow the changes in its index.
    cluster.node(1).call(&["ban", "10.60.0.3", "--for", "1h", "--jail", "nginx"]);
    cluster.node(1).call(&["ban", "10.60.0.4", "--for", "1h"]);
    let applied = wait_until(SOON, || {
        server.holds("banmesh", "10.60.0.3") && server.holds("banmesh", "10.60.0.4")
    });
    assert!(applied, "nginx's and the operator's bans were not applied: {}", server.banmesh_jail());
    let reached = wait_until(SOON, || cluster.node(0).is_banned("10.60.0.1"));
    assert!(reached, "the sshd ban did not reach node1");
    let kept_out =
        common::holds_for(Duration::from_secs(3), || !server.holds("banmesh", "10.60.0.1"));
    assert!(
        kept_out,
        "a ban from a jail not in apply_jails was applied: {}",
        server.banmesh_jail()
    );
}

#[test]
fn fail2ban_a_jail_reconcile_refuses_is_reported_and_mesh_bans_still_apply() {
    let mut cluster = TestCluster::new();
    let dir = cluster.path("fail2ban");
    let server = Fail2BanServer::start(&dir);
    // A hand-edited jail whose name the node refuses to put in a record.
    let mut local = std::fs::read_to_string(dir.join("jail.local")).expect("jail.local");
    local.push_str(
        "\n[odd!jail]\nenabled = true\nfilter =\nlogpath = /dev/null\nbackend = polling\n",
    );
    std::fs::write(dir.join("jail.local"), local).expect("jail.local");
    assert!(server.client(&["reload"]).status.success(), "reload");
    assert!(server.client(&["set", "odd!jail", "banip", "10.61.0.1"]).status.success());
    // Rounds an hour apart: a healthy applier still applies a ban at once
    // (a commit starts a round); one that failed backs off for the hour.
    let config = applying_config(&cluster.path("apply.toml"), &server.dir, "interval = \"1h\"\n");
    cluster.start_star(1, Some(&config));
    let node = cluster.node(0);
    let warnings = || node.status()["warnings"].to_string();
    let reported = wait_until(SOON, || warnings().contains("invalid jail name"));
    assert!(reported, "status does not name the refused jail: {}", warnings());
    assert!(node.records_on("10.61.0.1").is_empty(), "an odd jail name was published");
    // The refusal is confined to that jail: mesh bans apply on the commit.
    node.call(&["ban", "10.61.0.2", "--for", "1h"]);
    let applied = wait_until(SOON, || server.holds("banmesh", "10.61.0.2"));
    assert!(applied, "the applier is backing off: {}", server.banmesh_jail());
}

#[test]
fn fail2ban_a_negative_bantime_other_than_minus_one_is_refused() {
    let cluster = TestCluster::star(1);
    let node = cluster.node(0);
    let tags = ["--ip", "203.0.113.30", "--jail", "sshd", "--bantime", "-99"];
    let (ok, text) = action(&node.socket, "ban", &tags);
    assert!(!ok && text.contains("invalid bantime -99"), "{text}");
    // The node refuses it too, whoever speaks the control protocol.
    let command = banmesh_node::control::Command::Fail2BanBan {
        ip: "203.0.113.30".into(),
        jail: "sshd".into(),
        bantime_s: -99,
        failures: 3,
        bancount: 1,
        restored: false,
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let answer = runtime.block_on(banmesh_node::control::call(&node.socket, command));
    assert!(
        matches!(&answer, Ok(banmesh_node::control::Response::Error { message }) if message.contains("invalid bantime")),
        "{answer:?}"
    );
    assert!(node.records_on("203.0.113.30").is_empty(), "a negative bantime was published");
    // -1 is a ban without end.
    let tags = ["--ip", "203.0.113.31", "--jail", "sshd", "--bantime", "-1"];
    let (ok, text) = action(&node.socket, "ban", &tags);
    assert!(ok && text.contains("published"), "{text}");
}

#[test]
fn fail2ban_entries_fail2ban_does_not_take_are_reported_not_counted() {
    let mut cluster = TestCluster::new();
    let server = Fail2BanServer::start(&cluster.path("fail2ban"));
    // A jail edited to bantime 0: Fail2Ban drops every ban handed to it as
    // already expired, and says so only in its log.
    assert!(server.client(&["set", "banmesh", "bantime", "0"]).status.success());
    let config = applying_config(&cluster.path("apply.toml"), &server.dir, "interval = \"1s\"\n");
    cluster.start_star(1, Some(&config));
    let node = cluster.node(0);
    node.call(&["ban", "10.64.0.1", "--for", "1h"]);
    let mut status = serde_json::Value::Null;
    let reported = wait_until(SOON, || {
        status = node.status();
        let warnings = status["warnings"].to_string();
        warnings.contains("Fail2Ban did not take") && warnings.contains("10.64.0.1")
    });
    assert!(reported, "status does not report the entry Fail2Ban dropped: {}", status["warnings"]);
    assert_eq!(status["fail2ban"]["applied"], 0, "a dropped entry was counted: {status}");
    assert!(!server.holds("banmesh", "10.64.0.1"), "{}", server.banmesh_jail());
}
