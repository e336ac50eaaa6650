//! The wall clock, read in one place so that everything else takes `now` as
//! a parameter.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix milliseconds now (0 if the system clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
