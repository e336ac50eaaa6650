//! The supervisor: a task of a running node that panics or returns stops
//! the whole node, cleanly, with a non-zero exit and an ERROR line naming
//! the task. The fault comes from the debug-build hook
//! `BANMESH_FAULT_INJECT=TASK[:return]`, fired by SIGUSR1.

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
