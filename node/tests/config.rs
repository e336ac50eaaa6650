//! End-to-end tests of `banmesh config`: the real binary printing the example,
//! checking it, and refusing bad files with the key and line named.

use std::fs;
use std::path::Path;

use assert_cmd::Command;

fn banmesh() -> Command {
    Command::cargo_bin("banmesh").expect("banmesh binary")
}

/// Runs `config check --config FILE`, returning (success, stdout, stderr).
fn check(file: &Path) -> (bool, String, String) {
    let output =
        banmesh().args(["config", "check", "--config"]).arg(file).output().expect("run banmesh");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn config_example_passes_check() {
    let output = banmesh().args(["config", "example"]).output().expect("run");
    assert!(output.status.success());
    let example = String::from_utf8(output.stdout).expect("utf-8");
    assert_eq!(example, banmesh_node::config::EXAMPLE);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("banmesh.toml");
    fs::write(&file, &example).expect("write");
    let (ok, stdout, stderr) = check(&file);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("data_dir = \"/var/lib/banmesh\""), "{stdout}");
    assert!(stdout.contains("max_ttl = \"5w\""), "{stdout}");
    assert!(!stdout.contains("warning"), "{stdout}");
}

#[test]
fn config_check_prints_warnings_and_overrides() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("banmesh.toml");
    fs::write(&file, "[bans]\nbantime_maxtime = \"9w\"\n").expect("write");
    let output = banmesh()
        .args(["config", "check", "--config"])
        .arg(&file)
        .args(["--data-dir", "/srv/bm", "--peer", "/ip4/192.0.2.1/tcp/4646"])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("# warning:") && stdout.contains("bantime_maxtime 9w"), "{stdout}");
    assert!(stdout.contains("node_key = \"/srv/bm/node.key\""), "{stdout}");
    assert!(stdout.contains("peers = [\"/ip4/192.0.2.1/tcp/4646\"]"), "{stdout}");
}

#[test]
fn config_unknown_key_fails_naming_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("banmesh.toml");
    fs::write(&file, "[node]\ndata_dir = \"/tmp/x\"\nlisten_on = []\n").expect("write");
    let (ok, _, stderr) = check(&file);
    assert!(!ok);
    assert!(stderr.starts_with("Error: "), "{stderr}");
    assert!(stderr.contains("listen_on"), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
}

#[test]
fn config_bad_duration_fails_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("banmesh.toml");
    fs::write(&file, "[sync]\ninterval = \"30 seconds\"\n").expect("write");
    let (ok, _, stderr) = check(&file);
    assert!(!ok);
    assert!(stderr.starts_with("Error: "), "{stderr}");
    assert!(stderr.contains("sync.interval"), "{stderr}");
    assert!(stderr.contains("30 seconds"), "{stderr}");
}

#[test]
fn config_missing_file_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, _, stderr) = check(&dir.path().join("absent.toml"));
    assert!(!ok);
    assert!(stderr.contains("cannot read config file"), "{stderr}");
}
