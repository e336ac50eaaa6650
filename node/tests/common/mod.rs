//! The end-to-end harness: a `TestCluster` (one temporary directory, a
//! cluster key made with the real CLI) and `TestNode`s, each a real
//! `banmesh node` child process on loopback, driven through its control
//! socket by the real CLI. A node's log is printed when a test fails.

#![allow(dead_code)]

pub mod fail2ban;
pub mod gateway;
pub mod http;
pub mod netns;
mod node;

pub use node::{TestNode, signal};

// Not every test crate uses them.
#[allow(unused_imports)]
pub use gateway::{gateway_spec, http, python3, wait_for_total};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a condition that should hold soon gets: generous, because these
/// tests run on shared two-core machines. Never a measure of speed.
pub const SOON: Duration = Duration::from_secs(20);

/// How long a node gets to stop after SIGTERM before it is killed (as
/// generous as SOON: a loaded machine stops a node slowly, not wrongly).
const STOP_GRACE: Duration = SOON;

/// How much of a node's log a failing test prints.
const LOG_TAIL_BYTES: u64 = 6_000;
/// The nodes' `RUST_LOG` unless `BANMESH_TEST_LOG` gives another (the netns
/// propagation bench needs the per-record `record_applied` debug events).
const LOG: &str = "info,libp2p=warn";

/// The `banmesh` binary under test: the one cargo built, or `BANMESH_BIN`
/// when set (benchmarks use it to measure another build in the same run).
pub fn bin() -> PathBuf {
    std::env::var_os("BANMESH_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_banmesh")), PathBuf::from)
}

/// The wall clock in Unix milliseconds (the node's own reading).
#[allow(unused_imports)] // not every test binary reads the clock
pub use banmesh_node::clock::now_ms;

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// Issues `count` hour-long bans on distinct addresses (10.100.0.0 up) to
/// the node at `socket`, through its control socket in batches; panics if
/// any is refused.
pub fn issue_bans(socket: &Path, count: usize) {
    issue_bans_from(socket, 0, count);
}

/// [`issue_bans`] on the `count` addresses from the `first`th on
/// (10.100.0.0 is the 0th).
pub fn issue_bans_from(socket: &Path, first: usize, count: usize) {
    use banmesh_node::control::client;
    use banmesh_node::control::protocol::{Command as Wire, MAX_ISSUE_BATCH, OrderSpec, Response};
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let end = first + count;
        for start in (first..end).step_by(MAX_ISSUE_BATCH) {
            let orders = (start..end.min(start + MAX_ISSUE_BATCH))
                .map(|i| OrderSpec {
                    kind: "ban".into(),
                    key: format!("10.{}.{}.{}", 100 + i / 65_536, (i / 256) % 256, i % 256),
                    duration_ms: Some(3_600_000),
                    ..OrderSpec::default()
                })
                .collect();
            match client::call(socket, Wire::Issue { orders }).await.expect("control call") {
                Response::Issued(items) => {
                    assert!(items.iter().all(|i| i.id.is_some()), "a ban was refused: {items:?}")
                }
                other => panic!("batch refused: {other:?}"),
            }
        }
    });
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes;
/// returns whether it held.
pub fn wait_until(timeout: Duration, condition: impl FnMut() -> bool) -> bool {
    wait_every(Duration::from_millis(50), timeout, condition)
}

/// Polls `condition` every `interval` until it holds or `timeout` passes;
/// returns whether it held.
pub fn wait_every(
    interval: Duration,
    timeout: Duration,
    mut condition: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(interval);
    }
}

/// Checks that `condition` holds at every poll for the whole of `period`;
/// returns false at the first poll where it does not.
pub fn holds_for(period: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + period;
    while Instant::now() < deadline {
        if !condition() {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
    condition()
}

/// Runs the `banmesh` CLI with `args`.
pub fn run_cli(args: &[&str]) -> std::process::Output {
    Command::new(bin()).args(args).output().expect("run banmesh")
}

/// Runs the CLI and expects success; returns stdout.
pub fn cli_ok(args: &[&str]) -> String {
    let output = run_cli(args);
    assert!(
        output.status.success(),
        "banmesh {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The path as a `&str`, for command lines.
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A cluster key in a temporary directory, and the nodes started in it.
pub struct TestCluster {
    /// Nodes, in the order they were started. Declared before `dir` so they
    /// stop before their directory is removed.
    pub nodes: Vec<TestNode>,
    /// The cluster's secret key.
    pub cluster_key: PathBuf,
    /// The cluster's public key, given to every node.
    pub cluster_pub: PathBuf,
    /// Holds every file of the test.
    pub dir: tempfile::TempDir,
}

/// How to start one node.
pub struct NodeSpec {
    /// The node's name (its data dir, socket and log are named after it).
    pub name: String,
    /// The data dir.
    pub data_dir: PathBuf,
    /// `--cluster-pub`, or none for a development cluster.
    pub cluster_pub: Option<PathBuf>,
    /// `--peer` multiaddrs.
    pub peers: Vec<String>,
    /// `--config`, or none for the built-in defaults.
    pub config: Option<PathBuf>,
    /// Run with libfaketime at OFFSET (e.g. `+10m`): a node with a wrong clock.
    pub clock_offset: Option<String>,
    /// More arguments for `banmesh node` (e.g. `--gateway 127.0.0.1:PORT`).
    pub args: Vec<String>,
}

impl TestCluster {
    /// A temporary directory with a cluster key made by `keys init-cluster`.
    pub fn new() -> TestCluster {
        let dir = tempfile::Builder::new().prefix("bm").tempdir().expect("tempdir");
        let cluster_dir = dir.path().join("cluster");
        cli_ok(&["keys", "init-cluster", "--out", arg(&cluster_dir)]);
        TestCluster {
            nodes: Vec::new(),
            cluster_key: cluster_dir.join("cluster.key"),
            cluster_pub: cluster_dir.join("cluster.pub"),
            dir,
        }
    }

    /// A path in the test's directory.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Makes a node key in `DIR/name` (`keys init`) without enrolling it;
    /// returns the data dir.
    pub fn key_only(&self, name: &str) -> PathBuf {
        let data_dir = self.path(name);
        cli_ok(&["keys", "init", "--out", arg(&data_dir)]);
        data_dir
    }

    /// Makes a node key in `DIR/name` and enrolls it in this cluster under
    /// `name`; returns the data dir.
    pub fn enroll(&self, name: &str) -> PathBuf {
        let data_dir = self.key_only(name);
        self.enroll_key(name, &data_dir);
        data_dir
    }

    /// Enrolls the key in `data_dir` in this cluster (writes `node.cert`).
    pub fn enroll_key(&self, name: &str, data_dir: &Path) {
        self.enroll_key_with(name, data_dir, &[]);
    }

    /// [`TestCluster::enroll_key`] with more `keys enroll` arguments.
    pub fn enroll_key_with(&self, name: &str, data_dir: &Path, more: &[&str]) {
        let pub_key = data_dir.join("node.pub");
        let cert = data_dir.join("node.cert");
        let args = [
            "keys",
            "enroll",
            "--cluster-key",
            arg(&self.cluster_key),
            "--node-pub",
            arg(&pub_key),
            "--name",
            name,
            "--out",
            arg(&cert),
        ];
        cli_ok(&[&args[..], more].concat());
    }

    /// The spec of a node of this cluster without peers, its certificate
    /// valid for `valid_for` from now (`2s`, `10d`).
    pub fn spec_valid_for(&self, name: &str, valid_for: &str) -> NodeSpec {
        let data_dir = self.key_only(name);
        self.enroll_key_with(name, &data_dir, &["--valid-for", valid_for]);
        NodeSpec {
            name: name.to_owned(),
            data_dir,
            cluster_pub: Some(self.cluster_pub.clone()),
            peers: Vec::new(),
            config: None,
            clock_offset: None,
            args: Vec::new(),
        }
    }

    /// Revokes node `name`'s certificate with `banmesh keys revoke`,
    /// writing the revocation to `out`.
    pub fn revoke(&self, name: &str, out: &Path) {
        let cert = self.path(&format!("{name}/node.cert"));
        let args =
            ["--cluster-key", arg(&self.cluster_key), "--cert", arg(&cert), "--out", arg(out)];
        cli_ok(&[&["keys", "revoke"][..], &args].concat());
    }

    /// The spec of an enrolled node of this cluster peering with `peers`.
    pub fn spec(&self, name: &str, peers: &[String]) -> NodeSpec {
        NodeSpec {
            name: name.to_owned(),
            data_dir: self.enroll(name),
            cluster_pub: Some(self.cluster_pub.clone()),
            peers: peers.to_vec(),
            config: None,
            clock_offset: None,
            args: Vec::new(),
        }
    }

    /// Starts a node in this test's directory; returns its index.
    pub fn start(&mut self, spec: NodeSpec) -> usize {
        let node = TestNode::start(self.dir.path(), spec);
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Starts a node on `host` (its own network namespace), listening on
    /// the default `/ip4/0.0.0.0/tcp/4646` and `/ip6/::/tcp/4646`; returns
    /// its index.
    pub fn start_on(&mut self, host: &netns::Host, spec: NodeSpec) -> usize {
        let mut node = TestNode::spawn_on(self.dir.path(), spec, Some(host.clone()));
        node.wait_ready();
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Starts one enrolled node `node1..` on each host of `net`, each given
    /// only the first host's address as `--peer`, with `config` when given.
    pub fn start_on_net(&mut self, net: &netns::Net, config: Option<&Path>) {
        let first = net.host(0).mesh_addr();
        for (i, host) in net.hosts.iter().enumerate() {
            let peers = if i == 0 { Vec::new() } else { vec![first.clone()] };
            let mut spec = self.spec(&format!("node{}", i + 1), &peers);
            spec.config = config.map(Path::to_owned);
            self.start_on(host, spec);
        }
    }

    /// Waits until every node shows the same state digest; returns whether
    /// they did within `timeout`.
    pub fn wait_for_same_digest(&self, timeout: Duration) -> bool {
        wait_until(timeout, || {
            let digests: Vec<Value> =
                self.nodes.iter().map(|n| n.status()["digest"].clone()).collect();
            digests[0].is_string() && digests.iter().all(|d| *d == digests[0])
        })
    }

    /// Starts `count` enrolled nodes `node1..`, each given only the first
    /// node as `--peer` (the first node none), and waits until each answers
    /// on its socket.
    pub fn star(count: usize) -> TestCluster {
        let mut cluster = TestCluster::new();
        cluster.start_star(count, None);
        cluster
    }

    /// Starts `count` enrolled nodes `node1..` in this (empty) cluster as
    /// [`TestCluster::star`] does, each with `config` as `--config` when given.
    pub fn start_star(&mut self, count: usize, config: Option<&Path>) {
        for i in 1..=count {
            let peers = self.nodes.first().map(|first| vec![first.addr()]).unwrap_or_default();
            let mut spec = self.spec(&format!("node{i}"), &peers);
            spec.config = config.map(Path::to_owned);
            self.start(spec);
        }
    }

    /// The node at `index`.
    pub fn node(&self, index: usize) -> &TestNode {
        &self.nodes[index]
    }

    /// Node `index`, to stop or restart it.
    pub fn node_mut(&mut self, index: usize) -> &mut TestNode {
        &mut self.nodes[index]
    }

    /// Waits until every node has at least `min` connected peers.
    pub fn wait_for_peers(&self, min: usize) {
        let ok = wait_until(SOON, || self.nodes.iter().all(|n| n.connected_peers().len() >= min));
        let counts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("{}: {}", n.name, n.connected_peers().len()))
            .collect();
        assert!(ok, "not every node reached {min} connected peers in {SOON:?}: {counts:?}");
    }
}
