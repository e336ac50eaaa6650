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

/// A node's clock: never goes backwards, even when the wall clock does,
/// except by more than the cluster's skew bound (see [`HlcClock::issue`]).
///
/// The clock rule: a new record on key K is issued at
/// `max(local HLC, greatest record on K + 1)`. Remote timestamps are *not*
/// folded into the node-wide reading, so one node with a fast clock cannot
/// drag every other node's clock forward; they only bump the one key.
#[derive(Debug, Clone, Default)]
pub struct HlcClock {
    last: Hlc,
}

/// A record on this key would be future-dated: the greatest record on it
/// is ahead of the wall clock by more than the skew bound (issued while
/// this node's clock was ahead), and a new one must come after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the greatest record on the key was issued {}ms ahead of the wall clock", self.ahead_ms())]
pub struct KeyAhead {
    /// The greatest record on the key.
    pub greatest: Hlc,
    /// The wall clock when the record was asked for, Unix ms.
    pub wall_ms: u64,
    /// The skew bound the new record would break.
    pub skew_bound_ms: u64,
}

impl KeyAhead {
    /// How far the greatest record on the key is ahead of the wall clock.
    pub fn ahead_ms(&self) -> u64 {
        self.greatest.millis().saturating_sub(self.wall_ms)
    }

    /// The wall-clock time (Unix ms) from which a record on the key is no
    /// longer future-dated for peers.
    pub fn until_ms(&self) -> u64 {
        self.greatest.millis().saturating_sub(self.skew_bound_ms)
    }
}

impl HlcClock {
    /// A clock that will never read at or below `high_water` (restored from
    /// the greatest `issued_at` this node stored before it stopped), unless
    /// that is beyond the skew bound (see [`HlcClock::issue`]).
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
    /// (from any origin) was issued at `greatest_on_key`, by the clock rule.
    ///
    /// A local reading more than `skew_bound_ms` ahead of the wall clock
    /// (restored from records issued while this node's clock was ahead, or
    /// the wall clock stepped back) is dropped and the clock restarts at the
    /// wall clock: every peer would ignore a record issued at it as
    /// future-dated. The order rule holds per key all the same (a new record
    /// still comes after every record on its key); where that puts the
    /// record itself beyond the bound, no reading is given ([`KeyAhead`]).
    pub fn issue(
        &mut self,
        wall_ms: u64,
        greatest_on_key: Option<Hlc>,
        skew_bound_ms: u64,
    ) -> Result<Hlc, KeyAhead> {
        let horizon = wall_ms.saturating_add(skew_bound_ms);
        if let Some(g) = greatest_on_key.filter(|g| g.millis() > horizon) {
            return Err(KeyAhead { greatest: g, wall_ms, skew_bound_ms });
        }
        if self.last.millis() > horizon {
            self.last = Hlc::from_millis(wall_ms);
        }
        let local = self.tick(wall_ms);
        Ok(match greatest_on_key {
            Some(g) if g >= local => g.next(),
            _ => local,
        })
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
        let t = c.issue(1_000, Some(remote), 30_000);
        assert_eq!(t, Ok(remote.next()));
        // The node-wide clock did not jump to the remote reading.
        assert_eq!(c.last(), Hlc::from_millis(1_000));
        assert_eq!(c.issue(1_000, None, 30_000), Ok(Hlc::from_millis(1_000).next()));
        assert_eq!(c.issue(1_001, Some(Hlc::from_millis(5)), 30_000), Ok(Hlc::from_millis(1_001)));
    }

    #[test]
    fn a_clock_restored_beyond_the_skew_bound_restarts_at_the_wall_clock() {
        const DAY: u64 = 86_400_000;
        let wall = 1_700_000_000_000;
        // Restored from records issued while the clock was a day ahead.
        let mut c = HlcClock::new(Hlc::from_millis(wall + DAY));
        assert_eq!(c.issue(wall, None, 30_000), Ok(Hlc::from_millis(wall).next()));
        assert_eq!(c.issue(wall + 1, None, 30_000), Ok(Hlc::from_millis(wall + 1)));
        // Within the bound the clock still never goes back.
        let mut near = HlcClock::new(Hlc::from_millis(wall + 20_000));
        assert_eq!(near.issue(wall, None, 30_000), Ok(Hlc::from_millis(wall + 20_000).next()));
        // A key whose greatest record is beyond the bound gets no reading:
        // a record after it would be future-dated too.
        let ahead = Hlc::from_millis(wall + DAY);
        let refused = c.issue(wall, Some(ahead), 30_000);
        assert_eq!(
            refused,
            Err(KeyAhead { greatest: ahead, wall_ms: wall, skew_bound_ms: 30_000 })
        );
        let refused = refused.expect_err("refused");
        assert_eq!(refused.ahead_ms(), DAY);
        assert_eq!(refused.until_ms(), wall + DAY - 30_000);
        // Within the bound the order rule passes it.
        let close = Hlc::from_millis(wall + 10_000);
        assert_eq!(c.issue(wall, Some(close), 30_000), Ok(close.next()));
    }
}
