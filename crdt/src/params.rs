//! Cluster-wide parameters every node must share for its decisions to agree,
//! and Fail2BanSync's ban policy with its defaults and escalation.

use std::time::Duration;

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;
const DAY_MS: u64 = 24 * HOUR_MS;

/// The parameters that decide validity and collection. Every node of a
/// cluster must use the same values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Longest a Ban or Allow may last past its `issued_at` (default 5 weeks,
    /// Fail2BanSync's `bantime.maxtime`). Longer orders are renewed.
    pub max_ttl_ms: u64,
    /// How long a record is kept after it stops acting; at least
    /// `allowed_duration + known_duration` so the gateway can derive the
    /// `allowed` and `known` states (default 7 days).
    pub retention_ms: u64,
    /// The most two nodes' clocks may differ (default 30 s).
    pub skew_bound_ms: u64,
}

impl Default for Params {
    fn default() -> Params {
        Params { max_ttl_ms: 35 * DAY_MS, retention_ms: 7 * DAY_MS, skew_bound_ms: 30_000 }
    }
}

impl Params {
    /// The GC rule: a record may be collected only when `now` is past
    /// `max(end, issued_at + max_ttl) + retention + skew_bound`. By then every
    /// record it superseded has expired too, so a late copy of any of them
    /// can bring nothing back.
    pub fn collectable_after_ms(&self, issued_ms: u64, end_ms: u64) -> u64 {
        end_ms
            .max(issued_ms.saturating_add(self.max_ttl_ms))
            .saturating_add(self.retention_ms)
            .saturating_add(self.skew_bound_ms)
    }
}

/// Fail2BanSync's ban settings (`serverconfig.ini`'s `[DEFAULT]`), used when
/// banmesh sizes a ban itself: the gateway, the CLI without `--for`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BanPolicy {
    /// A first ban's length (`bantime`, default 3m).
    pub bantime: Duration,
    /// Whether repeat bans grow (`bantime.increment`, default true).
    pub increment: bool,
    /// Growth per repeat (`bantime.factor`, default 24).
    pub factor: f64,
    /// Longest ban (`bantime.maxtime`, default 5w).
    pub maxtime: Duration,
    /// How long an address stays `allowed` after its ban ends (default 2m).
    pub allowed_duration: Duration,
    /// How long it is then `known`, so a repeat escalates (default 48h).
    pub known_duration: Duration,
}

impl Default for BanPolicy {
    fn default() -> BanPolicy {
        BanPolicy {
            bantime: Duration::from_secs(3 * 60),
            increment: true,
            factor: 24.0,
            maxtime: Duration::from_secs(35 * 86_400),
            allowed_duration: Duration::from_secs(2 * 60),
            known_duration: Duration::from_secs(48 * 3600),
        }
    }
}

impl BanPolicy {
    /// Fail2BanSync's escalation: `bantime * factor^(strikes-1)` capped at
    /// `maxtime`; just `bantime` when `increment` is off; strikes 0 counts as
    /// strikes 1. Total: a factor below 1, NaN or infinite growth still gives
    /// a length between `bantime.min(maxtime)` and `maxtime`.
    pub fn bantime_for(&self, strikes: u32) -> Duration {
        let base = self.bantime.min(self.maxtime);
        if !self.increment || strikes <= 1 {
            return base;
        }
        let exponent = i32::try_from(strikes - 1).unwrap_or(i32::MAX);
        let secs = self.bantime.as_secs_f64() * self.factor.powi(exponent);
        if secs.is_nan() || secs < base.as_secs_f64() {
            return base;
        }
        if secs >= self.maxtime.as_secs_f64() {
            return self.maxtime;
        }
        Duration::from_secs_f64(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalation_matches_fail2bansync_defaults() {
        let p = BanPolicy::default();
        assert_eq!(p.bantime_for(0), Duration::from_secs(180));
        assert_eq!(p.bantime_for(1), Duration::from_secs(180));
        assert_eq!(p.bantime_for(2), Duration::from_secs(180 * 24));
        assert_eq!(p.bantime_for(3), Duration::from_secs(180 * 24 * 24));
        // 3m * 24^3 = 2,488,320 s, still under 5w = 3,024,000 s.
        assert_eq!(p.bantime_for(4), Duration::from_secs(180 * 24 * 24 * 24));
        assert_eq!(p.bantime_for(5), p.maxtime);
        assert_eq!(p.bantime_for(u32::MAX), p.maxtime);
    }

    #[test]
    fn escalation_is_total() {
        let flat = BanPolicy { increment: false, ..BanPolicy::default() };
        assert_eq!(flat.bantime_for(9), Duration::from_secs(180));
        for factor in [0.0, 0.5, f64::NAN, f64::INFINITY, -3.0] {
            let p = BanPolicy { factor, ..BanPolicy::default() };
            for strikes in [2, 3, 100] {
                let d = p.bantime_for(strikes);
                assert!(d >= p.bantime && d <= p.maxtime, "{factor} {strikes} {d:?}");
            }
        }
        let short_max = BanPolicy { maxtime: Duration::from_secs(60), ..BanPolicy::default() };
        assert_eq!(short_max.bantime_for(1), Duration::from_secs(60));
    }

    #[test]
    fn gc_horizon_is_past_every_superseded_record() {
        let p = Params { max_ttl_ms: 100, retention_ms: 10, skew_bound_ms: 1 };
        // An Unban (end = issued) waits out max_ttl like a Ban would.
        assert_eq!(p.collectable_after_ms(50, 50), 161);
        assert_eq!(p.collectable_after_ms(50, 150), 161);
    }
}
