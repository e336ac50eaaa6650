//! Connection caps (`[limits]`): a node whose file limit is the common
//! 1,024 takes a flood of raw TCP connections to its libp2p port (1,200
//! held open at once from this test, refilled as the node closes them)
//! and still answers its control socket, and a restarted peer still
//! connects. Without the caps the node accepted every connection, ran out
//! of descriptors and its control socket's accept failed (the ignored test
//! below shows it).

use std::io::Read as _;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use banmesh_node::control::client;
use banmesh_node::control::protocol::{Command as Wire, Response};

use crate::common::{SOON, TestCluster, wait_until};

/// Connections the flood holds open at once.
const FLOOD: usize = 1_200;
/// Most connections the flood opens in all.
const MOST_OPENED: usize = 60_000;
/// Longest the flood runs.
const MOST_TIME: Duration = Duration::from_secs(120);

/// Sets the open-file limit of process `pid` (`prlimit`, util-linux).
fn set_file_limit(pid: u32, limit: u32) {
    let out = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={limit}:{limit}")])
        .output()
        .expect("prlimit");
    assert!(out.status.success(), "prlimit: {}", String::from_utf8_lossy(&out.stderr));
}

/// Whether a flood connection is still open (the node has not closed it).
fn open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match (&*stream).read(&mut byte) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    }
}

/// Holds up to [`FLOOD`] connections to `addr` open, reopening those the
/// node closes, until `stop` (or the bounds). `held` tells how many are open.
fn flood(addr: SocketAddr, stop: Arc<AtomicBool>, held: Arc<AtomicUsize>) -> usize {
    let mut streams: Vec<TcpStream> = Vec::with_capacity(FLOOD);
    let (started, mut opened) = (Instant::now(), 0);
    while !stop.load(Ordering::Relaxed) && opened < MOST_OPENED && started.elapsed() < MOST_TIME {
        streams.retain(open);
        while streams.len() < FLOOD && opened < MOST_OPENED {
            opened += 1;
            match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                Ok(s) if s.set_nonblocking(true).is_ok() => streams.push(s),
                _ => break,
            }
        }
        held.store(streams.len(), Ordering::Relaxed);
        thread::sleep(Duration::from_millis(100));
    }
    opened
}

/// `status` over the control socket, given `SOON` to answer.
fn status(socket: &Path) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    match runtime.block_on(client::call_within(socket, Wire::Status, SOON)) {
        Ok(Response::Status(_)) => Ok(()),
        Ok(other) => Err(format!("{other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Floods node a (file limit 1,024) while asking its status and restarting
/// its peer b; `Err` says what failed: a status unanswered, the peer not
/// back, or any failed accept on the control socket in a's log.
fn flooded(limits: Option<&str>) -> Result<(), String> {
    set_file_limit(std::process::id(), 8_192);
    let mut cluster = TestCluster::new();
    let mut spec = cluster.spec("a", &[]);
    if let Some(limits) = limits {
        let config = cluster.path("limits.toml");
        std::fs::write(&config, limits).unwrap();
        spec.config = Some(config);
    }
    let a = cluster.start(spec);
    let b = cluster.start(cluster.spec("b", &[cluster.node(a).addr()]));
    cluster.wait_for_peers(1);
    set_file_limit(cluster.node(a).pid().expect("a runs"), 1_024);
    let addr = SocketAddr::from(([127, 0, 0, 1], cluster.node(a).port));
    let (stop, held) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let flooding = {
        let (stop, held) = (stop.clone(), held.clone());
        thread::spawn(move || flood(addr, stop, held))
    };
    let outcome = (|| {
        if !wait_until(SOON, || held.load(Ordering::Relaxed) > 0) {
            return Err("the flood opened no connection".to_owned());
        }
        for _ in 0..10 {
            status(&cluster.node(a).socket).map_err(|e| format!("status during the flood: {e}"))?;
            thread::sleep(Duration::from_millis(300));
        }
        cluster.node_mut(b).stop();
        cluster.node_mut(b).restart();
        let b_id = cluster.node(b).peer_id();
        let back = wait_until(SOON, || {
            status(&cluster.node(a).socket).is_ok()
                && cluster.node(a).connected_peers().contains(&b_id)
        });
        if !back {
            return Err("the restarted peer did not connect during the flood".to_owned());
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    let opened = flooding.join().expect("flood thread");
    let log = cluster.node(a).log_text();
    let failed_accepts = log.matches("control socket accept failed").count();
    eprintln!("flood: {opened} connections opened; {failed_accepts} failed control accepts");
    let outcome = outcome.and_then(|()| match failed_accepts {
        0 => Ok(()),
        n => Err(format!("the control socket's accept failed {n} times (out of files)")),
    });
    outcome.map_err(|e| format!("{e}\n{}", cluster.node(a).log_tail()))
}

#[test]
fn a_connection_flood_leaves_the_control_socket_and_peers_working() {
    flooded(None).unwrap();
}

/// The failure before the caps: limits as high as the flood. Run by hand
/// (`cargo test -p banmesh-node --test operations -- --ignored uncapped`).
#[test]
#[ignore = "shows the failure the caps prevent; slow"]
fn uncapped_the_flood_starves_the_control_socket() {
    let uncapped = "[limits]\nmax_pending_incoming = 100000\nmax_established_incoming = 100000\n\
                    max_established = 100000\n";
    let error = flooded(Some(uncapped)).unwrap_err();
    eprintln!("{error}");
}
