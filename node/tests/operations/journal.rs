//! Logs for journald: with `JOURNAL_STREAM` naming the node's stderr (as
//! systemd sets it), every line starts with its syslog priority, so
//! `journalctl -p warning` can select; without it, no prefix. `[log] level`
//! filters when `RUST_LOG` is unset.

use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{SOON, arg, bin, signal, wait_until};

/// Runs a fresh node (a development cluster, so it warns at start) until
/// its control socket answers, stops it, and returns its stderr.
fn run_node(dir: &Path, name: &str, config: Option<&Path>, journal: bool) -> String {
    let log = dir.join(format!("{name}.log"));
    let file = File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    let socket = dir.join(format!("{name}.sock"));
    let mut command = Command::new(bin());
    command
        .args(["node", "--data-dir", arg(&dir.join(name)), "--socket", arg(&socket)])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file);
    if let Some(config) = config {
        command.args(["--config", arg(config)]);
    }
    if journal {
        command.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    }
    let mut child = command.spawn().unwrap();
    let answered = wait_until(SOON, || {
        Command::new(bin())
            .args(["status", "--socket", arg(&socket)])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    signal(child.id(), "TERM");
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(answered, "{name} did not answer:\n{text}");
    text
}

#[test]
fn lines_carry_syslog_priorities_when_stderr_is_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let text = run_node(dir.path(), "journal", None, true);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.iter().all(|l| l.starts_with('<')), "a line without priority:\n{text}");
    let warned = lines.iter().any(|l| l.starts_with("<4>") && l.contains("no cluster configured"));
    assert!(warned, "no <4> warning:\n{text}");
    let info = lines.iter().any(|l| l.starts_with("<6>") && l.contains("banmesh node started"));
    assert!(info, "no <6> info line:\n{text}");

    // A node that cannot start says why at the error priority.
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[log]\nlevel = \"info,=[\"\n").unwrap();
    let log = dir.path().join("broken.log");
    let file = File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    let out = Command::new(bin())
        .args(["node", "--config", arg(&broken)])
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stderr(file)
        .status()
        .unwrap();
    assert!(!out.success());
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.starts_with("<3>Error: ") && said.contains("log.level"), "{said}");

    let config = dir.path().join("warn.toml");
    std::fs::write(&config, "[log]\nlevel = \"warn\"\n").unwrap();
    let text = run_node(dir.path(), "plain", Some(&config), false);
    assert!(text.contains("no cluster configured"), "{text}");
    assert!(!text.contains("banmesh node started"), "[log] level = warn let info through:\n{text}");
    assert!(!text.lines().any(|l| l.starts_with('<')), "a priority without the journal:\n{text}");
}
