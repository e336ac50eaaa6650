//! One host cannot hold the gateway's door (issue 16): a source address
//! holds at most `max_connections_per_source` (64 by default) connections,
//! and clients from elsewhere are served meanwhile.

use std::io::Write as _;

use crate::common::TestCluster;
use crate::http::{connect_from, exchange};
use crate::{Gw, TOKEN, seed};

#[test]
fn gateway_closes_a_sources_connections_beyond_its_share_and_serves_others() {
    let mut cluster = TestCluster::new();
    let gw = Gw::start(&mut cluster, "node1", &[], &seed("1h", 24, "2m", "48h"), None);
    gw.add(&["192.0.2.7"]);
    // 64 connections from 127.0.0.2, each kept alive after a request
    // without a token (so no head deadline closes them during the test).
    let mut held = Vec::new();
    for _ in 0..64 {
        let mut stream = connect_from("127.0.0.2", gw.port);
        stream.write_all(b"GET /get_ips HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        held.push(stream);
    }
    // The 65th is closed unanswered, token or not.
    let request = format!(
        "GET /get_ips HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    let mut extra = connect_from("127.0.0.2", gw.port);
    let answer = exchange(&mut extra, request.as_bytes());
    assert!(answer.is_empty(), "the 65th was answered: {}", String::from_utf8_lossy(&answer));
    // Another host is served.
    let mut other = connect_from("127.0.0.3", gw.port);
    let answer = String::from_utf8_lossy(&exchange(&mut other, request.as_bytes())).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("192.0.2.7"), "{answer}");
    assert_eq!(gw.ips("/get_ips"), ["192.0.2.7"]);
    drop(held);
}
