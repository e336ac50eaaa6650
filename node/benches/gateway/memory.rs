//! The benchmark's memory figures: a process's `VmRSS` and `VmHWM` from
//! `/proc/PID/status`, and the view's rebuild times from the node's log.

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
