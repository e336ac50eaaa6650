//! The native list endpoint under load: `GET /v1/decisions?limit=N`, each
//! connection walking the list by `next_cursor` and starting over at the
//! end, beside the compatibility API's paged figures; and the dashboard's
//! data calls (counts, recent activity, status, peers, explain), each
//! asked again and again on every connection.

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

/// `connections` connections asking `path` again and again for `seconds`:
/// requests/s, p50, p99 (`label` names the call).
pub async fn repeated(port: u16, connections: u64, seconds: u64, label: &str, path: &str) {
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let path = path.to_owned();
        tasks.spawn(async move {
            let mut conn = Conn::open(port).await.expect("connect");
            let (mut latencies, mut errors, mut size) = (Vec::new(), 0u64, 0);
            while Instant::now() < until {
                let start = Instant::now();
                match conn.request("GET", &path, false, b"").await {
                    Ok(reply) if reply.status == 200 => {
                        latencies.push(start.elapsed());
                        size = reply.body.len();
                    }
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        conn = Conn::open(port).await.expect("reconnect");
                    }
                }
            }
            (latencies, errors, size)
        });
    }
    let (mut all, mut errors, mut size) = (Vec::new(), 0, 0);
    while let Some(done) = tasks.join_next().await {
        let (latencies, e, s) = done.expect("load task");
        all.extend(latencies);
        errors += e;
        size = size.max(s);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    println!(
        "ui      {label}: {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms \
         ({} requests, {errors} errors, {connections} connections, body {:.1} kB)",
        all.len() as f64 / elapsed,
        ms(pct(&all, 0.50)),
        ms(pct(&all, 0.99)),
        ms(all.last().copied().unwrap_or_default()),
        all.len(),
        size as f64 / 1e3
    );
}

/// The dashboard's data calls, each for `seconds` on `connections`
/// connections; `fresh_since` is an RFC 3339 time after which only a few
/// records were issued (recent activity as the index serves it).
pub async fn dashboard(port: u16, connections: u64, seconds: u64, fresh_since: &str, ip: &str) {
    let day_ago = banmesh_keys::time::format_rfc3339(
        u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0) - 86_400_000,
    );
    let recent = |since: &str| format!("/v1/decisions?state=all&since={since}&limit=500");
    let calls = [
        ("GET /v1/counts", "/v1/counts".to_owned()),
        ("recent activity, since 24 h ago (every record)", recent(&day_ago)),
        ("recent activity, since the load (a few records)", recent(fresh_since)),
        ("GET /v1/status", "/v1/status".to_owned()),
        ("GET /v1/peers", "/v1/peers".to_owned()),
        ("GET /v1/explain/IP", format!("/v1/explain/{ip}")),
    ];
    for (label, path) in calls {
        repeated(port, connections, seconds, label, &path).await;
    }
}
