//! What the view keeps of a record: a [`Fact`], the few fields deriving
//! the lifecycle and the old API's item read (no signature, no key, which
//! the view's map holds once), with a Ban's jail, reason and source in one
//! interned [`Meta`] shared by every record that says the same.
//!
//! A key's facts are [`Facts`]: one inline (most keys hold one record), or
//! a boxed slice, merged by the store's rule (one per origin and kind, the
//! greater in the total order wins).

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

use banmesh_crdt::{Id, Kind, Origin, Record};

use crate::gateway::lifecycle::Said;

/// A record's text: for a Ban, what the old API shows (`jail`,
/// `description`, `reported_by`); every kind's for `/v1`. Shared by every
/// fact and item saying the same.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Meta {
    /// The jail, or empty.
    pub jail: Box<str>,
    /// The reason, or empty.
    pub reason: Box<str>,
    /// The source, or empty.
    pub source: Box<str>,
}

/// Hands out one shared [`Meta`] (and origin) per distinct value.
#[derive(Debug, Default)]
pub struct Interner {
    metas: HashSet<Arc<Meta>>,
    origins: HashSet<Arc<Origin>>,
}

impl Interner {
    fn meta(&mut self, record: &Record) -> Arc<Meta> {
        let m = &record.statement().meta;
        let meta = Meta {
            jail: m.jail.as_str().into(),
            reason: m.reason.as_str().into(),
            source: m.source.as_str().into(),
        };
        if let Some(shared) = self.metas.get(&meta) {
            return shared.clone();
        }
        let shared = Arc::new(meta);
        self.metas.insert(shared.clone());
        shared
    }

    fn origin(&mut self, origin: Origin) -> Arc<Origin> {
        if let Some(shared) = self.origins.get(&origin) {
            return shared.clone();
        }
        let shared = Arc::new(origin);
        self.origins.insert(shared.clone());
        shared
    }

    /// Forgets values no fact or item holds any more.
    pub fn prune(&mut self) {
        self.metas.retain(|m| Arc::strong_count(m) > 1);
        self.origins.retain(|o| Arc::strong_count(o) > 1);
    }

    /// The fact `record` states; `rule_ok`: it keeps the cluster rules
    /// (`Statement::validate`).
    pub fn fact(&mut self, record: &Record, rule_ok: bool) -> Fact {
        let s = record.statement();
        Fact {
            issued_at: s.issued_at.0,
            expires_at: s.expires_at,
            origin: self.origin(s.origin),
            id: record.id(),
            meta: self.meta(record),
            strikes: s.strikes,
            kind: s.kind,
            rule_ok,
        }
    }
}

/// One record, as far as the view needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// `issued_at` (the whole HLC reading, for the order).
    pub issued_at: u64,
    /// `expires_at`.
    pub expires_at: Option<u64>,
    /// The issuing node.
    pub origin: Arc<Origin>,
    /// The record's id (the order's last tie-break but the signature,
    /// which differs only between two signatures over one statement).
    pub id: Id,
    /// Its text (jail, reason, source).
    pub meta: Arc<Meta>,
    /// A Ban's strikes.
    pub strikes: u32,
    /// The kind.
    pub kind: Kind,
    /// It keeps the cluster rules; whether a certificate allows it is
    /// judged when asked (`view::native`), as certificates arrive later.
    pub rule_ok: bool,
}

impl Said for Fact {
    fn kind(&self) -> Kind {
        self.kind
    }

    fn issued_ms(&self) -> u64 {
        banmesh_crdt::Hlc(self.issued_at).millis()
    }

    fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    fn strikes(&self) -> u32 {
        self.strikes
    }

    fn order_cmp(&self, other: &Fact) -> Ordering {
        (self.issued_at, &*self.origin, self.id).cmp(&(other.issued_at, &*other.origin, other.id))
    }
}

/// One key's facts, one per (origin, kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Facts {
    /// One fact (most keys).
    One(Fact),
    /// Several, or none.
    Many(Box<[Fact]>),
}

impl Default for Facts {
    fn default() -> Facts {
        Facts::Many(Box::default())
    }
}

impl Facts {
    /// The facts.
    pub fn as_slice(&self) -> &[Fact] {
        match self {
            Facts::One(fact) => std::slice::from_ref(fact),
            Facts::Many(facts) => facts,
        }
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// Merges `fact`: kept iff its (origin, kind) slot is empty or it is
    /// greater than the slot's fact, which it replaces (the store's rule).
    /// Returns whether the facts changed.
    pub fn merge(&mut self, fact: Fact) -> bool {
        let facts = self.as_slice();
        let slot = facts.iter().position(|f| f.origin == fact.origin && f.kind == fact.kind);
        match slot {
            Some(i) if fact.order_cmp(&facts[i]).is_le() => false,
            Some(i) => {
                let mut all = facts.to_vec();
                all[i] = fact;
                *self = Facts::from(all);
                true
            }
            None => {
                let mut all = facts.to_vec();
                all.push(fact);
                *self = Facts::from(all);
                true
            }
        }
    }

    /// Keeps the facts `keep` says to; returns whether any went.
    pub fn retain(&mut self, mut keep: impl FnMut(&Fact) -> bool) -> bool {
        if self.as_slice().iter().all(&mut keep) {
            return false;
        }
        let kept = self.as_slice().iter().filter(|f| keep(f)).cloned().collect::<Vec<_>>();
        *self = Facts::from(kept);
        true
    }
}

impl From<Vec<Fact>> for Facts {
    fn from(mut all: Vec<Fact>) -> Facts {
        match all.len() {
            1 => all.pop().map_or_else(Facts::default, Facts::One),
            _ => Facts::Many(all.into_boxed_slice()),
        }
    }
}
