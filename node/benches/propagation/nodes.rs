//! The node processes of the benchmark: the binary, a free port, and the
//! control calls the bench makes (status, connected peers, ban count).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use banmesh_node::control::client::call_within;
use banmesh_node::control::protocol::{Command as Ctl, Response};
use banmesh_node::control::views::PeerState;

/// How long one control call may take.
pub const CALL_LIMIT: Duration = Duration::from_secs(10);

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_banmesh"))
}

pub fn cli(dir: &Path, args: &[&str]) {
    let out = Command::new(bin()).current_dir(dir).args(args).output().expect("run banmesh");
    assert!(
        out.status.success(),
        "banmesh {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

pub struct Node {
    pub child: Child,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub started: Instant,
    pub stopped: Option<Instant>,
}

pub async fn status(socket: &Path) -> Option<banmesh_node::control::views::StatusView> {
    match call_within(socket, Ctl::Status, CALL_LIMIT).await {
        Ok(Response::Status(s)) => Some(*s),
        _ => None,
    }
}

pub async fn connected_peers(socket: &Path) -> Option<usize> {
    match call_within(socket, Ctl::Peers, CALL_LIMIT).await {
        Ok(Response::Peers(p)) => {
            Some(p.iter().filter(|v| v.state == PeerState::Connected).count())
        }
        _ => None,
    }
}

pub async fn ban_count(socket: &Path) -> Result<u64, String> {
    match call_within(socket, Ctl::Status, CALL_LIMIT).await {
        Ok(Response::Status(s)) => Ok(s.record_counts.get("ban").copied().unwrap_or(0)),
        Ok(other) => Err(format!("{other:?}")),
        Err(e) => Err(e.to_string()),
    }
}
