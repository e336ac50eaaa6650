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

/// What one load run saw: latencies of the 200s, other answers and broken
/// connections, how often `follow` sent a connection back to the start,
/// and the largest body.
struct Load {
    latencies: Vec<Duration>,
    errors: u64,
    restarts: u64,
    size: usize,
    elapsed: f64,
}

/// `connections` connections asking for `seconds`: `first`, then after
/// each 200 the path `follow` reads from its body, or `first` again when
/// it gives none. Latencies come sorted.
async fn load(
    port: u16,
    connections: u64,
    seconds: u64,
    first: &str,
    follow: fn(&[u8]) -> Option<String>,
) -> Load {
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let first = first.to_owned();
        tasks.spawn(async move {
            let mut conn = Conn::open(port).await.expect("connect");
            let mut seen =
                Load { latencies: Vec::new(), errors: 0, restarts: 0, size: 0, elapsed: 0.0 };
            let mut path = first.clone();
            while Instant::now() < until {
                let start = Instant::now();
                match conn.request("GET", &path, false, b"").await {
                    Ok(reply) if reply.status == 200 => {
                        seen.latencies.push(start.elapsed());
                        seen.size = seen.size.max(reply.body.len());
                        path = follow(&reply.body).unwrap_or_else(|| {
                            seen.restarts += 1;
                            first.clone()
                        });
                    }
                    Ok(_) => seen.errors += 1,
                    Err(_) => {
                        seen.errors += 1;
                        conn = Conn::open(port).await.expect("reconnect");
                    }
                }
            }
            seen
        });
    }
    let mut all = Load { latencies: Vec::new(), errors: 0, restarts: 0, size: 0, elapsed: 0.0 };
    while let Some(done) = tasks.join_next().await {
        let seen = done.expect("load task");
        all.latencies.extend(seen.latencies);
        all.errors += seen.errors;
        all.restarts += seen.restarts;
        all.size = all.size.max(seen.size);
    }
    all.elapsed = started.elapsed().as_secs_f64();
    all.latencies.sort();
    all
}

/// `connections` connections walking `/v1/decisions` for `seconds`.
pub async fn decisions(port: u16, connections: u64, seconds: u64) {
    let next = |body: &[u8]| {
        let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let cursor = json["next_cursor"].as_str()?;
        Some(format!("/v1/decisions?limit={LIMIT}&cursor={cursor}"))
    };
    let first = format!("/v1/decisions?limit={LIMIT}");
    let Load { latencies: all, errors, restarts: walks, elapsed, .. } =
        load(port, connections, seconds, &first, next).await;
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
    let Load { latencies: all, errors, size, elapsed, .. } =
        load(port, connections, seconds, path, |_| None).await;
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
    let recent =
        |since: &str| format!("/v1/decisions?state=all&since={since}&order=newest&limit=20");
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
