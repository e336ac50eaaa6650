//! The in-memory index: what every key decides, as a [`KeySummary`], so
//! "is this address banned or allowed, and until when" costs a few hash
//! lookups and no query. The store's writer keeps it current after every
//! commit; readers (gateway, enforcers) share it behind a lock.

use std::collections::HashMap;
use std::net::IpAddr;

use banmesh_crdt::state::decide_address;
use banmesh_crdt::{Decision, Key, KeySummary};

/// Summaries by key, and how many keys of each prefix length there are, so
/// a lookup only probes the prefix lengths in use (usually one or two).
#[derive(Debug, Clone)]
pub struct Index {
    keys: HashMap<Key, KeySummary>,
    v4_lengths: [u32; 33],
    v6_lengths: [u32; 129],
}

impl Default for Index {
    fn default() -> Index {
        Index { keys: HashMap::new(), v4_lengths: [0; 33], v6_lengths: [0; 129] }
    }
}

impl Index {
    /// Records what `key` decides now; a summary that decides nothing removes it.
    pub fn set(&mut self, key: Key, summary: KeySummary) {
        let was_present = if summary == KeySummary::default() {
            self.keys.remove(&key).is_some()
        } else {
            self.keys.insert(key, summary).is_some()
        };
        let now_present = summary != KeySummary::default();
        if was_present != now_present {
            let count = self.length_count(key);
            if now_present {
                *count += 1;
            } else {
                *count = count.saturating_sub(1);
            }
        }
    }

    fn length_count(&mut self, key: Key) -> &mut u32 {
        let len = usize::from(key.prefix_len());
        if key.is_v4() {
            &mut self.v4_lengths[len.min(32)]
        } else {
            &mut self.v6_lengths[len.min(128)]
        }
    }

    /// What `key` alone decides, if the index holds it.
    pub fn get(&self, key: Key) -> Option<KeySummary> {
        self.keys.get(&key).copied()
    }

    /// The decision for `addr` at `now_ms`, over every key covering it.
    pub fn decision(&self, addr: IpAddr, now_ms: u64) -> Decision {
        let lengths: &[u32] = match banmesh_crdt::key::canonical_addr(addr) {
            IpAddr::V4(_) => &self.v4_lengths,
            IpAddr::V6(_) => &self.v6_lengths,
        };
        let covering = Key::covering(addr)
            .filter(|k| lengths[usize::from(k.prefix_len())] > 0)
            .filter_map(|k| self.keys.get(&k).map(|s| (k, *s)));
        decide_address(covering, now_ms)
    }

    /// Every key banned or allowed at `now_ms`, with its summary.
    pub fn live(&self, now_ms: u64) -> impl Iterator<Item = (Key, KeySummary)> + '_ {
        self.keys.iter().filter(move |(_, s)| !s.is_spent(now_ms)).map(|(k, s)| (*k, *s))
    }

    /// Forgets keys that decide nothing at `now_ms` or later; returns how many.
    pub fn sweep(&mut self, now_ms: u64) -> usize {
        let spent: Vec<Key> =
            self.keys.iter().filter(|(_, s)| s.is_spent(now_ms)).map(|(k, _)| *k).collect();
        for key in &spent {
            self.set(*key, KeySummary::default());
        }
        spent.len()
    }

    /// How many keys the index holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the index holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The heap the index's table takes, in bytes (entries, control bytes and
    /// spare capacity), for reports; the benchmark also measures RSS.
    pub fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(Key, KeySummary)>() + 1;
        self.keys.capacity() * entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Key {
        s.parse().unwrap()
    }

    fn ban(until: u64) -> KeySummary {
        KeySummary { ban_until_ms: until, strikes: 1, allow_until_ms: 0 }
    }

    #[test]
    fn lookups_follow_coverage_and_allow_wins() {
        let mut index = Index::default();
        index.set(key("10.0.0.0/24"), ban(500));
        index.set(key("10.0.0.7"), ban(900));
        let addr = "10.0.0.7".parse().unwrap();
        assert_eq!(
            index.decision(addr, 100),
            Decision::Banned { key: key("10.0.0.7"), until_ms: 900, strikes: 1 }
        );
        assert!(matches!(
            index.decision("10.0.0.8".parse().unwrap(), 100),
            Decision::Banned { until_ms: 500, .. }
        ));
        assert_eq!(index.decision("10.0.1.1".parse().unwrap(), 100), Decision::Free);
        index.set(key("10.0.0.0/16"), KeySummary { allow_until_ms: 300, ..KeySummary::default() });
        assert!(matches!(index.decision(addr, 100), Decision::Allowed { until_ms: 300, .. }));
        assert!(matches!(index.decision(addr, 300), Decision::Banned { until_ms: 900, .. }));
        assert_eq!(index.live(600).count(), 1);
    }

    #[test]
    fn removing_and_sweeping_keep_the_length_counts_exact() {
        let mut index = Index::default();
        index.set(key("10.0.0.1"), ban(100));
        index.set(key("10.0.0.1"), ban(200));
        index.set(key("2001:db8::/48"), ban(300));
        assert_eq!(index.v4_lengths[32], 1);
        assert_eq!(index.v6_lengths[48], 1);
        assert_eq!(index.sweep(250), 1);
        assert_eq!(index.v4_lengths[32], 0);
        index.set(key("2001:db8::/48"), KeySummary::default());
        assert_eq!(index.v6_lengths[48], 0);
        assert!(index.is_empty());
        index.set(key("10.0.0.2"), KeySummary::default());
        assert_eq!(index.v4_lengths[32], 0);
    }
}
