//! The Fail2BanSync lifecycle of one key, derived from its records at a
//! given time (DESIGN.md "Gateway"): `blocked`, `allowed` (an explicit
//! Allow, or the window after a ban ended) and `known` (after that, until
//! `known_duration` past the ban's end). Pure: `now` is a parameter.

use std::time::Duration;

use std::cmp::Ordering;

use banmesh_crdt::slots::lifted_by;
use banmesh_crdt::{Kind, Record};

/// The status the old API reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Banned and not allowed.
    Blocked,
    /// A live explicit Allow, or within `allowed_duration` of the ban's end.
    Allowed,
    /// After that, until `known_duration` past the ban's end.
    Known,
}

impl Status {
    /// Every status, in the order of [`Status::index`].
    pub const ALL: [Status; 3] = [Status::Blocked, Status::Allowed, Status::Known];

    /// `blocked`, `allowed` or `known`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Blocked => "blocked",
            Status::Allowed => "allowed",
            Status::Known => "known",
        }
    }

    /// 0, 1 or 2, for arrays of per-status lists.
    pub fn index(self) -> usize {
        match self {
            Status::Blocked => 0,
            Status::Allowed => 1,
            Status::Known => 2,
        }
    }
}

/// The two windows after a ban's end (the old server's settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// `allowed_duration`, in ms.
    pub allowed_ms: u64,
    /// `known_duration`, in ms.
    pub known_ms: u64,
}

impl Windows {
    /// From the configured durations.
    pub fn new(allowed: Duration, known: Duration) -> Windows {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Windows { allowed_ms: ms(allowed), known_ms: ms(known) }
    }
}

/// Where one key stands at one time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle<'a, R = Record> {
    /// The status.
    pub status: Status,
    /// Whether a live explicit Allow decides it (so `add_ips` leaves it alone).
    pub explicit_allow: bool,
    /// When the ban ends or ended (`blocked_until`); `None` without any Ban.
    pub ban_end_ms: Option<u64>,
    /// When it became allowed (`allowed_since`); `None` while blocked.
    pub allowed_since_ms: Option<u64>,
    /// The deciding Ban (the longest-lasting one not lifted, else the
    /// longest-lasting one): strikes, jail, reason, source.
    pub ban: Option<&'a R>,
    /// The next time the status may change with no new record.
    pub next_change_ms: Option<u64>,
}

impl<R: Said> Lifecycle<'_, R> {
    /// `block_count`: the deciding Ban's strikes, 0 without a Ban.
    pub fn block_count(&self) -> u32 {
        self.ban.map_or(0, Said::strikes)
    }
}

/// What deriving a lifecycle reads of a record: the gateway's view keeps
/// only this of each record ([`Record`] itself answers it too).
pub trait Said {
    /// The kind.
    fn kind(&self) -> Kind;
    /// `issued_at` in Unix ms.
    fn issued_ms(&self) -> u64;
    /// `expires_at` (Ban and Allow).
    fn expires_at(&self) -> Option<u64>;
    /// A Ban's strikes.
    fn strikes(&self) -> u32;
    /// The crdt's total order ([`Record::order_cmp`]).
    fn order_cmp(&self, other: &Self) -> Ordering;
}

impl Said for Record {
    fn kind(&self) -> Kind {
        Record::kind(self)
    }

    fn issued_ms(&self) -> u64 {
        self.issued_at().millis()
    }

    fn expires_at(&self) -> Option<u64> {
        self.statement().expires_at
    }

    fn strikes(&self) -> u32 {
        self.statement().strikes
    }

    fn order_cmp(&self, other: &Record) -> Ordering {
        Record::order_cmp(self, other)
    }
}

fn expiry<R: Said>(record: &R) -> u64 {
    record.expires_at().unwrap_or(0)
}

/// The records of `kind` that no lifting record (Unban for a Ban, Disallow
/// for an Allow) from any origin is greater than: [`KeySlots::standing`]
/// over any [`Said`].
///
/// [`KeySlots::standing`]: banmesh_crdt::KeySlots::standing
fn standing<R: Said>(records: &[R], kind: Kind) -> impl Iterator<Item = &R> {
    let floor = lifted_by(kind).and_then(|off| greatest(records, off));
    records.iter().filter(move |r| r.kind() == kind && floor.is_none_or(|f| r.order_cmp(f).is_gt()))
}

/// The greatest record of `kind` in the total order.
fn greatest<R: Said>(records: &[R], kind: Kind) -> Option<&R> {
    records.iter().filter(|r| r.kind() == kind).max_by(|a, b| a.order_cmp(b))
}

/// The record lasting longest, ties to the greater in the order
/// ([`banmesh_crdt::slots::longest`] over any [`Said`]).
fn longest<'a, R: Said>(records: impl Iterator<Item = &'a R>) -> Option<&'a R> {
    records.max_by(|a, b| expiry(*a).cmp(&expiry(*b)).then_with(|| a.order_cmp(b)))
}

/// The lifecycle of the key whose (unrevoked) records are `records` at
/// `now_ms`; `None` when the old API would not list it (never banned or
/// allowed, or past its `known` window).
pub fn derive<R: Said>(records: &[R], now_ms: u64, windows: Windows) -> Option<Lifecycle<'_, R>> {
    let unban = greatest(records, Kind::Unban);
    let standing_ban = longest(standing(records, Kind::Ban));
    let (ban, ban_end_ms) = match (standing_ban, unban) {
        (Some(b), _) => (Some(b), Some(expiry(b))),
        (None, Some(u)) => match longest(records.iter().filter(|r| r.kind() == Kind::Ban)) {
            // Every Ban was lifted: the ban ended at the Unban, or before it.
            Some(b) => (Some(b), Some(expiry(b).min(u.issued_ms()))),
            None => (None, None),
        },
        (None, None) => (None, None),
    };
    let allow = longest(standing(records, Kind::Allow));
    let live_allow = allow.filter(|a| expiry(*a) > now_ms);
    let banned = ban_end_ms.is_some_and(|end| end > now_ms);
    let window = |len: u64| ban_end_ms.map(|end| end.saturating_add(len));
    let allowed_until = window(windows.allowed_ms);
    let known_until = window(windows.known_ms);
    let status = if live_allow.is_some() {
        Status::Allowed
    } else if banned {
        Status::Blocked
    } else if allowed_until.is_some_and(|t| t > now_ms) {
        Status::Allowed
    } else if known_until.is_some_and(|t| t > now_ms) {
        Status::Known
    } else {
        return None;
    };
    let allowed_since_ms = match status {
        Status::Blocked => None,
        _ => {
            let since_allow = allow.map(Said::issued_ms);
            let since_end = ban_end_ms.filter(|end| *end <= now_ms);
            since_allow.max(since_end)
        }
    };
    let next_change_ms = [live_allow.map(expiry), ban_end_ms, allowed_until, known_until]
        .into_iter()
        .flatten()
        .filter(|t| *t > now_ms)
        .min();
    Some(Lifecycle {
        status,
        explicit_allow: live_allow.is_some(),
        ban_end_ms,
        allowed_since_ms,
        ban,
        next_change_ms,
    })
}

#[cfg(test)]
mod tests;
