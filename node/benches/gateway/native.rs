//! The native list endpoint under load: `GET /v1/decisions?limit=N`, each
//! connection walking the list by `next_cursor` and starting over at the
//! end, beside the compatibility API's paged figures.

use std::time::{Duration, Instant};

use super::conn::Conn;
use super::{ms, pct};

/// Decisions per page.
const LIMIT: u64 = 200;

/// `connections` connections walking `/v1/decisions` for `seconds`.
pub async fn decisions(port: u16, connections: u64, seconds: u64) {
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        tasks.spawn(async move {
            let mut conn = Conn::open(port).await.expect("connect");
            let (mut latencies, mut errors, mut walks) = (Vec::new(), 0u64, 0u64);
            let mut cursor: Option<String> = None;
            while Instant::now() < until {
                let path = match &cursor {
                    Some(c) => format!("/v1/decisions?limit={LIMIT}&cursor={c}"),
                    None => format!("/v1/decisions?limit={LIMIT}"),
                };
                let start = Instant::now();
                match conn.request("GET", &path, false, b"").await {
                    Ok(reply) if reply.status == 200 => {
                        latencies.push(start.elapsed());
                        let json: serde_json::Value =
                            serde_json::from_slice(&reply.body).unwrap_or_default();
                        cursor = json["next_cursor"].as_str().map(str::to_owned);
                        walks += u64::from(cursor.is_none());
                    }
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        conn = Conn::open(port).await.expect("reconnect");
                    }
                }
            }
            (latencies, errors, walks)
        });
    }
    let (mut all, mut errors, mut walks) = (Vec::new(), 0, 0);
    while let Some(done) = tasks.join_next().await {
        let (latencies, e, w) = done.expect("load task");
        all.extend(latencies);
        errors += e;
        walks += w;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    println!(
        "native  GET /v1/decisions?limit={LIMIT}&cursor=..., {connections} connections, {elapsed:.1} s: \
         {} requests, {errors} errors, {walks} whole walks",
        all.len()
    );
    println!(
        "        {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        all.len() as f64 / elapsed,
        ms(pct(&all, 0.50)),
        ms(pct(&all, 0.99)),
        ms(all.last().copied().unwrap_or_default())
    );
}
