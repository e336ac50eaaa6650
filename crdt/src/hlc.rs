//! Hybrid logical clock timestamps (milliseconds and a counter in one u64)
//! and the clock rule that picks `issued_at` for a new record.

use std::fmt;

/// Bits of an [`Hlc`] that hold the counter.
const COUNTER_BITS: u32 = 16;

/// A hybrid logical clock reading: Unix milliseconds in the high 48 bits, a
/// counter in the low 16, so that comparing the u64 compares time then counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hlc(pub u64);

impl Hlc {
    /// The reading at `millis` with counter zero (saturating past year 10889).
    pub fn from_millis(millis: u64) -> Hlc {
        Hlc(millis.min(u64::MAX >> COUNTER_BITS) << COUNTER_BITS)
    }

    /// The Unix milliseconds part.
    pub fn millis(self) -> u64 {
        self.0 >> COUNTER_BITS
    }

    /// The counter part.
    pub fn counter(self) -> u16 {
        (self.0 & ((1 << COUNTER_BITS) - 1)) as u16
    }

    /// The next reading after this one (saturating).
    pub fn next(self) -> Hlc {
        Hlc(self.0.saturating_add(1))
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.millis(), self.counter())
    }
}

/// A node's clock: never goes backwards, even when the wall clock does.
///
/// The clock rule: a new record on key K is issued at
/// `max(local HLC, greatest record on K + 1)`. Remote timestamps are *not*
/// folded into the node-wide reading, so one node with a fast clock cannot
/// drag every other node's clock forward; they only bump the one key.
#[derive(Debug, Clone, Default)]
pub struct HlcClock {
    last: Hlc,
}

impl HlcClock {
    /// A clock that will never read at or below `high_water` (restored from
    /// the greatest `issued_at` this node stored before it stopped).
    pub fn new(high_water: Hlc) -> HlcClock {
        HlcClock { last: high_water }
    }

    /// The next local reading at wall time `wall_ms`.
    pub fn tick(&mut self, wall_ms: u64) -> Hlc {
        let wall = Hlc::from_millis(wall_ms);
        self.last = if wall > self.last { wall } else { self.last.next() };
        self.last
    }

    /// `issued_at` for a new record on a key whose greatest stored record
    /// (from any origin) was issued at `greatest_on_key`.
    pub fn issue(&mut self, wall_ms: u64, greatest_on_key: Option<Hlc>) -> Hlc {
        let local = self.tick(wall_ms);
        match greatest_on_key {
            Some(g) if g >= local => g.next(),
            _ => local,
        }
    }

    /// The greatest local reading so far.
    pub fn last(&self) -> Hlc {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_millis_and_counter() {
        let h = Hlc::from_millis(1_700_000_000_000);
        assert_eq!(h.millis(), 1_700_000_000_000);
        assert_eq!(h.counter(), 0);
        assert_eq!(h.next().counter(), 1);
        assert!(h.next() > h && Hlc::from_millis(1_700_000_000_001) > h.next());
        assert_eq!(Hlc::from_millis(u64::MAX).millis(), u64::MAX >> 16);
    }

    #[test]
    fn clock_is_monotonic_when_wall_clock_steps_back() {
        let mut c = HlcClock::new(Hlc::from_millis(1000));
        let a = c.tick(500);
        assert_eq!(a, Hlc::from_millis(1000).next());
        let b = c.tick(500);
        assert!(b > a);
        let d = c.tick(2000);
        assert_eq!(d, Hlc::from_millis(2000));
    }

    #[test]
    fn issue_passes_the_greatest_record_on_the_key_without_folding_it() {
        let mut c = HlcClock::default();
        let remote = Hlc::from_millis(9_000);
        let t = c.issue(1_000, Some(remote));
        assert_eq!(t, remote.next());
        // The node-wide clock did not jump to the remote reading.
        assert_eq!(c.last(), Hlc::from_millis(1_000));
        assert_eq!(c.issue(1_000, None), Hlc::from_millis(1_000).next());
        assert_eq!(c.issue(1_001, Some(Hlc::from_millis(5))), Hlc::from_millis(1_001));
    }
}
