//! Per-origin rate limits (DESIGN.md: they delay, they do not drop): a token
//! bucket per origin, on the gossip path. A message whose records would
//! overdraw any origin's bucket is not stored now; gossip ignores it (no
//! penalty, not forwarded) and a later sync brings it in. Sync is not held
//! to these buckets: it carries the backlog (a join, a big import), which a
//! per-origin rate would stall; sync is bounded per peer instead, by its
//! sessions (`sync/hostile.rs`: records only inside a session, one per
//! pair, opened at a bounded rate, one page or pull in flight).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use banmesh_crdt::{Origin, Record};

/// Token buckets by origin.
#[derive(Debug)]
pub struct OriginLimits {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<Origin, (f64, Instant)>>,
}

impl OriginLimits {
    /// `rate` records per second per origin after a burst of `burst`.
    pub fn new(rate: u64, burst: u64) -> OriginLimits {
        OriginLimits { rate: rate as f64, burst: burst as f64, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token per record from each origin's bucket if every origin
    /// has enough; otherwise takes nothing and returns false.
    pub fn admit(&self, records: &[Record], now: Instant) -> bool {
        let mut wanted: HashMap<Origin, f64> = HashMap::new();
        for r in records {
            *wanted.entry(r.origin()).or_default() += 1.0;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        for (origin, n) in &wanted {
            let (tokens, at) = buckets.entry(*origin).or_insert((self.burst, now));
            *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.rate)
                .min(self.burst);
            *at = now;
            if *tokens < *n {
                return false;
            }
        }
        for (origin, n) in wanted {
            if let Some((tokens, _)) = buckets.get_mut(&origin) {
                *tokens -= n;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use banmesh_crdt::{Hlc, Kind, Metadata, Statement};

    use super::*;

    fn records(origin: u8, n: u32) -> Vec<Record> {
        (0..n)
            .map(|i| {
                let statement = Statement {
                    key: format!("10.0.{}.{}", i / 256, i % 256).parse().unwrap(),
                    kind: Kind::Ban,
                    issued_at: Hlc::from_millis(1_000),
                    expires_at: Some(2_000),
                    strikes: 1,
                    meta: Metadata::default(),
                    origin: Origin([origin; 32]),
                };
                Record::new(statement, [0; 64])
            })
            .collect()
    }

    #[test]
    fn a_burst_passes_then_the_rate_applies_per_origin() {
        let limits = OriginLimits::new(100, 1_000);
        let t0 = Instant::now();
        assert!(limits.admit(&records(1, 600), t0));
        assert!(!limits.admit(&records(1, 600), t0), "over the burst");
        assert!(limits.admit(&records(2, 600), t0), "another origin has its own bucket");
        assert!(limits.admit(&records(1, 400), t0));
        assert!(!limits.admit(&records(1, 100), t0 + Duration::from_millis(500)));
        assert!(limits.admit(&records(1, 100), t0 + Duration::from_secs(1)));
    }
}
