//! [`Policy`]: the per-key decisions behind the [`Target`], kept current
//! one key at a time. A key's outcome is decided again only when something
//! it depends on changes: its own summary or jail answer, an allow that
//! overlaps it (the allow covers it, or is a hole in it), or the time one
//! of its ends passes. A new never-ban list decides every key again.
//! Pure: no I/O, `now` is a parameter.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use banmesh_crdt::{Key, KeySummary};
use ipnet::IpNet;

use super::MAX_PIECES;
use super::split::{outermost, split_excluding};
use super::target::{Banned, Target, Why};

/// What becomes of a key banned now.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Enforced(Banned),
    LeftOut(Why),
}

/// The inputs (what every key decides, the jail filter's answers, the
/// never-ban list) and the outcome of every key banned now.
#[derive(Debug, Default)]
pub struct Policy {
    enforce: bool,
    /// `apply_jails` is set: a ban applies only while `applied` says so.
    filtered: bool,
    never: Arc<[Key]>,
    summaries: HashMap<Key, KeySummary>,
    /// Until when a ban from an applied jail holds, per key (Unix ms).
    applied: HashMap<Key, u64>,
    /// Keys allowed now.
    allows: BTreeMap<Key, u64>,
    /// Every key banned now, and what becomes of it.
    outcomes: BTreeMap<Key, Outcome>,
    /// When each key's state changes with time: (Unix ms, key).
    ends: BTreeSet<(u64, Key)>,
}

impl Policy {
    /// An empty policy; `filtered` when `apply_jails` is set.
    pub fn new(enforce: bool, filtered: bool, never: Arc<[Key]>) -> Policy {
        Policy { enforce, filtered, never, ..Policy::default() }
    }

    /// Whether `apply_jails` is set (the caller then reads jail answers).
    pub fn filtered(&self) -> bool {
        self.filtered
    }

    /// The never-ban list in use.
    pub fn never(&self) -> &Arc<[Key]> {
        &self.never
    }

    /// Replaces every input: `summaries` (the store's index) and `applied`
    /// (the jail filter's answers, when filtered).
    pub fn rebuild(
        &mut self,
        summaries: impl IntoIterator<Item = (Key, KeySummary)>,
        applied: HashMap<Key, u64>,
        now_ms: u64,
    ) {
        *self = Policy::new(self.enforce, self.filtered, self.never.clone());
        self.applied = applied;
        for (key, summary) in summaries {
            if summary.is_spent(now_ms) {
                continue;
            }
            self.summaries.insert(key, summary);
            if let Some(until) = summary.allowed_at(now_ms) {
                self.allows.insert(key, until);
            }
            self.schedule(key, now_ms);
        }
        self.decide_all(now_ms);
    }

    /// A new never-ban list: every banned key is decided again.
    pub fn set_never(&mut self, never: Arc<[Key]>, now_ms: u64) {
        self.never = never;
        self.decide_all(now_ms);
    }

    /// `key` now decides `summary` (and, when filtered, `applied` is its
    /// jail answer; `None` keeps the last).
    pub fn set(&mut self, key: Key, summary: KeySummary, applied: Option<u64>, now_ms: u64) {
        self.unschedule(key);
        let was_allowed = self.allows.contains_key(&key);
        if summary.is_spent(now_ms) {
            self.summaries.remove(&key);
            self.applied.remove(&key);
        } else {
            self.summaries.insert(key, summary);
            if let Some(until) = applied {
                self.applied.insert(key, until);
            }
        }
        match summary.allowed_at(now_ms) {
            Some(until) => self.allows.insert(key, until),
            None => self.allows.remove(&key),
        };
        self.schedule(key, now_ms);
        self.decide(key, now_ms);
        if was_allowed != self.allows.contains_key(&key) {
            // The allow covers, or is a hole in, every banned key it overlaps.
            let net = key.net();
            let touched: Vec<Key> = self
                .outcomes
                .keys()
                .filter(|k| **k != key && (k.net().contains(&net) || net.contains(&k.net())))
                .copied()
                .collect();
            for banned in touched {
                self.decide(banned, now_ms);
            }
        }
    }

    /// Decides again every key one of whose ends is `now_ms` or earlier.
    pub fn expire(&mut self, now_ms: u64) {
        let mut due = Vec::new();
        while let Some(&(at, key)) = self.ends.first() {
            if at > now_ms {
                break;
            }
            self.ends.pop_first();
            due.push(key);
        }
        for key in due {
            let summary = self.summaries.get(&key).copied().unwrap_or_default();
            self.set(key, summary, None, now_ms);
        }
    }

    /// When some key's state changes next with time (Unix ms).
    pub fn next_change(&self) -> Option<u64> {
        self.ends.first().map(|(at, _)| *at)
    }

    /// The snapshot of what this host enforces.
    pub fn target(&self) -> Target {
        let mut target = Target {
            enforce: self.enforce,
            never_ban: self.never.clone(),
            next_change_ms: self.next_change(),
            ..Target::default()
        };
        if !self.enforce {
            return target;
        }
        target.allows = self.allows.clone();
        let mut entries = BTreeSet::new();
        for (key, outcome) in &self.outcomes {
            match outcome {
                Outcome::Enforced(banned) => {
                    entries.extend(banned.pieces.iter().copied());
                    target.bans.insert(*key, banned.clone());
                }
                Outcome::LeftOut(why) => {
                    target.left_out.insert(*key, why.clone());
                }
            }
        }
        target.entries = outermost(entries);
        target
    }

    /// The times `key`'s state changes: its ban's and allow's ends and,
    /// when filtered, its applied jails' ban's.
    fn ends_of(&self, key: Key) -> [u64; 3] {
        let s = self.summaries.get(&key).copied().unwrap_or_default();
        let applied = if self.filtered { self.applied.get(&key).copied().unwrap_or(0) } else { 0 };
        [s.ban_until_ms, s.allow_until_ms, applied]
    }

    fn schedule(&mut self, key: Key, now_ms: u64) {
        for at in self.ends_of(key) {
            if at > now_ms {
                self.ends.insert((at, key));
            }
        }
    }

    fn unschedule(&mut self, key: Key) {
        for at in self.ends_of(key) {
            self.ends.remove(&(at, key));
        }
    }

    fn decide_all(&mut self, now_ms: u64) {
        self.outcomes.clear();
        let banned: Vec<Key> = self
            .summaries
            .iter()
            .filter(|(_, s)| s.banned_at(now_ms).is_some())
            .map(|(k, _)| *k)
            .collect();
        for key in banned {
            self.decide(key, now_ms);
        }
    }

    /// Decides `key` at `now_ms` and keeps the outcome (none unless banned).
    fn decide(&mut self, key: Key, now_ms: u64) {
        match self.outcome(key, now_ms) {
            Some(outcome) => self.outcomes.insert(key, outcome),
            None => self.outcomes.remove(&key),
        };
    }

    /// What becomes of `key` at `now_ms`: `None` unless it is banned; left
    /// out if `apply_jails` does not apply it, an allow or a never-ban entry
    /// covers it, or splitting it around the allowed and never-ban networks
    /// inside it takes more than [`MAX_PIECES`] pieces.
    fn outcome(&self, key: Key, now_ms: u64) -> Option<Outcome> {
        let (until_ms, _) = self.summaries.get(&key)?.banned_at(now_ms)?;
        if self.filtered && self.applied.get(&key).is_none_or(|until| *until <= now_ms) {
            return Some(Outcome::LeftOut(Why::JailNotApplied));
        }
        let covering =
            Key::covering(key.net().network()).filter(|k| k.prefix_len() <= key.prefix_len());
        if let Some(allow) = covering.into_iter().find(|k| self.allows.contains_key(k)) {
            return Some(Outcome::LeftOut(Why::Allowed(allow)));
        }
        if let Some(never) = self.never.iter().find(|n| n.net().contains(&key.net())) {
            return Some(Outcome::LeftOut(Why::NeverBan(*never)));
        }
        // One address has no room for holes (an allow or never-ban entry on
        // it was handled above): skip the scan, which is most keys.
        let holes: Vec<IpNet> = if key.is_address() {
            Vec::new()
        } else {
            let inside = |h: &IpNet| key.net().contains(h);
            self.never.iter().chain(self.allows.keys()).map(Key::net).filter(inside).collect()
        };
        if holes.is_empty() {
            return Some(Outcome::Enforced(Banned { until_ms, pieces: vec![key] }));
        }
        Some(match split_excluding(key.net(), &holes, MAX_PIECES) {
            Ok(pieces) => Outcome::Enforced(Banned {
                until_ms,
                pieces: pieces.into_iter().map(Key::from_net).collect(),
            }),
            Err(e) => Outcome::LeftOut(Why::TooWide(e)),
        })
    }
}
