//! Fail2Ban across a mesh, for real: three `banmesh` nodes, each with its
//! own `fail2ban-server` (private dir and socket, `sshd` and `sshd-short`
//! jails reading logs the test writes, `banaction = dummy`, the shipped
//! banmesh action and `[banmesh]` jail) and `[fail2ban] apply = true`,
//! the applier's other settings left at their defaults.
//! Needs Debian's `fail2ban` (scripts/test.sh installs it).

mod common;

use std::time::Duration;

use common::fail2ban::{Fail2BanServer, applying_config};
use common::{SOON, TestCluster, holds_for, wait_until};

/// Three hosts a, b, c: nodes in a star around a, each with its Fail2Ban;
/// b's `sshd` also ignores `ignore_on_b`; `settings` go in each node's
/// `[fail2ban]` section.
struct Hosts {
    /// Declared first, so dropped first: the servers are stopped while
    /// their config dirs (inside the cluster's directory) still exist.
    f2b: Vec<Fail2BanServer>,
    cluster: TestCluster,
}

fn three_hosts(ignore_on_b: &str, settings: &str) -> Hosts {
    let mut cluster = TestCluster::new();
    let mut f2b = Vec::new();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let dir = cluster.path(&format!("f2b-{name}"));
        let socket = cluster.path(&format!("{name}.sock"));
        let ignore = if i == 1 { ignore_on_b } else { "" };
        let server = Fail2BanServer::start_publishing(&dir, &socket, ignore);
        let config = applying_config(&cluster.path(&format!("{name}.toml")), &server.dir, settings);
        f2b.push(server);
        let peers: Vec<String> = cluster.nodes.first().map(|a| vec![a.addr()]).unwrap_or_default();
        let mut spec = cluster.spec(name, &peers);
        spec.config = Some(config);
        let index = cluster.start(spec);
        assert_eq!(cluster.node(index).socket, socket, "the action points at the node");
    }
    cluster.wait_for_peers(2);
    Hosts { f2b, cluster }
}

/// Waits until `condition` holds, or fails saying `what`, with `detail`.
fn eventually(what: &str, mut condition: impl FnMut() -> bool, detail: impl Fn() -> String) {
    assert!(wait_until(SOON * 2, &mut condition), "{what}: {}", detail());
}

#[test]
fn fail2ban_mesh_a_local_ban_reaches_every_host_an_allow_lifts_it_and_b_is_repaired() {
    let hosts = three_hosts("192.0.2.77", "");
    let (a, b, c) = (&hosts.f2b[0], &hosts.f2b[1], &hosts.f2b[2]);
    let node = |i: usize| hosts.cluster.node(i);

    // Failed logins on a: a's sshd bans, the action publishes, b and c apply.
    a.fail_logins("auth.log", "192.0.2.10", 3);
    eventually(
        "a's sshd did not ban",
        || a.holds("sshd", "192.0.2.10"),
        || a.jail("sshd").join(" "),
    );
    for (host, name) in [(b, "b"), (c, "c")] {
        eventually(
            &format!("the ban did not reach {name}'s banmesh jail"),
            || host.holds("banmesh", "192.0.2.10"),
            || host.banmesh_jail(),
        );
    }
    let record = &node(1).records_on("192.0.2.10")[0];
    assert_eq!(
        (record["jail"].as_str(), record["source"].as_str()),
        (Some("sshd"), Some("fail2ban"))
    );
    let never_ban = node(1).status()["never_ban"].to_string();
    assert!(
        never_ban.contains("127.0.0.1"),
        "peers' addresses are not in b's never-ban list: {never_ban}"
    );

    // An address b's ignoreip covers is banned on c, never on b.
    a.fail_logins("auth.log", "192.0.2.77", 3);
    eventually("c did not apply", || c.holds("banmesh", "192.0.2.77"), || c.banmesh_jail());
    eventually(
        "the ban did not reach b's node",
        || !node(1).records_on("192.0.2.77").is_empty(),
        || node(1).trace("192.0.2.77").to_string(),
    );
    let kept_out = holds_for(Duration::from_secs(3), || !b.holds("banmesh", "192.0.2.77"));
    assert!(kept_out, "b banned an address its ignoreip covers: {}", b.banmesh_jail());

    // An allow issued on c lifts the ban on a (its sshd jail), b and c.
    node(2).call(&["allow", "192.0.2.10", "--for", "1h"]);
    eventually("a's sshd kept it", || !a.holds("sshd", "192.0.2.10"), || a.jail("sshd").join(" "));
    eventually("b kept it", || !b.holds("banmesh", "192.0.2.10"), || b.banmesh_jail());
    eventually("c kept it", || !c.holds("banmesh", "192.0.2.10"), || c.banmesh_jail());
    let unbans: Vec<_> =
        node(0).records_on("192.0.2.10").into_iter().filter(|r| r["kind"] == "unban").collect();
    assert!(unbans.is_empty(), "lifting an allowed address published an unban: {unbans:?}");

    // Drift on b: an entry added by hand leaves, a ban the mesh lifted while
    // b's Fail2Ban was down (and that it restored) leaves, and bans lost
    // with Fail2Ban's database come back.
    node(0).call(&["ban", "198.51.100.5", "--for", "1h"]);
    node(0).call(&["ban", "198.51.100.6", "--for", "1h"]);
    eventually(
        "b did not apply",
        || b.holds("banmesh", "198.51.100.5") && b.holds("banmesh", "198.51.100.6"),
        || b.banmesh_jail(),
    );
    assert!(b.client(&["set", "banmesh", "banip", "203.0.113.99"]).status.success());
    eventually(
        "a hand-added entry stayed",
        || !b.holds("banmesh", "203.0.113.99"),
        || b.banmesh_jail(),
    );
    b.stop();
    node(0).call(&["unban", "198.51.100.6"]);
    b.launch();
    eventually(
        "b's restored jail was not brought in line",
        || b.holds("banmesh", "198.51.100.5") && !b.holds("banmesh", "198.51.100.6"),
        || b.banmesh_jail(),
    );
    b.stop();
    std::fs::remove_file(b.dir.join("f2b.sqlite3")).expect("remove b's Fail2Ban database");
    b.launch();
    eventually(
        "b's lost ban did not come back",
        || b.holds("banmesh", "198.51.100.5") && !b.holds("banmesh", "192.0.2.77"),
        || b.banmesh_jail(),
    );
    let status = node(1).status();
    assert!(!status["warnings"].to_string().contains("fail2ban:"), "{}", status["warnings"]);
}

#[test]
fn fail2ban_mesh_short_bans_expire_everywhere_and_missed_bans_are_published() {
    // Rounds an hour apart: a ban ends on b and c through the round the
    // applier schedules at its end (or none), never a periodic one.
    let mut hosts = three_hosts("", "interval = \"1h\"\n");
    // A 20 s ban on a reaches b and c.
    hosts.f2b[0].fail_logins("short.log", "192.0.2.20", 3);
    for (i, name) in [(1, "b"), (2, "c")] {
        let host = &hosts.f2b[i];
        eventually(
            &format!("the short ban did not reach {name}"),
            || host.holds("banmesh", "192.0.2.20"),
            || host.banmesh_jail(),
        );
    }
    let record = hosts.cluster.node(1).records_on("192.0.2.20")[0].clone();
    let expires = record["expires_at_ms"].as_u64().expect("expiry");
    let ttl = expires - record["issued_at_ms"].as_u64().expect("issued");
    assert_eq!(ttl, 20_000, "the ban keeps Fail2Ban's bantime");

    // Meanwhile a's node stops; Fail2Ban bans without it; restarted, the
    // node publishes the missed ban, sized from the time left.
    hosts.cluster.node_mut(0).stop();
    hosts.f2b[0].fail_logins("auth.log", "192.0.2.30", 3);
    let a = &hosts.f2b[0];
    eventually(
        "a's sshd did not ban",
        || a.holds("sshd", "192.0.2.30"),
        || a.jail("sshd").join(" "),
    );
    hosts.cluster.node_mut(0).restart();
    let b = &hosts.f2b[1];
    eventually(
        "the missed ban did not reach b",
        || b.holds("banmesh", "192.0.2.30"),
        || b.banmesh_jail(),
    );
    let missed = &hosts.cluster.node(1).records_on("192.0.2.30")[0];
    let left = missed["expires_at_ms"].as_u64().unwrap_or(0)
        - missed["issued_at_ms"].as_u64().unwrap_or(0);
    assert!((3_000_000..=3_600_000).contains(&left), "sized from the time left: {left} ms");
    assert_eq!(missed["jail"], "sshd");
    // Counted when a's round ends, which may be after b has the ban.
    let published = || hosts.cluster.node(0).status()["fail2ban"]["published"].as_u64();
    eventually(
        "status does not count the missed ban",
        || published() >= Some(1),
        || format!("{:?}", published()),
    );

    // The short ban ends on all three, not before its expiry (Fail2Ban's
    // own on a may end a little earlier: the record was issued after it),
    // and soon after it: with rounds an hour apart, only the round at the
    // ban's end lifts it. (Each check runs fail2ban-client, slow on a
    // loaded machine: `gone_at` is when a check saw it gone, which is late
    // by up to a few checks; hence SOON, not a few seconds.)
    let jails = [(0, "sshd-short"), (1, "banmesh"), (2, "banmesh")];
    let mut gone_at: [Option<u64>; 3] = [None; 3];
    let ended = wait_until(SOON * 2, || {
        for (i, jail) in jails {
            if gone_at[i].is_none() && !hosts.f2b[i].holds(jail, "192.0.2.20") {
                gone_at[i] = Some(common::now_ms());
            }
        }
        gone_at.iter().all(Option::is_some)
    });
    assert!(ended, "the expired ban stayed somewhere: {gone_at:?} (expiry {expires})");
    let soon_ms = u64::try_from(SOON.as_millis()).unwrap_or(u64::MAX);
    for (i, at) in gone_at.iter().enumerate() {
        let at = at.unwrap_or(0);
        assert!(at + 2_000 >= expires, "host {i} lifted the ban {} ms early", expires - at);
        let late = at.saturating_sub(expires);
        assert!(late < soon_ms, "host {i} lifted the ban {late} ms late, not at its end");
    }
}
