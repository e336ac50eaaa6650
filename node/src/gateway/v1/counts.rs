//! `GET /v1/counts`: the live bans and allows counted per jail and per
//! origin, for the dashboard. The gateway's view counts them from the
//! records it holds in memory (`view::native`, a few ms per 100,000
//! records), after every committed record; this module adds them up
//! ([`Counter`]) and keeps the number of distinct jails and origins named
//! bounded (the rest add up under `other_jails` and `other_origins`).

use std::collections::{BTreeMap, HashMap};

use banmesh_crdt::Kind;
use banmesh_keys::time::format_rfc3339;
use serde::Serialize;

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
    /// Counts one live Ban or Allow.
    pub fn add(&mut self, kind: Kind) {
        match kind {
            Kind::Ban => self.bans += 1,
            _ => self.allows += 1,
        }
    }

    fn merge(&mut self, other: &Tally) {
        self.bans += other.bans;
        self.allows += other.allows;
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
    /// When they were counted, RFC 3339 (after every record this node had
    /// committed then).
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
struct Groups<K: Ord> {
    named: BTreeMap<K, Tally>,
    other: Tally,
}

impl<K: Ord> Default for Groups<K> {
    fn default() -> Groups<K> {
        Groups { named: BTreeMap::new(), other: Tally::default() }
    }
}

impl<K: Ord> Groups<K> {
    #[cfg(test)]
    fn add(&mut self, key: K, kind: Kind)
    where
        K: Clone,
    {
        let mut tally = Tally::default();
        tally.add(kind);
        self.add_with(&key, &tally, K::clone);
    }

    /// Counts `tally` under `key` (made owned by `own` only when first seen).
    fn add_with<Q: Ord + ?Sized>(&mut self, key: &Q, tally: &Tally, own: impl FnOnce(&Q) -> K)
    where
        K: std::borrow::Borrow<Q>,
    {
        if let Some(named) = self.named.get_mut(key) {
            named.merge(tally);
        } else if self.named.len() < MAX_GROUPS {
            self.named.entry(own(key)).or_default().merge(tally);
        } else {
            self.other.merge(tally);
        }
    }

    /// Most bans first, then most allows.
    fn sorted(self) -> (Vec<(K, Tally)>, Tally) {
        let mut all: Vec<(K, Tally)> = self.named.into_iter().collect();
        all.sort_by_key(|(_, t)| std::cmp::Reverse((t.bans, t.allows)));
        (all, self.other)
    }
}

/// Adds up live decisions, one at a time or a group at a time (a group's
/// first decision in the order one at a time would have met it).
#[derive(Default)]
pub struct Counter {
    total: Tally,
    jails: Groups<String>,
    /// By origin key (hex).
    origins: Groups<String>,
    /// Each counted origin's certificate name.
    names: HashMap<String, Option<String>>,
}

impl Counter {
    /// Counts one live Ban or Allow of `jail`, signed by the origin whose
    /// key (hex) and certificate name are given.
    pub fn add(&mut self, kind: Kind, jail: &str, origin_key: &str, origin_name: Option<&str>) {
        let mut tally = Tally::default();
        tally.add(kind);
        self.add_tally(&tally, jail, origin_key, origin_name);
    }

    /// Counts `tally`, live decisions of `jail` signed by one origin.
    pub fn add_tally(&mut self, tally: &Tally, jail: &str, origin_key: &str, name: Option<&str>) {
        self.total.merge(tally);
        self.jails.add_with(jail, tally, str::to_owned);
        if !self.names.contains_key(origin_key) {
            self.names.insert(origin_key.to_owned(), name.map(str::to_owned));
        }
        self.origins.add_with(origin_key, tally, str::to_owned);
    }

    /// The counts, counted at `now`.
    pub fn finish(mut self, now: u64) -> Counts {
        let (jails, other_jails) = self.jails.sorted();
        let (origins, other_origins) = self.origins.sorted();
        Counts {
            counted_at: format_rfc3339(now),
            total: self.total,
            jails: jails.into_iter().map(|(jail, tally)| JailCount { jail, tally }).collect(),
            other_jails,
            origins: origins
                .into_iter()
                .map(|(key, tally)| {
                    let name = self.names.remove(&key).flatten();
                    OriginCount { name, key, tally }
                })
                .collect(),
            other_origins,
        }
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
