//! `GET /v1/counts`: the live bans and allows counted per jail and per
//! origin, for the dashboard. The store is read a few hundred keys at a
//! time (as [`decisions`](super::decisions) pages it) and only the tallies
//! are kept, so memory stays bounded whatever the number of records; the
//! number of distinct jails kept is bounded too (the rest add up under
//! `other_jails`). A scan costs about a second per 100,000 records, so the
//! answer is kept ([`CountsCache`]) for [`FRESH_FOR`] or until a write
//! through this gateway's `/v1`, and one scan at a time computes it (holding one
//! of the gateway's heavy-request permits) while other callers wait for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use banmesh_crdt::Kind;
use banmesh_crdt::slots::KeySlots;
use banmesh_keys::time::format_rfc3339;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};

use super::error::V1Error;
use crate::clock::now_ms;
use crate::daemon::queries::Queries;

/// How long counts are served before a request counts again.
pub const FRESH_FOR: Duration = Duration::from_secs(15);

/// Keys read from the store at a time.
const SCAN_KEYS: usize = 512;
/// Most distinct jails (and origins) counted by name.
pub const MAX_GROUPS: usize = 1_000;

/// Live bans and allows in one group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Tally {
    /// Live bans.
    pub bans: u64,
    /// Live allows.
    pub allows: u64,
}

impl Tally {
    fn add(&mut self, kind: Kind) {
        match kind {
            Kind::Ban => self.bans += 1,
            _ => self.allows += 1,
        }
    }
}

/// The live decisions of one jail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct JailCount {
    /// The jail (empty: none given).
    pub jail: String,
    /// Its counts.
    #[serde(flatten)]
    pub tally: Tally,
}

/// The live decisions signed by one origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OriginCount {
    /// The name in its certificate, when this node holds it.
    pub name: Option<String>,
    /// Its public key, hex.
    pub key: String,
    /// Its counts.
    #[serde(flatten)]
    pub tally: Tally,
}

/// Every count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Counts {
    /// When they were counted, RFC 3339: at most 15 s ago, and after the
    /// last write through this gateway's `/v1`.
    pub counted_at: String,
    /// All live decisions.
    pub total: Tally,
    /// Per jail, most bans first.
    pub jails: Vec<JailCount>,
    /// Decisions whose jail is past the first [`MAX_GROUPS`] distinct ones.
    pub other_jails: Tally,
    /// Per origin, most bans first.
    pub origins: Vec<OriginCount>,
    /// Decisions whose origin is past the first [`MAX_GROUPS`] distinct ones.
    pub other_origins: Tally,
}

/// Tallies by name, at most [`MAX_GROUPS`] names.
#[derive(Default)]
struct Groups<K: Ord> {
    named: BTreeMap<K, Tally>,
    other: Tally,
}

impl<K: Ord> Groups<K> {
    fn add(&mut self, key: K, kind: Kind) {
        if let Some(tally) = self.named.get_mut(&key) {
            tally.add(kind);
        } else if self.named.len() < MAX_GROUPS {
            self.named.entry(key).or_default().add(kind);
        } else {
            self.other.add(kind);
        }
    }

    /// Most bans first, then most allows.
    fn sorted(self) -> (Vec<(K, Tally)>, Tally) {
        let mut all: Vec<(K, Tally)> = self.named.into_iter().collect();
        all.sort_by_key(|(_, t)| std::cmp::Reverse((t.bans, t.allows)));
        (all, self.other)
    }
}

/// Counts the live decisions at `now`.
pub async fn count(queries: &Queries, now: u64) -> Result<Counts, V1Error> {
    let mut total = Tally::default();
    let mut jails: Groups<String> = Groups::default();
    let mut origins: Groups<(String, Option<String>)> = Groups::default();
    let mut after = None;
    loop {
        let (records, last, more) = queries.records_after_key(after, SCAN_KEYS).await?;
        for group in records.chunk_by(|(a, _), (b, _)| a.key() == b.key()) {
            let slots = KeySlots::new(group.iter().map(|(r, _)| r));
            for (record, view) in group {
                let kind = record.kind();
                let ended = record.statement().expires_at.is_some_and(|end| end <= now);
                if !matches!(kind, Kind::Ban | Kind::Allow)
                    || !view.valid
                    || ended
                    || slots.is_lifted(record)
                {
                    continue;
                }
                total.add(kind);
                jails.add(view.jail.clone(), kind);
                origins.add((view.origin_key.clone(), view.origin_name.clone()), kind);
            }
        }
        if !more || last.is_none() {
            break;
        }
        after = last;
    }
    let (jails, other_jails) = jails.sorted();
    let (origins, other_origins) = origins.sorted();
    Ok(Counts {
        counted_at: format_rfc3339(now),
        total,
        jails: jails.into_iter().map(|(jail, tally)| JailCount { jail, tally }).collect(),
        other_jails,
        origins: origins
            .into_iter()
            .map(|((key, name), tally)| OriginCount { name, key, tally })
            .collect(),
        other_origins,
    })
}

/// The last counts, as JSON, and what they were counted under.
#[derive(Default)]
pub struct CountsCache {
    /// Bumped by every write through this gateway's `/v1`.
    generation: AtomicU64,
    /// When, under which generation, and the answer. Held across the scan
    /// on purpose: callers arriving meanwhile wait for its answer rather
    /// than scan again.
    last: Mutex<Option<(Instant, u64, Arc<Value>)>>,
}

impl CountsCache {
    /// The counts, counted again when older than [`FRESH_FOR`] or than
    /// the last write.
    pub async fn get(&self, queries: &Queries, heavy: &Semaphore) -> Result<Arc<Value>, V1Error> {
        let mut last = self.last.lock().await;
        let generation = self.generation.load(Ordering::Acquire);
        if let Some((at, seen, value)) = &*last
            && *seen == generation
            && at.elapsed() < FRESH_FOR
        {
            return Ok(value.clone());
        }
        let _permit = heavy.acquire().await.map_err(|_| {
            V1Error::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the gateway is stopping",
            )
        })?;
        let counts = count(queries, now_ms()).await?;
        let value = Arc::new(serde_json::to_value(counts).unwrap_or(Value::Null));
        *last = Some((Instant::now(), generation, value.clone()));
        Ok(value)
    }

    /// A write changed the counts: the next request counts again.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_stay_bounded_and_sort_by_bans() {
        let mut groups: Groups<usize> = Groups::default();
        for n in 0..MAX_GROUPS + 5 {
            groups.add(n, Kind::Ban);
        }
        groups.add(7, Kind::Ban);
        groups.add(7, Kind::Allow);
        let (named, other) = groups.sorted();
        assert_eq!(named.len(), MAX_GROUPS);
        assert_eq!(other, Tally { bans: 5, allows: 0 });
        assert_eq!(named[0], (7, Tally { bans: 2, allows: 1 }));
    }
}
