//! The systemd side of the node: the shipped unit `systemd/banmesh.service`
//! passes `systemd-analyze verify` without a warning and its exposure score
//! (`systemd-analyze security --offline=true`) stays at or below the figure
//! committed in `systemd/banmesh.service.exposure`; and a real node run with
//! `NOTIFY_SOCKET` (as `Type=notify` runs it) says `READY=1` once its
//! control socket answers, then `STATUS=` lines.
//!
//! Needs `systemd-analyze` (Debian package `systemd`).

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{SOON, TestCluster, arg, bin, free_port};

fn systemd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd")
}

/// Runs `systemd-analyze ARGS`, or panics saying what to install.
fn analyze(args: &[&str]) -> Output {
    Command::new("systemd-analyze").args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run systemd-analyze ({e}): install the Debian package systemd \
             (apt-get install systemd), or run scripts/test.sh"
        )
    })
}

/// A copy of the shipped unit in `dir`, its ExecStart pointing at the
/// binary under test (verify needs the binary to exist).
fn unit_copy(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(systemd_dir().join("banmesh.service")).expect("read unit");
    assert!(text.contains("ExecStart=/usr/bin/banmesh node"), "ExecStart changed:\n{text}");
    let text = text.replace("ExecStart=/usr/bin/banmesh", &format!("ExecStart={}", arg(&bin())));
    let path = dir.join("banmesh.service");
    std::fs::write(&path, text).expect("write unit copy");
    path
}

#[test]
fn systemd_unit_verifies_without_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = unit_copy(dir.path());
    let output = analyze(&["verify", arg(&unit)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Other units on this host (fail2ban.service, targets) may warn about
    // themselves; only lines about ours count.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("banmesh")).collect();
    assert!(output.status.success() && ours.is_empty(), "systemd-analyze verify:\n{stderr}");
}

#[test]
fn systemd_unit_exposure_stays_at_the_committed_figure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = unit_copy(dir.path());
    let output = analyze(&["security", "--offline=true", "--no-pager", arg(&unit)]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let score: f64 = stdout
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for banmesh.service:"))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{stdout}{}", stderr(&output)));
    let committed = systemd_dir().join("banmesh.service.exposure");
    let limit: f64 = std::fs::read_to_string(&committed)
        .expect("read banmesh.service.exposure")
        .trim()
        .parse()
        .expect("banmesh.service.exposure holds a number");
    assert!(
        score <= limit,
        "the unit's exposure rose to {score}, above the committed {limit}:\n{stdout}"
    );
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A node child process, killed when the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The next datagram on `socket` within `SOON`, as text.
fn next_message(socket: &UnixDatagram, deadline: Instant) -> Option<String> {
    let left = deadline.checked_duration_since(Instant::now())?;
    socket.set_read_timeout(Some(left.max(Duration::from_millis(1)))).expect("timeout");
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A node run as systemd would with `NOTIFY_SOCKET` (and `env`): the
/// socket it notifies, the running child, and a reader of its log.
fn notified_node(
    cluster: &TestCluster,
    env: &[(&str, &str)],
) -> (UnixDatagram, Running, impl Fn() -> String + use<>) {
    let data_dir = cluster.enroll("node1");
    let notify = cluster.path("notify.sock");
    let listener = UnixDatagram::bind(&notify).expect("bind the notify socket");
    let socket = cluster.path("node1.sock");
    let log_path = cluster.path("node1.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let child = Command::new(bin())
        .args(["node", "--data-dir", arg(&data_dir), "--socket", arg(&socket)])
        .args(["--listen", &format!("/ip4/127.0.0.1/tcp/{}", free_port())])
        .args(["--cluster-pub", arg(&cluster.cluster_pub)])
        .env("NOTIFY_SOCKET", &notify)
        .env("RUST_LOG", "info,libp2p=warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("clone log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn banmesh node");
    let log_text = move || std::fs::read_to_string(&log_path).unwrap_or_default();
    (listener, Running(child), log_text)
}

#[test]
fn sd_notify_ready_comes_once_the_control_socket_answers_then_status_lines() {
    let cluster = TestCluster::new();
    let (listener, _node, log_text) = notified_node(&cluster, &[]);
    let socket = cluster.path("node1.sock");
    let deadline = Instant::now() + SOON;
    let first = next_message(&listener, deadline)
        .unwrap_or_else(|| panic!("no notification in {SOON:?}:\n{}", log_text()));
    assert!(first.lines().any(|l| l == "READY=1"), "the first notification: {first:?}");
    assert!(first.contains("STATUS=0 of 0 peers ready, 0 records"), "{first:?}");
    // READY means the control socket answers now, without retrying.
    let status = common::run_cli(&["status", "--socket", arg(&socket), "--json"]);
    assert!(status.status.success(), "status right after READY=1: {}", stderr(&status));
    let later = next_message(&listener, deadline)
        .unwrap_or_else(|| panic!("no STATUS= line after READY=1:\n{}", log_text()));
    assert!(later.starts_with("STATUS="), "{later:?}");
    assert!(!later.contains("WATCHDOG=1"), "no WATCHDOG_USEC, no ping: {later:?}");
}

#[test]
fn sd_notify_watchdog_pings_when_systemd_asks() {
    let cluster = TestCluster::new();
    let (listener, _node, _) = notified_node(&cluster, &[("WATCHDOG_USEC", "2000000")]);
    let deadline = Instant::now() + SOON;
    let mut seen = Vec::new();
    while let Some(message) = next_message(&listener, deadline) {
        let ping = message.lines().any(|l| l == "WATCHDOG=1");
        seen.push(message);
        if ping {
            return;
        }
    }
    panic!("no WATCHDOG=1 in {SOON:?}; got {seen:?}");
}

/// The watchdog stops once the node task stops answering (the debug-build
/// fault hook `node:hang`, fired by SIGUSR1), so systemd would kill and
/// restart the node.
#[test]
fn sd_notify_watchdog_stops_when_the_node_task_hangs() {
    let cluster = TestCluster::new();
    let env = [("WATCHDOG_USEC", "1000000"), ("BANMESH_FAULT_INJECT", "node:hang")];
    let (listener, node, _) = notified_node(&cluster, &env);
    let pid = node.0.id();
    let deadline = Instant::now() + SOON;
    let mut seen = Vec::new();
    while let Some(message) = next_message(&listener, deadline) {
        let ping = message.lines().any(|l| l == "WATCHDOG=1");
        seen.push(message);
        if ping {
            break;
        }
    }
    assert!(seen.last().is_some_and(|m| m.contains("WATCHDOG=1")), "no ping: {seen:?}");
    common::signal(pid, "USR1");
    // Pings already on their way may come; then a status naming the node
    // task, and no ping after it.
    let stuck = loop {
        let message = next_message(&listener, deadline)
            .unwrap_or_else(|| panic!("no status naming the hung task in {SOON:?}"));
        if message.contains("the node task does not answer") {
            break message;
        }
    };
    assert!(!stuck.contains("WATCHDOG=1"), "{stuck:?}");
    let next = next_message(&listener, deadline).unwrap_or_default();
    assert!(!next.contains("WATCHDOG=1"), "a ping after the node task hung: {next:?}");
    assert!(next.contains("the node task does not answer"), "{next:?}");
}
