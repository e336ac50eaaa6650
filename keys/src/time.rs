//! Unix milliseconds written as RFC 3339 UTC (`2026-11-25T13:05:09Z`), for
//! messages and `banmesh keys show`. No clock here: times are parameters.

/// Writes `ms` (milliseconds since the Unix epoch) as RFC 3339 UTC to the second.
pub fn format_rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, restricted to dates on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_764_075_909_999), "2025-11-25T13:05:09Z");
        assert_eq!(format_rfc3339(4_102_444_799_000), "2099-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(4_107_542_400_000), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn days_are_consecutive() {
        let mut last = civil_from_days(0);
        for days in 1..200_000 {
            let next = civil_from_days(days);
            assert!(next > last, "{days}: {next:?} after {last:?}");
            assert!((1..=12).contains(&next.1) && (1..=31).contains(&next.2));
            last = next;
        }
    }
}
