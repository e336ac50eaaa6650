//! End-to-end tests of the `banmesh` command line: the real binary making,
//! enrolling, showing, revoking and verifying keys, and signing and checking
//! records, in a temporary directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// A temporary directory holding a cluster key and an enrolled node.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// Runs init-cluster, init and enroll.
    fn enrolled() -> Self {
        let setup = Setup { dir: tempfile::tempdir().expect("tempdir") };
        setup.ok(&["keys", "init-cluster", "--out", &setup.arg("cluster")]);
        setup.ok(&["keys", "init", "--out", &setup.arg("node")]);
        let output = setup.enroll("web1", "node/node.cert", &[]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        setup
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn arg(&self, relative: &str) -> String {
        self.path(relative).to_string_lossy().into_owned()
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::cargo_bin("banmesh").expect("binary").args(args).output().expect("run")
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?} failed: {stderr}");
        String::from_utf8(output.stdout).expect("utf-8")
    }

    /// Runs and expects failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(!output.status.success(), "{args:?} succeeded");
        String::from_utf8(output.stderr).expect("utf-8")
    }

    /// Runs `keys enroll` for node/node.pub with the cluster key, plus `extra`.
    fn enroll(&self, name: &str, out: &str, extra: &[&str]) -> std::process::Output {
        let (cluster, node, out) =
            (self.arg("cluster/cluster.key"), self.arg("node/node.pub"), self.arg(out));
        let mut args = vec!["keys", "enroll", "--cluster-key", &cluster, "--node-pub", &node];
        args.extend_from_slice(&["--name", name, "--out", &out]);
        args.extend_from_slice(extra);
        self.run(&args)
    }

    fn verify(&self, cluster_pub: &str, cert: &str) -> std::process::Output {
        self.run(&[
            "keys",
            "verify",
            "--cluster-pub",
            &self.arg(cluster_pub),
            "--cert",
            &self.arg(cert),
        ])
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn init_enroll_show_verify() {
    let setup = Setup::enrolled();
    assert_eq!(mode(&setup.path("cluster/cluster.key")), 0o600);
    assert_eq!(mode(&setup.path("cluster/cluster.pub")), 0o644);
    assert_eq!(mode(&setup.path("node/node.key")), 0o600);
    assert_eq!(mode(&setup.path("node/node.pub")), 0o644);
    assert_eq!(mode(&setup.path("node/node.cert")), 0o644);

    let text = setup.ok(&["keys", "show", &setup.arg("node/node.cert")]);
    for expected in ["certificate", "web1", "ban,allow", "IPv4 /16, IPv6 /48", "valid now"] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }

    let json = setup.ok(&["keys", "show", "--json", &setup.arg("node/node.cert")]);
    let value: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(value["kind"], "certificate");
    assert_eq!(value["name"], "web1");
    assert_eq!(value["roles"], serde_json::json!(["ban", "allow"]));
    assert_eq!(value["widest_prefix"], serde_json::json!({ "v4": 16, "v6": 48 }));
    assert_eq!(value["valid_now"], true);
    let node_key = setup.ok(&["keys", "show", "--json", &setup.arg("node/node.pub")]);
    let node_key: serde_json::Value = serde_json::from_str(&node_key).expect("json");
    assert_eq!(value["node"], node_key["public_key"]);
    let not_after = value["not_after"].as_str().expect("string");
    assert!(not_after.ends_with('Z') && not_after.len() == 20, "{not_after}");

    let output = setup.verify("cluster/cluster.pub", "node/node.cert");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("valid: web1"), "{stdout}");
}

#[test]
fn show_secret_key_prints_no_secret() {
    let setup = Setup::enrolled();
    let text = setup.ok(&["keys", "show", &setup.arg("node/node.key")]);
    assert!(text.contains("secret key"), "{text}");
    let pem = fs::read_to_string(setup.path("node/node.key")).expect("read");
    let body: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
    assert!(!text.contains(&body), "secret printed");
}

#[test]
fn verify_against_another_cluster_fails() {
    let setup = Setup::enrolled();
    setup.ok(&["keys", "init-cluster", "--out", &setup.arg("other")]);
    let output = setup.verify("other/cluster.pub", "node/node.cert");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("Error: ") && stderr.contains("wrong cluster"), "{stderr}");
}

#[test]
fn tampered_certificate_fails() {
    let setup = Setup::enrolled();
    let path = setup.path("node/node.cert");
    let pem = fs::read_to_string(&path).expect("read");
    // Change one base64 character in the middle of the first line of the body.
    let mut lines: Vec<String> = pem.lines().map(str::to_owned).collect();
    let line = &mut lines[1];
    let at = line.len() / 2;
    let replacement = if &line[at..=at] == "A" { "B" } else { "A" };
    line.replace_range(at..=at, replacement);
    fs::write(&path, lines.join("\n") + "\n").expect("write");
    let output = setup.verify("cluster/cluster.pub", "node/node.cert");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("node.cert"), "{stderr}");
}

#[test]
fn loose_secret_key_is_refused() {
    let setup = Setup::enrolled();
    let key = setup.path("node/node.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
    let stderr = setup.fails(&["keys", "show", &setup.arg("node/node.key")]);
    assert!(stderr.contains(&format!("chmod 600 {}", key.display())), "{stderr}");
}

#[test]
fn existing_files_need_force() {
    let setup = Setup::enrolled();
    let before = fs::read(setup.path("node/node.key")).expect("read");
    let stderr = setup.fails(&["keys", "init", "--out", &setup.arg("node")]);
    assert!(stderr.contains("node.key") && stderr.contains("--force"), "{stderr}");
    assert_eq!(fs::read(setup.path("node/node.key")).expect("read"), before);

    setup.ok(&["keys", "init", "--out", &setup.arg("node"), "--force"]);
    assert_ne!(fs::read(setup.path("node/node.key")).expect("read"), before);
    assert_eq!(mode(&setup.path("node/node.key")), 0o600);

    assert!(!setup.enroll("web1", "node/node.cert", &[]).status.success());
    assert!(setup.enroll("web1", "node/node.cert", &["--force"]).status.success());
}

#[test]
fn revoked_certificate_fails_verify() {
    let setup = Setup::enrolled();
    fs::create_dir(setup.path("revocations")).expect("mkdir");
    setup.ok(&[
        "keys",
        "revoke",
        "--cluster-key",
        &setup.arg("cluster/cluster.key"),
        "--cert",
        &setup.arg("node/node.cert"),
        "--reason",
        "laptop stolen",
        "--out",
        &setup.arg("revocations/web1.rev"),
    ]);
    let show = setup.ok(&["keys", "show", "--json", &setup.arg("revocations/web1.rev")]);
    let show: serde_json::Value = serde_json::from_str(&show).expect("json");
    assert_eq!(show["kind"], "revocation");
    assert_eq!(show["reason"], "laptop stolen");

    let stderr = setup.fails(&[
        "keys",
        "verify",
        "--cluster-pub",
        &setup.arg("cluster/cluster.pub"),
        "--cert",
        &setup.arg("node/node.cert"),
        "--revocations",
        &setup.arg("revocations"),
    ]);
    assert!(stderr.contains("revoked"), "{stderr}");
}

#[test]
fn enroll_refuses_wide_prefix_without_role_and_bad_durations() {
    let setup = Setup::enrolled();
    let enroll = |extra: &[&str]| setup.enroll("web2", "web2.cert", extra);

    let output = enroll(&["--max-prefix", "8,32"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("wide-prefix"), "{stderr}");
    assert!(!setup.path("web2.cert").exists());

    for bad in ["3x", "10", "", "1.5d"] {
        let output = enroll(&["--valid-for", bad]);
        assert!(!output.status.success(), "{bad:?} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("duration"), "{stderr}");
    }

    let output =
        enroll(&["--max-prefix", "8,32", "--roles", "ban,wide-prefix", "--valid-for", "1w"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json = setup.ok(&["keys", "show", "--json", &setup.arg("web2.cert")]);
    let json: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(json["widest_prefix"], serde_json::json!({ "v4": 8, "v6": 32 }));
}

#[test]
fn unknown_role_lists_valid_roles() {
    let setup = Setup::enrolled();
    let output = setup.enroll("web3", "web3.cert", &["--roles", "ban,root"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ban, allow, wide-prefix"), "{stderr}");
}

#[test]
fn every_command_has_help() {
    let setup = Setup { dir: tempfile::tempdir().expect("tempdir") };
    for command in ["init-cluster", "init", "enroll", "show", "revoke", "verify"] {
        let text = setup.ok(&["keys", command, "--help"]);
        assert!(text.contains("Usage: banmesh keys"), "{command}: {text}");
    }
}

#[test]
fn record_sign_then_check_reports_normalisation_and_validity() {
    let setup = Setup::enrolled();
    let key = setup.arg("node/node.key");
    let output = setup.run(&["record", "sign", "--node-key", &key, "ban", "10.0.0.9/24"]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("10.0.0.9/24 has host bits set; using 10.0.0.0/24"), "{stderr}");
    let hex = String::from_utf8(output.stdout).expect("utf-8");
    let (cluster, cert) = (setup.arg("cluster/cluster.pub"), setup.arg("node/node.cert"));
    let check = |record: &str| {
        setup.run(&["record", "check", "--cluster-pub", &cluster, "--cert", &cert, record.trim()])
    };
    let out = check(&hex);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("key:        10.0.0.0/24"), "{stdout}");
    assert!(stdout.contains("valid: signed by web1"), "{stdout}");
    assert!(stdout.contains("bans 10.0.0.0/24 until"), "{stdout}");

    // One flipped bit in the signature, a cut record, a record from a node
    // the certificate is not for: each refused with its own reason.
    let mut flipped = hex.trim().to_owned();
    let last = flipped.pop().expect("hex");
    flipped.push(if last == '0' { '1' } else { '0' });
    let err = String::from_utf8(check(&flipped).stderr).expect("utf-8");
    assert!(err.contains("signature does not verify"), "{err}");
    let err = String::from_utf8(check(&hex[..40]).stderr).expect("utf-8");
    assert!(err.contains("truncated"), "{err}");
    setup.ok(&["keys", "init", "--out", &setup.arg("other")]);
    let other_key = setup.arg("other/node.key");
    let other = setup.ok(&["record", "sign", "--node-key", &other_key, "unban", "10.0.0.1"]);
    let err = String::from_utf8(check(&other).stderr).expect("utf-8");
    assert!(err.contains("certificate is for node"), "{err}");
}

#[test]
fn record_sign_refuses_bad_input() {
    let setup = Setup::enrolled();
    let key = setup.arg("node/node.key");
    let err = setup.fails(&["record", "sign", "--node-key", &key, "ban", "not-an-ip"]);
    assert!(err.contains("invalid IP address or network \"not-an-ip\""), "{err}");
    let err =
        setup.fails(&["record", "sign", "--node-key", &key, "allow", "10.0.0.1", "--for", "6w"]);
    assert!(err.contains("beyond the cluster's max_ttl of 5w"), "{err}");
    let err =
        setup.fails(&["record", "sign", "--node-key", &key, "unban", "10.0.0.1", "--for", "1h"]);
    assert!(err.contains("--for applies to ban and allow only"), "{err}");
    // A wide network signs (storage rules are the certificate's), but a
    // receiving node refuses it for this certificate.
    let wide = setup.ok(&["record", "sign", "--node-key", &key, "ban", "10.0.0.0/8"]);
    let (cluster, cert) = (setup.arg("cluster/cluster.pub"), setup.arg("node/node.cert"));
    let err =
        setup.fails(&["record", "check", "--cluster-pub", &cluster, "--cert", &cert, wide.trim()]);
    assert!(err.contains("network /8 is wider than this node's certificate allows (/16)"), "{err}");
}

/// Makes a store in `dir` holding `n` bans signed by a fresh key.
fn make_store(dir: &Path, n: u64) {
    use banmesh_crdt::{Hlc, Kind, Metadata, Origin, Params, Statement};
    let node = banmesh_keys::SecretKey::generate().expect("key");
    let now = 1_800_000_000_000u64;
    let records = (0..n)
        .map(|i| {
            let statement = Statement {
                key: format!("10.0.{}.{}", i / 256, i % 256).parse().expect("address"),
                kind: Kind::Ban,
                issued_at: Hlc::from_millis(now),
                expires_at: Some(now + 60_000),
                strikes: 1,
                meta: Metadata::default(),
                origin: Origin::default(),
            };
            banmesh_keys::sign_record(&node, statement)
        })
        .collect();
    let path = dir.join(banmesh_node::store::DB_FILE);
    let mut db = banmesh_node::store::Db::open(&path, Params::default()).expect("open");
    db.apply(records, now).expect("apply");
}

#[test]
fn store_check_reports_counts_and_refuses_bad_stores() {
    let setup = Setup { dir: tempfile::tempdir().expect("tempdir") };
    let data = setup.arg("data");
    let err = setup.fails(&["store", "check", "--data-dir", &data]);
    assert!(err.contains("no store at") && err.contains("data/banmesh.db"), "{err}");
    fs::create_dir(setup.path("data")).expect("mkdir");
    make_store(&setup.path("data"), 300);
    let out = setup.ok(&["store", "check", "--data-dir", &data]);
    assert!(out.contains("records:      300 (300 ban, 0 unban"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&setup.ok(&["store", "check", "--data-dir", &data, "--json"]))
            .expect("json");
    assert_eq!(json["counts"]["records"], 300);
    assert_eq!(json["integrity"], "ok");

    fs::create_dir(setup.path("junk")).expect("mkdir");
    fs::write(setup.path("junk/banmesh.db"), b"this is not a database, not at all....")
        .expect("write");
    let err = setup.fails(&["store", "check", "--data-dir", &setup.arg("junk")]);
    assert!(
        err.contains("junk/banmesh.db is damaged") && err.contains("move the file aside"),
        "{err}"
    );
}

/// A read-only data dir, made with a read-only bind mount in a private mount
/// namespace (permissions alone do not stop root). Needs root and util-linux's
/// `unshare`, as CI has.
#[test]
fn store_check_on_a_read_only_data_dir_says_so_and_changes_nothing() {
    let setup = Setup { dir: tempfile::tempdir().expect("tempdir") };
    let data = setup.path("data");
    fs::create_dir(&data).expect("mkdir");
    make_store(&data, 10);
    let before = fs::read(data.join("banmesh.db")).expect("read");
    let banmesh = assert_cmd::cargo::cargo_bin("banmesh");
    let d = data.display();
    let script = format!(
        "mount --bind {d} {d} && mount -o remount,bind,ro {d} && exec {} store check --data-dir {d}",
        banmesh.display()
    );
    let output = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux) must be installed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("Operation not permitted") && !stderr.contains("permission denied"),
        "this test needs root to make a read-only mount: run the tests as root (CI does): {stderr}"
    );
    assert!(!output.status.success());
    assert!(
        stderr.contains("cannot write the store") && stderr.contains("data/banmesh.db"),
        "{stderr}"
    );
    assert!(stderr.contains("read-only"), "{stderr}");
    assert_eq!(fs::read(data.join("banmesh.db")).expect("read"), before);
}

/// A mesh port another process holds stops the node at start with an error
/// naming the address and why (libp2p's own error says nothing by itself).
#[test]
fn cli_node_on_a_port_in_use_names_the_address_and_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = format!("/ip4/127.0.0.1/tcp/{}", taken.local_addr().expect("addr").port());
    let data = dir.path().join("node");
    let socket = dir.path().join("node.sock");
    let output = Command::cargo_bin("banmesh")
        .expect("banmesh binary")
        .args(["node", "--listen", &addr, "--data-dir"])
        .arg(&data)
        .arg("--socket")
        .arg(&socket)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("run banmesh node");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the node ran on a port in use:\n{stderr}");
    let said = format!("cannot listen on {addr}: Address already in use");
    assert!(stderr.contains(&said), "no {said:?} in:\n{stderr}");
}
