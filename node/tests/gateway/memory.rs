//! Concurrent searches cannot take the node's memory (issue 16): with
//! 50,000 bans (or `BANMESH_MEMORY_RECORDS`), 64 simultaneous
//! `GET /get_ips?search_ip=.` each read to the end raise the node's peak
//! resident memory (VmHWM) by less than [`BOUND`], a fixed figure: an
//! answer is rendered from the shared list a piece at a time as the client
//! reads it, so what the searches hold does not grow with the list.

use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::thread;

use crate::common::TestCluster;
use crate::common::gateway::wait_for_total;
use crate::http::connect_from;
use crate::{Gw, TOKEN, seed};

const CLIENTS: usize = 64;
/// Most the node's peak memory may rise under the searches, whatever the
/// list's length: a few searches' pieces, the 64 connections, allocator and
/// runtime noise. Measured (debug build): 2.6 MB at 20,000 bans, 3.1 MB at
/// 100,000; whole answers rendered two at a time rose 26.8 MB at 50,000.
const BOUND: u64 = 12 << 20;

#[test]
fn gateway_concurrent_searches_stay_under_a_memory_bound() {
    let records: usize =
        std::env::var("BANMESH_MEMORY_RECORDS").ok().and_then(|n| n.parse().ok()).unwrap_or(50_000);
    let mut cluster = TestCluster::new();
    let gw = Gw::start(&mut cluster, "node1", &[], &seed("1h", 24, "2m", "48h"), None);
    crate::common::issue_bans(&cluster.node(gw.node).socket, records);
    wait_for_total(gw.port, TOKEN, "/get_ips?page=1&per_page=1", records as u64);
    let pid = cluster.node(gw.node).pid().expect("node running");

    // One search alone: the size of each answer.
    let answer = search(gw.port, "127.0.0.1");
    assert!(answer > 100 * records as u64, "an answer of {answer} bytes lists every ban");
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
        assert_eq!(client.join().unwrap(), answer, "every search answered in full");
    }
    let after = kib(pid, "VmHWM") << 10;

    let rise = after.saturating_sub(before);
    let mb = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    println!(
        "{records} bans: answer {:.1} MB, x{CLIENTS} = {:.1} MB; VmHWM {:.1} -> {:.1} MB, \
         rise {:.1} MB, bound {:.1} MB",
        mb(answer),
        mb(answer * CLIENTS as u64),
        mb(before),
        mb(after),
        mb(rise),
        mb(BOUND)
    );
    assert!(rise < BOUND, "peak memory rose {:.1} MB, over {:.1} MB", mb(rise), mb(BOUND));
}

/// `GET /get_ips?search_ip=.` (no gzip) from `source`, read to the end
/// without keeping it: the body's length; panics unless the answer is a
/// chunked 200 (sent as rendered, so its length is not known ahead).
fn search(port: u16, source: &str) -> u64 {
    let mut stream = connect_from(source, port);
    let request = format!(
        "GET /get_ips?search_ip=. HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        assert!(reader.read_line(&mut head).unwrap() > 0, "the answer broke off: {head}");
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_lowercase().contains("transfer-encoding: chunked"), "sent as rendered: {head}");
    let mut length = 0;
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).unwrap();
        let size = u64::from_str_radix(size.trim(), 16).expect("a chunk size");
        let copied = std::io::copy(&mut (&mut reader).take(size + 2), &mut std::io::sink());
        assert_eq!(copied.unwrap(), size + 2, "a chunk broke off");
        if size == 0 {
            return length;
        }
        length += size;
    }
}

/// A `kB` field of /proc/PID/status.
fn kib(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("the node's status");
    let line = status.lines().find(|l| l.starts_with(field)).expect("the field");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number of kB")
}
