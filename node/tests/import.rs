//! `banmesh import` end to end against real nodes: a mixed list (comments,
//! Spamhaus DROP text and JSON, a netset, bad lines, binary junk, an
//! over-long line, an entry the certificate refuses, one on the never-ban
//! list), standard input, re-import renewing rather than adding,
//! and `--replace-source` unbanning what a list dropped.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{SOON, TestCluster, TestNode, arg, bin, wait_until};
use serde_json::Value;

/// Runs `banmesh import ARGS` against `node`, feeding `stdin` when given.
fn import(node: &TestNode, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(bin())
        .arg("import")
        .args(args)
        .args(["--socket", arg(&node.socket), "--json"])
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run banmesh import");
    if let Some(bytes) = stdin {
        child.stdin.take().expect("stdin").write_all(bytes).expect("feed stdin");
    }
    child.wait_with_output().expect("banmesh import")
}

/// The summary an import printed, after checking it succeeded.
fn summary(output: &Output) -> Value {
    let (stdout, stderr) =
        (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "import failed: {stdout}{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write list");
}

/// The live bans on `key` and their sources.
fn bans_on(node: &TestNode, key: &str) -> Vec<Value> {
    node.records_on(key).into_iter().filter(|r| r["kind"] == "ban").collect()
}

#[test]
fn import_keeps_good_lines_reports_bad_ones_and_reaches_the_mesh() {
    let cluster = TestCluster::star(2);
    cluster.wait_for_peers(1);
    let mut list = b"# FireHOL netset: firehol_level1\n\
        ; Spamhaus DROP List 2026/12/01\n\
        1.10.16.0/20 ; SBL256894\n\
        {\"cidr\":\"1.19.0.0/16\",\"sblid\":\"SBL434604\",\"rir\":\"apnic\"}\n\
        {\"type\":\"metadata\",\"timestamp\":1764547200,\"size\":2,\"records\":2}\n\
        198.51.100.7\n\
        not-an-ip\n\
        203.0.113.0/24 # trailing comment\n\
        203.0.113.5 203.0.113.6\n\
        \xff\xfe\x00\x01binary\x7f junk\n"
        .to_vec();
    list.extend(std::iter::repeat_n(b'9', 100_000));
    list.extend_from_slice(b"\n::ffff:198.51.100.8\r\n198.51.100.7\n{\"sblid\":\"SBL1\"}\n2001:db8::/32\n127.0.0.1\n2001:db8:1::/48\n");
    let path = cluster.path("mixed.txt");
    write(&path, &list);
    let node = cluster.node(0);
    let output = import(node, &[arg(&path), "--for", "2h", "--reason", "test lists"], None);
    let summary = summary(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(summary["imported"], 6, "{summary} {stderr}");
    assert_eq!(summary["bad"], 5, "{summary} {stderr}");
    assert_eq!(summary["duplicates"], 1, "{summary}");
    assert_eq!(summary["lines"], 17, "{summary}");
    assert_eq!(summary["refused"], 2, "{summary} {stderr}");
    // Not a terminal: plain progress lines, not a bar.
    assert!(stderr.contains("progress: 17 lines"), "{stderr}");
    for (line, why) in [
        (7, "not an address"),
        (9, "unexpected text"),
        (10, "not text"),
        (11, "longer than"),
        (14, "JSON line without"),
        (15, "refused by the node: this node's certificate"),
        (16, "refused: inside the node's never-ban network"),
    ] {
        let wanted = format!("line {line}: ");
        let said = stderr.lines().find(|l| l.starts_with(&wanted));
        assert!(
            said.is_some_and(|l| l.contains(why)),
            "line {line} ({why}) not reported: {stderr}"
        );
    }
    let keys = [
        "1.10.16.0/20",
        "1.19.0.0/16",
        "198.51.100.7",
        "203.0.113.0/24",
        "198.51.100.8",
        "2001:db8:1::/48",
    ];
    for key in keys {
        let bans = bans_on(node, key);
        assert_eq!(bans.len(), 1, "{key}: {bans:?}");
        assert_eq!(bans[0]["source"], "import:mixed.txt", "{key}");
        assert_eq!(bans[0]["jail"], "blocklist", "{key}");
        assert_eq!(bans[0]["reason"], "test lists", "{key}");
    }
    let peer = cluster.node(1);
    let reached = wait_until(SOON, || keys.iter().all(|k| !bans_on(peer, k).is_empty()));
    assert!(reached, "the import did not reach node2: {:?}", peer.records());
}

#[test]
fn import_reads_standard_input_and_reimporting_renews_without_adding() {
    let cluster = TestCluster::star(1);
    let node = cluster.node(0);
    let list: String = (1..=300).map(|i| format!("10.9.{}.{}\n", i / 200, i % 200 + 1)).collect();
    let first = summary(&import(node, &["-", "--for", "1h"], Some(list.as_bytes())));
    assert_eq!(first["imported"], 300, "{first}");
    let count = node.status()["record_counts"]["ban"].clone();
    assert_eq!(count, 300);
    let before = bans_on(node, "10.9.0.2")[0]["expires_at_ms"].as_u64().expect("expiry");
    assert_eq!(bans_on(node, "10.9.0.2")[0]["source"], "import:stdin");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = summary(&import(node, &["-", "--for", "1h"], Some(list.as_bytes())));
    assert_eq!(again["imported"], 300, "{again}");
    assert_eq!(node.status()["record_counts"]["ban"], count, "re-import added records");
    let bans = bans_on(node, "10.9.0.2");
    assert_eq!(bans.len(), 1, "{bans:?}");
    let after = bans[0]["expires_at_ms"].as_u64().expect("expiry");
    assert!(after > before, "the ban was not renewed: {before} -> {after}");
}

#[test]
fn replace_source_unbans_what_the_list_dropped_and_nothing_else() {
    let cluster = TestCluster::star(1);
    let node = cluster.node(0);
    node.call(&["ban", "198.18.9.50", "--for", "1h"]);
    // Banned here for longer than the import's 1d: the import leaves it be.
    node.call(&["ban", "198.18.9.2", "--for", "3d"]);
    let old = cluster.path("old.txt");
    write(&old, b"198.18.9.1\n198.18.9.2\n198.18.9.3\n198.51.100.0/24\n");
    let other = cluster.path("other.txt");
    write(&other, b"203.0.113.9\n");
    let first = summary(&import(node, &[arg(&old), "--replace-source", "feed"], None));
    assert_eq!((&first["imported"], &first["kept_longer"]), (&3.into(), &1.into()), "{first}");
    summary(&import(node, &[arg(&other), "--source", "another"], None));
    for ip in ["198.18.9.1", "198.18.9.3", "198.51.100.9", "203.0.113.9", "198.18.9.50"] {
        assert!(node.is_banned(ip), "{ip} not banned");
    }
    let new = cluster.path("new.txt");
    write(&new, b"198.18.9.1\n198.18.9.2\n198.18.9.4\n");
    let output = summary(&import(node, &[arg(&new), "--replace-source", "feed"], None));
    assert_eq!(output["unbanned"], 2, "{output}");
    assert_eq!(output["imported"], 2, "{output}");
    assert_eq!(output["kept_longer"], 1, "{output}");
    assert_eq!(bans_on(node, "198.18.9.2")[0]["source"], "cli", "the longer ban was replaced");
    for ip in ["198.18.9.3", "198.51.100.9"] {
        assert!(node.is_not_banned(ip), "{ip} still banned: {}", node.decision(ip));
    }
    for ip in ["198.18.9.1", "198.18.9.2", "198.18.9.4", "203.0.113.9", "198.18.9.50"] {
        assert!(node.is_banned(ip), "{ip} not banned: {}", node.decision(ip));
    }
    let again = summary(&import(node, &[arg(&new), "--replace-source", "feed"], None));
    assert_eq!(again["unbanned"], 0, "an unbanned entry was unbanned again: {again}");
}

/// Batches sent back to back: the node signs one while it commits the one
/// before, and every answer comes after its own commit. A batch naming a
/// key of the batch being committed waits for that commit, so its reads
/// see it: a 1 ms `keep_longer` ban sent just after a long ban on the same
/// key is left out rather than replacing it (when it reaches the node
/// first, the long ban replaces it: either way the long ban stands).
#[test]
fn batches_sent_back_to_back_are_all_stored_and_each_sees_the_one_before() {
    use banmesh_node::control::{Command as Control, OrderSpec, Response, call};
    const ROUNDS: u32 = 8;
    let cluster = TestCluster::star(1);
    let node = cluster.node(0);
    let ban = |key: String, duration_ms: Option<u64>, keep_longer: bool| OrderSpec {
        kind: "ban".to_owned(),
        key,
        duration_ms,
        keep_longer,
        strikes: 3,
        ..OrderSpec::default()
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let items = runtime.block_on(async {
        let mut calls = Vec::new();
        for round in 0..ROUNDS {
            let mut long: Vec<OrderSpec> = (0..4_000u32)
                .map(|i| ban(format!("10.{round}.{}.{}", i / 250, i % 250), None, false))
                .collect();
            long.push(ban(format!("192.0.2.{round}"), Some(3_600_000), false));
            // As big as the long batch, so that it often reaches the node
            // after it rather than first.
            let mut short: Vec<OrderSpec> = (0..4_000u32)
                .map(|i| ban(format!("10.{}.{}.{}", 100 + round, i / 250, i % 250), None, false))
                .collect();
            short.insert(0, ban(format!("192.0.2.{round}"), Some(1), true));
            for orders in [long, short] {
                let socket = node.socket.clone();
                calls.push(tokio::spawn(async move {
                    call(&socket, Control::Issue { orders }).await.expect("issue call")
                }));
            }
        }
        let mut items = Vec::new();
        for answer in calls {
            match answer.await.expect("call task") {
                Response::Issued(batch) => items.push(batch),
                other => panic!("not an Issued answer: {other:?}"),
            }
        }
        items
    });
    let mut left_out = 0;
    for (n, batch) in items.iter().enumerate() {
        if n % 2 == 0 {
            assert!(batch.iter().all(|i| i.id.is_some()), "batch {n}: {:?}", &batch[..3]);
        } else {
            assert!(batch[1..].iter().all(|i| i.id.is_some()), "batch {n}: {:?}", &batch[..3]);
        }
        if n % 2 == 1 && batch[0].skipped.as_deref().is_some_and(|s| s.contains("longer")) {
            left_out += 1;
        }
    }
    let records = node.records();
    for round in 0..ROUNDS {
        let key = format!("192.0.2.{round}");
        let on_key: Vec<&Value> = records.iter().filter(|r| r["key"] == key.as_str()).collect();
        let lasts = on_key
            .first()
            .and_then(|r| Some(r["expires_at_ms"].as_u64()? - r["issued_at_ms"].as_u64()?));
        assert_eq!(lasts, Some(3_600_000), "round {round}: {on_key:?}");
    }
    let bans = node.status()["record_counts"]["ban"].as_u64();
    assert_eq!(bans, Some(u64::from(ROUNDS) * 8_001), "{}", node.status());
    eprintln!("{left_out} of {ROUNDS} short bans reached the node after the long one");
}
