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
        Slot {
            key: record.key(),
            origin: record.origin(),
            kind: record.kind(),
        }
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

/// The decision for one address at one time, over every key covering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Some covering key is allowed: allow wins, as Fail2Ban's `ignoreip` does.
    Allowed {
        /// The covering key whose Allow lasts longest.
        key: Key,
        /// The Allow.
        live: Live,
    },
    /// No covering key is allowed and some is banned.
    Banned {
        /// The covering key whose Ban lasts longest.
        key: Key,
        /// The Ban.
        live: Live,
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
        let lo = Slot {
            key,
            origin: Origin([0; 32]),
            kind: Kind::Ban,
        };
        let hi = Slot {
            key,
            origin: Origin([0xff; 32]),
            kind: Kind::Disallow,
        };
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
        decide_address(Key::covering(addr).map(|k| (k, self.key_decision(k, now_ms))))
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
    let mut h = Sha256::new();
    h.update(b"banmesh/digest\0");
    h.update((sorted.len() as u64).to_be_bytes());
    for (at, id) in sorted {
        h.update(at.0.to_be_bytes());
        h.update(id.0);
    }
    h.finalize().into()
}

/// The decision for one key from the records on it (any order, any origins,
/// at most one per slot or more: the rule is the same).
pub fn decide_key<'a>(records: impl IntoIterator<Item = &'a Record>, now_ms: u64) -> KeyDecision {
    let records: Vec<&Record> = records.into_iter().collect();
    KeyDecision {
        banned: live(&records, Kind::Ban, Kind::Unban, now_ms),
        allowed: live(&records, Kind::Allow, Kind::Disallow, now_ms),
    }
}

/// The greatest-lasting record of kind `on` that is greater than every
/// record of kind `off` and unexpired at `now_ms`.
fn live(records: &[&Record], on: Kind, off: Kind, now_ms: u64) -> Option<Live> {
    let floor = records
        .iter()
        .filter(|r| r.kind() == off)
        .max_by(|a, b| a.order_cmp(b));
    records
        .iter()
        .filter(|r| r.kind() == on)
        .filter(|r| floor.is_none_or(|f| r.order_cmp(f).is_gt()))
        .filter_map(|r| {
            r.statement()
                .expires_at
                .filter(|&e| e > now_ms)
                .map(|e| (e, *r))
        })
        .max_by(|(ea, a), (eb, b)| ea.cmp(eb).then_with(|| a.order_cmp(b)))
        .map(|(until_ms, r)| Live {
            until_ms,
            strikes: r.statement().strikes,
            id: r.id(),
        })
}

/// The decision for an address from the decisions of the keys covering it.
pub fn decide_address(covering: impl IntoIterator<Item = (Key, KeyDecision)>) -> Decision {
    let mut allowed: Option<(Key, Live)> = None;
    let mut banned: Option<(Key, Live)> = None;
    for (key, d) in covering {
        if let Some(a) = d.allowed
            && allowed.is_none_or(|(_, best)| a.until_ms > best.until_ms)
        {
            allowed = Some((key, a));
        }
        if let Some(b) = d.banned
            && banned.is_none_or(|(_, best)| b.until_ms > best.until_ms)
        {
            banned = Some((key, b));
        }
    }
    match (allowed, banned) {
        (Some((key, live)), _) => Decision::Allowed { key, live },
        (None, Some((key, live))) => Decision::Banned { key, live },
        (None, None) => Decision::Free,
    }
}

#[cfg(test)]
mod tests;
