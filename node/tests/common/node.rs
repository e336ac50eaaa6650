//! One `banmesh node` child process ([`TestNode`]): started from a
//! [`NodeSpec`], driven through its control socket by the real CLI,
//! stopped with SIGTERM (killed after a grace period); its log is printed
//! when a test fails.

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{
    LOG, LOG_TAIL_BYTES, NodeSpec, SOON, STOP_GRACE, arg, bin, free_port, netns, wait_until,
};

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
