//! The benchmark's nodes: a release `banmesh node` started in a directory
//! (with or without a gateway) and stopped with SIGTERM when dropped, and
//! loading it with bans through the control socket.

use super::*;

pub(super) fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_banmesh"))
}

pub(super) fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// The `i`th address of 10.0.0.0/8 (`offset` picks another /8).
pub(super) fn address(offset: u32, i: u64) -> String {
    let n = (offset << 24) | (u32::try_from(i).expect("fits") + 1);
    std::net::Ipv4Addr::from(n).to_string()
}

/// The node under test; stopped with SIGTERM when dropped.
pub(super) struct Node {
    pub(super) child: Child,
    pub(super) socket: PathBuf,
    pub(super) log: PathBuf,
    pub(super) gateway: u16,
}

impl Node {
    /// A node in `dir`, with a gateway when `gateway`.
    pub(super) fn start(dir: &Path, gateway: bool) -> Node {
        fs::create_dir_all(dir).expect("node dir");
        let seed = dir.join("serverconfig.ini");
        let ini = format!("[DEFAULT]\nbantime = 1h\n[api_tokens]\nbench = {TOKEN}\n");
        fs::write(&seed, ini).expect("write seed config");
        let (socket, log, port) = (dir.join("node.sock"), dir.join("node.log"), free_port());
        let log_file = File::create(&log).expect("log file");
        let mut command = Command::new(bin());
        command
            .args(["node", "--data-dir"])
            .arg(dir.join("data"))
            .arg("--listen")
            .arg(format!("/ip4/127.0.0.1/tcp/{}", free_port()))
            .arg("--socket")
            .arg(&socket);
        if gateway {
            command
                .arg("--gateway")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--seed-config")
                .arg(&seed);
        }
        let filter = "warn,banmesh_node::gateway::view=debug";
        let child = command
            .env("RUST_LOG", std::env::var("BANMESH_BENCH_LOG").unwrap_or_else(|_| filter.into()))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file.try_clone().expect("clone log")))
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("start banmesh node");
        Node { child, socket, log, gateway: port }
    }

    /// Waits until the control socket answers.
    pub(super) async fn ready(&self) {
        let ready = Instant::now() + Duration::from_secs(30);
        while call_within(&self.socket, Ctl::Status, CALL_LIMIT).await.is_err() {
            assert!(Instant::now() < ready, "the node did not start: see {}", self.log.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issues `count` one-hour bans in batches of [`MAX_ISSUE_BATCH`].
pub(super) async fn load(socket: &Path, count: u64) {
    let mut next = 0;
    while next < count {
        let end = (next + MAX_ISSUE_BATCH as u64).min(count);
        issue(socket, 10, next..end).await;
        next = end;
    }
}

/// Bans the addresses `range` of `net`.0.0.0/8 for an hour in one Issue.
pub(super) async fn issue(socket: &Path, net: u32, range: std::ops::Range<u64>) {
    let orders = range
        .map(|i| OrderSpec {
            key: address(net, i),
            duration_ms: Some(3_600_000),
            strikes: 1 + u32::try_from(i % 3).expect("small"),
            jail: ["sshd", "nginx", "postfix"][usize::try_from(i % 3).expect("small")].to_owned(),
            reason: "bench".to_owned(),
            source: "bench@127.0.0.1".to_owned(),
            ..OrderSpec::default()
        })
        .collect();
    match call_within(socket, Ctl::Issue { orders }, CALL_LIMIT).await {
        Ok(Response::Issued(items)) => {
            let failed = items.iter().filter(|i| i.error.is_some()).count();
            assert_eq!(failed, 0, "{failed} bans failed: {:?}", items.first());
        }
        other => panic!("issue failed: {other:?}"),
    }
}

/// Waits until the gateway answers and lists `want` bans.
pub(super) async fn wait_for_total(port: u16, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(mut conn) = Conn::open(port).await
            && let Ok(reply) = conn.request("GET", "/get_ips?page=1&per_page=1", false, b"").await
        {
            let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
            if json["total"].as_u64() == Some(want) {
                return;
            }
            last = format!("{} {}", reply.status, json["total"]);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the gateway never listed {want} bans (last: {last})");
}

/// A node without a gateway, loaded with `records` bans like the one
/// under test: its memory, for the difference the gateway makes.
pub(super) async fn bare_node(dir: &Path, records: u64) -> (u64, u64) {
    let node = Node::start(&dir.join("bare"), false);
    node.ready().await;
    load(&node.socket, records).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    memory::report("node without a gateway, idle after the load", node.child.id(), records)
}
