//! `apply_jails`: which mesh bans this node applies, by the `jail` their
//! records name. A key applies while some live Ban on it, greater than
//! every Unban on it, names a listed jail or no jail at all (an operator's
//! `banmesh ban`, the gateway); an empty list applies every ban. The answer
//! per key is cached while the index's summary of the key is unchanged.

use std::collections::{HashMap, HashSet};

use banmesh_crdt::{Key, KeySlots, KeySummary, Kind, Record};

use crate::store::{Store, StoreError, query};

/// Keys per query.
const CHUNK: usize = 500;
/// Rounds after which the cache is dropped: a new Ban from another jail can
/// change the answer without changing the key's summary.
const REFRESH_ROUNDS: u32 = 12;

/// The filter and its cache: per key, the summary it was computed for and
/// until when a ban from an applied jail holds (Unix ms, 0 for none).
pub(super) struct JailFilter {
    jails: Vec<String>,
    cache: HashMap<Key, (KeySummary, u64)>,
    rounds: u32,
}

impl JailFilter {
    pub(super) fn new(jails: Vec<String>) -> JailFilter {
        JailFilter { jails, cache: HashMap::new(), rounds: 0 }
    }

    /// Whether the ban on `key` (summarised by `summary`) applies at `now_ms`.
    pub(super) fn applies(&self, key: Key, summary: KeySummary, now_ms: u64) -> bool {
        self.jails.is_empty()
            || self.cache.get(&key).is_some_and(|(s, until)| *s == summary && *until > now_ms)
    }

    /// Reads the records of every candidate whose summary changed.
    pub(super) async fn refresh(
        &mut self,
        store: &Store,
        candidates: &[(Key, KeySummary)],
    ) -> Result<(), StoreError> {
        if self.jails.is_empty() {
            return Ok(());
        }
        self.rounds += 1;
        if self.rounds >= REFRESH_ROUNDS {
            self.rounds = 0;
            self.cache.clear();
        }
        let current: HashSet<Key> = candidates.iter().map(|(k, _)| *k).collect();
        self.cache.retain(|k, _| current.contains(k));
        let misses: Vec<(Key, KeySummary)> = candidates
            .iter()
            .filter(|(k, s)| self.cache.get(k).is_none_or(|(cached, _)| cached != s))
            .copied()
            .collect();
        for chunk in misses.chunks(CHUNK) {
            let keys: Vec<Key> = chunk.iter().map(|(k, _)| *k).collect();
            let records =
                store.read(move |c, p| query::counted_records_on_keys(c, p, &keys)).await?;
            for (key, summary) in chunk {
                let on_key = records.iter().filter(|r| r.key() == *key);
                self.cache.insert(*key, (*summary, applied_until(on_key, &self.jails)));
            }
        }
        Ok(())
    }
}

/// Until when a Ban from an applied jail (or from no jail) holds among
/// `records` (one key's), ignoring bans an Unban on the key lifts; 0 for none.
pub(super) fn applied_until<'a>(
    records: impl Iterator<Item = &'a Record> + Clone,
    jails: &[String],
) -> u64 {
    KeySlots::new(records)
        .standing(Kind::Ban)
        .filter(|r| {
            let jail = &r.statement().meta.jail;
            jail.is_empty() || jails.iter().any(|j| j == jail)
        })
        .filter_map(|r| r.statement().expires_at)
        .max()
        .unwrap_or(0)
}
