//! Whether a better gzip level pays on the cached unpaged body: the plain
//! `GET /get_ips` body compressed here at levels 1 (what the gateway uses),
//! 6 and 9, size and time of each (the body is compressed once per list
//! change, then served from the cache).

use std::io::Write as _;
use std::time::Instant;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::conn::Conn;

pub async fn levels(port: u16) {
    let mut conn = Conn::open(port).await.expect("connect");
    let reply = conn.request("GET", "/get_ips", false, b"").await.expect("unpaged get_ips");
    assert_eq!(reply.status, 200, "unpaged get_ips");
    let plain = reply.body;
    let mut figures = Vec::new();
    for level in [1, 6, 9] {
        let start = Instant::now();
        let mut encoder = GzEncoder::new(Vec::new(), Compression::new(level));
        encoder.write_all(&plain).expect("gzip");
        let size = encoder.finish().expect("gzip").len();
        figures.push(format!(
            "level {level}: {:.2} MB in {:.0} ms",
            size as f64 / 1e6,
            start.elapsed().as_secs_f64() * 1000.0
        ));
    }
    println!(
        "gzip    of the {:.2} MB unpaged body: {}   (old server 0.61 MB)",
        plain.len() as f64 / 1e6,
        figures.join(", ")
    );
}
