//! The Debian package, built as a sysadmin would get it (`scripts/deb.sh`,
//! here `--profile dev`: the debug binary the tests already built, so CI
//! makes no release build). Checks its file list and conffiles, then
//! installs it with the real dpkg into a throwaway root (`dpkg --root`,
//! its maintainer scripts run unchrooted with `DPKG_ROOT`; installing into
//! this machine's own / would change the host the other tests run on):
//! postinst makes the node key once and prints the enrollment command, the
//! enrollment pipeline works against the packaged configuration, an upgrade
//! keeps the key, `dpkg -r` keeps the key and the certificate and `dpkg -P`
//! deletes them. Runs lintian when it is installed and prints what it
//! reports. Needs cargo-deb (`scripts/test.sh` installs it).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{arg, bin, cli_ok};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("run");
    assert!(output.status.success(), "{command:?} failed:\n{}", text(&output));
    text(&output)
}

/// Builds the package; returns its path.
fn build() -> PathBuf {
    let probe = Command::new("cargo").args(["deb", "--version"]).output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "cargo-deb is missing: `cargo install --locked cargo-deb` (scripts/test.sh does)"
    );
    let mut command = Command::new(repo().join("scripts/deb.sh"));
    // The variables `cargo test` sets for this test would make the nested
    // build rebuild some crates (and the next `cargo test` rebuild them back).
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_") && name != "CARGO_HOME" && name != "CARGO_TARGET_DIR" {
            command.env_remove(&*name);
        }
    }
    let out = run(command.args(["--profile", "dev"]));
    out.lines()
        .map(|line| repo().join(line.trim()))
        .find(|path| path.extension().is_some_and(|e| e == "deb") && path.is_file())
        .unwrap_or_else(|| panic!("scripts/deb.sh named no .deb:\n{out}"))
}

/// Runs dpkg on the throwaway `root` (its scripts unchrooted, with
/// `DPKG_ROOT`; the root has no libc6 package, hence --force-depends).
fn dpkg(root: &Path, args: &[&str]) -> String {
    let root_arg = format!("--root={}", root.display());
    run(Command::new("dpkg")
        .args([&root_arg, "--force-script-chrootless", "--force-depends"])
        .args(args))
}

#[test]
fn debian_package_installs_enrolls_removes_and_purges() {
    let deb = build();
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [
        "./usr/bin/banmesh",
        "./etc/banmesh/banmesh.toml",
        "/systemd/system/banmesh.service",
        "./etc/fail2ban/action.d/banmesh.conf",
        "./etc/fail2ban/action.d/banmesh-nftables.conf",
        "./etc/fail2ban/jail.d/banmesh.conf",
        "./usr/share/man/man1/banmesh.1.gz",
        "./usr/share/man/man1/banmesh-keys-install-cert.1.gz",
        "./usr/share/bash-completion/completions/banmesh",
        "./usr/share/zsh/vendor-completions/_banmesh",
        "./usr/share/fish/vendor_completions.d/banmesh.fish",
    ] {
        assert!(listing.contains(path), "{path} is not in the package:\n{listing}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, control) = (dir.path().join("root"), dir.path().join("DEBIAN"));
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let conffiles = fs::read_to_string(control.join("conffiles")).expect("conffiles");
    for conffile in ["/etc/banmesh/banmesh.toml", "/etc/fail2ban/jail.d/banmesh.conf"] {
        assert!(
            conffiles.lines().any(|l| l == conffile),
            "{conffile} is no conffile:\n{conffiles}"
        );
    }

    // Install: postinst makes the key and prints the pipeline.
    for sub in ["info", "updates", "triggers"] {
        fs::create_dir_all(root.join("var/lib/dpkg").join(sub)).expect("dpkg dirs");
    }
    fs::write(root.join("var/lib/dpkg/status"), "").expect("dpkg status");
    let said = dpkg(&root, &["-i", arg(&deb)]);
    let key = root.join("var/lib/banmesh/node.key");
    let first = fs::read(&key).expect("postinst made no node key");
    assert_eq!(fs::metadata(&key).expect("key").permissions().mode() & 0o777, 0o600);
    assert!(said.contains("banmesh keys pub | banmesh keys enroll"), "{said}");
    assert!(said.contains("banmesh keys install-cert -"), "{said}");
    for file in ["action.d/banmesh.conf", "jail.d/banmesh.conf"] {
        let shipped = fs::read(repo().join("systemd/fail2ban").join(file)).expect("repo file");
        let packaged = fs::read(root.join("etc/fail2ban").join(file)).expect("packaged file");
        assert_eq!(shipped, packaged, "{file} differs from systemd/fail2ban/{file}");
    }
    let config = fs::read_to_string(root.join("etc/banmesh/banmesh.toml")).expect("config");
    assert!(config.contains("\npublic_key = \"/etc/banmesh/cluster.pub\"\n"), "{config}");

    enroll_in(&root, dir.path());
    // An upgrade (the same package again) keeps the key and the certificate.
    let cert = fs::read(root.join("var/lib/banmesh/node.cert")).expect("cert");
    dpkg(&root, &["-i", arg(&deb)]);
    assert_eq!(fs::read(&key).expect("key"), first, "an upgrade replaced the key");
    assert_eq!(fs::read(root.join("var/lib/banmesh/node.cert")).expect("cert"), cert);

    // Remove keeps the key, the certificate and the cluster key; purge deletes them.
    dpkg(&root, &["-r", "banmesh"]);
    assert!(!root.join("usr/bin/banmesh").exists(), "dpkg -r kept the binary");
    assert_eq!(fs::read(&key).expect("remove deleted the key"), first);
    assert!(root.join("var/lib/banmesh/node.cert").exists(), "remove deleted the certificate");
    assert!(root.join("etc/banmesh/cluster.pub").exists(), "remove deleted cluster.pub");
    dpkg(&root, &["-P", "banmesh"]);
    assert!(!root.join("var/lib/banmesh").exists(), "purge kept /var/lib/banmesh");
    assert!(!root.join("etc/banmesh").exists(), "purge kept /etc/banmesh");

    lintian(&deb);
}

/// Enrolls the unpacked host with the pipeline against its packaged
/// configuration; `config check` fails before and passes after.
fn enroll_in(root: &Path, dir: &Path) {
    let flags = |root: &Path| {
        format!(
            "--config {0}/etc/banmesh/banmesh.toml --data-dir {0}/var/lib/banmesh \
             --cluster-pub {0}/etc/banmesh/cluster.pub --socket {0}/run/banmesh/banmesh.sock",
            root.display()
        )
    };
    let host = flags(root);
    let b = bin();
    let check = format!("{} config check {host}", b.display());
    let before = Command::new("sh").args(["-c", &check]).output().expect("config check");
    assert!(!before.status.success(), "{}", text(&before));
    assert!(
        text(&before).contains("cluster.pub ([cluster] public_key) is missing"),
        "{}",
        text(&before)
    );
    let cluster = dir.join("cluster");
    cli_ok(&["keys", "init-cluster", "--out", arg(&cluster)]);
    let b = b.display();
    let pipeline = format!(
        "set -o pipefail; {b} keys pub {host} | {b} keys enroll --cluster-key {} --node-pub - \
         --name web1 --roles ban | {b} keys install-cert - {host}",
        cluster.join("cluster.key").display()
    );
    run(Command::new("bash").args(["-c", &pipeline]));
    run(Command::new("sh").args(["-c", &check]));
}

/// Runs lintian when installed, printing what it reports; fails on errors
/// (`E:` tags).
fn lintian(deb: &Path) {
    let Ok(output) = Command::new("lintian").args(["--tag-display-limit", "0"]).arg(deb).output()
    else {
        eprintln!("lintian is not installed: skipped (scripts/test.sh installs it)");
        return;
    };
    let report = text(&output);
    eprintln!("lintian reports:\n{report}");
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E: ")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
}
