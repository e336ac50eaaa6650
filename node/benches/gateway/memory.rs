//! The benchmark's memory figures: a process's `VmRSS` and `VmHWM` from
//! `/proc/PID/status`, the peak under 64 concurrent searches, and the
//! view's rebuild times from the node's log.

use std::path::Path;

/// `VmRSS` and `VmHWM` of `pid`, in bytes (0 when unreadable).
pub fn rss_hwm(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Prints one process's memory: `label`, total and per record.
pub fn report(label: &str, pid: u32, records: u64) -> (u64, u64) {
    let (rss, hwm) = rss_hwm(pid);
    println!(
        "memory  {label}: VmRSS {:.1} MB ({:.0} bytes/record), VmHWM {:.1} MB",
        rss as f64 / 1e6,
        rss as f64 / records as f64,
        hwm as f64 / 1e6
    );
    (rss, hwm)
}

/// The log's length now, to read what it says from here on.
pub fn log_mark(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |s| s.len())
}

/// The time in ms (`took_us=` or `took_ms=`) of every "gateway view
/// rebuilt" line after `mark`.
pub fn rebuild_times(log: &Path, mark: usize) -> Vec<f64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let text = text.get(mark..).unwrap_or("");
    let field = |line: &str, name: &str| -> Option<f64> {
        line.split(name).nth(1)?.split_whitespace().next()?.parse().ok()
    };
    text.lines()
        .filter(|l| l.contains("gateway view rebuilt"))
        .filter_map(|l| field(l, "took_us=").map(|us| us / 1000.0).or_else(|| field(l, "took_ms=")))
        .collect()
}

/// Searches sent at once, as in the side-by-side run.
const SEARCHES: usize = 64;
/// The rise `tests/gateway/memory.rs` allows, whatever the list's length.
const BOUND: u64 = 12 << 20;

/// The node's peak memory (VmHWM, reset first) while 64 clients each read
/// `GET /get_ips?search_ip=.` (every ban) to the end at once.
pub async fn searches(port: u16, pid: u32) {
    let search = || async move {
        let mut conn = super::Conn::open(port).await.expect("connect");
        let reply = conn.request("GET", "/get_ips?search_ip=.", false, b"").await;
        reply.map_or(0, |r| if r.status == 200 { r.body.len() as u64 } else { 0 })
    };
    let answer = search().await;
    // Writing 5 to clear_refs resets VmHWM to the resident size.
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let (_, before) = rss_hwm(pid);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..SEARCHES {
        tasks.spawn(search());
    }
    let mut full = 0;
    while let Some(done) = tasks.join_next().await {
        full += usize::from(done.expect("search task") == answer);
    }
    let (rss, after) = rss_hwm(pid);
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "memory  {SEARCHES} concurrent GET /get_ips?search_ip=. ({full} answered in full, {:.1} MB \
         each, {:.0} MB if all held at once): VmHWM {:.1} -> {:.1} MB, rise {:.1} MB \
         (bound {:.1} MB), VmRSS after {:.1} MB",
        mb(answer),
        mb(answer * SEARCHES as u64),
        mb(before),
        mb(after),
        mb(after.saturating_sub(before)),
        mb(BOUND),
        mb(rss)
    );
}
