//! `banmesh status --check` end to end, against real nodes: exit 0 and `OK`
//! when healthy, 1 and `WARNING` (no ready peer while one is configured, the
//! certificate expiring within 30 days, the Fail2Ban backend failing), 2 and
//! `CRITICAL` (the certificate expired, the clock skewed, the store not
//! writable, no node answering), each with one line saying why.

mod common;

use std::path::Path;
use std::process::Command;

use common::{NodeSpec, SOON, TestCluster, arg, bin, cli_ok, free_port, wait_until};

/// `status --check` on `socket`: the exit code and the one line printed.
fn check(socket: &Path) -> (i32, String) {
    let output = Command::new(bin())
        .args(["status", "--check", "--socket", arg(socket)])
        .output()
        .expect("run banmesh status --check");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(stdout.lines().count(), 1, "not one line: {stdout:?}");
    (output.status.code().expect("an exit code"), stdout.trim_end().to_owned())
}

#[test]
fn status_check_is_ok_for_a_lone_node_without_peers_configured() {
    let mut cluster = TestCluster::new();
    let node = cluster.start(cluster.spec("node1", &[]));
    let (code, line) = check(&cluster.node(node).socket);
    assert_eq!((code, line.as_str()), (0, "OK: 0 peers ready, 0 records"));
}

#[test]
fn status_check_warns_when_no_configured_peer_is_ready() {
    let mut cluster = TestCluster::new();
    let nowhere = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    let node = cluster.start(cluster.spec("node1", &[nowhere]));
    let (code, line) = check(&cluster.node(node).socket);
    assert_eq!(code, 1, "{line}");
    assert!(line.starts_with("WARNING: no ready peer (1 configured"), "{line}");
}

#[test]
fn status_check_warns_about_a_certificate_expiring_within_30_days() {
    let mut cluster = TestCluster::new();
    let node = cluster.start(cluster.spec_valid_for("node1", "10d"));
    let (code, line) = check(&cluster.node(node).socket);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("certificate expires at") && line.contains("(in 9 d)"), "{line}");
}

#[test]
fn status_check_is_critical_with_an_expired_certificate() {
    let mut cluster = TestCluster::new();
    let spec = cluster.spec_valid_for("node1", "1s");
    let cert = spec.data_dir.join("node.cert");
    let info = || cli_ok(&["keys", "show", arg(&cert)]);
    // Wait until the second has passed (the CLI reads the same clock).
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let node = cluster.start(spec);
    let (code, line) = check(&cluster.node(node).socket);
    assert_eq!(code, 2, "{line}; {}", info());
    assert!(line.starts_with("CRITICAL: this node's certificate expired at"), "{line}");
}

#[test]
fn status_check_is_critical_when_no_node_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, line) = check(&dir.path().join("none.sock"));
    assert_eq!(code, 2, "{line}");
    assert!(line.starts_with("CRITICAL: the node does not answer"), "{line}");
}

#[test]
fn status_check_warns_when_the_fail2ban_backend_fails() {
    let mut cluster = TestCluster::new();
    let config = cluster.path("banmesh.toml");
    std::fs::write(&config, "[fail2ban]\napply = true\nclient = \"/bin/false\"\n").expect("config");
    let spec = NodeSpec { config: Some(config), ..cluster.spec("node1", &[]) };
    let node = cluster.start(spec);
    let socket = cluster.node(node).socket.clone();
    let mut last = (0, String::new());
    let warned = wait_until(SOON, || {
        last = check(&socket);
        last.0 == 1
    });
    assert!(warned, "no warning: {last:?}");
    assert!(last.1.starts_with("WARNING: fail2ban backend failing"), "{last:?}");
}

/// A node 10 minutes ahead of its two peers (run under libfaketime) is
/// critical: it refuses to issue records.
#[test]
fn status_check_is_critical_with_a_skewed_clock() {
    assert!(
        Command::new("faketime").arg("--help").output().is_ok(),
        "this test needs faketime: apt-get install faketime (scripts/test.sh installs it)"
    );
    let mut cluster = TestCluster::star(2);
    let mut skewed = cluster.spec("node3", &[cluster.node(0).addr(), cluster.node(1).addr()]);
    skewed.clock_offset = Some("+10m".to_owned());
    let skewed = cluster.start(skewed);
    let socket = cluster.node(skewed).socket.clone();
    let mut last = (0, String::new());
    let critical = wait_until(SOON, || {
        last = check(&socket);
        last.0 == 2
    });
    assert!(critical, "not critical: {last:?}");
    assert!(last.1.contains("clock"), "{last:?}");
}

/// A tmpfs mounted on a directory, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").args(["-l", arg(&self.0)]).status();
    }
}

/// A node whose data dir's filesystem is full (a 4 MB tmpfs; needs root)
/// is critical once a write failed.
#[test]
fn status_check_is_critical_when_the_store_is_not_writable() {
    let uid = Command::new("id").arg("-u").output().map(|o| o.stdout).unwrap_or_default();
    assert_eq!(String::from_utf8_lossy(&uid).trim(), "0", "mounts a tmpfs: run it as root");
    let mut cluster = TestCluster::new();
    let data = cluster.path("node1");
    std::fs::create_dir_all(&data).expect("mount point");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs", arg(&data)])
        .status()
        .expect("run mount");
    assert!(mounted.success(), "cannot mount a tmpfs on {}", data.display());
    let mount = Tmpfs(data.clone());
    let spec = cluster.spec_valid_for("node1", "365d");
    let node = cluster.start(spec);
    let node = cluster.node(node);
    node.call(&["ban", "192.0.2.1", "--for", "1h"]);
    let filler = format!("of={}", arg(&data.join("filler")));
    let _ = Command::new("dd").args(["if=/dev/zero", &filler, "bs=4k"]).output();
    // SQLite reuses room already in its files: ban until a write needs more.
    let refused = (0..3_000u32).any(|i| {
        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        node.try_call(&["ban", &ip, "--for", "1h"]).is_err()
    });
    assert!(refused, "no ban was refused on a full disk");
    let (code, line) = check(&node.socket);
    assert_eq!(code, 2, "{line}");
    assert!(line.starts_with("CRITICAL: the store is not writable"), "{line}");
    cluster.nodes.clear();
    drop(mount);
}
