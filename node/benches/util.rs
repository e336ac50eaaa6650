//! Helpers the loopback benches share (included by `#[path]`, beside
//! `tests/common`): the environment, the load average, a process's memory
//! from `/proc`, TCP byte counters from `ss`, and a node's ban count.

#![allow(dead_code)] // not every bench uses every helper

use std::process::Command;

use crate::common::TestNode;

/// The number in environment variable `name`, or `default`.
pub fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// The load average, as `/proc/loadavg` says it.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned()
}

/// Peak resident memory of `pid` in MiB, from `/proc/PID/status`.
pub fn vm_hwm_mib(pid: u32) -> f64 {
    proc_status_mib(pid, "VmHWM:")
}

/// Resident memory of `pid` now, in MiB.
pub fn vm_rss_mib(pid: u32) -> f64 {
    proc_status_mib(pid, "VmRSS:")
}

/// The kB `field` (with its colon) of `/proc/PID/status` in MiB; 0 when
/// unreadable.
pub fn proc_status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    kib.unwrap_or(0.0) / 1024.0
}

/// Bytes sent on established TCP connections from local port `port`
/// (`ss -ti`'s `bytes_sent`), summed.
pub fn bytes_sent_from(port: u16) -> u64 {
    bytes_sent(&format!("( sport = :{port} )"))
}

/// Bytes sent on the established TCP connections from or to these local
/// ports (over loopback both ends are listed, so this is both directions),
/// summed.
pub fn bytes_on(ports: &[u16]) -> u64 {
    let filter: Vec<String> =
        ports.iter().map(|p| format!("sport = :{p} or dport = :{p}")).collect();
    bytes_sent(&format!("( {} )", filter.join(" or ")))
}

/// `bytes_sent` summed over the established TCP connections `ss` lists
/// for `filter`.
fn bytes_sent(filter: &str) -> u64 {
    let out = Command::new("ss")
        .args(["-tinH", "state", "established", filter])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.split_whitespace()
        .filter_map(|w| w.strip_prefix("bytes_sent:"))
        .filter_map(|v| v.parse::<u64>().ok())
        .sum()
}

/// The live bans `node`'s status counts; 0 while it does not answer.
pub fn bans(node: &TestNode) -> u64 {
    node.try_call(&["status"]).ok().and_then(|s| s["record_counts"]["ban"].as_u64()).unwrap_or(0)
}

/// CPU time `pid` has used (user and system), in seconds, from fields 14
/// and 15 of `/proc/PID/stat` (clock ticks, which Linux reports to user
/// space at 100 a second); 0 when unreadable.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: count fields after its `)`.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The seconds since midnight UTC now (as log timestamps count them).
pub fn utc_now() -> f64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0.0, |d| d.as_secs_f64() % 86_400.0)
}

/// The seconds since midnight UTC of a log line's timestamp
/// (`2026-12-02T04:08:53.779521Z ...`).
pub fn log_seconds(line: &str) -> Option<f64> {
    let time = line.split_whitespace().next()?.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = time.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}
