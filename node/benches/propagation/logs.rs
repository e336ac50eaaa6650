//! Reading the nodes' logs: the structured `record_issued` and
//! `record_applied` events with their µs timestamps, and the percentile
//! arithmetic of the report.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

/// Parses `2025-01-02T03:04:05.123456Z` (or with a `+hh:mm` offset) into µs
/// since the Unix epoch.
pub fn parse_rfc3339_us(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b' ') {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let mut i = 19;
    let mut frac_us = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        let mut scale = 100_000i64;
        for c in digits.bytes().take(6) {
            frac_us += i64::from(c - b'0') * scale;
            scale /= 10;
        }
    }
    let offset_s = match b.get(i) {
        Some(b'Z') | Some(b'z') => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let oh = num(i + 1, 2)?;
            let om = num(i + 4, 2)?;
            let o = oh * 3600 + om * 60;
            if sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    Some(secs * 1_000_000 + frac_us)
}

/// The value of `name=` in a tracing fmt line.
pub fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let pat = format!(" {name}=");
    let at = line.find(&pat)? + pat.len();
    let rest = &line[at..];
    Some(rest.split_whitespace().next().unwrap_or(""))
}

/// What one node's log says.
#[derive(Default)]
pub struct LogFacts {
    /// (key, issued_at) -> log timestamp (µs) of `record_issued`.
    pub issued: HashMap<(String, u64), i64>,
    /// (key, issued_at) -> log timestamp (µs) of the first `record_applied`.
    pub applied: HashMap<(String, u64), i64>,
    pub warnings: Vec<String>,
    pub warning_count: usize,
    pub bytes: u64,
}

pub fn parse_log(path: &Path) -> LogFacts {
    let text = fs::read(path).expect("read node log");
    let text = String::from_utf8_lossy(&text);
    let mut facts = LogFacts { bytes: text.len() as u64, ..LogFacts::default() };
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(ts), Some(level)) = (words.next(), words.next()) else { continue };
        if level == "WARN" || level == "ERROR" {
            facts.warning_count += 1;
            if facts.warnings.len() < 5 {
                facts.warnings.push(line.to_owned());
            }
        }
        let issued = line.contains(" banmesh::events::record_issued: ");
        let applied = line.contains(" banmesh::events::record_applied: ");
        if !issued && !applied {
            continue;
        }
        if field(line, "kind") != Some("ban") {
            continue;
        }
        let (Some(key), Some(hlc), Some(t)) = (
            field(line, "key"),
            field(line, "issued_at").and_then(|v| v.parse::<u64>().ok()),
            parse_rfc3339_us(ts),
        ) else {
            continue;
        };
        let map = if issued { &mut facts.issued } else { &mut facts.applied };
        map.entry((key.to_owned(), hlc)).or_insert(t);
    }
    facts
}

/// Nearest-rank percentile of sorted values.
pub fn pct(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn ms(us: i64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

pub fn ms_f(us: i64) -> f64 {
    us as f64 / 1000.0
}
