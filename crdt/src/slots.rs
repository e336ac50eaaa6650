//! The records on one key, from every origin, and what they say: the one
//! definition of a key's state (DESIGN.md "Decisions"). A Ban counts only
//! while it is greater than the greatest Unban on its key (over all
//! origins) and unexpired; an Allow the same against Disallows. Everything
//! outside this crate that asks "is this ban lifted", "which bans stand" or
//! "which record wins a slot" asks [`KeySlots`] or [`merge_into`].

use crate::record::{Kind, Origin, Record};
use crate::state::{KeyDecision, Live};

/// The records on one key: one per (origin, kind) slot, as a
/// [`State`](crate::State) or the store holds them, in any order. Given more
/// than one record per slot, an origin's lesser records count as well (as
/// in the full history before merging).
#[derive(Debug, Clone, Default)]
pub struct KeySlots<'a> {
    records: Vec<&'a Record>,
}

/// The kind whose records lift records of `kind` (Unban lifts Ban,
/// Disallow lifts Allow); `None` for the lifting kinds themselves.
pub fn lifted_by(kind: Kind) -> Option<Kind> {
    match kind {
        Kind::Ban => Some(Kind::Unban),
        Kind::Allow => Some(Kind::Disallow),
        Kind::Unban | Kind::Disallow => None,
    }
}

impl<'a> KeySlots<'a> {
    /// The slots holding `records` (all on one key).
    pub fn new(records: impl IntoIterator<Item = &'a Record>) -> KeySlots<'a> {
        KeySlots { records: records.into_iter().collect() }
    }

    /// Every record, in the order given.
    pub fn records(&self) -> impl Iterator<Item = &'a Record> + '_ {
        self.records.iter().copied()
    }

    /// The records of `kind`.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &'a Record> + '_ {
        self.records().filter(move |r| r.kind() == kind)
    }

    /// The greatest record of `kind` (in the total order), from any origin.
    pub fn greatest(&self, kind: Kind) -> Option<&'a Record> {
        self.of_kind(kind).max_by(|a, b| a.order_cmp(b))
    }

    /// `origin`'s greatest record of `kind`.
    pub fn greatest_of(&self, origin: Origin, kind: Kind) -> Option<&'a Record> {
        self.of_kind(kind).filter(|r| r.origin() == origin).max_by(|a, b| a.order_cmp(b))
    }

    /// Whether `record` (a Ban or an Allow) is lifted: some Unban (for an
    /// Allow, Disallow) on the key, from any origin, is greater. Unbans and
    /// Disallows are never lifted.
    pub fn is_lifted(&self, record: &Record) -> bool {
        lifted_by(record.kind())
            .and_then(|off| self.greatest(off))
            .is_some_and(|floor| floor.order_cmp(record).is_ge())
    }

    /// The records of `kind` (Ban or Allow) that no Unban (Disallow) lifts,
    /// expired or not.
    pub fn standing(&self, kind: Kind) -> impl Iterator<Item = &'a Record> + '_ {
        let floor = lifted_by(kind).and_then(|off| self.greatest(off));
        self.of_kind(kind).filter(move |r| floor.is_none_or(|f| r.order_cmp(f).is_gt()))
    }

    /// The standing records of `kind` still unexpired at `now_ms`.
    pub fn live(&self, kind: Kind, now_ms: u64) -> impl Iterator<Item = &'a Record> + '_ {
        self.standing(kind).filter(move |r| r.statement().expires_at.is_some_and(|e| e > now_ms))
    }

    /// The Bans that hold at `now_ms`: above the greatest Unban, unexpired.
    pub fn live_bans(&self, now_ms: u64) -> impl Iterator<Item = &'a Record> + '_ {
        self.live(Kind::Ban, now_ms)
    }

    /// The Allows that hold at `now_ms`: above the greatest Disallow, unexpired.
    pub fn live_allows(&self, now_ms: u64) -> impl Iterator<Item = &'a Record> + '_ {
        self.live(Kind::Allow, now_ms)
    }

    /// The record of `kind` among `live(kind, now_ms)` lasting longest, ties
    /// to the greater in the order.
    pub fn longest_live(&self, kind: Kind, now_ms: u64) -> Option<&'a Record> {
        longest(self.live(kind, now_ms))
    }

    /// What the key decides at `now_ms`.
    pub fn decision(&self, now_ms: u64) -> KeyDecision {
        let of = |r: &Record| Live {
            until_ms: r.statement().expires_at.unwrap_or(0),
            strikes: r.statement().strikes,
            id: r.id(),
        };
        KeyDecision {
            banned: self.longest_live(Kind::Ban, now_ms).map(of),
            allowed: self.longest_live(Kind::Allow, now_ms).map(of),
        }
    }
}

/// The record lasting longest (by `expires_at`, none counting as 0), ties to
/// the greater in the order.
pub fn longest<'a>(records: impl Iterator<Item = &'a Record>) -> Option<&'a Record> {
    let expiry = |r: &Record| r.statement().expires_at.unwrap_or(0);
    records.max_by(|a, b| expiry(a).cmp(&expiry(b)).then_with(|| a.order_cmp(b)))
}

/// Merges `record` into `on_key`, the records on its key one per slot: kept
/// iff its (origin, kind) slot is empty or it is greater than the slot's
/// record, which it replaces. Returns whether `on_key` changed. The same
/// rule as [`State::insert`](crate::State::insert), for a store or a view
/// that keeps one key's records in a list.
pub fn merge_into(on_key: &mut Vec<Record>, record: Record) -> bool {
    let slot =
        on_key.iter().position(|r| r.origin() == record.origin() && r.kind() == record.kind());
    match slot {
        Some(i) if record.order_cmp(&on_key[i]).is_le() => false,
        Some(i) => {
            on_key[i] = record;
            true
        }
        None => {
            on_key.push(record);
            true
        }
    }
}
