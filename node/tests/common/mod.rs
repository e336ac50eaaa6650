//! The end-to-end harness: a `TestCluster` (one temporary directory, a
//! cluster key made with the real CLI) and `TestNode`s, each a real
//! `banmesh node` child process on loopback, driven through its control
//! socket by the real CLI. A node's log is printed when a test fails.

#![allow(dead_code)]

pub mod fail2ban;
pub mod gateway;
pub mod http;
pub mod netns;

// Not every test crate uses them.
#[allow(unused_imports)]
pub use gateway::{gateway_spec, http, python3, wait_for_total};

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
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

/// One `banmesh node` child process.
pub struct TestNode {
    /// Its name (`node1`).
    pub name: String,
    /// Its data dir.
    pub data_dir: PathBuf,
    /// Its control socket.
    pub socket: PathBuf,
    /// Its mesh port on 127.0.0.1.
    pub port: u16,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    /// The spec it was started with (to restart it).
    spec: NodeSpec,
    /// The network namespace it runs in, if not the machine's own.
    pub host: Option<netns::Host>,
    child: Option<Child>,
    /// Whether it has answered once (from then on its port is its own).
    started: bool,
    /// Ports given up at first start because another process took them.
    port_retries: u32,
    /// More environment for the process from its next start (e.g. a
    /// preloaded library).
    pub env: Vec<(String, String)>,
}

impl TestNode {
    /// Starts a node with its socket and log in `dir` and waits until its
    /// control socket answers `status`.
    pub fn start(dir: &Path, spec: NodeSpec) -> TestNode {
        let mut node = TestNode::spawn(dir, spec);
        node.wait_ready();
        node
    }

    /// Waits until the control socket answers `status`; panics at once if
    /// the process ends first.
    pub fn wait_ready(&mut self) {
        let log_before = self.log_text().len();
        let mut exited = None;
        let ready = wait_until(SOON, || {
            exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            exited.is_some() || self.try_call(&["status"]).is_ok()
        });
        if let Some(status) = exited {
            self.child = None;
            // A loopback port from `free_port` can be taken by another test
            // between its probe and the node's bind: on a first start, take
            // another port (no peer knows this one yet).
            let clash = self.log_text()[log_before..].contains("Address already in use");
            if clash && self.host.is_none() && !self.started && self.port_retries < 5 {
                self.port_retries += 1;
                self.port = free_port();
                self.child = Some(self.command().spawn().expect("respawn banmesh node"));
                return self.wait_ready();
            }
            panic!("{} exited at start ({status}):\n{}", self.name, self.log_tail());
        }
        assert!(ready, "{} did not answer on {} in {SOON:?}", self.name, self.socket.display());
        self.started = true;
    }

    /// Starts a node without waiting for it.
    pub fn spawn(dir: &Path, spec: NodeSpec) -> TestNode {
        TestNode::spawn_on(dir, spec, None)
    }

    /// Starts a node without waiting for it, on `host` when given (then on
    /// the default mesh port rather than a free loopback one).
    pub fn spawn_on(dir: &Path, spec: NodeSpec, host: Option<netns::Host>) -> TestNode {
        let port = if host.is_some() { netns::MESH_PORT } else { free_port() };
        let mut node = TestNode {
            name: spec.name.clone(),
            data_dir: spec.data_dir.clone(),
            socket: dir.join(format!("{}.sock", spec.name)),
            port,
            log: dir.join(format!("{}.log", spec.name)),
            spec,
            host,
            child: None,
            started: false,
            port_retries: 0,
            env: Vec::new(),
        };
        node.child = Some(node.command().spawn().expect("spawn banmesh node"));
        node
    }

    /// The command line that starts this node, output going to its log
    /// (appended, so a restart keeps the earlier run's lines).
    pub fn command(&self) -> Command {
        let log = fs::File::options().create(true).append(true).open(&self.log).expect("log file");
        let err = log.try_clone().expect("clone log file");
        let mut command = match &self.host {
            Some(host) => host.command(arg(&bin())),
            None => Command::new(bin()),
        };
        if let Some(offset) = &self.spec.clock_offset {
            // libfaketime preloaded directly: the `faketime` wrapper forks,
            // and a signal to it would leave the node running.
            command.env("LD_PRELOAD", libfaketime()).env("FAKETIME", offset);
        }
        command.args(["node", "--data-dir", arg(&self.data_dir), "--socket", arg(&self.socket)]);
        if self.host.is_none() {
            command.args(["--listen", &self.addr()]);
        }
        for peer in &self.spec.peers {
            command.args(["--peer", peer]);
        }
        if let Some(cluster_pub) = &self.spec.cluster_pub {
            command.args(["--cluster-pub", arg(cluster_pub)]);
        }
        if let Some(config) = &self.spec.config {
            command.args(["--config", arg(config)]);
        }
        command.args(&self.spec.args);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
            .env("RUST_LOG", std::env::var("BANMESH_TEST_LOG").unwrap_or_else(|_| LOG.to_owned()))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err));
        command
    }

    /// Starts the node again after `stop` or `kill`, on the same port, and
    /// waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is still running", self.name);
        self.child = Some(self.command().spawn().expect("respawn banmesh node"));
        self.wait_ready();
    }

    /// The mesh multiaddr it is reached at: its host's address in a
    /// namespace, else the loopback port it listens on.
    pub fn addr(&self) -> String {
        match &self.host {
            Some(host) => host.mesh_addr(),
            None => format!("/ip4/127.0.0.1/tcp/{}", self.port),
        }
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs `banmesh ARGS --socket SOCKET --json` and parses the answer;
    /// `Err` carries stdout and stderr when the command fails.
    pub fn try_call(&self, args: &[&str]) -> Result<Value, String> {
        let output = Command::new(bin())
            .args(args)
            .args(["--socket", arg(&self.socket), "--json"])
            .output()
            .map_err(|e| format!("cannot run banmesh: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(format!("banmesh {} failed: {stdout}{stderr}", args.join(" ")));
        }
        serde_json::from_str(&stdout).map_err(|e| format!("not JSON ({e}): {stdout}"))
    }

    /// Like `try_call`, and panics naming the node when it fails.
    pub fn call(&self, args: &[&str]) -> Value {
        self.try_call(args).unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// `status --json`.
    pub fn status(&self) -> Value {
        self.call(&["status"])
    }

    /// Its peer id, from `status`.
    pub fn peer_id(&self) -> String {
        self.status()["peer_id"].as_str().expect("peer_id").to_owned()
    }

    /// Its node key (hex), from `status`.
    pub fn node_key(&self) -> String {
        self.status()["node_key"].as_str().expect("node_key").to_owned()
    }

    /// `peers --json`; empty when the call fails.
    pub fn peers(&self) -> Vec<Value> {
        match self.try_call(&["peers"]) {
            Ok(Value::Array(peers)) => peers,
            _ => Vec::new(),
        }
    }

    /// The peer ids of the peers in state `connected`.
    pub fn connected_peers(&self) -> Vec<String> {
        self.peers()
            .iter()
            .filter(|p| p["state"] == "connected")
            .filter_map(|p| p["peer_id"].as_str().map(str::to_owned))
            .collect()
    }

    /// `records --json`.
    pub fn records(&self) -> Vec<Value> {
        match self.call(&["records"]) {
            Value::Array(records) => records,
            other => panic!("{}: records is not an array: {other}", self.name),
        }
    }

    /// The records on exactly `key`.
    pub fn records_on(&self, key: &str) -> Vec<Value> {
        self.records().into_iter().filter(|r| r["key"] == key).collect()
    }

    /// `trace IP --json`.
    pub fn trace(&self, ip: &str) -> Value {
        self.call(&["trace", ip])
    }

    /// The decision in words from `trace IP` (`banned by ...`, `allowed`,
    /// `not banned`); empty when the call fails.
    pub fn decision(&self, ip: &str) -> String {
        self.try_call(&["trace", ip])
            .ok()
            .and_then(|t| t["decision"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Whether `trace IP` says the address is banned.
    pub fn is_banned(&self, ip: &str) -> bool {
        self.decision(ip).starts_with("banned")
    }

    /// Whether `trace IP` says the address is allowed.
    pub fn is_allowed(&self, ip: &str) -> bool {
        self.decision(ip).starts_with("allowed")
    }

    /// Whether `trace IP` says the address is not banned.
    pub fn is_not_banned(&self, ip: &str) -> bool {
        self.decision(ip).starts_with("not banned")
    }

    /// The clock offset (libfaketime's `FAKETIME`) of its next start.
    pub fn set_clock_offset(&mut self, offset: Option<&str>) {
        self.spec.clock_offset = offset.map(str::to_owned);
    }

    /// Sends SIGTERM and waits for the process to end (SIGKILL after a
    /// grace period); returns its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("node is running");
        signal(child.id(), "TERM");
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            if let Some(status) = child.try_wait().expect("wait for node") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let status = child.wait().expect("wait for killed node");
                panic!("{} did not stop within {STOP_GRACE:?} of SIGTERM ({status})", self.name);
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("node is running");
        let _ = child.kill();
        child.wait().expect("wait for killed node")
    }

    /// Its exit status if it has ended, without waiting.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().expect("try_wait")?;
        self.child = None;
        Some(status)
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last few kilobytes of the log.
    pub fn log_tail(&self) -> String {
        let Ok(mut file) = fs::File::open(&self.log) else {
            return String::from("(no log)");
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "----- {} ({}), last lines of {} -----\n{}\n----- end of {} -----",
                self.name,
                self.addr(),
                self.log.display(),
                self.log_tail(),
                self.name
            );
        }
        let Some(mut child) = self.child.take() else { return };
        signal(child.id(), "TERM");
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Debian's multi-threaded libfaketime (package `faketime`).
fn libfaketime() -> PathBuf {
    let found = fs::read_dir("/usr/lib").into_iter().flatten().flatten().find_map(|arch| {
        let lib = arch.path().join("faketime/libfaketimeMT.so.1");
        lib.exists().then_some(lib)
    });
    found.expect(
        "libfaketimeMT.so.1 not found: apt-get install faketime (scripts/test.sh installs it)",
    )
}

/// Sends `SIG<name>` to `pid` with kill(1) (the tests have no libc).
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
