//! What the table's sets hold, as banmesh sees it: each element a key in
//! one of six sets, with until when it holds (addresses only: the kernel
//! expires them). [`Elements::wanted`] makes it from the enforce target,
//! [`diff`] the element changes that bring one state to another. Pure.

use std::collections::{BTreeMap, BTreeSet};

use banmesh_crdt::Key;

use crate::enforce::Target;

/// The longest timeout handed to the kernel: kernels before 6.10 refuse
/// more than about 23 days. A longer ban is re-added by a reconcile once
/// the kernel expired it.
pub const MAX_TIMEOUT_MS: u64 = 20 * 24 * 3600 * 1000;
/// A kernel's remaining time this close to the wanted one is right (the
/// kernel counts in its own ticks, `nft -j` in whole seconds).
pub const SLACK_MS: u64 = 2_500;
/// An end read from the kernel may be later than the wanted one by this
/// much and still be right: it is made from the time left, read by `nft
/// -j list`, and the time the listing ended, which is late by as long as
/// the listing took (seconds, at a million elements).
pub const LATE_MS: u64 = 60_000;

/// One of the table's sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Set {
    /// Allowed and never-ban IPv4 addresses and networks, accepted first.
    Allow4,
    /// The same, IPv6.
    Allow6,
    /// Banned IPv4 addresses, with timeouts.
    Ban4,
    /// Banned IPv6 addresses, with timeouts.
    Ban6,
    /// Banned IPv4 networks.
    Net4,
    /// Banned IPv6 networks.
    Net6,
}

impl Set {
    /// Every set, allows first.
    pub const ALL: [Set; 6] =
        [Set::Allow4, Set::Allow6, Set::Ban4, Set::Ban6, Set::Net4, Set::Net6];

    /// Its name in the table (and its counter's, for the drop sets).
    pub fn name(self) -> &'static str {
        match self {
            Set::Allow4 => "allow4",
            Set::Allow6 => "allow6",
            Set::Ban4 => "ban4",
            Set::Ban6 => "ban6",
            Set::Net4 => "net4",
            Set::Net6 => "net6",
        }
    }

    /// The set named `name`.
    pub fn named(name: &str) -> Option<Set> {
        Set::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether it is IPv4.
    pub fn is_v4(self) -> bool {
        matches!(self, Set::Allow4 | Set::Ban4 | Set::Net4)
    }

    /// Whether it drops (and has a counter).
    pub fn drops(self) -> bool {
        !matches!(self, Set::Allow4 | Set::Allow6)
    }

    /// Whether its elements carry timeouts (`flags timeout`); the others
    /// are interval sets.
    pub fn timed(self) -> bool {
        matches!(self, Set::Ban4 | Set::Ban6)
    }

    /// `ipv4_addr` or `ipv6_addr`.
    pub fn addr_type(self) -> &'static str {
        if self.is_v4() { "ipv4_addr" } else { "ipv6_addr" }
    }

    /// `ip` or `ip6`, for rules matching its addresses.
    pub fn family(self) -> &'static str {
        if self.is_v4() { "ip" } else { "ip6" }
    }

    /// The drop set holding banned `key`.
    pub fn for_ban(key: Key) -> Set {
        match (key.is_v4(), key.is_address()) {
            (true, true) => Set::Ban4,
            (false, true) => Set::Ban6,
            (true, false) => Set::Net4,
            (false, false) => Set::Net6,
        }
    }

    /// The allow set holding `key`.
    pub fn for_allow(key: Key) -> Set {
        if key.is_v4() { Set::Allow4 } else { Set::Allow6 }
    }
}

/// The sets' elements: per set and key, until when (Unix ms) for the timed
/// sets, `None` for the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Elements(pub BTreeMap<(Set, Key), Option<u64>>);

impl Elements {
    /// What the table should hold for `target`: its entries (each address
    /// until its ban's end), its allows and never-ban list. Addresses with
    /// less than a second left at `now_ms` are left out.
    pub fn wanted(target: &Target, now_ms: u64) -> Elements {
        let until = target.ends();
        let mut out = BTreeMap::new();
        for key in &target.entries {
            let set = Set::for_ban(*key);
            let end = until.get(key).copied().unwrap_or(0);
            if !set.timed() {
                out.insert((set, *key), None);
            } else if end >= now_ms.saturating_add(1_000) {
                out.insert((set, *key), Some(end));
            }
        }
        let allowed: BTreeSet<Key> =
            target.allows.keys().chain(target.never_ban.iter()).copied().collect();
        // An interval set refuses an entry inside another.
        for key in crate::enforce::split::outermost(allowed) {
            out.insert((Set::for_allow(key), key), None);
        }
        Elements(out)
    }

    /// How many elements `set` holds.
    pub fn count(&self, set: Set) -> usize {
        self.0.keys().filter(|(s, _)| *s == set).count()
    }
}

/// One element change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Add it (with its timeout, for a timed set).
    Add(Set, Key, Option<u64>),
    /// Re-add it with a new timeout (delete and add, in one transaction).
    Renew(Set, Key, u64),
    /// Remove it.
    Remove(Set, Key),
}

/// The changes that bring `have` to `want`: removals first (an interval
/// set refuses a network overlapping one still there), then additions and
/// renewals. A timed element is renewed when its end moved later by more
/// than [`SLACK_MS`] (a renewed or extended ban), or earlier by more than
/// [`LATE_MS`].
pub fn diff(have: &Elements, want: &Elements) -> Vec<Change> {
    let mut out: Vec<Change> = have
        .0
        .keys()
        .filter(|k| !want.0.contains_key(k))
        .map(|(set, key)| Change::Remove(*set, *key))
        .collect();
    for (&(set, key), &until) in &want.0 {
        match (have.0.get(&(set, key)), until) {
            (None, _) => out.push(Change::Add(set, key, until)),
            (Some(Some(held)), Some(until))
                if until > held.saturating_add(SLACK_MS)
                    || *held > until.saturating_add(LATE_MS) =>
            {
                out.push(Change::Renew(set, key, until));
            }
            _ => {}
        }
    }
    out
}
