//! The compatibility API under load: paged `GET /get_ips` (with and
//! without a writer changing the lists), the unpaged list plain and
//! gzipped (and as the first request after a change), and `POST /add_ips`
//! beside the `Issue` call it becomes.

use super::*;

/// A body of `count` fresh addresses of `net`.0.0.0/8, numbered from `first`.
pub(super) fn add_body(net: u32, first: u64, count: usize) -> Vec<u8> {
    let ips: Vec<String> = (first..first + count as u64).map(|i| address(net, i)).collect();
    serde_json::to_vec(&serde_json::json!({"ips": ips, "jail": "bench"})).expect("encode")
}

/// Posts [`WRITE_BATCH`] fresh addresses every [`WRITE_EVERY`] until
/// `until`, as clients and expiries keep changing the lists; returns the
/// number of posts.
pub(super) async fn writer(port: u16, until: Instant) -> u64 {
    let mut conn = Conn::open(port).await.expect("connect");
    let mut posts = 0;
    while Instant::now() < until {
        let body = add_body(12, posts * WRITE_BATCH as u64, WRITE_BATCH);
        let reply = conn.request("POST", "/add_ips", false, &body).await.expect("add_ips");
        assert_eq!(reply.status, 201, "add_ips: {}", String::from_utf8_lossy(&reply.body));
        posts += 1;
        tokio::time::sleep(WRITE_EVERY).await;
    }
    posts
}

/// `connections` connections asking pages in turn for `seconds`, with a
/// writer changing the lists meanwhile when `writes`.
pub(super) async fn paged(port: u16, connections: u64, seconds: u64, pages: u64, writes: bool) {
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let posting = writes.then(|| tokio::spawn(writer(port, until)));
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..connections {
        tasks.spawn(async move {
            let mut conn = Conn::open(port).await.expect("connect");
            let (mut latencies, mut errors, mut page) = (Vec::new(), 0u64, c * 31);
            while Instant::now() < until {
                page += 1;
                let path = format!("/get_ips?page={}&per_page={PER_PAGE}", page % pages + 1);
                let start = Instant::now();
                match conn.request("GET", &path, false, b"").await {
                    Ok(reply) if reply.status == 200 => latencies.push(start.elapsed()),
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        conn = Conn::open(port).await.expect("reconnect");
                    }
                }
            }
            (latencies, errors)
        });
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    while let Some(done) = tasks.join_next().await {
        let (latencies, e) = done.expect("load task");
        all.extend(latencies);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let writes = match posting {
        Some(task) => format!(
            ", while {} posts of {WRITE_BATCH} addresses (one per {} ms) changed the lists",
            task.await.expect("writer"),
            WRITE_EVERY.as_millis()
        ),
        None => String::new(),
    };
    all.sort();
    let rps = all.len() as f64 / elapsed;
    let (p50, p99) = (pct(&all, 0.50), pct(&all, 0.99));
    println!(
        "paged   GET /get_ips?page=N&per_page={PER_PAGE}, {connections} connections, {elapsed:.1} s: \
         {} requests, {errors} errors{writes}",
        all.len()
    );
    println!(
        "        {rps:.0} requests/s   (target >= {TARGET_RPS:.0}: {}; old server {OLD_RPS:.0})",
        verdict(rps >= TARGET_RPS)
    );
    println!(
        "        p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms   (target p99 <= {TARGET_P99_MS:.0} ms: {}; \
         old server p99 2-5 s)",
        ms(p50),
        ms(p99),
        ms(all.last().copied().unwrap_or_default()),
        verdict(ms(p99) <= TARGET_P99_MS)
    );
}

/// The whole list, [`REPEATS`] times on one connection.
pub(super) async fn unpaged(port: u16, gzip: bool) {
    let mut conn = Conn::open(port).await.expect("connect");
    let (mut times, mut size, mut encoded) = (Vec::new(), 0, false);
    for _ in 0..REPEATS {
        let start = Instant::now();
        let reply = conn.request("GET", "/get_ips", gzip, b"").await.expect("unpaged get_ips");
        times.push(start.elapsed());
        assert_eq!(reply.status, 200, "unpaged get_ips");
        (size, encoded) = (reply.body.len(), reply.gzip);
    }
    let all: Vec<String> = times.iter().map(|t| format!("{:.3}", t.as_secs_f64())).collect();
    let median = median(times).as_secs_f64();
    let label = if gzip { "gzip " } else { "plain" };
    println!(
        "unpaged GET /get_ips ({label}): median {median:.3} s of {REPEATS} [{}], body {:.2} MB{}   \
         (target <= {TARGET_UNPAGED_S} s: {}; old server {OLD_UNPAGED_S} s)",
        all.join(" "),
        size as f64 / 1e6,
        if gzip && !encoded { " NOT gzip-encoded" } else { "" },
        verdict(median <= TARGET_UNPAGED_S)
    );
}

/// The whole list as the first request after a change pays for it (the
/// gateway renders it once per snapshot): [`REPEATS`] times, post one
/// fresh address, let the view rebuild, then time the list.
pub(super) async fn unpaged_after_change(port: u16, gzip: bool) {
    let mut conn = Conn::open(port).await.expect("connect");
    let mut times = Vec::new();
    for round in 0..REPEATS {
        let body = add_body(13, (round + if gzip { REPEATS } else { 0 }) as u64, 1);
        let reply = conn.request("POST", "/add_ips", false, &body).await.expect("add_ips");
        assert_eq!(reply.status, 201, "add_ips: {}", String::from_utf8_lossy(&reply.body));
        tokio::time::sleep(Duration::from_millis(600)).await;
        let start = Instant::now();
        let reply = conn.request("GET", "/get_ips", gzip, b"").await.expect("unpaged get_ips");
        times.push(start.elapsed());
        assert_eq!(reply.status, 200, "unpaged get_ips");
    }
    let all: Vec<String> = times.iter().map(|t| format!("{:.3}", t.as_secs_f64())).collect();
    let median = median(times).as_secs_f64();
    let label = if gzip { "gzip " } else { "plain" };
    println!(
        "unpaged GET /get_ips ({label}), first after a change: median {median:.3} s of {REPEATS} \
         [{}]   (target <= {TARGET_UNPAGED_S} s: {})",
        all.join(" "),
        verdict(median <= TARGET_UNPAGED_S)
    );
}

/// [`REPEATS`] Issue calls of [`ADD_BATCH`] fresh bans on the control
/// socket: what an `add_ips` costs the node task, without HTTP or the view.
pub(super) async fn issue_direct(socket: &Path) {
    let mut times = Vec::new();
    for round in 0..REPEATS as u64 {
        let first = round * ADD_BATCH as u64;
        let start = Instant::now();
        issue(socket, 14, first..first + ADD_BATCH as u64).await;
        times.push(start.elapsed());
    }
    let all: Vec<String> = times.iter().map(|t| format!("{:.1}", ms(*t))).collect();
    println!(
        "        for comparison, Issue of {ADD_BATCH} bans on the control socket: median {:.1} ms \
         of {REPEATS} [{}]",
        ms(median(times)),
        all.join(" ")
    );
}

/// [`REPEATS`] posts of [`ADD_BATCH`] fresh addresses, and the view
/// rebuilds they caused (each post waits for its own).
pub(super) async fn add_ips(port: u16, log: &Path) {
    let mark = memory::log_mark(log);
    let mut conn = Conn::open(port).await.expect("connect");
    let mut times = Vec::new();
    for round in 0..REPEATS {
        let body = add_body(11, (round * ADD_BATCH) as u64, ADD_BATCH);
        let start = Instant::now();
        let reply = conn.request("POST", "/add_ips", false, &body).await.expect("add_ips");
        times.push(start.elapsed());
        assert_eq!(reply.status, 201, "add_ips: {}", String::from_utf8_lossy(&reply.body));
    }
    let all: Vec<String> = times.iter().map(|t| format!("{:.1}", ms(*t))).collect();
    println!(
        "POST /add_ips of {ADD_BATCH} fresh addresses: median {:.1} ms of {REPEATS} [{}]   \
         (old server {OLD_ADD_MS:.0} ms)",
        ms(median(times)),
        all.join(" ")
    );
    let mut rebuilds = memory::rebuild_times(log, mark);
    rebuilds.sort_by(f64::total_cmp);
    let shown: Vec<String> = rebuilds.iter().map(|t| format!("{t:.2}")).collect();
    println!(
        "        view rebuilds meanwhile: median {:.2} ms of {} [{}]",
        rebuilds.get(rebuilds.len() / 2).copied().unwrap_or(f64::NAN),
        rebuilds.len(),
        shown.join(" ")
    );
}
