//! Durations as banmesh writes them everywhere: `90s`, `15m`, `2h`, `3d`, `1w`,
//! or a sum of such parts (`1d12h`). The same syntax as Fail2BanSync's config.

use std::fmt;
use std::time::Duration;

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is empty.
    #[error("empty duration: write it like 90s, 15m, 2h, 3d or 1w")]
    Empty,
    /// A part of the text is not `<number><unit>`.
    #[error("invalid duration {text:?}: write it like 90s, 15m, 2h, 3d or 1w")]
    Invalid {
        /// The text as given.
        text: String,
    },
    /// The duration does not fit in 64 bits of milliseconds.
    #[error("duration {text:?} is too long")]
    TooLong {
        /// The text as given.
        text: String,
    },
}

const UNITS: [(char, u64); 5] =
    [('w', 7 * 86_400), ('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// Parses `15m`, `2h`, `3d`, `1w`, `90s` or a sum of parts such as `1d12h`.
///
/// A bare number is refused: the unit is always written, so `3` is never
/// mistaken for three seconds when three minutes were meant.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(DurationError::Empty);
    }
    let invalid = || DurationError::Invalid { text: text.to_owned() };
    let too_long = || DurationError::TooLong { text: text.to_owned() };
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in trimmed.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let (_, seconds) = UNITS.iter().find(|(u, _)| *u == c).ok_or_else(invalid)?;
        if digits.is_empty() {
            return Err(invalid());
        }
        let n: u64 = digits.parse().map_err(|_| too_long())?;
        let part = n.checked_mul(*seconds).ok_or_else(too_long)?;
        total = total.checked_add(part).ok_or_else(too_long)?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(invalid());
    }
    if total.checked_mul(1000).is_none() {
        return Err(too_long());
    }
    Ok(Duration::from_secs(total))
}

/// Writes a duration in the largest units that divide it (`90s` → `1m30s`),
/// so `parse_duration(&format_duration(d)) == d` for whole seconds.
pub fn format_duration(d: Duration) -> String {
    FormatDuration(d).to_string()
}

/// A `Display` adapter for [`format_duration`].
#[derive(Debug, Clone, Copy)]
pub struct FormatDuration(pub Duration);

impl fmt::Display for FormatDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        if secs == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit_and_sums() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(3 * 86_400)));
        assert_eq!(parse_duration("5w"), Ok(Duration::from_secs(35 * 86_400)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(36 * 3600)));
    }

    #[test]
    fn refuses_bad_text() {
        for bad in ["", " ", "3", "m", "15x", "1.5h", "-1m", "h2", "2h3"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(matches!(
            parse_duration("99999999999999999999w"),
            Err(DurationError::TooLong { .. })
        ));
    }

    #[test]
    fn formats_round_trip() {
        for s in [0u64, 1, 59, 60, 90, 3600, 86_400, 7 * 86_400 + 61, 35 * 86_400] {
            let d = Duration::from_secs(s);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{s}");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(35 * 86_400)), "5w");
    }
}
