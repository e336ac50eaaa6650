//! Tokens reload on SIGHUP: a new token works, a removed one gets 401, a
//! broken seed file keeps the tokens in force (and status says so), and
//! the node's peers stay connected throughout; a broken seed file at start
//! stops the node with an error naming the file and line.

use std::fs;
use std::time::Duration;

use crate::common::{SOON, TestCluster, holds_for, signal, wait_until};
use crate::http::request;
use crate::{Gw, failed_reload, seed};

fn code(gw: &Gw, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    request(gw.port, "GET", "/get_ips", &[("Authorization", &auth)], b"").status
}

#[test]
fn gateway_tokens_reload_on_sighup_without_dropping_peers() {
    let mut cluster = TestCluster::new();
    let settings = seed("1h", 24, "2m", "48h");
    let gw = Gw::start(&mut cluster, "node1", &[], &settings, None);
    let first = cluster.node(gw.node).addr();
    let spec = cluster.spec("node2", &[first]);
    cluster.start(spec);
    cluster.wait_for_peers(1);
    assert_eq!(code(&gw, "tok1"), 200);
    assert_eq!(code(&gw, "tok2"), 401);
    let pid = cluster.node(gw.node).pid().unwrap();

    let swapped = settings.replace("web1 = tok1", "web2 = tok2");
    fs::write(&gw.seed, swapped).unwrap();
    signal(pid, "HUP");
    assert!(wait_until(SOON, || code(&gw, "tok2") == 200), "the new token never worked");
    assert_eq!(code(&gw, "tok1"), 401, "the removed token still works");
    assert_eq!(cluster.node(gw.node).status()["gateway"]["tokens"], 1);

    fs::write(&gw.seed, "[api_tokens]\nthis line is broken\n").unwrap();
    let node = cluster.node(gw.node);
    let error = failed_reload(node);
    assert!(error.contains(":2:"), "the error names the line: {error}");
    assert_eq!(code(&gw, "tok2"), 200, "a broken file must keep the tokens in force");
    assert!(
        holds_for(Duration::from_secs(1), || node.connected_peers().len() == 1),
        "peers dropped"
    );
    let added = gw_add_with(&gw, "tok2");
    assert_eq!(added, 201);
}

fn gw_add_with(gw: &Gw, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    request(gw.port, "POST", "/add_ips", &[("Authorization", &auth)], br#"{"ips": ["192.0.2.8"]}"#)
        .status
}

#[test]
fn gateway_broken_seed_file_stops_the_node_at_start_naming_the_line() {
    let cluster = TestCluster::new();
    let seed = cluster.path("serverconfig.ini");
    fs::write(&seed, "[DEFAULT]\nbantime = 3m\nbantime.factor = lots\n[api_tokens]\nweb1 = tok1\n")
        .unwrap();
    let data = cluster.path("data");
    let output = std::process::Command::new(crate::common::bin())
        .args(["node", "--data-dir", crate::common::arg(&data), "--gateway"])
        .args(["--seed-config", crate::common::arg(&seed)])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("{}:3", seed.display())), "{stderr}");
    assert!(stderr.contains("bantime.factor"), "{stderr}");
}
