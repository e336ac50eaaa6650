//! `banmesh import-seed` end to end: a database made with exactly the old
//! server's schema (SEED-API.md), imported into node 1 of a real two-node
//! cluster; the records checked on both nodes, the per-row report, and the
//! refusal of files that are not such a database.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use common::{SOON, TestCluster, TestNode, arg, bin, free_port, gateway_spec, http, wait_until};
use rusqlite::Connection;
use serde_json::Value;

/// The old server's table and indexes, as SEED-API.md gives them.
const SEED_SCHEMA: &str = "
    CREATE TABLE ip_addresses (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ip_address TEXT NOT NULL UNIQUE,
        description TEXT,
        status TEXT,
        reported_by TEXT,
        blocked_until TIMESTAMP,
        allowed_since TIMESTAMP,
        block_count INTEGER DEFAULT 1,
        jail TEXT
    );
    CREATE INDEX idx_ip_address ON ip_addresses (ip_address);
    CREATE INDEX idx_status ON ip_addresses (status);
    CREATE INDEX idx_status_ip ON ip_addresses (status, ip_address);
    CREATE INDEX idx_jail ON ip_addresses (jail);
";

/// The time zone the import runs in: a POSIX rule (no tzdata needed), five
/// hours behind UTC, so a test that ignored local time would be 5 h off.
const TZ: &str = "EST5";
const TZ_OFFSET_MS: i64 = -5 * 3_600_000;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("ms fit")
}

/// `at` (Unix ms) as Python's `str(datetime)` writes it in [`TZ`]:
/// `2026-11-25 12:56:08.123456`, or without the fraction.
fn local(conn: &Connection, at: i64, fraction: bool) -> String {
    let format = if fraction { "%Y-%m-%d %H:%M:%f" } else { "%Y-%m-%d %H:%M:%S" };
    let secs = (at + TZ_OFFSET_MS) as f64 / 1000.0;
    let text: String = conn
        .query_row("SELECT strftime(?1, ?2, 'unixepoch')", rusqlite::params![format, secs], |r| {
            r.get(0)
        })
        .expect("strftime");
    if fraction { format!("{text}456") } else { text }
}

/// One row: (ip, status, blocked_until, allowed_since, block_count, jail).
type Row<'a> = (&'a str, &'a str, Option<String>, Option<String>, i64, &'a str);

/// A database with the old server's schema holding `rows`.
fn seed_db(path: &Path, rows: impl FnOnce(&Connection) -> Vec<Row<'static>>) {
    let conn = Connection::open(path).expect("create seed db");
    conn.execute_batch(SEED_SCHEMA).expect("schema");
    for (ip, status, until, since, count, jail) in rows(&conn) {
        conn.execute(
            "INSERT INTO ip_addresses (ip_address, description, status, reported_by, \
             blocked_until, allowed_since, block_count, jail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rusqlite::params![
                ip,
                format!("{jail} failures"),
                status,
                "web1@10.0.0.5",
                until,
                since,
                count,
                jail
            ],
        )
        .expect("insert");
    }
}

/// The rows of the main test, around `now`.
fn rows(conn: &Connection, now: i64) -> Vec<Row<'static>> {
    let at = |offset: i64, fraction| Some(local(conn, now + offset, fraction));
    vec![
        ("198.51.100.1", "blocked", at(HOUR, true), None, 3, "sshd"),
        ("198.51.100.2", "blocked", at(2 * HOUR, false), None, 1, "nginx"),
        ("198.51.100.3", "allowed", at(-MIN, true), at(-MIN, true), 2, "sshd"),
        ("198.51.100.4", "known", at(-HOUR, true), None, 4, "sshd"),
        ("198.51.100.5", "blocked", at(-10 * MIN, true), None, 2, "sshd"),
        ("not-an-ip", "blocked", at(HOUR, true), None, 1, "sshd"),
        ("2001:db8::1", "blocked", at(HOUR, true), None, 2, "sshd"),
        ("2001:DB8:0::1", "known", at(-HOUR, false), None, 5, "sshd"),
        ("198.51.100.9", "blocked", Some("yesterday".to_owned()), None, 1, "sshd"),
        ("198.51.100.10", "known", at(-72 * HOUR, true), None, 6, "sshd"),
    ]
}

/// `banmesh import-seed ARGS` in [`TZ`].
fn import(args: &[&str]) -> Output {
    Command::new(bin()).env("TZ", TZ).arg("import-seed").args(args).output().expect("run banmesh")
}

fn import_json(node: &TestNode, db: &Path, extra: &[&str]) -> Value {
    let mut args = vec![arg(db), "--socket", arg(&node.socket), "--json"];
    args.extend(extra);
    let output = import(&args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "import-seed failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn ms(value: &Value) -> i64 {
    value.as_i64().unwrap_or_else(|| panic!("not a time: {value}"))
}

fn assert_near(what: &str, got: i64, want: i64) {
    assert!((got - want).abs() < 30_000, "{what}: {got} is not within 30 s of {want}");
}

/// The record of `kind` on `key` on `node`, once it is there.
fn record(node: &TestNode, key: &str, kind: &str) -> Value {
    let mut found = None;
    let arrived = wait_until(SOON, || {
        found = node.records_on(key).into_iter().find(|r| r["kind"] == kind);
        found.is_some()
    });
    assert!(arrived, "{}: no {kind} on {key}: {:?}", node.name, node.records_on(key));
    found.expect("found")
}

#[test]
fn import_seed_turns_every_status_into_records_on_both_nodes() {
    // Node 1's gateway has the old server's settings; node 2's lets an
    // ended ban through its allowed window in a second, to see it as known.
    let mut cluster = TestCluster::new();
    let (db, config) = (cluster.path("ip_management.db"), cluster.path("serverconfig.ini"));
    let short = cluster.path("short.ini");
    let ini = "[DEFAULT]\nbantime = 3m\nallowed_duration = 5m\nknown_duration = 48h\n\
               [api_tokens]\nweb1 = token-one\n";
    std::fs::write(&config, ini).expect("write seed config");
    std::fs::write(&short, ini.replace("5m", "1s")).expect("write short seed config");
    let ports = [free_port(), free_port()];
    let spec = gateway_spec(&cluster, "node1", &[], ports[0], &config);
    cluster.start(spec);
    let spec = gateway_spec(&cluster, "node2", &[cluster.node(0).addr()], ports[1], &short);
    cluster.start(spec);
    cluster.wait_for_peers(1);
    let now = now_ms();
    seed_db(&db, |conn| rows(conn, now));

    let dry = import(&[arg(&db), "--dry-run", "--seed-config", arg(&config)]);
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success(), "dry run failed: {text}{}", String::from_utf8_lossy(&dry.stderr));
    for expected in [
        "dry run: nothing is sent to the node",
        "row 1 (198.51.100.1, blocked): ban 198.51.100.1 until",
        "row 6 (not-an-ip, blocked): skipped (invalid address)",
        "row 9 (198.51.100.9, blocked): skipped (bad timestamp): blocked_until \"yesterday\"",
        "row 8 (2001:DB8:0::1, known): skipped (duplicate): the same address as row 7",
        "row 10 (198.51.100.10, known): skipped (forgotten)",
        "would import 6 of 10 row(s): 1 allowed, 4 blocked, 1 known",
        "records cannot be backdated",
        "skipped 4 row(s): 1 bad timestamp, 1 duplicate, 1 forgotten, 1 invalid address",
    ] {
        assert!(text.contains(expected), "dry run lacks {expected:?}:\n{text}");
    }
    assert!(cluster.node(0).records_on("198.51.100.1").is_empty(), "a dry run issued records");

    let report = import_json(cluster.node(0), &db, &["--seed-config", arg(&config)]);
    let summary = &report["summary"];
    assert_eq!(summary["imported"], serde_json::json!({"allowed": 1, "blocked": 4, "known": 1}));
    assert_eq!((summary["ended_now"].as_u64(), summary["failed"].as_u64()), (Some(2), Some(0)));
    let skipped = serde_json::json!({"bad timestamp": 1, "duplicate": 1, "forgotten": 1, "invalid address": 1});
    assert_eq!(summary["skipped"], skipped);
    let row = |id: i64| report["rows"].as_array().expect("rows").iter().find(|r| r["row"] == id);
    let invalid = row(6).expect("row 6 reported");
    assert_eq!(
        (invalid["action"].as_str(), invalid["category"].as_str()),
        (Some("skipped"), Some("invalid address"))
    );

    for node in &cluster.nodes {
        // A live ban keeps its end (local time read in TZ), count, jail, text.
        let ban = record(node, "198.51.100.1", "ban");
        assert_eq!((ban["strikes"].as_u64(), ban["jail"].as_str()), (Some(3), Some("sshd")));
        assert_eq!(
            (ban["reason"].as_str(), ban["source"].as_str()),
            (Some("sshd failures"), Some("web1@10.0.0.5"))
        );
        assert_near("198.51.100.1 ends", ms(&ban["expires_at_ms"]), now + HOUR);
        let ban = record(node, "198.51.100.2", "ban");
        assert_near("198.51.100.2 ends", ms(&ban["expires_at_ms"]), now + 2 * HOUR);
        assert_eq!(ban["jail"], "nginx");
        // An allowed row: its ban history, and an allow for the rest of
        // allowed_duration (5m from the seed config, allowed a minute ago).
        let ban = record(node, "198.51.100.3", "ban");
        assert_eq!(ban["strikes"], 2);
        assert_eq!(ms(&ban["expires_at_ms"]) - ms(&ban["issued_at_ms"]), 1);
        let allow = record(node, "198.51.100.3", "allow");
        assert_near("198.51.100.3 allowed until", ms(&allow["expires_at_ms"]), now + 4 * MIN);
        // Known and expired rows: a ban ending now that keeps the count.
        for (key, strikes) in [("198.51.100.4", 4), ("198.51.100.5", 2)] {
            let ban = record(node, key, "ban");
            assert_eq!(ban["strikes"], strikes, "{key}");
            assert_eq!(ms(&ban["expires_at_ms"]) - ms(&ban["issued_at_ms"]), 1, "{key}");
        }
        // The two spellings of one IPv6 address: one key, the higher count,
        // the live ban's end.
        let ban = record(node, "2001:db8::1", "ban");
        assert_eq!(ban["strikes"], 5);
        assert_near("2001:db8::1 ends", ms(&ban["expires_at_ms"]), now + HOUR);
        assert_eq!(node.records_on("2001:db8::1").len(), 1);
    }
    let node = cluster.node(1);
    for skipped in ["198.51.100.9", "198.51.100.10"] {
        assert!(node.records_on(skipped).is_empty(), "{skipped} was imported");
    }
    assert!(node.records().iter().all(|r| r["key"] != "not-an-ip"));

    // The gateways list them as the old server did, block_count included.
    let live = [("198.51.100.1", 3), ("198.51.100.2", 1), ("2001:db8::1", 5)];
    // Ended bans are recorded as ending now: allowed for allowed_duration
    // first (5m on node 1), then known (node 2, after 1s).
    let allowed = [("198.51.100.3", 2), ("198.51.100.4", 4), ("198.51.100.5", 2)];
    let known = [("198.51.100.4", 4), ("198.51.100.5", 2)];
    let cases = [
        (ports[0], "/get_ips", &live[..]),
        (ports[0], "/get_allowed_ips", &allowed[..]),
        (ports[1], "/get_ips", &live[..]),
        (ports[1], "/get_known_ips", &known[..]),
    ];
    for (port, path, want) in cases {
        let mut got = Vec::new();
        let listed = wait_until(SOON, || {
            got = listed(port, path);
            want.iter().all(|w| got.contains(&(w.0.to_owned(), w.1)))
        });
        assert!(listed, "port {port} {path}: {got:?} lacks some of {want:?}");
    }
    let items = http(ports[0], "GET", "/get_ips", Some("token-one"), None).json();
    let first = items["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["ip_address"] == "198.51.100.1");
    let first = first.expect("198.51.100.1 listed");
    assert_eq!(
        (first["jail"].as_str(), first["description"].as_str()),
        (Some("sshd"), Some("sshd failures"))
    );
    assert_eq!(first["reported_by"], "web1@10.0.0.5");
}

/// `(ip_address, block_count)` of every item `GET path` lists.
fn listed(port: u16, path: &str) -> Vec<(String, u64)> {
    let reply = http(port, "GET", path, Some("token-one"), None);
    assert_eq!(reply.status, 200, "GET {path}: {}", String::from_utf8_lossy(&reply.body));
    let answer = reply.json();
    let items = answer["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter_map(|i| Some((i["ip_address"].as_str()?.to_owned(), i["block_count"].as_u64()?)))
        .collect()
}

#[test]
fn import_seed_refuses_files_that_are_not_a_seed_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        ("missing.db", None, "cannot read"),
        ("text.db", Some("not sqlite"), "not a readable SQLite database"),
        ("other.db", Some("CREATE TABLE bans (ip TEXT)"), "has no ip_addresses table"),
        (
            "short.db",
            Some(
                "CREATE TABLE ip_addresses (id INTEGER PRIMARY KEY, ip_address TEXT, status TEXT)",
            ),
            "its ip_addresses table lacks description, reported_by",
        ),
    ];
    for (name, content, expected) in cases {
        let path = dir.path().join(name);
        match content {
            Some("not sqlite") => std::fs::write(&path, "[DEFAULT]\nbantime = 3m\n".repeat(40))
                .expect("write text file"),
            Some(sql) => Connection::open(&path).and_then(|c| c.execute_batch(sql)).expect("db"),
            None => {}
        }
        let output = import(&[arg(&path), "--dry-run"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name} was accepted");
        assert!(stderr.contains(expected), "{name}: {stderr:?} lacks {expected:?}");
        assert!(stderr.contains(arg(&path)), "{name}: {stderr:?} does not name the file");
    }
    // A node that is not running: the error names the socket.
    let db = dir.path().join("ip_management.db");
    seed_db(&db, |conn| {
        vec![("192.0.2.1", "blocked", Some(local(conn, now_ms() + HOUR, true)), None, 1, "sshd")]
    });
    let socket = dir.path().join("nowhere.sock");
    let output = import(&[arg(&db), "--socket", arg(&socket)]);
    assert!(!output.status.success(), "import without a node succeeded");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nowhere.sock"), "{stderr}");
}

#[test]
fn import_seed_sends_a_large_database_in_batches_under_the_frame_limit() {
    // 7,000 rows with 400-byte descriptions: 4 MB of orders, so the batches
    // are cut by size (1 MiB request frames) as well as by count.
    let cluster = TestCluster::star(1);
    let db = cluster.path("ip_management.db");
    let conn = Connection::open(&db).expect("create seed db");
    conn.execute_batch(SEED_SCHEMA).expect("schema");
    let until = local(&conn, now_ms() + HOUR, true);
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 6999)
         INSERT INTO ip_addresses (ip_address, description, status, reported_by,
             blocked_until, block_count, jail)
         SELECT '10.7.' || (i / 250) || '.' || (i % 250 + 1), printf('%.400c', 'x'), 'blocked',
             'web1@10.0.0.5', ?1, 1 + i % 4, 'sshd' FROM n",
        [until],
    )
    .expect("insert rows");
    drop(conn);
    let report = import_json(cluster.node(0), &db, &[]);
    assert_eq!(report["summary"]["imported"], serde_json::json!({"blocked": 7000}));
    assert_eq!(report["summary"]["failed"], 0);
    let counts = &cluster.node(0).status()["record_counts"];
    assert_eq!(counts["ban"], 7000, "{counts}");
}

#[test]
fn import_seed_leaves_a_longer_ban_of_the_node_standing() {
    // The node already bans 192.0.2.30 for a day (its own Fail2Ban, say);
    // the old database only knows an ended ban and a 10-minute one. A node
    // keeps one Ban per key: importing them must not shorten its own.
    let cluster = TestCluster::star(1);
    let node = cluster.node(0);
    for ip in ["192.0.2.30", "192.0.2.31"] {
        node.call(&["ban", ip, "--for", "1d"]);
    }
    let day = |ip: &str| ms(&record(node, ip, "ban")["expires_at_ms"]);
    let before = (day("192.0.2.30"), day("192.0.2.31"));
    let db = cluster.path("ip_management.db");
    let now = now_ms();
    seed_db(&db, |conn| {
        vec![
            ("192.0.2.30", "known", Some(local(conn, now - HOUR, true)), None, 3, "sshd"),
            ("192.0.2.31", "blocked", Some(local(conn, now + 10 * MIN, true)), None, 2, "sshd"),
            ("192.0.2.32", "known", Some(local(conn, now - HOUR, true)), None, 4, "sshd"),
        ]
    });
    let report = import_json(node, &db, &[]);
    assert_eq!(report["summary"]["failed"], 0, "{report}");
    let text = report.to_string();
    assert!(text.contains("already bans it for longer"), "the report does not say why: {text}");
    assert_eq!((day("192.0.2.30"), day("192.0.2.31")), before, "the node's own bans changed");
    assert!(node.is_banned("192.0.2.30") && node.is_banned("192.0.2.31"));
    // An address the node did not ban is imported as before.
    assert_eq!(record(node, "192.0.2.32", "ban")["strikes"], 4);
}
