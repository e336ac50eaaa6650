//! The supervisor: a task of a running node that panics or returns stops
//! the whole node, cleanly, with a non-zero exit and an ERROR line naming
//! the task. The fault comes from the debug-build hook
//! `BANMESH_FAULT_INJECT=TASK[:return]`, fired by SIGUSR1. Also how a stop
//! shapes the next start: after a clean stop the store's integrity check
//! is skipped and the index saved at the stop is loaded (unless the file
//! changed), after `kill -9` it runs and refuses a damaged store.

#[path = "common/mod.rs"]
mod common;

use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use common::{SOON, TestCluster, TestNode, arg, cli_ok, signal, wait_until};

/// Waits (bounded) for `child` to exit; kills it and panics otherwise.
fn wait_exit(child: &mut Child, node: &TestNode) -> ExitStatus {
    let deadline = Instant::now() + SOON;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{} did not stop within {SOON:?} of the fault:\n{}", node.name, node.log_tail());
}

/// Runs `node` with the fault hook on `fault`, bans `ip`, fires the fault
/// and checks the node stopped as the supervisor should.
fn fail_once(node: &TestNode, fault: &str, task: &str, how: &str, ip: &str) {
    let logged_before = node.log_text().len();
    let mut child =
        node.command().env("BANMESH_FAULT_INJECT", fault).spawn().expect("spawn banmesh node");
    let armed = wait_until(SOON, || {
        node.log_text()[logged_before..].contains("this task fails on SIGUSR1")
            && node.try_call(&["status"]).is_ok()
    });
    assert!(armed, "the fault hook was not armed for {task}:\n{}", node.log_tail());
    node.call(&["ban", ip, "--for", "1h"]);
    signal(child.id(), "USR1");
    let status = wait_exit(&mut child, node);
    let log = node.log_text()[logged_before..].to_owned();
    assert!(!status.success(), "the node exited {status} after task {task} {how}:\n{log}");
    let named =
        log.lines().any(|l| l.contains("ERROR") && l.contains(&format!("task {task} {how}")));
    assert!(named, "no ERROR line names task {task} ({how}):\n{log}");
    let cause = format!("Error: the node stopped because its task {task} {how}");
    assert!(log.contains(&cause), "no {cause:?} in the log:\n{log}");
    let wal = node.data_dir.join("banmesh.db-wal");
    assert!(!wal.exists(), "the store was not closed cleanly: {} is left:\n{log}", wal.display());
    cli_ok(&["store", "check", "--data-dir", arg(&node.data_dir)]);
}

#[test]
fn a_task_that_panics_or_returns_stops_the_node_cleanly_and_non_zero() {
    let mut cluster = TestCluster::new();
    let spec = cluster.spec("node1", &[]);
    let index = cluster.start(spec);
    cluster.node_mut(index).stop();
    let node = cluster.node(index);
    fail_once(node, "mesh-swarm", "mesh-swarm", "panicked", "192.0.2.1");
    fail_once(node, "maintenance:return", "maintenance", "returned", "192.0.2.2");
    let node = cluster.node_mut(index);
    node.restart();
    for ip in ["192.0.2.1", "192.0.2.2"] {
        assert!(node.is_banned(ip), "the ban on {ip} issued before the fault was lost");
    }
}

/// The `integrity` field of the start's `store opened` line, in `log`.
fn integrity(log: &str) -> &str {
    let line = log.lines().find(|l| l.contains("store opened")).unwrap_or("");
    line.split_once("integrity=").map_or("", |(_, rest)| rest)
}

#[test]
fn a_clean_stop_skips_the_store_check_and_a_kill_runs_it() {
    let mut cluster = TestCluster::new();
    let spec = cluster.spec("node1", &[]);
    let index = cluster.start(spec);
    let node = cluster.node_mut(index);
    common::issue_bans(&node.socket, 3_000);
    node.stop();
    let from = node.log_text().len();
    node.restart();
    let log = node.log_text()[from..].to_owned();
    assert!(integrity(&log).starts_with("\"skipped"), "after a clean stop:\n{log}");
    node.kill();
    let from = node.log_text().len();
    node.restart();
    let log = node.log_text()[from..].to_owned();
    assert!(integrity(&log).starts_with("\"checked"), "after kill -9:\n{log}");
    assert!(node.is_banned("10.100.11.183"), "a ban was lost");
    // Killed again, and the file damaged while the node was down: the
    // start refuses it, names it, and leaves it as it was.
    node.kill();
    let path = node.data_dir.join("banmesh.db");
    let conn = rusqlite::Connection::open(&path).expect("open the store");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).expect("checkpoint");
    drop(conn);
    let mut bytes = std::fs::read(&path).expect("read the store");
    let len = bytes.len();
    bytes[len * 2 / 5..len * 3 / 5].fill(0x5a);
    std::fs::write(&path, &bytes).expect("damage the store");
    let from = node.log_text().len();
    let mut child = node.command().spawn().expect("spawn banmesh node");
    let status = wait_exit(&mut child, node);
    let log = node.log_text()[from..].to_owned();
    assert!(!status.success(), "a damaged store was opened:\n{log}");
    assert!(log.contains("banmesh.db is damaged"), "{log}");
    assert_eq!(std::fs::read(&path).expect("read the store"), bytes, "the damaged file changed");
}

/// The `index` field of the start's `store opened` line, in `log`.
fn index_how(log: &str) -> &str {
    let line = log.lines().find(|l| l.contains("store opened")).unwrap_or("");
    line.split_once("index=").map_or("", |(_, rest)| rest)
}

/// A clean stop saves the index and the next start loads it and answers
/// from it; a ban deleted with SQL while the node is stopped (the file
/// keeps its length) makes the next start build the index, which no longer
/// holds it; a kill makes the next start build it.
#[test]
fn a_start_loads_the_index_saved_at_a_clean_stop_unless_the_store_changed() {
    let mut cluster = TestCluster::new();
    let spec = cluster.spec("node1", &[]);
    let index = cluster.start(spec);
    let node = cluster.node_mut(index);
    common::issue_bans(&node.socket, 3_000);
    let bans = |node: &common::TestNode| node.status()["record_counts"]["ban"].as_u64();
    assert_eq!(bans(node), Some(3_000));
    let restart = |node: &mut common::TestNode| {
        let from = node.log_text().len();
        node.restart();
        node.log_text()[from..].to_owned()
    };
    node.stop();
    let log = restart(node);
    assert!(index_how(&log).starts_with("\"loaded"), "after a clean stop:\n{log}");
    assert!(node.is_banned("10.100.11.183"), "a ban was lost");
    assert_eq!(bans(node), Some(3_000), "the saved counts");
    node.stop();
    let path = node.data_dir.join("banmesh.db");
    let len = std::fs::metadata(&path).expect("the store").len();
    let key: banmesh_crdt::Key = "10.100.11.183".parse().expect("key");
    let conn = rusqlite::Connection::open(&path).expect("open the store");
    let deleted = conn
        .execute("DELETE FROM records WHERE key = ?1", [key.to_bytes()])
        .expect("delete the ban");
    assert_eq!(deleted, 1);
    drop(conn);
    assert_eq!(std::fs::metadata(&path).expect("the store").len(), len, "the length changed");
    let log = restart(node);
    assert!(
        index_how(&log).starts_with("\"built (the store file changed"),
        "after an edit:\n{log}"
    );
    assert!(node.is_not_banned("10.100.11.183"), "the index holds a deleted ban");
    assert_eq!(bans(node), Some(2_999));
    node.kill();
    let log = restart(node);
    assert!(index_how(&log).starts_with("\"built"), "after kill -9:\n{log}");
    assert!(node.is_banned("10.100.11.182"), "a ban was lost");
}
