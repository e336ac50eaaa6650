//! Enrollment in one pipeline per host, with real `banmesh` processes and a
//! real shell pipe: `keys pub | keys enroll --node-pub - | keys install-cert -`
//! renews a running node's certificate without a restart, and refuses (writing
//! nothing) a certificate of another key or another cluster. `config check`
//! names the file and the fix when the key, certificate and cluster key do
//! not belong together; a node started with a foreign certificate says so.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::{NodeSpec, SOON, TestCluster, arg, bin, cli_ok, run_cli, wait_until};

/// The host side's flags: an empty configuration (never the machine's
/// /etc/banmesh) and the node's files.
fn host_flags(config: &Path, data_dir: &Path, cluster_pub: &Path, socket: &Path) -> String {
    format!(
        "--config {} --data-dir {} --cluster-pub {} --socket {}",
        config.display(),
        data_dir.display(),
        cluster_pub.display(),
        socket.display()
    )
}

/// Runs `keys pub | keys enroll | keys install-cert -` in `sh`, as an
/// operator types it (without the ssh around each end).
fn pipeline(host: &str, cluster_key: &Path, name: &str, enroll_more: &str) -> Output {
    let banmesh = bin();
    let b = banmesh.display();
    let script = format!(
        "set -o pipefail 2>/dev/null; {b} keys pub {host} | {b} keys enroll --cluster-key {} \
         --node-pub - --name {name} {enroll_more} | {b} keys install-cert - {host}",
        cluster_key.display()
    );
    Command::new("bash").args(["-c", &script]).output().expect("run the pipeline")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn pipeline_renews_a_running_node_without_restart_and_refuses_foreign_certificates() {
    let mut cluster = TestCluster::new();
    // b's first certificate lasts seconds: past its end, only a renewed
    // certificate in b's hello lets a new peer admit b.
    let b = cluster.start(cluster.spec_valid_for("b", "5s"));
    let (b_dir, b_socket) = (cluster.node(b).data_dir.clone(), cluster.node(b).socket.clone());
    let pid = cluster.node(b).pid();
    let before = cluster.node(b).status()["certificate_expires_at_ms"].as_u64().expect("expiry");
    let config = cluster.path("empty.toml");
    fs::write(&config, "").expect("write config");
    let host = host_flags(&config, &b_dir, &cluster.cluster_pub, &b_socket);

    let out = pipeline(&host, &cluster.cluster_key, "b", "--valid-for 30d");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("now presents it"), "{}", text(&out));
    let after = cluster.node(b).status()["certificate_expires_at_ms"].as_u64().expect("expiry");
    assert!(after > before + 86_400_000, "expiry {before} -> {after}");
    assert_eq!(cluster.node(b).pid(), pid, "the node was restarted");
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    assert!(wait_until(SOON, || now().as_millis() > u128::from(before)), "the clock stands still");
    let c = cluster.start(cluster.spec("c", &[cluster.node(b).addr()]));
    assert!(
        wait_until(SOON, || cluster
            .node(c)
            .peers()
            .iter()
            .any(|p| p["name"] == "b" && p["state"] == "connected")),
        "c never admitted b: {:?}\n{}",
        cluster.node(c).peers(),
        cluster.node(c).log_tail()
    );
    let warnings = cluster.node(b).status()["warnings"].to_string();
    assert!(!warnings.contains("expired"), "{warnings}");

    // A certificate of another cluster: refused, nothing written.
    let cert_before = fs::read(b_dir.join("node.cert")).expect("read cert");
    let other = cluster.path("other");
    cli_ok(&["keys", "init-cluster", "--out", arg(&other)]);
    let out = pipeline(&host, &other.join("cluster.key"), "b", "");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("signed by another cluster"), "{}", text(&out));
    assert!(text(&out).contains("nothing written"), "{}", text(&out));
    // Another host's key (a's), enrolled by mistake for b: refused too.
    let a_key = cluster.key_only("a").join("node.pub");
    let wrong = cluster.path("wrong.cert");
    let enroll = ["--node-pub", arg(&a_key), "--name", "b", "--out", arg(&wrong)];
    cli_ok(
        &[&["keys", "enroll", "--cluster-key", arg(&cluster.cluster_key)][..], &enroll].concat(),
    );
    let script = format!("{} keys install-cert {} {host}", bin().display(), wrong.display());
    let out = Command::new("sh").args(["-c", &script]).output().expect("install-cert");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("not this node's key"), "{}", text(&out));
    assert_eq!(fs::read(b_dir.join("node.cert")).expect("read cert"), cert_before);
}

#[test]
fn first_enrollment_writes_the_cluster_key_and_the_node_starts_enrolled() {
    let mut cluster = TestCluster::new();
    let dir = cluster.path("fresh");
    let socket = cluster.path("fresh.sock");
    let config = cluster.path("empty.toml");
    fs::write(&config, "").expect("write config");
    let cluster_pub = cluster.path("etc/cluster.pub");
    let host = host_flags(&config, &dir, &cluster_pub, &socket);
    // No key yet: `keys pub` says how to make one; --create makes it.
    let out = Command::new("sh")
        .args(["-c", &format!("{} keys pub {host}", bin().display())])
        .output()
        .expect("keys pub");
    assert!(!out.status.success() && text(&out).contains("--create"), "{}", text(&out));
    let made = Command::new("sh")
        .args(["-c", &format!("{} keys pub --create {host}", bin().display())])
        .output()
        .expect("keys pub --create");
    assert!(made.status.success(), "{}", text(&made));
    let again = Command::new("sh")
        .args(["-c", &format!("{} keys pub --create {host}", bin().display())])
        .output()
        .expect("keys pub --create");
    assert_eq!(made.stdout, again.stdout, "--create replaced the key");

    let out = pipeline(&host, &cluster.cluster_key, "fresh", "");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("no node is running"), "{}", text(&out));
    assert_eq!(
        fs::read_to_string(&cluster_pub).expect("cluster.pub written"),
        fs::read_to_string(&cluster.cluster_pub).expect("cluster.pub")
    );
    // The installed node starts enrolled and peers with another.
    let a = cluster.start(cluster.spec("a", &[]));
    let spec = NodeSpec {
        name: "fresh".to_owned(),
        data_dir: dir,
        cluster_pub: Some(cluster_pub),
        peers: vec![cluster.node(a).addr()],
        config: None,
        clock_offset: None,
        args: Vec::new(),
    };
    let fresh = cluster.start(spec);
    assert!(
        wait_until(SOON, || cluster.node(fresh).peers().iter().any(|p| p["state"] == "connected")),
        "the freshly enrolled node found no ready peer: {}",
        cluster.node(fresh).log_tail()
    );
}

/// `config check` on a file naming `data_dir` and `cluster_pub`.
fn config_check(dir: &Path, data_dir: &Path, cluster_pub: &Path) -> Output {
    let file = dir.join("check.toml");
    let toml = format!(
        "[node]\ndata_dir = {:?}\n[cluster]\npublic_key = {:?}\n",
        data_dir.display().to_string(),
        cluster_pub.display().to_string()
    );
    fs::write(&file, toml).expect("write config");
    run_cli(&["config", "check", "--config", arg(&file)])
}

#[test]
fn config_check_names_the_file_and_the_fix() {
    let cluster = TestCluster::new();
    let dir = cluster.path("");
    let data = cluster.enroll("web1");
    let out = config_check(&dir, &data, &cluster.cluster_pub);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("belong together"), "{}", text(&out));

    let other = cluster.path("other");
    cli_ok(&["keys", "init-cluster", "--out", arg(&other)]);
    let out = config_check(&dir, &data, &other.join("cluster.pub"));
    assert!(!out.status.success());
    let cert = data.join("node.cert").display().to_string();
    assert!(text(&out).contains(&format!("{cert} is signed by another cluster")), "{}", text(&out));
    assert!(text(&out).contains("install-cert"), "{}", text(&out));

    let out = config_check(&dir, &data, &cluster.path("absent.pub"));
    assert!(!out.status.success());
    assert!(text(&out).contains("absent.pub ([cluster] public_key) is missing"), "{}", text(&out));

    let unenrolled = cluster.key_only("web2");
    let out = config_check(&dir, &unenrolled, &cluster.cluster_pub);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("node.cert is missing: this node is not enrolled"),
        "{}",
        text(&out)
    );

    // Another key's certificate.
    fs::copy(data.join("node.cert"), unenrolled.join("node.cert")).expect("copy cert");
    let out = config_check(&dir, &unenrolled, &cluster.cluster_pub);
    assert!(!out.status.success());
    assert!(text(&out).contains("not this node's key"), "{}", text(&out));

    let short = cluster.spec_valid_for("web3", "1s").data_dir;
    let expired = wait_until(SOON, || {
        let out = config_check(&dir, &short, &cluster.cluster_pub);
        !out.status.success() && text(&out).contains("expired at")
    });
    assert!(expired, "{}", text(&config_check(&dir, &short, &cluster.cluster_pub)));
}

#[test]
fn a_node_whose_cluster_key_is_missing_exits_naming_it_and_the_fix() {
    let cluster = TestCluster::new();
    let data = cluster.enroll("web1");
    let absent = cluster.path("etc/cluster.pub");
    let mut child = Command::new(bin())
        .args(["node", "--data-dir", arg(&data), "--cluster-pub", arg(&absent)])
        .args(["--socket", arg(&cluster.path("web1.sock")), "--listen", "/ip4/127.0.0.1/tcp/0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start banmesh node");
    let exited = wait_until(SOON, || child.try_wait().is_ok_and(|s| s.is_some()));
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("wait");
    assert!(exited && !out.status.success(), "the node ran without its cluster key");
    let said = text(&out);
    assert!(said.contains("etc/cluster.pub ([cluster] public_key) is missing"), "{said}");
    assert!(said.contains("install-cert"), "{said}");
}

#[test]
fn a_node_with_another_clusters_certificate_says_so_at_start_and_in_status() {
    let mut cluster = TestCluster::new();
    let mut spec = cluster.spec("web1", &[]);
    let other = cluster.path("other");
    cli_ok(&["keys", "init-cluster", "--out", arg(&other)]);
    spec.cluster_pub = Some(other.join("cluster.pub"));
    let node = cluster.start(spec);
    let status = cluster.node(node).status();
    let warnings = status["warnings"].to_string();
    assert!(warnings.contains("signed by another cluster"), "{warnings}");
    let log = cluster.node(node).log_text();
    assert!(
        log.lines().any(|l| l.contains("WARN") && l.contains("signed by another cluster")),
        "{log}"
    );
}
