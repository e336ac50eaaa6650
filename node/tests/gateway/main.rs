//! The REST gateway end to end: real `banmesh node` processes started with
//! `--gateway 127.0.0.1:PORT --seed-config FILE`, real HTTP over loopback.
//! `api` checks the endpoints' shapes and codes and every hostile input of
//! issue 6; `door` one host holding many connections; `lifecycle` the blocked/allowed/known steps with short
//! durations; `memory` the peak memory of 64 concurrent searches; `mesh` two
//! gateways and the CLI agreeing; `native` the `/v1/` API; `reload` tokens
//! swapped on SIGHUP; `schemathesis` both APIs against /openapi.json; `tls`
//! HTTPS and its certificate reloaded on SIGHUP; `ui` the dashboard's login,
//! sessions and CSRF over HTTP, `browser` the dashboard in headless chromium.

// The helpers below panic on failure as the tests themselves do.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod api;
mod browser;
mod door;
mod lifecycle;
mod memory;
mod mesh;
mod native;
mod reload;
mod schemathesis;
mod tls;
mod ui;

use std::fs;

use common::{TestCluster, free_port, http};
use serde_json::Value;

use http::{Reply, request};

/// The token of the seed file's `web1`.
pub const TOKEN: &str = "tok1";

/// A seed file like the old server's: settings in `[DEFAULT]` (one of them,
/// `web_pass`, must never work as a token) and one client token.
pub fn seed(bantime: &str, factor: u32, allowed: &str, known: &str) -> String {
    format!(
        "[DEFAULT]\nbantime = {bantime}\nbantime.increment = true\nbantime.factor = {factor}\n\
         bantime.maxtime = 5w\nallowed_duration = {allowed}\nknown_duration = {known}\n\
         web_user = admin\nweb_pass = admin123\n\n[api_tokens]\nweb1 = {TOKEN}\n"
    )
}

/// A gateway on a node of a test cluster.
pub struct Gw {
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
    /// The node's index in the cluster.
    pub node: usize,
    /// Its seed file.
    pub seed: std::path::PathBuf,
}

/// Sends SIGHUP to `node` and waits until `status` shows the reload
/// failed; the error it shows.
pub fn failed_reload(node: &common::TestNode) -> String {
    common::signal(node.pid().expect("node running"), "HUP");
    let shown = common::wait_until(common::SOON, || {
        node.status()["gateway"]["last_reload_error"].is_string()
    });
    assert!(shown, "status never showed the failed reload");
    node.status()["gateway"]["last_reload_error"].as_str().unwrap().to_owned()
}

impl Gw {
    /// Starts node `name` peering with `peers`, its gateway reading `seed`
    /// and, when given, a config file with `toml`.
    pub fn start(
        cluster: &mut TestCluster,
        name: &str,
        peers: &[String],
        seed: &str,
        toml: Option<&str>,
    ) -> Gw {
        let spec = cluster.spec(name, peers);
        Gw::start_spec(cluster, spec, seed, toml)
    }

    /// [`Gw::start`] for a node started from `spec` (a wrong clock, say).
    pub fn start_spec(
        cluster: &mut TestCluster,
        mut spec: common::NodeSpec,
        seed: &str,
        toml: Option<&str>,
    ) -> Gw {
        let name = spec.name.clone();
        let port = free_port();
        let seed_path = cluster.path(&format!("{name}-serverconfig.ini"));
        fs::write(&seed_path, seed).unwrap();
        if let Some(toml) = toml {
            let path = cluster.path(&format!("{name}.toml"));
            fs::write(&path, toml).unwrap();
            spec.config = Some(path);
        }
        spec.args.extend([
            "--gateway".to_owned(),
            format!("127.0.0.1:{port}"),
            "--seed-config".to_owned(),
            seed_path.display().to_string(),
        ]);
        let node = cluster.start(spec);
        Gw { port, node, seed: seed_path }
    }

    /// A request with the token.
    pub fn send(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        let auth = format!("Bearer {TOKEN}");
        request(self.port, method, path, &[("Authorization", &auth)], body)
    }

    /// `GET path`, which must answer 200 with JSON.
    pub fn get(&self, path: &str) -> Value {
        let reply = self.send("GET", path, b"");
        assert_eq!(reply.status, 200, "GET {path}: {}", String::from_utf8_lossy(&reply.body));
        reply.json()
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.send("POST", path, body.to_string().as_bytes())
    }

    /// The addresses of an unpaged list.
    pub fn ips(&self, path: &str) -> Vec<String> {
        self.items(path).iter().map(|i| i["ip_address"].as_str().unwrap().to_owned()).collect()
    }

    /// The items of an unpaged list.
    pub fn items(&self, path: &str) -> Vec<Value> {
        self.get(path)["items"].as_array().unwrap().clone()
    }

    /// The item of `ip` in the list at `path`, if listed.
    pub fn item(&self, path: &str, ip: &str) -> Option<Value> {
        self.items(path).into_iter().find(|i| i["ip_address"] == ip)
    }

    /// `add_ips` of these addresses, which must answer 201.
    pub fn add(&self, ips: &[&str]) -> Value {
        let reply = self.post("/add_ips", &serde_json::json!({"ips": ips, "jail": "sshd"}));
        assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
        reply.json()
    }
}
