//! `GET /metrics` on a node of the hostile-peer tests: what an operator's
//! dashboard sees during an attack (refusals and skipped records by reason,
//! peers by state), read from the node's real HTTP endpoint.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;

use super::common::{SOON, TestCluster, free_port};

/// A node's metrics endpoint.
pub struct Metrics {
    pub port: u16,
}

impl Metrics {
    /// A config file `name` serving metrics on a free port, with `extra`
    /// appended; and the endpoint.
    pub fn config(cluster: &TestCluster, name: &str, extra: &str) -> (PathBuf, Metrics) {
        let port = free_port();
        let path = cluster.path(name);
        let text = format!("{extra}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
        std::fs::write(&path, text).expect("write the metrics config");
        (path, Metrics { port })
    }

    /// The body of `GET /metrics`; panics when the node does not answer 200.
    pub fn scrape(&self) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to /metrics");
        stream.set_read_timeout(Some(SOON)).expect("read timeout");
        let request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        stream.write_all(request.as_bytes()).expect("send the request");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read the answer");
        let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP head");
        assert!(head.starts_with("HTTP/1.1 200"), "GET /metrics answered {head}");
        body.to_owned()
    }

    /// The value of `series` (name and labels, as written), 0 when absent
    /// (a reason not counted yet has no series).
    pub fn value(&self, series: &str) -> f64 {
        value_in(&self.scrape(), series)
    }

    /// The sum of every series of the metric `name`, whatever its labels.
    pub fn sum(&self, name: &str) -> f64 {
        let text = self.scrape();
        let of = |l: &&str| l.split(['{', ' ']).next() == Some(name);
        text.lines()
            .filter(of)
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .fold(0.0, |a, b| a + b)
    }

    /// The series of the scrape whose line starts with `prefix`, for messages.
    pub fn lines(&self, prefix: &str) -> String {
        let text = self.scrape();
        text.lines().filter(|l| l.starts_with(prefix)).collect::<Vec<_>>().join("\n")
    }
}

/// The value of `series` in `text`, 0 when absent.
pub fn value_in(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// `banmesh_refused_total` for `reason`.
pub fn refused(reason: &str) -> String {
    format!("banmesh_refused_total{{reason=\"{reason}\"}}")
}

/// `banmesh_records_skipped_total` for `reason`.
pub fn skipped(reason: &str) -> String {
    format!("banmesh_records_skipped_total{{reason=\"{reason}\"}}")
}

/// A star of `count` enrolled nodes, node1 serving `/metrics`, every node
/// connected; and node1's endpoint.
pub fn star_with_metrics(count: usize) -> (TestCluster, Metrics) {
    let mut cluster = TestCluster::new();
    let (config, metrics) = Metrics::config(&cluster, "metrics.toml", "");
    let mut first = cluster.spec("node1", &[]);
    first.config = Some(config);
    cluster.start(first);
    for i in 2..=count {
        let spec = cluster.spec(&format!("node{i}"), &[cluster.node(0).addr()]);
        cluster.start(spec);
    }
    cluster.wait_for_peers(count - 1);
    (cluster, metrics)
}
