//! The two Fail2BanSync clients in the field (`tests/py/`, written the way
//! SEED-API.md says they use the API) against a gateway on node 1 of a
//! two-node cluster while bans are issued on node 2: both see the union,
//! and the current client's gzip batches reach node 2.
//! Needs `python3` (scripts/test.sh installs it).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use banmesh_node::control::{self, Command, OrderSpec, Response};
use common::{
    SOON, TestCluster, arg, free_port, gateway_spec, http, python3, wait_for_total, wait_until,
};
use serde_json::{Value, json};

const TOKEN: &str = "token-web1";

/// A cluster of two nodes, node 1 serving the gateway; returns it and the
/// gateway's port and the client config pointing at it.
fn cluster_with_gateway() -> (TestCluster, u16, PathBuf) {
    let mut cluster = TestCluster::new();
    let seed = cluster.path("serverconfig.ini");
    let ini =
        format!("[DEFAULT]\nbantime = 1h\nallowed_duration = 2m\n[api_tokens]\nweb1 = {TOKEN}\n");
    std::fs::write(&seed, ini).expect("write seed config");
    let port = free_port();
    let spec = gateway_spec(&cluster, "node1", &[], port, &seed);
    cluster.start(spec);
    let spec = cluster.spec("node2", &[cluster.node(0).addr()]);
    cluster.start(spec);
    cluster.wait_for_peers(1);
    let client_config = cluster.path("clientconfig.ini");
    let ini = format!(
        "[server]\nhost = 127.0.0.1\nport = {port}\nprotocol = http\n\n[auth]\ntoken = {TOKEN}\n\n\
         [fail2ban]\njails = sshd, nginx\n\n[sync]\nsync_bans = true\nsync_allowed = true\n"
    );
    std::fs::write(&client_config, ini).expect("write client config");
    (cluster, port, client_config)
}

/// Runs a client script from `tests/py` and parses the JSON it prints.
fn client(script: &str, args: &[&str]) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(script);
    let mut all = vec![arg(&path)];
    all.extend(args);
    let output = python3(&all);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed ({}): {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}"))
}

fn addresses(value: &Value) -> Vec<String> {
    let list = value.as_array().unwrap_or_else(|| panic!("not a list: {value}"));
    list.iter().map(|v| v.as_str().expect("an address").to_owned()).collect()
}

/// `count` distinct addresses in 10.`net`.0.0/16.
fn block(net: u8, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("10.{net}.{}.{}", i / 250, i % 250 + 1)).collect()
}

/// Bans `ips` for an hour on the node at `socket` with one Issue command.
fn issue_bans(socket: &Path, ips: &[String]) {
    let orders = ips
        .iter()
        .map(|ip| OrderSpec {
            key: ip.clone(),
            duration_ms: Some(3_600_000),
            jail: "sshd".to_owned(),
            reason: "test".to_owned(),
            source: "test".to_owned(),
            ..OrderSpec::default()
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let response =
        runtime.block_on(control::call(socket, Command::Issue { orders })).expect("issue");
    let Response::Issued(items) = response else { panic!("issue answered {response:?}") };
    assert!(items.iter().all(|i| i.error.is_none()), "some bans failed: {items:?}");
}

#[test]
fn gateway_clients_current_and_earlier_see_the_union_of_both_nodes() {
    let _ = python3(&["--version"]);
    let (cluster, port, config) = cluster_with_gateway();
    let on_b = block(1, 1_200);
    issue_bans(&cluster.node(1).socket, &on_b);
    let by_cli = ["192.0.2.10", "192.0.2.11", "2001:db8::7"];
    for ip in by_cli {
        cluster.node(1).call(&["ban", ip, "--for", "1h", "--jail", "sshd"]);
    }
    let on_a = block(2, 40);
    let reply =
        http(port, "POST", "/add_ips", Some(TOKEN), Some(&json!({"ips": on_a, "jail": "sshd"})));
    assert_eq!(reply.status, 201, "add_ips on node 1: {}", String::from_utf8_lossy(&reply.body));
    let mut want: BTreeSet<String> = on_b.iter().chain(&on_a).cloned().collect();
    want.extend(by_cli.iter().map(|s| (*s).to_owned()));
    let total = u64::try_from(want.len()).expect("fits");
    wait_for_total(port, TOKEN, "/get_ips?page=1&per_page=1", total);

    let current = client("client_current.py", &["--config", arg(&config)]);
    let banip = addresses(&current["banip"]);
    assert_eq!(banip.len(), want.len(), "the current client read duplicates or missed some");
    assert_eq!(banip.into_iter().collect::<BTreeSet<_>>(), want);
    assert_eq!(addresses(&current["unbanip"]), Vec::<String>::new());
    assert_eq!(current["gzip_responses"], 2, "the lists were not gzip-compressed: {current}");
    assert_eq!(current["jails"], json!(["sshd", "nginx"]));

    let earlier = client("client_earlier.py", &["--config", arg(&config)]);
    let banip = addresses(&earlier["banip"]);
    assert_eq!(banip.len(), want.len(), "the earlier client read duplicates or missed some");
    assert_eq!(banip.into_iter().collect::<BTreeSet<_>>(), want);
    assert_eq!(earlier["total"].as_u64(), Some(total));
    assert_eq!(earlier["pages"].as_u64(), Some(total.div_ceil(200)), "{earlier}");
}

#[test]
fn gateway_clients_current_client_batches_reach_the_other_node() {
    let _ = python3(&["--version"]);
    let (cluster, _, config) = cluster_with_gateway();
    let local = block(3, 2_500);
    let file = cluster.path("banned.txt");
    std::fs::write(&file, local.join("\n")).expect("write addresses");

    let current = client("client_current.py", &["--config", arg(&config), "--add", arg(&file)]);
    assert_eq!(current["gzip_requests"], 3, "2,500 addresses are 3 gzip batches: {current}");
    assert_eq!(current["requests"], 5, "3 posts and 2 lists: {current}");
    let added: BTreeSet<String> = addresses(&current["added"]).into_iter().collect();
    let want: BTreeSet<String> = local.iter().cloned().collect();
    assert_eq!(added, want, "added_ips is not every new address");
    assert_eq!(addresses(&current["banip"]).len(), local.len(), "the list after posting");

    let node_b = cluster.node(1);
    let mut have = 0;
    let arrived = wait_until(SOON, || {
        let records = node_b.call(&["records", "--kind", "ban"]);
        let keys: BTreeSet<&str> = records
            .as_array()
            .map(|rs| rs.iter().filter_map(|r| r["key"].as_str()).collect())
            .unwrap_or_default();
        have = want.iter().filter(|ip| keys.contains(ip.as_str())).count();
        have == want.len()
    });
    assert!(arrived, "node 2 holds {have} of the {} posted bans", want.len());
    let jail = node_b.records_on(&local[0]);
    assert_eq!(jail[0]["jail"], "sshd", "the client's first jail: {jail:?}");
    assert!(jail[0]["source"].as_str().is_some_and(|s| s.starts_with("web1@")), "{jail:?}");
}
