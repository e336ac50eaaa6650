//! A node whose disk fills up says so: its data dir on a small tmpfs, the
//! rest of the space taken by a file, bans refused with a clear error and a
//! `status` warning until space returns. Needs root (to mount the tmpfs).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{NodeSpec, TestCluster, arg, cli_ok};

/// A tmpfs mounted on a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let root = Command::new("id").arg("-u").output().map(|o| o.stdout).unwrap_or_default();
        assert!(
            String::from_utf8_lossy(&root).trim() == "0",
            "this test mounts a tmpfs: run it as root (scripts/test.sh does)"
        );
        fs::create_dir_all(dir).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", arg(dir)])
            .status()
            .expect("run mount");
        assert!(status.success(), "cannot mount a tmpfs on {}", dir.display());
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").args(["-l", arg(&self.0)]).status();
    }
}

/// Fills the filesystem of `dir` with a file; returns the file.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", &format!("of={}", arg(&filler)), "bs=4k"])
        .output()
        .expect("run dd");
    filler
}

#[test]
fn store_full_disk_refuses_bans_with_a_warning_until_space_returns() {
    let mut cluster = TestCluster::new();
    let data = cluster.path("node1");
    let mount = Tmpfs::mount(&data, "4m");
    cli_ok(&["keys", "init", "--out", arg(&data)]);
    cluster.enroll_key("node1", &data);
    let spec = NodeSpec {
        name: "node1".into(),
        data_dir: data.clone(),
        cluster_pub: Some(cluster.cluster_pub.clone()),
        peers: Vec::new(),
        config: None,
        clock_offset: None,
        args: Vec::new(),
    };
    cluster.start(spec);
    let node = cluster.node(0);
    node.call(&["ban", "192.0.2.1", "--for", "1h"]);
    let filler = fill(&data);
    // SQLite reuses room already in its files: ban until a write needs more.
    let mut refusal = None;
    for i in 0..3_000u32 {
        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        if let Err(e) = node.try_call(&["ban", &ip, "--for", "1h"]) {
            refusal = Some(e);
            break;
        }
    }
    let refusal = refusal.expect("no ban was refused on a full disk");
    assert!(refusal.contains("no space left"), "unclear refusal: {refusal}");
    let warnings = node.status()["warnings"].to_string();
    assert!(warnings.contains("not been writable"), "no warning for the full disk: {warnings}");
    fs::remove_file(&filler).expect("free the space");
    node.call(&["ban", "192.0.2.2", "--for", "1h"]);
    let warnings = node.status()["warnings"].to_string();
    assert!(!warnings.contains("not been writable"), "the warning stayed: {warnings}");
    assert!(node.is_banned("192.0.2.1"), "a ban stored before the disk filled was lost");
    // The node stops before its filesystem goes, and that before the
    // test's directory is removed.
    cluster.nodes.clear();
    drop(mount);
}
