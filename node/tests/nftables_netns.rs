//! The nftables backend against the real kernel: a node in namespace A
//! with `[enforce] backends = ["nftables"]`, plain hosts (no banmesh node,
//! so no peer and not in the never-ban list) connecting over TCP to a port
//! listening in A. Bans hold real packets, with their timeouts in the set;
//! an allowed address inside a banned network still gets through; a
//! flushed ruleset is back within one reconcile period; the table stays
//! when the node stops. Needs root, iproute2, nftables and python3.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::netns::{Host, Net};
use common::{SOON, TestCluster, holds_for, wait_until};

/// The port the listener in A takes.
const PORT: u16 = 8080;

/// A TCP listener in a namespace, accepting and closing forever; killed
/// (by its own pid) on drop.
struct Listener(Child);

impl Listener {
    fn start(host: &Host) -> Listener {
        let script = format!(
            "import socket\n\
             s = socket.socket(socket.AF_INET6)\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('::', {PORT}))\n\
             s.listen(64)\n\
             while True:\n    c, _ = s.accept()\n    c.close()\n"
        );
        let child = host
            .command("python3")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .expect("start python3 in the namespace (apt-get install python3)");
        Listener(child)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `from` completes a TCP connect to `to`:PORT within a second.
fn reaches(from: &Host, to: &str) -> bool {
    let script = "import socket, sys\n\
                  socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()\n";
    from.command("python3")
        .args(["-c", script, to, &PORT.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `nft ARGS` in `host`'s namespace: its output, or `Err` with its errors.
fn nft(host: &Host, args: &[&str]) -> Result<String, String> {
    let output = host.command("nft").args(args).output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `nft list set inet banmesh SET` in `host`, or the error.
fn list(host: &Host, set: &str) -> String {
    nft(host, &["list", "set", "inet", "banmesh", set]).unwrap_or_else(|e| e)
}

/// The timeout `element` was added with, as `nft list set` prints it.
fn timeout_of(listing: &str, element: &str) -> Option<String> {
    let rest = listing.split(&format!("{element} timeout ")).nth(1)?;
    rest.split_whitespace().next().map(str::to_owned)
}

/// A config with the nftables backend alone, reconciling every second.
fn config(cluster: &TestCluster, name: &str, extra: &str) -> PathBuf {
    let path = cluster.path(name);
    let text =
        format!("[enforce]\nbackends = [\"nftables\"]\n[nftables]\nreconcile = \"1s\"\n{extra}");
    fs::write(&path, text).expect("write config");
    path
}

fn require_nft() {
    let found = Command::new("nft").arg("--version").stdout(Stdio::null()).status().is_ok();
    assert!(found, "`nft` not found: apt-get install nftables (.ci/run installs it)");
}

#[test]
fn netns_nftables_bans_drop_real_traffic_allows_pass_and_a_flush_is_repaired() {
    require_nft();
    let net = Net::new(4);
    let (a, b, c, d) = (net.host(0), net.host(1), net.host(2), net.host(3));
    let mut cluster = TestCluster::new();
    let mut spec = cluster.spec("node1", &[]);
    spec.config = Some(config(&cluster, "nft.toml", ""));
    let node = cluster.start_on(a, spec);
    let _listener = Listener::start(a);
    let (a4, a6) = (a.ip4.to_string(), a.ip6.to_string());
    assert!(wait_until(SOON, || reaches(b, &a4) && reaches(b, &a6)), "B cannot reach A at all");
    assert!(wait_until(SOON, || nft(a, &["list", "table", "inet", "banmesh"]).is_ok()));

    let node = cluster.node(node);
    node.call(&["ban", &b.ip4.to_string(), "--for", "1h"]);
    node.call(&["ban", &b.ip6.to_string(), "--for", "30m"]);
    assert!(wait_until(SOON, || !reaches(b, &a4)), "B still reaches A over IPv4 once banned");
    assert!(wait_until(SOON, || !reaches(b, &a6)), "B still reaches A over IPv6 once banned");
    let ban4 = nft(a, &["list", "set", "inet", "banmesh", "ban4"]).unwrap();
    assert!(ban4.contains(&format!("{} timeout 1h", b.ip4)), "{ban4}");
    assert!(ban4.contains("expires"), "{ban4}");
    let ban6 = nft(a, &["list", "set", "inet", "banmesh", "ban6"]).unwrap();
    assert!(ban6.contains(&format!("{} timeout 30m", b.ip6)), "{ban6}");
    // A longer ban re-asserts the element's timeout.
    node.call(&["ban", &b.ip4.to_string(), "--for", "3h"]);
    let renewed = wait_until(SOON, || {
        let ban4 = nft(a, &["list", "set", "inet", "banmesh", "ban4"]).unwrap_or_default();
        ban4.contains(&format!("{} timeout 3h", b.ip4))
    });
    assert!(renewed, "{}", nft(a, &["list", "set", "inet", "banmesh", "ban4"]).unwrap());

    // A network with an allowed address inside: the rest of it is dropped.
    node.call(&["allow", &c.ip4.to_string(), "--for", "1h"]);
    node.call(&["ban", "10.77.0.0/28", "--for", "1h"]);
    assert!(wait_until(SOON, || !reaches(d, &a4)), "D in the banned network still reaches A");
    assert!(reaches(c, &a4), "C, allowed inside the banned network, is dropped");
    let net4 = nft(a, &["list", "set", "inet", "banmesh", "net4"]).unwrap();
    assert!(net4.contains("10.77.0.8/29"), "prefixes kept: {net4}");
    let allow4 = nft(a, &["list", "set", "inet", "banmesh", "allow4"]).unwrap();
    assert!(allow4.contains(&c.ip4.to_string()), "{allow4}");

    // A wider network replaces the one inside it.
    node.call(&["ban", "10.78.1.0/28", "--for", "1h"]);
    assert!(wait_until(SOON, || list(a, "net4").contains("10.78.1.0/28")), "{}", list(a, "net4"));
    node.call(&["ban", "10.78.0.0/16", "--for", "1h"]);
    let widened = wait_until(SOON, || {
        let net4 = list(a, "net4");
        net4.contains("10.78.0.0/16") && !net4.contains("10.78.1.0/28")
    });
    assert!(widened, "{}", list(a, "net4"));
    // An element put there by hand makes a batch fail (an overlap): the
    // full reconcile that follows removes it and the ban goes in.
    nft(a, &["add", "element", "inet", "banmesh", "net4", "{ 10.99.0.0/16 }"]).unwrap();
    node.call(&["ban", "10.99.1.0/24", "--for", "1h"]);
    let repaired = wait_until(SOON, || {
        let net4 = list(a, "net4");
        net4.contains("10.99.1.0/24") && !net4.contains("10.99.0.0/16")
    });
    assert!(repaired, "{}\n{}", list(a, "net4"), node.status()["nftables"]);

    // The counters, in status.
    let dropped = wait_until(SOON, || {
        let sets = node.status()["nftables"]["sets"].clone();
        let ban4 = sets.as_array().into_iter().flatten().find(|s| s["name"] == "ban4").cloned();
        ban4.is_some_and(|s| s["elements"].as_u64() >= Some(1) && s["packets"].as_u64() > Some(0))
    });
    assert!(dropped, "status shows no drops: {}", node.status()["nftables"]);
    assert!(node.status()["nftables"]["last_reconcile_ms"].as_u64().is_some());

    // Someone flushes the ruleset: within a reconcile period it is back.
    nft(a, &["flush", "ruleset"]).unwrap();
    assert!(wait_until(SOON, || !reaches(b, &a4) && !reaches(d, &a4)), "not repaired");
    let ban4 = nft(a, &["list", "set", "inet", "banmesh", "ban4"]).unwrap();
    assert!(ban4.contains(&b.ip4.to_string()), "{ban4}");
    assert!(reaches(c, &a4), "C is dropped after the repair");

    // Stopped, the node leaves the table: bans hold across restarts; the
    // next start reconciles it, never flushes it.
    cluster.node_mut(0).stop();
    assert!(!reaches(b, &a4), "B reaches A once the node stopped");
    assert!(list(a, "ban4").contains(&b.ip4.to_string()), "{}", list(a, "ban4"));
    let held = timeout_of(&list(a, "ban4"), &b.ip4.to_string());
    assert!(held.is_some(), "{}", list(a, "ban4"));
    let made = |log: String| log.matches("nftables table made").count();
    let made_before = made(cluster.node(0).log_text());
    cluster.node_mut(0).restart();
    let node = cluster.node(0);
    assert!(wait_until(SOON, || node.status()["nftables"]["last_reconcile_ms"].is_u64()));
    assert!(!reaches(b, &a4), "B reaches A after the restart");
    assert!(reaches(c, &a4), "C is dropped after the restart");
    // Not added again: the element keeps the timeout it was given.
    assert_eq!(timeout_of(&list(a, "ban4"), &b.ip4.to_string()), held, "{}", list(a, "ban4"));
    assert_eq!(made(node.log_text()), made_before, "the table was made again");
}

#[test]
fn netns_nftables_missing_nft_or_no_cap_net_admin_is_reported_and_the_node_keeps_running() {
    require_nft();
    let net = Net::new(2);
    let mut cluster = TestCluster::new();
    // nft run without CAP_NET_ADMIN, as a node not run as root would.
    let wrapper = cluster.path("nft-without-cap");
    fs::write(&wrapper, "#!/bin/sh\nexec setpriv --bounding-set -net_admin nft \"$@\"\n").unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let cases = [
        ("nft = \"/nonexistent/nft\"\n".to_owned(), "cannot run /nonexistent/nft"),
        (format!("nft = {:?}\n", wrapper.display().to_string()), "CAP_NET_ADMIN"),
    ];
    for (i, (extra, _)) in cases.iter().enumerate() {
        let mut spec = cluster.spec(&format!("node{}", i + 1), &[]);
        spec.config = Some(config(&cluster, &format!("nft{i}.toml"), extra));
        cluster.start_on(net.host(i), spec);
    }
    for (i, (_, said)) in cases.iter().enumerate() {
        let node = cluster.node(i);
        let reported = wait_until(SOON, || {
            let status = node.status();
            status["warnings"].to_string().contains(said)
                && status["nftables"]["last_error"].is_string()
        });
        assert!(reported, "no clear error: {}", node.status());
        node.call(&["ban", "192.0.2.1", "--for", "1h"]);
        assert!(node.is_banned("192.0.2.1"), "the node stopped working");
        assert!(node.log_text().contains(said), "{}", node.log_tail());
    }
    assert!(nft(net.host(1), &["list", "table", "inet", "banmesh"]).is_err());
}

#[test]
fn netns_nftables_remove_on_stop_deletes_the_table() {
    require_nft();
    let net = Net::new(1);
    let mut cluster = TestCluster::new();
    let mut spec = cluster.spec("node1", &[]);
    spec.config =
        Some(config(&cluster, "nft.toml", "remove_on_stop = true\ntable = \"bm_test\"\n"));
    cluster.start_on(net.host(0), spec);
    cluster.node(0).call(&["ban", "192.0.2.9", "--for", "1h"]);
    let held = wait_until(SOON, || {
        nft(net.host(0), &["list", "set", "inet", "bm_test", "ban4"])
            .is_ok_and(|l| l.contains("192.0.2.9"))
    });
    assert!(held, "the ban never reached the table");
    cluster.node_mut(0).stop();
    let gone = nft(net.host(0), &["list", "table", "inet", "bm_test"]);
    assert!(gone.is_err(), "the table stayed: {gone:?}");
}

/// The elements of `set` in `host`'s banmesh table.
fn count(host: &Host, set: &str) -> usize {
    let listing = list(host, set);
    let Some(elements) = listing.split("elements = {").nth(1) else { return 0 };
    elements.split('}').next().unwrap_or("").split(',').filter(|e| !e.trim().is_empty()).count()
}

#[test]
fn netns_nftables_an_element_deleted_by_hand_is_a_local_pardon_until_the_ban_changes() {
    require_nft();
    let net = Net::new(2);
    let (a, b) = (net.host(0), net.host(1));
    let mut cluster = TestCluster::new();
    let mut spec = cluster.spec("node1", &[]);
    spec.config = Some(config(&cluster, "nft.toml", ""));
    let node = cluster.start_on(a, spec);
    let node = cluster.node(node);
    let _listener = Listener::start(a);
    let (a4, b4) = (a.ip4.to_string(), b.ip4.to_string());
    node.call(&["ban", &b4, "--for", "1h"]);
    node.call(&["ban", "10.80.0.0/24", "--for", "1h"]);
    node.call(&["ban", "192.0.2.80", "--for", "1h"]);
    assert!(wait_until(SOON, || !reaches(b, &a4)), "B still reaches A once banned");
    assert!(wait_until(SOON, || list(a, "net4").contains("10.80.0.0/24")), "{}", list(a, "net4"));
    let enforced = node.trace(&b4)["enforced"].to_string();
    assert!(enforced.contains("holds") && enforced.contains("ban4"), "{enforced}");

    // The operator deletes B's element and the network: pardoned, not
    // added back by the reconciles that follow, never published.
    nft(a, &["delete", "element", "inet", "banmesh", "ban4", &format!("{{ {b4} }}")]).unwrap();
    nft(a, &["delete", "element", "inet", "banmesh", "net4", "{ 10.80.0.0/24 }"]).unwrap();
    let pardoned = || node.status()["nftables"]["pardoned"].as_u64();
    assert!(wait_until(SOON, || pardoned() == Some(2)), "{}", node.status()["nftables"]);
    let out = || !list(a, "ban4").contains(&b4) && !list(a, "net4").contains("10.80.0.0/24");
    assert!(holds_for(Duration::from_secs(3), out), "{}{}", list(a, "ban4"), list(a, "net4"));
    assert!(reaches(b, &a4), "B, pardoned here, is still dropped");
    assert!(list(a, "ban4").contains("192.0.2.80"), "another ban went: {}", list(a, "ban4"));
    let enforced = node.trace(&b4)["enforced"].to_string();
    assert!(enforced.contains("pardoned") && enforced.contains("no set"), "{enforced}");
    assert_eq!(node.records_on(&b4).len(), 1, "the pardon reached the records");
    assert!(node.log_text().contains("pardoned on this host"), "{}", node.log_tail());

    // A flushed ruleset is made again, the pardons still standing.
    nft(a, &["flush", "ruleset"]).unwrap();
    assert!(wait_until(SOON, || list(a, "ban4").contains("192.0.2.80")), "not repaired");
    assert!(!list(a, "ban4").contains(&b4), "a flush undid the pardon: {}", list(a, "ban4"));

    // A new ban on B (a later end): enforced again, its pardon gone.
    node.call(&["ban", &b4, "--for", "2h"]);
    assert!(wait_until(SOON, || list(a, "ban4").contains(&b4)), "{}", list(a, "ban4"));
    assert!(wait_until(SOON, || pardoned() == Some(1)), "{}", node.status()["nftables"]);
    assert!(!reaches(b, &a4), "B reaches A after a new ban");
}

#[test]
fn netns_nftables_a_table_of_the_same_name_made_by_someone_else_is_left_alone() {
    require_nft();
    let net = Net::new(1);
    let a = net.host(0);
    nft(a, &["add", "table", "inet", "banmesh"]).unwrap();
    nft(a, &["add", "set", "inet", "banmesh", "theirs", "{ type ipv4_addr; }"]).unwrap();
    let mut cluster = TestCluster::new();
    let mut spec = cluster.spec("node1", &[]);
    spec.config = Some(config(&cluster, "nft.toml", ""));
    cluster.start_on(a, spec);
    let node = cluster.node(0);
    let said = "was not made by banmesh";
    let reported = wait_until(SOON, || {
        let status = node.status();
        status["warnings"].to_string().contains(said)
            && status["nftables"]["last_error"].to_string().contains(said)
    });
    assert!(reported, "no clear error: {}", node.status());
    assert!(node.log_text().contains(said), "{}", node.log_tail());
    node.call(&["ban", "192.0.2.1", "--for", "1h"]);
    assert!(node.is_banned("192.0.2.1"), "the node stopped working");
    let table = nft(a, &["list", "table", "inet", "banmesh"]).unwrap();
    assert!(table.contains("set theirs") && !table.contains("ban4"), "touched: {table}");
    // Once the other table is gone, banmesh makes its own, nothing lost.
    nft(a, &["delete", "table", "inet", "banmesh"]).unwrap();
    assert!(wait_until(SOON, || list(a, "ban4").contains("192.0.2.1")), "{}", list(a, "ban4"));
    assert!(wait_until(SOON, || node.status()["nftables"]["last_error"].is_null()));
}

#[test]
fn netns_nftables_a_node_killed_mid_update_converges_and_the_kernel_held_meanwhile() {
    require_nft();
    const BANS: usize = 20_000;
    let net = Net::new(1);
    let a = net.host(0);
    let mut cluster = TestCluster::new();
    let mut spec = cluster.spec("node1", &[]);
    // Small transactions: the update takes many of them, and a kill lands
    // in the middle.
    spec.config = Some(config(&cluster, "nft.toml", "batch = 20\n"));
    cluster.start_on(a, spec);
    common::issue_bans(&cluster.node(0).socket, BANS);
    assert!(wait_until(SOON, || count(a, "ban4") > 0), "no ban reached the kernel");
    cluster.node_mut(0).kill();
    let held = count(a, "ban4");
    assert!(held > 0, "the kernel dropped the bans when the node died");
    eprintln!("the kernel held {held} of {BANS} bans when the node was killed");
    // Still held a while later, with the node down.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(a, "ban4"), held, "the kernel's bans changed with the node down");
    cluster.node_mut(0).restart();
    let node = cluster.node(0);
    let converged = wait_until(SOON * 3, || count(a, "ban4") == BANS);
    assert!(
        converged,
        "{} of {BANS} after the restart (held {held} at the kill)",
        count(a, "ban4")
    );
    assert_eq!(node.status()["record_counts"]["ban"], BANS as u64, "{}", node.status());
}
