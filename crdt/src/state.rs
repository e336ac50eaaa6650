//! The replicated state: per (key, origin, kind) slot the greatest record,
//! its merge, the decisions for a key and for an address, GC and the digest.
//!
//! DESIGN.md groups Ban/Unban and Allow/Disallow into one register each per
//! (key, origin). We keep one slot per *kind* instead: with a shared register,
//! an origin that unbans a key and later bans it again overwrites its own
//! Unban, which silently revives every older Ban from other origins that the
//! Unban had lifted. With a slot per kind the greatest Unban over all origins
//! is always known, and the decision equals the one over the full history in
//! which each origin's latest Ban supersedes its earlier ones.

use std::collections::BTreeMap;
use std::net::IpAddr;

use sha2::{Digest as _, Sha256};

use crate::hlc::Hlc;
use crate::key::Key;
use crate::params::Params;
use crate::record::{Id, Kind, Origin, Record};
use crate::slots::KeySlots;

/// Where a record lives in the state: one slot per (key, origin, kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    /// The address key.
    pub key: Key,
    /// The issuing node.
    pub origin: Origin,
    /// The record's kind.
    pub kind: Kind,
}

impl Slot {
    /// The slot a record belongs to.
    pub fn of(record: &Record) -> Slot {
        Slot { key: record.key(), origin: record.origin(), kind: record.kind() }
    }
}

/// A live Ban or Allow on a key at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    /// The latest expiry among the live records (Unix milliseconds).
    pub until_ms: u64,
    /// The strikes of the record with that expiry (0 for an Allow).
    pub strikes: u32,
    /// That record's id.
    pub id: Id,
}

/// The decision for one exact key at one time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyDecision {
    /// Some Ban on the key is greater than every Unban on it and unexpired.
    pub banned: Option<Live>,
    /// Some Allow on the key is greater than every Disallow on it and unexpired.
    pub allowed: Option<Live>,
}

/// What the records on one key decide at every time, in 20 bytes: the
/// longest-lasting Ban greater than every Unban, and the longest-lasting
/// Allow greater than every Disallow. Because the latest expiry among live
/// records is the latest expiry overall whenever that one is still live, the
/// decision at any `t` follows from these two numbers alone. The store's
/// in-memory index keeps one per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeySummary {
    /// Expiry of that Ban (Unix ms), 0 when there is none.
    pub ban_until_ms: u64,
    /// That Ban's strikes.
    pub strikes: u32,
    /// Expiry of that Allow (Unix ms), 0 when there is none.
    pub allow_until_ms: u64,
}

impl KeySummary {
    /// The summary of the records on one key (one per slot, as a [`State`]
    /// or the store holds them).
    pub fn of<'a>(records: impl IntoIterator<Item = &'a Record>) -> KeySummary {
        // Every valid expiry is after its issue time, so after 0.
        let d = decide_key(records, 0);
        KeySummary {
            ban_until_ms: d.banned.map_or(0, |b| b.until_ms),
            strikes: d.banned.map_or(0, |b| b.strikes),
            allow_until_ms: d.allowed.map_or(0, |a| a.until_ms),
        }
    }

    /// The Ban's expiry and strikes if it is live at `now_ms`.
    pub fn banned_at(&self, now_ms: u64) -> Option<(u64, u32)> {
        (self.ban_until_ms > now_ms).then_some((self.ban_until_ms, self.strikes))
    }

    /// The Allow's expiry if it is live at `now_ms`.
    pub fn allowed_at(&self, now_ms: u64) -> Option<u64> {
        (self.allow_until_ms > now_ms).then_some(self.allow_until_ms)
    }

    /// Whether the key decides nothing at `now_ms` or later (until a new
    /// record arrives on it), so an index may forget it.
    pub fn is_spent(&self, now_ms: u64) -> bool {
        self.ban_until_ms <= now_ms && self.allow_until_ms <= now_ms
    }
}

/// The decision for one address at one time, over every key covering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Some covering key is allowed: allow wins, as Fail2Ban's `ignoreip` does.
    Allowed {
        /// The covering key whose Allow lasts longest.
        key: Key,
        /// Its expiry (Unix ms).
        until_ms: u64,
    },
    /// No covering key is allowed and some is banned.
    Banned {
        /// The covering key whose Ban lasts longest.
        key: Key,
        /// Its expiry (Unix ms).
        until_ms: u64,
        /// That Ban's strikes.
        strikes: u32,
    },
    /// Neither.
    Free,
}

/// The state of one replica: the greatest record per slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    slots: BTreeMap<Slot, Record>,
}

impl State {
    /// An empty state.
    pub fn new() -> State {
        State::default()
    }

    /// Merges one record: kept iff its slot is empty or it is greater than
    /// the slot's record. Returns whether the state changed. Commutative,
    /// associative and idempotent.
    pub fn insert(&mut self, record: Record) -> bool {
        use std::collections::btree_map::Entry;
        match self.slots.entry(Slot::of(&record)) {
            Entry::Vacant(v) => {
                v.insert(record);
                true
            }
            Entry::Occupied(mut o) => {
                if record.order_cmp(o.get()).is_gt() {
                    o.insert(record);
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Merges every record of `other` into this state.
    pub fn merge(&mut self, other: &State) {
        for record in other.slots.values() {
            self.insert(record.clone());
        }
    }

    /// Every record, in slot order.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.slots.values()
    }

    /// How many records the state holds.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the state holds no record.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The records on exactly `key`, from every origin.
    pub fn on_key(&self, key: Key) -> impl Iterator<Item = &Record> {
        let lo = Slot { key, origin: Origin([0; 32]), kind: Kind::Ban };
        let hi = Slot { key, origin: Origin([0xff; 32]), kind: Kind::Disallow };
        self.slots.range(lo..=hi).map(|(_, r)| r)
    }

    /// The greatest `issued_at` on `key`, for the clock rule.
    pub fn greatest_on_key(&self, key: Key) -> Option<Hlc> {
        self.on_key(key).map(Record::issued_at).max()
    }

    /// The decision for exactly `key` at `now_ms`.
    pub fn key_decision(&self, key: Key, now_ms: u64) -> KeyDecision {
        decide_key(self.on_key(key), now_ms)
    }

    /// The decision for `addr` at `now_ms`, over every key covering it.
    pub fn decision(&self, addr: IpAddr, now_ms: u64) -> Decision {
        let covering = Key::covering(addr).map(|k| (k, KeySummary::of(self.on_key(k))));
        decide_address(covering, now_ms)
    }

    /// Removes and returns every record the GC rule allows collecting at
    /// `now_ms` (see [`Params::collectable_after_ms`]).
    pub fn gc(&mut self, now_ms: u64, params: &Params) -> Vec<Record> {
        let doomed: Vec<Slot> = self
            .slots
            .iter()
            .filter(|(_, r)| collectable(r, now_ms, params))
            .map(|(s, _)| *s)
            .collect();
        doomed.iter().filter_map(|s| self.slots.remove(s)).collect()
    }

    /// The state digest: a hash of every record's (`issued_at`, `id`) whose
    /// `end + retention` is after `horizon_ms`. Equal states give equal
    /// digests; states that differ in that set give different ones.
    pub fn digest(&self, horizon_ms: u64, params: &Params) -> [u8; 32] {
        let mut items: Vec<(Hlc, Id)> = self
            .slots
            .values()
            .filter(|r| r.statement().end_ms().saturating_add(params.retention_ms) > horizon_ms)
            .map(|r| (r.issued_at(), r.id()))
            .collect();
        items.sort_unstable();
        digest_items(&items)
    }
}

/// Whether the GC rule allows collecting `record` at `now_ms`.
pub fn collectable(record: &Record, now_ms: u64, params: &Params) -> bool {
    let s = record.statement();
    now_ms > params.collectable_after_ms(s.issued_at.millis(), s.end_ms())
}

/// The digest of a set given as (`issued_at`, `id`) items sorted ascending:
/// SHA-256 over a domain prefix, the count, then each item. The store
/// computes the same digest over its own rows with this function.
pub fn digest_items(sorted: &[(Hlc, Id)]) -> [u8; 32] {
    digest_iter(sorted.len() as u64, sorted.iter().copied())
}

/// [`digest_items`] over `len` sorted items handed over one by one, so a
/// set held in another shape is not copied to be digested.
pub fn digest_iter(len: u64, sorted: impl IntoIterator<Item = (Hlc, Id)>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"banmesh/digest\0");
    h.update(len.to_be_bytes());
    for (at, id) in sorted {
        h.update(at.0.to_be_bytes());
        h.update(id.0);
    }
    h.finalize().into()
}

/// The decision for one key at `now_ms` from the records on it, one per
/// slot (as a [`State`] or the store holds them), in any order; see
/// [`KeySlots::decision`].
pub fn decide_key<'a>(records: impl IntoIterator<Item = &'a Record>, now_ms: u64) -> KeyDecision {
    KeySlots::new(records).decision(now_ms)
}

/// The decision for an address at `now_ms` from the summaries of the keys
/// covering it: allowed if any is allowed (the longest Allow), else banned
/// if any is banned (the longest Ban), else free. Ties go to the first key
/// given, so give keys in a fixed order (narrowest first, as
/// [`Key::covering`] does).
pub fn decide_address(
    covering: impl IntoIterator<Item = (Key, KeySummary)>,
    now_ms: u64,
) -> Decision {
    let mut allowed: Option<(Key, u64)> = None;
    let mut banned: Option<(Key, u64, u32)> = None;
    for (key, summary) in covering {
        if let Some(until) = summary.allowed_at(now_ms)
            && allowed.is_none_or(|(_, best)| until > best)
        {
            allowed = Some((key, until));
        }
        if let Some((until, strikes)) = summary.banned_at(now_ms)
            && banned.is_none_or(|(_, best, _)| until > best)
        {
            banned = Some((key, until, strikes));
        }
    }
    match (allowed, banned) {
        (Some((key, until_ms)), _) => Decision::Allowed { key, until_ms },
        (None, Some((key, until_ms, strikes))) => Decision::Banned { key, until_ms, strikes },
        (None, None) => Decision::Free,
    }
}

#[cfg(test)]
mod tests;
