//! The wall clock, read in one place so that everything else takes `now` as
//! a parameter.

use std::time::{SystemTime, UNIX_EPOCH};

/// The system clock reads a time before 1970.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system clock is before 1970: set the clock")]
pub struct BeforeEpoch;

/// Unix milliseconds now, or [`BeforeEpoch`].
pub fn try_now_ms() -> Result<u64, BeforeEpoch> {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|_| BeforeEpoch)?;
    Ok(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// Unix milliseconds now (0 if the system clock is before 1970).
pub fn now_ms() -> u64 {
    try_now_ms().unwrap_or(0)
}
