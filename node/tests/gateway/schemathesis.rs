//! Schemathesis (from PyPI; scripts/test.sh installs it in a venv) runs
//! against a real node's `/openapi.json`, both APIs, with a write token:
//! no answer may be a 5xx, and every answer must match the document
//! (status code, content type, headers, body schema), invalid input must
//! be refused and valid input accepted (`schemathesis.toml` lists the few
//! answers that depend on state or on the cluster's rules). A bounded
//! number of examples per operation keeps it to well under a minute.

use std::path::PathBuf;
use std::process::Command;

use crate::common::TestCluster;
use crate::{Gw, TOKEN, seed};

/// Examples per operation and phase.
const MAX_EXAMPLES: &str = "50";

/// The pinned schemathesis: `BANMESH_SCHEMATHESIS`, else the venv
/// scripts/test.sh makes, else `schemathesis` on the PATH.
fn schemathesis() -> PathBuf {
    if let Some(path) = std::env::var_os("BANMESH_SCHEMATHESIS") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let venv = home.join(".cache/banmesh-schemathesis/bin/schemathesis");
    if venv.exists() { venv } else { PathBuf::from("schemathesis") }
}

#[test]
fn schemathesis_finds_no_server_error_or_schema_mismatch_in_either_api() {
    let mut cluster = TestCluster::new();
    let gw = Gw::start(&mut cluster, "node1", &[], &seed("1h", 24, "2m", "48h"), None);
    gw.add(&["192.0.2.1", "192.0.2.2", "2001:db8::7"]);
    let reply = gw.post("/allow_ip", &serde_json::json!({"ip": "192.0.2.2"}));
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));

    let tool = schemathesis();
    let url = format!("http://127.0.0.1:{}/openapi.json", gw.port);
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gateway/schemathesis.toml");
    let output = Command::new(&tool)
        .args(["--config-file", config, "run", &url, "--max-examples", MAX_EXAMPLES, "--no-color"])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--seed", "1", "--generation-database", "none", "--workers", "1"])
        .current_dir(cluster.path(""))
        .output();
    let output = match output {
        Ok(output) => output,
        Err(error) => panic!(
            "cannot run {} ({error}): install schemathesis with scripts/test.sh, or \
             python3 -m venv ~/.cache/banmesh-schemathesis && \
             ~/.cache/banmesh-schemathesis/bin/pip install schemathesis==4.32.5 \
             (or point BANMESH_SCHEMATHESIS at it)",
            tool.display()
        ),
    };
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    println!("{text}");
    assert!(output.status.success(), "schemathesis found failures:\n{text}");
}
