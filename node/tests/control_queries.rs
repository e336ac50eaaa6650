//! Reads never hold up writes: while `banmesh records --json` dumps a large
//! store, Fail2Ban's hand-over (with the 2 s limit its action uses) and
//! `banmesh ban` are answered, because reads run beside the node task, not
//! in its queue.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;

use common::{SOON, TestCluster, arg, bin, wait_until};

const RECORDS: usize = 100_000;
const DUMPS: usize = 3;

/// `banmesh records --json`: how many records the array holds.
fn dump(socket: PathBuf) -> Result<usize, String> {
    let out = Command::new(bin())
        .args(["records", "--socket", arg(&socket), "--json"])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let records: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("not one JSON array: {e}"))?;
    records.as_array().map(Vec::len).ok_or_else(|| "not an array".to_owned())
}

/// Fail2Ban's action: `banmesh fail2ban ban` with the 2 s limit it uses.
fn handover(socket: &Path, ip: &str) -> (bool, String) {
    let tags = ["--ip", ip, "--jail", "sshd", "--bantime", "600", "--failures", "5"];
    let out = Command::new(bin())
        .args(["fail2ban", "ban", "--socket", arg(socket), "--timeout", "2s"])
        .args(tags)
        .args(["--bancount", "1", "--restored", "0"])
        .output()
        .expect("banmesh");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn control_bans_are_answered_while_records_are_dumped() {
    let cluster = TestCluster::star(1);
    let node = cluster.node(0);
    common::issue_bans(&node.socket, RECORDS);

    let dumps: Vec<_> = (0..DUMPS)
        .map(|_| {
            let socket = node.socket.clone();
            thread::spawn(move || dump(socket))
        })
        .collect();
    // Hand bans over for as long as any dump runs: each must be answered
    // within Fail2Ban's limit, never queued behind a dump.
    let mut handed = 0;
    while dumps.iter().any(|d| !d.is_finished()) {
        let ip = format!("203.0.113.{}", handed % 250 + 1);
        let (ok, text) = handover(&node.socket, &ip);
        assert!(ok && text.contains("published"), "hand-over {handed} during the dumps: {text}");
        handed += 1;
        if handed == 1 {
            let ban = node.try_call(&["ban", "198.51.100.1"]);
            assert!(ban.is_ok(), "banmesh ban during the dumps: {ban:?}");
        }
    }
    assert!(handed > 0, "the dumps ended before a hand-over was tried");
    for dump in dumps {
        let count = dump.join().expect("dump thread").expect("records --json");
        assert!(count >= RECORDS, "a dump held {count} of {RECORDS} records");
    }
    let all = wait_until(SOON, || node.records().len() > RECORDS);
    assert!(all, "the bans handed over are not stored");
}

/// `NAME:` in `/proc/PID/status`, in bytes.
fn status_bytes(pid: u32, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status.lines().find(|l| l.starts_with(name)).expect("field in proc status");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number");
    kib << 10
}

/// `records --json` prints records as their frames arrive: halfway through
/// its output the client's peak memory is a fraction of the output (a client
/// that gathered the answer first held several KB per record), the node's
/// peak rises by a bounded amount, and the whole output is one array of
/// every record.
#[test]
fn control_records_stream_through_client_and_node_in_bounded_memory() {
    use std::io::Read as _;
    use std::process::Stdio;
    const BOUND: u64 = 64 << 20;
    let cluster = TestCluster::star(1);
    let node = cluster.node(0);
    common::issue_bans(&node.socket, RECORDS);
    let node_pid = node.pid().expect("node running");
    // The node's peak from here on (5 resets VmHWM to the resident size).
    let _ = std::fs::write(format!("/proc/{node_pid}/clear_refs"), "5");
    let node_before = status_bytes(node_pid, "VmHWM");

    let mut child = Command::new(bin())
        .args(["records", "--socket", arg(&node.socket), "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("banmesh records");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut out = Vec::new();
    let mut buf = vec![0; 1 << 16];
    // 200 bytes a record at least: past half the output once this is read.
    while out.len() < RECORDS * 100 {
        let n = stdout.read(&mut buf).expect("read the output");
        assert!(n > 0, "the output ended after {} bytes", out.len());
        out.extend_from_slice(&buf[..n]);
    }
    let client_peak = status_bytes(child.id(), "VmHWM");
    stdout.read_to_end(&mut out).expect("read the output");
    assert!(child.wait().expect("wait").success(), "records --json failed");
    let node_rise = status_bytes(node_pid, "VmHWM").saturating_sub(node_before);

    let mb = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    println!(
        "output {:.1} MB; client peak {:.1} MB halfway; node peak rose {:.1} MB; bound {:.1} MB",
        mb(out.len() as u64),
        mb(client_peak),
        mb(node_rise),
        mb(BOUND)
    );
    let records: serde_json::Value = serde_json::from_slice(&out).expect("one JSON array");
    assert_eq!(records.as_array().map(Vec::len), Some(RECORDS), "every record printed");
    assert!(client_peak < BOUND, "the client held {:.1} MB", mb(client_peak));
    assert!(node_rise < BOUND, "the node's peak rose {:.1} MB", mb(node_rise));
}
