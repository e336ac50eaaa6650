//! Helpers for the gateway tests: a JSON request with a bearer token, a
//! wait for a list's `total`, a node spec serving the gateway, and
//! `python3` for the Fail2BanSync clients.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::http::{Reply, request};
use super::{NodeSpec, SOON, TestCluster, arg, wait_until};

/// Sends one request to 127.0.0.1:`port` with a bearer token and a JSON
/// body when given.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let body = body.map(|b| serde_json::to_vec(b).expect("encode body")).unwrap_or_default();
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    request(port, method, path, &headers, &body)
}

/// Waits until `GET path` on the gateway answers 200 with a top-level
/// `total` of `want`; panics with the last answer otherwise.
pub fn wait_for_total(port: u16, token: &str, path: &str, want: u64) {
    let mut last = Value::Null;
    let reached = wait_until(SOON, || {
        let reply = http(port, "GET", path, Some(token), None);
        last = if reply.status == 200 { reply.json()["total"].clone() } else { Value::Null };
        last.as_u64() == Some(want)
    });
    assert!(reached, "GET {path}: total stayed {last}, not {want}");
}

/// The spec of an enrolled node serving the gateway on 127.0.0.1:`port`
/// with `seed_config` as its `--seed-config`.
pub fn gateway_spec(
    cluster: &TestCluster,
    name: &str,
    peers: &[String],
    port: u16,
    seed_config: &Path,
) -> NodeSpec {
    let mut spec = cluster.spec(name, peers);
    spec.args = vec![
        "--gateway".to_owned(),
        format!("127.0.0.1:{port}"),
        "--seed-config".to_owned(),
        arg(seed_config).to_owned(),
    ];
    spec
}

/// `python3 ARGS` through `/usr/bin/env`, or a panic saying to install it.
pub fn python3(args: &[&str]) -> std::process::Output {
    let output = Command::new("/usr/bin/env").arg("python3").args(args).output();
    match output {
        Ok(output) if output.status.code() != Some(127) => output,
        _ => panic!(
            "python3 is needed to run the Fail2BanSync client tests: \
             install it (apt-get install python3, or run scripts/test.sh as root)"
        ),
    }
}
