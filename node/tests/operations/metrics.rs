//! `[metrics] listen`: a real node serves `GET /metrics`; the key series
//! are there and move (records received rise after a peer issues bans);
//! the Grafana dashboard in contrib/ is valid JSON and asks only for
//! series a node serves.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::Instant;

use crate::common::{self, SOON, TestCluster, free_port, wait_until};

/// Bans issued on b; `BANMESH_METRICS_BANS` sets another count (10000 to
/// measure a scrape of a larger store, printed at the end).
fn bans() -> usize {
    std::env::var("BANMESH_METRICS_BANS").ok().and_then(|n| n.parse().ok()).unwrap_or(50)
}

/// `GET /metrics` on `port`; the body, or why not.
fn scrape(port: u16) -> Result<String, String> {
    get(port, "/metrics", "200")
}

/// `GET path` on `port`; the body when the status is `status`.
fn get(port: u16, path: &str, status: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(SOON)).map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    let (head, body) = answer.split_once("\r\n\r\n").ok_or("no HTTP head")?;
    if !head.starts_with(&format!("HTTP/1.1 {status}")) {
        return Err(head.to_owned());
    }
    Ok(body.to_owned())
}

/// The value of the series `name` (with its labels, as written), if there.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn write_config(path: &Path, port: u16) {
    std::fs::write(path, format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n")).unwrap();
}

#[test]
fn a_node_serves_metrics_that_move_and_the_dashboard_uses_them() {
    let mut cluster = TestCluster::new();
    let port = free_port();
    let config = cluster.path("metrics.toml");
    write_config(&config, port);
    let gateway = free_port();
    let mut spec = cluster.spec("a", &[]);
    spec.config = Some(config);
    spec.args = vec!["--gateway".to_owned(), format!("127.0.0.1:{gateway}")];
    let a = cluster.start(spec);
    // b dials a: its own dials count in libp2p's dial attempts.
    let b_port = free_port();
    let b_config = cluster.path("metrics-b.toml");
    write_config(&b_config, b_port);
    let mut b_spec = cluster.spec("b", &[cluster.node(a).addr()]);
    b_spec.config = Some(b_config);
    let b = cluster.start(b_spec);
    cluster.wait_for_peers(1);
    let dials = value(&scrape(b_port).expect("scrape b"), "libp2p_swarm_dial_attempt_total");
    assert!(dials.is_some_and(|n| n >= 1.0), "b dialled a, counted {dials:?} dial attempts");

    let text = scrape(port).expect("scrape");
    for series in [
        "banmesh_peers{state=\"connected\"} 1",
        "banmesh_health ",
        "banmesh_certificate_expiry_timestamp_seconds ",
        "banmesh_records{kind=\"ban\"} 0",
        "# TYPE banmesh_propagation_delay_seconds histogram",
        "# TYPE libp2p_swarm_connections_incoming counter",
        "banmesh_errors_total{what=\"store\"} 0",
    ] {
        assert!(text.contains(series), "no {series:?} in:\n{text}");
    }
    let received = "banmesh_records_received_total{via=\"gossip\"}";
    let before = value(&text, received).unwrap_or(0.0);

    let bans = bans();
    common::issue_bans(&cluster.node(b).socket, bans);
    let mut last = String::new();
    let moved = wait_until(SOON, || {
        last = scrape(port).unwrap_or_default();
        let stored = value(&last, "banmesh_records{kind=\"ban\"}").unwrap_or(0.0);
        let by_gossip = value(&last, received).unwrap_or(0.0);
        let by_sync = value(&last, "banmesh_records_received_total{via=\"sync\"}").unwrap_or(0.0);
        stored >= bans as f64 && by_gossip + by_sync - before >= bans as f64
    });
    assert!(moved, "records received did not rise by {bans}:\n{last}");
    let delays = value(&last, "banmesh_propagation_delay_seconds_count{via=\"gossip\"}")
        .unwrap_or(0.0)
        + value(&last, "banmesh_propagation_delay_seconds_count{via=\"sync\"}").unwrap_or(0.0);
    assert!(delays >= bans as f64, "propagation delays not observed:\n{last}");
    for series in [
        "banmesh_gossip_bytes_total{direction=\"in\"}",
        "banmesh_sync_bytes_total{direction=\"in\"}",
        "banmesh_sync_bytes_total{direction=\"out\"}",
    ] {
        assert!(value(&last, series).unwrap_or(0.0) > 0.0, "{series} is 0:\n{last}");
    }
    assert!(last.contains("banmesh_queue_length{queue=\"verifier\"} "), "{last}");

    // The gateway (no tokens) answers 401, counted by route and status.
    assert!(
        wait_until(SOON, || get(gateway, "/get_ips", "401").is_ok()),
        "no 401 from the gateway"
    );
    let text = scrape(port).expect("scrape");
    let requests = "banmesh_gateway_requests_total{endpoint=\"/get_ips\",status=\"401\"}";
    assert!(value(&text, requests).is_some_and(|n| n >= 1.0), "{requests} missing:\n{text}");

    dashboard_asks_for_served_series(&last);

    // Scrape cost at this store's size, for the record (not asserted).
    let started = Instant::now();
    let body = scrape(port).expect("scrape");
    eprintln!("scrape of {bans} records: {} bytes in {:?}", body.len(), started.elapsed());
}

/// Every `banmesh_` or `libp2p_` metric the dashboard queries is one the
/// node declares (`# TYPE` lines), except those only present with a
/// backend or the gateway on.
fn dashboard_asks_for_served_series(scraped: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/grafana/banmesh.json");
    let text = std::fs::read_to_string(&path).expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    // Present with a backend or the gateway on, after a GC run, or once
    // something was refused or failed (a family with labels shows once it
    // has a series).
    let conditional = [
        "banmesh_refused",
        "banmesh_records_skipped",
        "banmesh_nftables_",
        "banmesh_fail2ban_",
        "banmesh_gc_last_run",
        "banmesh_gateway_requests",
        "libp2p_swarm_connections_incoming_error",
    ];
    for target in panels.iter().flat_map(|p| p["targets"].as_array().into_iter().flatten()) {
        let expr = target["expr"].as_str().expect("expr");
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !(word.starts_with("banmesh_") || word.starts_with("libp2p_")) {
                continue;
            }
            if conditional.iter().any(|c| word.starts_with(c)) {
                continue;
            }
            let family =
                ["_bucket", "_total"].iter().fold(word, |w, s| w.strip_suffix(s).unwrap_or(w));
            assert!(
                scraped.contains(&format!("# TYPE {family} ")),
                "the dashboard asks for {word}, which the node does not serve"
            );
        }
    }
}

#[test]
fn a_taken_metrics_port_stops_the_start_naming_it() {
    let cluster = TestCluster::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = cluster.path("metrics.toml");
    write_config(&config, port);
    let data_dir = cluster.enroll("a");
    let out = std::process::Command::new(common::bin())
        .args(["node", "--config", common::arg(&config), "--data-dir", common::arg(&data_dir)])
        .args([
            "--socket",
            common::arg(&cluster.path("a.sock")),
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("cannot listen for metrics on 127.0.0.1:{port}")), "{stderr}");
}
