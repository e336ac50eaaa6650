//! The in-memory index: what every key decides, as a [`KeySummary`], so
//! "is this address banned or allowed, and until when" costs a few hash
//! lookups and no query. The store's writer keeps it current after every
//! commit; readers (gateway, enforcers) share it behind a lock.
//!
//! Compact: a single IPv4 address whose key is a Ban alone (the bulk of a
//! blocklist) lives in [`Hosts`], 12 bytes an entry; every other key
//! (networks, IPv6, Allows) in a plain map. A key is in one of the two,
//! never both. At 1,000,000 banned addresses that is about 16 MB where a
//! map of every key took about 100 MB.

use std::collections::HashMap;
use std::net::IpAddr;

use banmesh_crdt::state::decide_address;
use banmesh_crdt::{Decision, Key, KeySummary};
use ipnet::IpNet;

use super::hosts::{Hosts, pack, unpack};

/// Summaries by key, and how many keys of each prefix length there are, so
/// a lookup only probes the prefix lengths in use (usually one or two).
#[derive(Debug, Clone)]
pub struct Index {
    hosts: Hosts,
    others: HashMap<Key, KeySummary>,
    v4_lengths: [u32; 33],
    v6_lengths: [u32; 129],
}

impl Default for Index {
    fn default() -> Index {
        Index {
            hosts: Hosts::default(),
            others: HashMap::new(),
            v4_lengths: [0; 33],
            v6_lengths: [0; 129],
        }
    }
}

/// The address of a single-IPv4 key, as the hosts table holds it.
pub(super) fn host(key: Key) -> Option<u32> {
    match key.net() {
        IpNet::V4(n) if n.prefix_len() == 32 => Some(u32::from(n.addr())),
        _ => None,
    }
}

impl Index {
    /// An index of `entries` (keys distinct; summaries that decide nothing
    /// are left out), built in one pass rather than key by key.
    pub fn from_entries(entries: impl IntoIterator<Item = (Key, KeySummary)>) -> Index {
        let mut index = Index::default();
        let mut hosts = Vec::new();
        for (key, summary) in entries {
            match host(key).zip(pack(summary)) {
                Some(entry) => {
                    hosts.push(entry);
                    index.v4_lengths[32] += 1;
                }
                None => index.set(key, summary),
            }
        }
        index.hosts = Hosts::from_entries(hosts);
        index
    }

    /// An index of `hosts` and `others` (keys not in `hosts`).
    pub(super) fn from_parts(hosts: Hosts, others: Vec<(Key, KeySummary)>) -> Index {
        let mut index = Index::default();
        index.v4_lengths[32] = u32::try_from(hosts.len()).unwrap_or(u32::MAX);
        index.hosts = hosts;
        for (key, summary) in others {
            index.set(key, summary);
        }
        index
    }

    /// Records what `key` decides now; a summary that decides nothing removes it.
    pub fn set(&mut self, key: Key, summary: KeySummary) {
        let now_present = summary != KeySummary::default();
        let was_present = match (host(key), pack(summary)) {
            (Some(addr), Some(packed)) => {
                let in_others = !self.others.is_empty() && self.others.remove(&key).is_some();
                self.hosts.insert(addr, packed) || in_others
            }
            (addr, _) => {
                let in_hosts = addr.is_some_and(|a| self.hosts.remove(a));
                let in_others = if now_present {
                    self.others.insert(key, summary).is_some()
                } else {
                    self.others.remove(&key).is_some()
                };
                in_hosts || in_others
            }
        };
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
        if let Some(packed) = host(key).and_then(|a| self.hosts.get(a)) {
            return Some(unpack(packed));
        }
        self.others.get(&key).copied()
    }

    /// The decision for `addr` at `now_ms`, over every key covering it.
    pub fn decision(&self, addr: IpAddr, now_ms: u64) -> Decision {
        let lengths: &[u32] = match banmesh_crdt::key::canonical_addr(addr) {
            IpAddr::V4(_) => &self.v4_lengths,
            IpAddr::V6(_) => &self.v6_lengths,
        };
        let covering = Key::covering(addr)
            .filter(|k| lengths[usize::from(k.prefix_len())] > 0)
            .filter_map(|k| self.get(k).map(|s| (k, s)));
        decide_address(covering, now_ms)
    }

    /// Every key the index holds, with its summary.
    pub fn entries(&self) -> impl Iterator<Item = (Key, KeySummary)> + '_ {
        let hosts = self
            .hosts
            .iter()
            .map(|(a, p)| (Key::from_addr(IpAddr::V4(std::net::Ipv4Addr::from(a))), unpack(p)));
        hosts.chain(self.others.iter().map(|(k, s)| (*k, *s)))
    }

    /// Every key banned or allowed at `now_ms`, with its summary.
    pub fn live(&self, now_ms: u64) -> impl Iterator<Item = (Key, KeySummary)> + '_ {
        self.entries().filter(move |(_, s)| !s.is_spent(now_ms))
    }

    /// Forgets keys that decide nothing at `now_ms` or later; returns how many.
    pub fn sweep(&mut self, now_ms: u64) -> usize {
        let hosts = self.hosts.remove_where(|p| unpack(p).is_spent(now_ms));
        self.v4_lengths[32] =
            self.v4_lengths[32].saturating_sub(u32::try_from(hosts).unwrap_or(u32::MAX));
        let spent: Vec<Key> =
            self.others.iter().filter(|(_, s)| s.is_spent(now_ms)).map(|(k, _)| *k).collect();
        for key in &spent {
            self.set(*key, KeySummary::default());
        }
        hosts + spent.len()
    }

    /// Whether `other` holds the same keys with the same summaries.
    pub fn same_as(&self, other: &Index) -> bool {
        self.len() == other.len() && self.entries().all(|(k, s)| other.get(k) == Some(s))
    }

    /// How many keys the index holds.
    pub fn len(&self) -> usize {
        self.hosts.len() + self.others.len()
    }

    /// Whether the index holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The heap the index's tables take, in bytes (entries, control bytes
    /// and spare capacity), for reports; the benchmark also measures RSS.
    pub fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(Key, KeySummary)>() + 1;
        self.hosts.heap_bytes() + self.others.capacity() * entry
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

    /// A random key from a small space, so updates often land on a key
    /// already held: mostly single IPv4 addresses, some networks and IPv6.
    fn random_key(rng: &mut crate::test_rng::Rng) -> Key {
        let n = rng.below(300) as u8;
        match rng.below(10) {
            0 => key(&format!("10.0.{n}.0/24")),
            1 => key(&format!("2001:db8::{n:x}")),
            2 => key("10.0.0.0/16"),
            _ => key(&format!("10.0.{}.{n}", n % 3)),
        }
    }

    /// A random summary: nothing, a Ban that packs, one that does not
    /// (huge strikes, far expiry), an Allow, both.
    fn random_summary(rng: &mut crate::test_rng::Rng) -> KeySummary {
        let until = 1 + rng.below(1000);
        match rng.below(8) {
            0 | 1 => KeySummary::default(),
            2 => KeySummary { strikes: u32::MAX, ..ban(until) },
            3 => ban(u64::MAX - until),
            4 => KeySummary { allow_until_ms: until, ..KeySummary::default() },
            5 => KeySummary { allow_until_ms: until, ..ban(until / 2 + 1) },
            6 => KeySummary { ban_until_ms: 0, strikes: 3, allow_until_ms: 0 },
            _ => KeySummary { strikes: rng.below(1 << 20) as u32, ..ban(until) },
        }
    }

    /// The compact index against a plain map of every key, under random
    /// sets, sweeps and lookups (many merges of the hosts table).
    #[test]
    fn the_compact_index_answers_as_a_plain_map_does() {
        for seed in 0..20 {
            let mut rng = crate::test_rng::Rng(seed);
            let mut index = Index::default();
            let mut plain: HashMap<Key, KeySummary> = HashMap::new();
            for step in 0..20_000 {
                let k = random_key(&mut rng);
                if rng.chance(1) {
                    let now = rng.below(1000);
                    let swept = index.sweep(now);
                    let before = plain.len();
                    plain.retain(|_, s| !s.is_spent(now));
                    assert_eq!(swept, before - plain.len(), "seed {seed} step {step}");
                } else {
                    let s = random_summary(&mut rng);
                    index.set(k, s);
                    if s == KeySummary::default() {
                        plain.remove(&k);
                    } else {
                        plain.insert(k, s);
                    }
                }
                assert_eq!(index.get(k), plain.get(&k).copied(), "seed {seed} step {step}");
                assert_eq!(index.len(), plain.len(), "seed {seed} step {step}");
                let addr: IpAddr =
                    format!("10.0.{}.{}", rng.below(3), rng.below(300) % 256).parse().unwrap();
                let now = rng.below(1000);
                let covering = Key::covering(addr).filter_map(|k| plain.get(&k).map(|s| (k, *s)));
                assert_eq!(index.decision(addr, now), decide_address(covering, now));
            }
            let mut all: Vec<_> = index.entries().collect();
            let mut expected: Vec<_> = plain.iter().map(|(k, s)| (*k, *s)).collect();
            all.sort_by_key(|(k, _)| k.to_bytes());
            expected.sort_by_key(|(k, _)| k.to_bytes());
            assert!(all == expected, "seed {seed}: the entries differ");
            let rebuilt = Index::from_entries(expected.iter().copied());
            assert_eq!(rebuilt.len(), plain.len());
            assert_eq!(rebuilt.v4_lengths, index.v4_lengths, "seed {seed}");
            assert_eq!(rebuilt.v6_lengths, index.v6_lengths, "seed {seed}");
        }
    }

    #[test]
    fn a_million_banned_addresses_take_a_fraction_of_a_map() {
        let index = Index::from_entries((0..1_000_000u32).map(|i| {
            (Key::from_addr(IpAddr::from((0x0a00_0000 + i).to_be_bytes())), ban(1 << 41))
        }));
        assert_eq!(index.len(), 1_000_000);
        assert!(index.heap_bytes() < 16_000_000, "{} bytes", index.heap_bytes());
        assert_eq!(index.get(key("10.0.0.7")), Some(ban(1 << 41)));
    }
}
