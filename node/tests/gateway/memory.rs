//! Concurrent searches cannot take the node's memory (issue 16): with
//! 20,000 bans, 64 simultaneous `GET /get_ips?search_ip=.` each read to the
//! end raise the node's peak resident memory (VmHWM) by less than a fixed
//! bound: what 2 renders at once may hold (with slack), far below what 64
//! answers held at once need.

use std::fs;
use std::thread;

use crate::common::TestCluster;
use crate::common::gateway::wait_for_total;
use crate::http::{connect_from, exchange};
use crate::{Gw, TOKEN, seed};

const RECORDS: usize = 20_000;
const CLIENTS: usize = 64;
/// Searches the gateway renders at once (`handlers::HEAVY_RENDERS`).
const PERMITS: u64 = 2;
/// Allocator and runtime noise beside the answers.
const SLACK: u64 = 40 << 20;

#[test]
fn gateway_concurrent_searches_stay_under_a_memory_bound() {
    let mut cluster = TestCluster::new();
    let gw = Gw::start(&mut cluster, "node1", &[], &seed("1h", 24, "2m", "48h"), None);
    crate::common::issue_bans(&cluster.node(gw.node).socket, RECORDS);
    wait_for_total(gw.port, TOKEN, "/get_ips?page=1&per_page=1", RECORDS as u64);
    let pid = cluster.node(gw.node).pid().expect("node running");

    // One search alone: the size of each answer.
    let answer = search(gw.port, "127.0.0.1") as u64;
    assert!(answer > 100 * RECORDS as u64, "an answer of {answer} bytes lists every ban");
    // The peak from here on (writing 5 to clear_refs resets VmHWM to the
    // resident size; when refused, the rise is measured from the old peak).
    let _ = fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let before = kib(pid, "VmHWM") << 10;

    // 64 clients from 8 loopback sources (under the per-source share).
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let port = gw.port;
            thread::spawn(move || search(port, &format!("127.0.0.{}", 10 + i % 8)))
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap() as u64, answer, "every search answered in full");
    }
    let after = kib(pid, "VmHWM") << 10;

    let rise = after.saturating_sub(before);
    let bound = 3 * PERMITS * answer + SLACK;
    let mb = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    println!(
        "answer {:.1} MB; x{CLIENTS} = {:.1} MB, x{PERMITS} = {:.1} MB; VmHWM {:.1} -> {:.1} MB, \
         rise {:.1} MB, bound {:.1} MB",
        mb(answer),
        mb(answer * CLIENTS as u64),
        mb(answer * PERMITS),
        mb(before),
        mb(after),
        mb(rise),
        mb(bound)
    );
    assert!(bound < answer * CLIENTS as u64, "the bound must be below 64 answers held at once");
    assert!(rise < bound, "peak memory rose {:.1} MB, over {:.1} MB", mb(rise), mb(bound));
}

/// `GET /get_ips?search_ip=.` (no gzip) from `source`, read to the end: the
/// body's length; panics unless the answer is 200.
fn search(port: u16, source: &str) -> usize {
    let mut stream = connect_from(source, port);
    let request = format!(
        "GET /get_ips?search_ip=. HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Connection: close\r\n\r\n"
    );
    let raw = exchange(&mut stream, request.as_bytes());
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer");
    let head = String::from_utf8_lossy(&raw[..end]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.to_lowercase().contains("chunked"), "a body with a length: {head}");
    raw.len() - end - 4
}

/// A `kB` field of /proc/PID/status.
fn kib(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("the node's status");
    let line = status.lines().find(|l| l.starts_with(field)).expect("the field");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number of kB")
}
