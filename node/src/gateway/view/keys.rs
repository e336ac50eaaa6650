//! The view's keys and how a new snapshot is patched from the last: every
//! key's [`Facts`], what the lists show for it, when it must be derived
//! again, and where live explicit Allows are. A rebuild derives only the
//! keys whose records changed or whose lifecycle step passed, plus the keys
//! inside a network whose live Allow came or went (DESIGN: an address is
//! allowed iff some key covering it is allowed), and patches the lists
//! with those keys alone ([`List::patched`]).

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;

use banmesh_crdt::{Key, Origin, Params, Record};
use ipnet::IpNet;

use super::KeyState;
use super::fact::{Facts, Interner};
use crate::gateway::lifecycle::{Said as _, Status, Windows, derive};
use crate::gateway::snapshot::{Change, Item, List, Snapshot};

/// No time (no live Allow, no lifecycle step).
const NEVER: u64 = u64::MAX;
/// Keys shown again between two list patches when every key is (a
/// reload), so the changes waiting stay a few MB however many keys.
const BATCH: usize = 65_536;

/// One key.
#[derive(Debug)]
struct Entry {
    facts: Facts,
    /// The list showing it (its own status, or allowed when a wider Allow
    /// frees it), as of the last rebuild.
    shown: Cell<Option<Status>>,
    /// When its live explicit Allow began, or [`NEVER`]: it frees every
    /// narrower key inside it too.
    allow_since: u64,
    /// When it must be derived again (a lifecycle step), or [`NEVER`].
    valid_until: u64,
}

impl Default for Entry {
    fn default() -> Entry {
        Entry {
            facts: Facts::default(),
            shown: Cell::new(None),
            allow_since: NEVER,
            valid_until: NEVER,
        }
    }
}

/// How many keys of each prefix length (per family) hold a live explicit
/// Allow, so that finding the Allows covering a key probes only those.
struct AllowLengths {
    v4: [u32; 33],
    v6: [u32; 129],
}

impl Default for AllowLengths {
    fn default() -> AllowLengths {
        AllowLengths { v4: [0; 33], v6: [0; 129] }
    }
}

impl AllowLengths {
    fn slot(&mut self, key: Key) -> Option<&mut u32> {
        let len = usize::from(key.prefix_len());
        if key.is_v4() { self.v4.get_mut(len) } else { self.v6.get_mut(len) }
    }

    fn of(&self, key: Key) -> &[u32] {
        if key.is_v4() { &self.v4 } else { &self.v6 }
    }
}

/// Every key the view holds.
pub struct Keys {
    windows: Windows,
    map: BTreeMap<Key, Entry>,
    interner: Interner,
    /// Keys whose facts changed since the last rebuild.
    dirty: BTreeSet<Key>,
    /// Every key must be shown again, from empty lists (after a reload).
    all_dirty: bool,
    /// Lifecycle steps, earliest first; an entry whose time is no longer
    /// its key's `valid_until` is stale and skipped.
    steps: BinaryHeap<Reverse<(u64, Key)>>,
    allows: AllowLengths,
    /// Every fact's (issued ms, key), for `/v1/decisions?since=`; an entry
    /// whose key no longer holds a fact issued then is stale and skipped,
    /// and the set is built again when it has doubled.
    issued: BTreeSet<(u64, Key)>,
    /// `issued`'s size when last built.
    issued_built: usize,
}

impl Keys {
    /// No keys.
    pub fn new(windows: Windows) -> Keys {
        Keys {
            windows,
            map: BTreeMap::new(),
            interner: Interner::default(),
            dirty: BTreeSet::new(),
            all_dirty: true,
            steps: BinaryHeap::new(),
            allows: AllowLengths::default(),
            issued: BTreeSet::new(),
            issued_built: 0,
        }
    }

    /// Forgets every key: the next rebuild shows what is inserted from then
    /// on, from empty lists.
    pub fn clear(&mut self) {
        let windows = self.windows;
        let interner = std::mem::take(&mut self.interner);
        *self = Keys { interner, ..Keys::new(windows) };
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether records changed since the last rebuild.
    pub fn changed(&self) -> bool {
        self.all_dirty || !self.dirty.is_empty()
    }

    /// The earliest lifecycle step, or `u64::MAX`.
    pub fn next_step_ms(&self) -> u64 {
        self.steps.peek().map_or(NEVER, |Reverse((at, _))| *at)
    }

    /// Merges one record: kept iff it is greater than its (origin, kind)
    /// slot's; `rule_ok`: it keeps the cluster rules.
    pub fn insert(&mut self, record: &Record, rule_ok: bool) {
        let fact = self.interner.fact(record, rule_ok);
        let issued = (fact.issued_ms(), record.key());
        let entry = self.map.entry(record.key()).or_default();
        if entry.facts.merge(fact) {
            self.issued.insert(issued);
            if !self.all_dirty {
                self.dirty.insert(record.key());
            }
        }
    }

    /// The facts of the keys after `after` (from the first when `None`),
    /// in key order.
    pub fn after(&self, after: Option<Key>) -> impl Iterator<Item = (Key, &Facts)> {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = after.map_or(Unbounded, Excluded);
        self.map.range((from, Unbounded)).map(|(key, entry)| (*key, &entry.facts))
    }

    /// One key's facts.
    pub fn facts(&self, key: Key) -> Option<&Facts> {
        self.map.get(&key).map(|entry| &entry.facts)
    }

    /// The keys (with repeats, in no order) holding a fact issued at or
    /// after `since_ms`, and perhaps a few more (stale entries).
    pub fn issued_since(&self, since_ms: u64) -> impl Iterator<Item = Key> + '_ {
        let first = Key::from_net(IpNet::V4(ipnet::Ipv4Net::default()));
        self.issued.range((since_ms, first)..).map(|(_, key)| *key)
    }

    /// The index entries (issued ms, key), latest first, from the one
    /// before `before` (from the latest when `None`); stale entries (the key
    /// no longer holds a fact issued then) included.
    pub fn issued_before(
        &self,
        before: Option<(u64, Key)>,
    ) -> impl Iterator<Item = (u64, Key)> + '_ {
        use std::ops::Bound::{Excluded, Unbounded};
        let to = before.map_or(Unbounded, Excluded);
        self.issued.range((Unbounded, to)).rev().copied()
    }

    /// Drops `origin`'s records.
    pub fn revoke(&mut self, origin: Origin) {
        for (key, entry) in &mut self.map {
            if entry.facts.retain(|f| *f.origin != origin) && !self.all_dirty {
                self.dirty.insert(*key);
            }
        }
    }

    /// Drops records the store's GC rule lets go.
    pub fn prune(&mut self, params: Params, now: u64) {
        for (key, entry) in &mut self.map {
            let gone = entry.facts.retain(|f| {
                let end = f.expires_at.unwrap_or(f.issued_ms());
                params.collectable_after_ms(f.issued_ms(), end) >= now
            });
            if gone && !self.all_dirty {
                self.dirty.insert(*key);
            }
        }
        self.interner.prune();
    }

    /// Where `keys` stand at `now`, by their own records.
    pub fn lookup(&self, keys: &[Key], now: u64) -> Vec<Option<KeyState>> {
        keys.iter()
            .map(|key| {
                let entry = self.map.get(key)?;
                let l = derive(entry.facts.as_slice(), now, self.windows)?;
                Some(KeyState {
                    status: l.status,
                    explicit_allow: l.explicit_allow,
                    block_count: l.block_count(),
                })
            })
            .collect()
    }

    /// The snapshot at `now`: `previous` patched with the keys that changed.
    pub fn rebuild(&mut self, previous: &Snapshot, now: u64) -> Snapshot {
        let (lists, empty) = if self.all_dirty {
            self.derive_all(now);
            self.reshow(self.map.iter(), Snapshot::default().lists, now)
        } else {
            self.take_steps(now);
            let covering = self.derive_dirty(now);
            let keys = self.to_show(covering);
            let entries = keys.iter().filter_map(|key| Some((key, self.map.get(key)?)));
            self.reshow(entries, previous.lists.clone(), now)
        };
        for key in empty {
            self.map.remove(&key);
        }
        self.all_dirty = false;
        self.dirty.clear();
        if self.issued.len() > 2 * self.issued_built + 1_024 {
            self.issued = self
                .map
                .iter()
                .flat_map(|(key, e)| e.facts.as_slice().iter().map(|f| (f.issued_ms(), *key)))
                .collect();
            self.issued_built = self.issued.len();
        }
        if self.steps.len() > 2 * self.map.len() + 1_024 {
            self.steps = self
                .map
                .iter()
                .filter(|(_, e)| e.valid_until != NEVER)
                .map(|(key, e)| Reverse((e.valid_until, *key)))
                .collect();
        }
        Snapshot { lists, built_at_ms: now }
    }

    /// Marks dirty the keys whose lifecycle step has come.
    fn take_steps(&mut self, now: u64) {
        while let Some(Reverse((at, key))) = self.steps.peek().copied()
            && at <= now
        {
            self.steps.pop();
            if self.map.get(&key).is_some_and(|e| e.valid_until == at) {
                self.dirty.insert(key);
            }
        }
    }

    /// Derives every key afresh (after a reload).
    fn derive_all(&mut self, now: u64) {
        self.steps.clear();
        self.allows = AllowLengths::default();
        for entry in self.map.values_mut() {
            (entry.allow_since, entry.valid_until) = (NEVER, NEVER);
            entry.shown.set(None);
        }
        for (key, entry) in &mut self.map {
            rederive(*key, entry, now, self.windows, &mut self.steps, &mut self.allows);
        }
    }

    /// Derives the dirty keys; returns the networks whose live Allow came,
    /// went or changed.
    fn derive_dirty(&mut self, now: u64) -> Vec<Key> {
        let mut covering = Vec::new();
        for key in &self.dirty {
            let Some(entry) = self.map.get_mut(key) else { continue };
            if rederive(*key, entry, now, self.windows, &mut self.steps, &mut self.allows)
                && !key.is_address()
            {
                covering.push(*key);
            }
        }
        covering
    }

    /// The keys to show again, in order: the dirty ones and every key
    /// inside `covering`.
    fn to_show(&self, covering: Vec<Key>) -> Vec<Key> {
        let mut keys: Vec<Key> = self.dirty.iter().copied().collect();
        for net in covering {
            let inside = self.map.range(net..).map(|(key, _)| *key);
            keys.extend(inside.take_while(|key| within(net, *key)));
        }
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// What the lists show for `key` at `now`.
    fn show(&self, key: Key, entry: &Entry, now: u64) -> Option<(Status, Item)> {
        let mut lifecycle = derive(entry.facts.as_slice(), now, self.windows)?;
        if lifecycle.status == Status::Blocked
            && let Some(since) = self.freed_since(key)
        {
            // Freed by a wider Allow, until that Allow's end (the covering
            // key's own step, which shows this key again).
            lifecycle.status = Status::Allowed;
            lifecycle.explicit_allow = true;
            lifecycle.allowed_since_ms = Some(since);
        }
        Some((lifecycle.status, Item::new(key, &lifecycle)))
    }

    /// When the live Allow on a wider key covering `key` began, if one does.
    /// Probes only the prefix lengths some live Allow has.
    fn freed_since(&self, key: Key) -> Option<u64> {
        let lengths = self.allows.of(key);
        let addr = key.net().network();
        (0..key.prefix_len())
            .filter(|len| lengths.get(usize::from(*len)).is_some_and(|n| *n > 0))
            .filter_map(|len| IpNet::new(addr, len).ok())
            .filter_map(|net| self.map.get(&Key::from_net(net)))
            .map(|entry| entry.allow_since)
            .filter(|since| *since != NEVER)
            .max()
    }

    /// Shows `entries` (in key order) again: `lists` patched with what
    /// changed. Returns the lists and the keys left without records.
    fn reshow<'a>(
        &'a self,
        entries: impl Iterator<Item = (&'a Key, &'a Entry)>,
        mut lists: [Arc<List>; 3],
        now: u64,
    ) -> ([Arc<List>; 3], Vec<Key>) {
        let mut changes: [Vec<Change>; 3] = Default::default();
        let (mut pending, mut empty) = (0, Vec::new());
        for (key, entry) in entries {
            let new = self.show(*key, entry, now);
            let old = entry.shown.replace(new.as_ref().map(|(status, _)| *status));
            match (old, new) {
                (Some(was), Some((status, item))) if was == status => {
                    if lists[status.index()].get(*key) != Some(&item) {
                        changes[status.index()].push(Change::Put(item));
                    }
                }
                (old, new) => {
                    if let Some(was) = old {
                        changes[was.index()].push(Change::Remove(*key));
                    }
                    if let Some((status, item)) = new {
                        changes[status.index()].push(Change::Put(item));
                    }
                }
            }
            if entry.facts.is_empty() {
                empty.push(*key);
            }
            pending += 1;
            if pending == BATCH {
                patch(&mut lists, &mut changes);
                pending = 0;
            }
        }
        patch(&mut lists, &mut changes);
        (lists, empty)
    }
}

/// Derives `key` again at `now`: its lifecycle step (pushed on `steps`)
/// and its live Allow (counted in `allows`). Returns whether its live Allow
/// came, went or changed.
fn rederive(
    key: Key,
    entry: &mut Entry,
    now: u64,
    windows: Windows,
    steps: &mut BinaryHeap<Reverse<(u64, Key)>>,
    allows: &mut AllowLengths,
) -> bool {
    let lifecycle = derive(entry.facts.as_slice(), now, windows);
    let valid_until = lifecycle.as_ref().and_then(|l| l.next_change_ms).unwrap_or(NEVER);
    let allow_since = lifecycle
        .as_ref()
        .filter(|l| l.explicit_allow)
        .map_or(NEVER, |l| l.allowed_since_ms.unwrap_or(0));
    if valid_until != entry.valid_until && valid_until != NEVER {
        steps.push(Reverse((valid_until, key)));
    }
    entry.valid_until = valid_until;
    let before = std::mem::replace(&mut entry.allow_since, allow_since);
    if before == allow_since {
        return false;
    }
    if before != NEVER
        && let Some(n) = allows.slot(key)
    {
        *n -= 1;
    }
    if allow_since != NEVER
        && let Some(n) = allows.slot(key)
    {
        *n += 1;
    }
    true
}

/// Whether `key` lies inside `net` (the same family).
fn within(net: Key, key: Key) -> bool {
    net.is_v4() == key.is_v4() && net.net().contains(&key.net())
}

/// Applies the changes waiting to the lists they change.
fn patch(lists: &mut [Arc<List>; 3], changes: &mut [Vec<Change>; 3]) {
    for (list, changes) in lists.iter_mut().zip(changes.iter_mut()) {
        if !changes.is_empty() {
            *list = Arc::new(list.patched(changes));
            changes.clear();
        }
    }
}

#[cfg(test)]
mod tests;
