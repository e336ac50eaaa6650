//! The sync set kept in memory, one per store (DESIGN.md "Catch-up"): a
//! sealed snapshot, sorted by (timestamp, id), shared by every session
//! that runs at once through an `Arc`, and followed from the store's
//! writer rather than read again per session.
//!
//! The writer tells the [`SetFeed`] what each commit changed: records new
//! to the store, the records they replaced in their slot, new
//! certificates; a revocation (its origin's records leave the set) marks
//! the snapshot stale, as does a delta grown past [`MAX_DELTA`] (a join:
//! reading the store once is cheaper; the SQLite caches and the freed heap
//! are given back before that read, so it does not stack on them). [`SetCache::snapshot`] hands out
//! the current snapshot when nothing changed and no item has expired at
//! the horizon asked for; else it patches it into a new one (one merge
//! pass: a copy, no store read), or reads the store when stale. Sessions in
//! progress keep the snapshot they started with; the memory of an old one
//! goes when its last session ends.
//!
//! The cache holds the set at the start of the minute of the horizon asked
//! for ([`HORIZON_STEP_MS`]), the horizon `status` takes its digest at, so
//! that a digest at any such horizon from then on comes from memory (an
//! exact horizon from a session, a few seconds into the minute, would
//! leave `status` no set to take its digest from until the next minute).
//! A session at horizon H is thus given the set at H and the items that
//! left it during that minute: the few records ended a retention ago in
//! those seconds, pushed once and ignored by the peer.
//!
//! The horizon only moves forward in the cache: a peer whose clock is
//! behind asks for a set at an earlier horizon, and is answered with the
//! set at the latest one asked for, which lacks only the records that
//! expired between the two (milliseconds to seconds of expiries). Such a
//! record is pushed by that peer once and ignored here; by the next
//! session it has expired on both sides.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use banmesh_crdt::state::digest_iter;
use banmesh_crdt::{Hlc, Id, Origin, Params, Record};
use banmesh_keys::Certificate;

use super::sync_set::{self, set_floor};
use super::{Store, StoreError};

/// Items (added and removed) the feed keeps before it gives up and marks
/// the snapshot stale: past this, one read of the store costs less than
/// the delta's memory.
pub const MAX_DELTA: usize = 100_000;

/// The cache's horizons are multiples of this (see the module docs); so
/// are those of `status`'s digest.
pub const HORIZON_STEP_MS: u64 = 60_000;

/// One item of the set: its (timestamp, id) and the `end_ms` it leaves
/// the set by (48 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The timestamp negentropy orders by (an HLC reading).
    pub at: u64,
    /// The item's id.
    pub id: [u8; 32],
    /// In the set at horizon H while `end_ms > H - retention`.
    pub end_ms: u64,
}

impl Entry {
    fn key(&self) -> (u64, [u8; 32]) {
        (self.at, self.id)
    }
}

/// What the writer committed since the cache last looked.
#[derive(Default, Clone)]
struct Delta {
    added: Vec<Entry>,
    removed: Vec<(u64, [u8; 32])>,
    stale: bool,
}

/// The writer's side: it notes each change while a cache follows it.
#[derive(Default)]
pub struct SetFeed {
    on: AtomicBool,
    delta: Mutex<Delta>,
}

impl SetFeed {
    fn change(&self, f: impl FnOnce(&mut Delta)) {
        if !self.on.load(Ordering::Acquire) {
            return;
        }
        let mut delta = self.delta.lock().unwrap_or_else(PoisonError::into_inner);
        if delta.stale {
            return;
        }
        f(&mut delta);
        if delta.stale || delta.added.len() + delta.removed.len() > MAX_DELTA {
            *delta = Delta { stale: true, ..Delta::default() };
        }
    }

    /// Records new to the store (`revoked` tells which origins' records
    /// stay out) and the (timestamp, id) of the records they replaced.
    pub fn applied(
        &self,
        new: &[Record],
        replaced: &[(u64, [u8; 32])],
        revoked: impl Fn(&Origin) -> bool,
    ) {
        self.change(|d| {
            d.added.extend(new.iter().filter(|r| !revoked(&r.origin())).map(|r| {
                let s = r.statement();
                Entry { at: s.issued_at.0, id: r.id().0, end_ms: s.end_ms() }
            }));
            d.removed.extend_from_slice(replaced);
        });
    }

    /// A certificate new to the store.
    pub fn certificate(&self, cert: &Certificate) {
        let at = Hlc::from_millis(cert.not_before_ms()).0;
        self.change(|d| d.added.push(Entry { at, id: cert.id(), end_ms: u64::MAX }));
    }

    /// A change the feed does not follow item by item (a revocation).
    pub fn stale(&self) {
        self.change(|d| *d = Delta { stale: true, ..Delta::default() });
    }

    fn take(&self) -> Delta {
        std::mem::take(&mut *self.delta.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts back a delta taken but not applied, before what came since
    /// (the order of a delta's items does not matter: see [`patch`]).
    fn restore(&self, taken: Delta) {
        self.change(|d| {
            if taken.stale {
                d.stale = true;
                return;
            }
            d.added.extend(taken.added);
            d.removed.extend(taken.removed);
        });
    }
}

/// A sealed set: entries sorted by (timestamp, id), no two alike.
pub struct SetSnapshot {
    entries: Vec<Entry>,
    /// The least `end_ms` of its entries: it holds the set at every
    /// horizon whose floor is below this.
    next_end: u64,
    /// The floor it was made at: it holds the set exactly at any floor
    /// from this one on, once the entries ended by then are left out.
    floor: u64,
    /// Positions sorted by id (built on the first look-up by id).
    by_id: OnceLock<Vec<u32>>,
    /// The last digest taken, and the floor it was taken at.
    digest: Mutex<Option<(u64, [u8; 32])>>,
}

impl SetSnapshot {
    fn new(entries: Vec<Entry>, floor: u64) -> SetSnapshot {
        let next_end = entries.iter().map(|e| e.end_ms).min().unwrap_or(u64::MAX);
        SetSnapshot { entries, next_end, floor, by_id: OnceLock::new(), digest: Mutex::default() }
    }

    /// The state digest (as [`super::query::digest`]) at `floor`, from the
    /// entries in memory; `None` when the snapshot was made at a later
    /// floor and so may lack entries still in the set at this one. The
    /// last one is kept: `status` asks every few seconds.
    pub fn digest_at(&self, floor: u64) -> Option<[u8; 32]> {
        if floor < self.floor {
            return None;
        }
        let mut last = self.digest.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, digest)) = *last
            && at == floor
        {
            return Some(digest);
        }
        let digest = digest_of(|| self.entries.iter().filter(|e| e.end_ms > floor));
        *last = Some((floor, digest));
        Some(digest)
    }

    /// Its entries, in order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The (timestamp, id) of each of `ids` the set holds, found by binary
    /// search on an index of positions sorted by id (4 bytes an item,
    /// built once per snapshot): a pull names ids without timestamps.
    pub fn find(&self, ids: &[[u8; 32]]) -> Vec<(u64, [u8; 32])> {
        let by_id = self.by_id.get_or_init(|| {
            let mut order: Vec<u32> =
                (0..self.entries.len()).map(|i| u32::try_from(i).unwrap_or(u32::MAX)).collect();
            order.sort_unstable_by_key(|&i| self.entries[i as usize].id);
            order
        });
        ids.iter()
            .filter_map(|id| {
                let at = by_id.partition_point(|&i| self.entries[i as usize].id < *id);
                let e = self.entries.get(*by_id.get(at)? as usize)?;
                (e.id == *id).then_some(e.key())
            })
            .collect()
    }
}

/// The node's cached sync set (see the module docs).
#[derive(Default)]
pub struct SetCache {
    pub(super) feed: Arc<SetFeed>,
    current: tokio::sync::Mutex<Option<Arc<SetSnapshot>>>,
    /// Whether the set has been read once (at start it is read in the
    /// background: a million items take a second or more).
    filled: AtomicBool,
}

impl Store {
    /// The sync set at `horizon_ms`: the cached snapshot, patched or read
    /// again only when it changed (see [`SetCache`]).
    pub async fn sync_set(
        &self,
        horizon_ms: u64,
        params: &Params,
    ) -> Result<Arc<SetSnapshot>, StoreError> {
        let mut current = self.sync_cache.current.lock().await;
        self.current_set(&mut current, horizon_ms, params).await
    }

    /// [`Store::sync_set`] with the cache's lock held.
    async fn current_set(
        &self,
        current: &mut Option<Arc<SetSnapshot>>,
        horizon_ms: u64,
        params: &Params,
    ) -> Result<Arc<SetSnapshot>, StoreError> {
        let cache = &self.sync_cache;
        cache.feed.on.store(true, Ordering::Release);
        let horizon_ms = horizon_ms - horizon_ms % HORIZON_STEP_MS;
        let floor = set_floor(horizon_ms, params);
        let delta = cache.feed.take();
        let snapshot = match current.take() {
            Some(snap) if !delta.stale => {
                if delta.added.is_empty() && delta.removed.is_empty() && snap.next_end > floor {
                    snap
                } else {
                    let patch = move || patched(snap, delta, floor);
                    tokio::task::spawn_blocking(patch).await.map_err(|_| StoreError::Closed)?
                }
            }
            // Read after the delta was emptied: a commit during the read
            // is in the read, the next delta, or both (merged once). The
            // old snapshot goes first (unless a session holds it), so the
            // set is not held twice during the read.
            old => {
                // Sized for the set at once (a Vec grown by doubling leaves
                // its outgrown buffers behind in the heap).
                let size = old.as_ref().map_or(0, |s| s.entries.len());
                let size = size.max(self.with_index(super::Index::len));
                let again = old.is_some() || cache.filled.load(Ordering::Acquire);
                drop(old);
                if again {
                    // Whatever made the set stale (a join streamed in, a
                    // big import) filled the SQLite caches and left freed
                    // heap behind: both go before the set is read, so the
                    // read does not add its size on top of them.
                    self.shrink_caches().await;
                    crate::memory::release_freed_now().await;
                }
                let began = std::time::Instant::now();
                let snapshot = Arc::new(self.read_set(horizon_ms, *params, size).await?);
                crate::memory::release_freed();
                if again {
                    let (items, ms) = (snapshot.entries.len(), began.elapsed().as_millis() as u64);
                    tracing::info!(items, ms, "sync set read again (too much changed to patch)");
                }
                snapshot
            }
        };
        *current = Some(snapshot.clone());
        cache.filled.store(true, Ordering::Release);
        Ok(snapshot)
    }

    /// [`Store::digest`], or `None` while the set is first being read, so
    /// that `status` answers at once after a start rather than waiting
    /// for the read.
    pub async fn digest_unless_warming(
        &self,
        horizon_ms: u64,
        params: &Params,
    ) -> Option<Result<[u8; 32], StoreError>> {
        if !self.sync_cache.filled.load(Ordering::Acquire) {
            return None;
        }
        Some(self.digest(horizon_ms, params).await)
    }

    /// The state digest at `horizon_ms` (as [`super::query::digest`]):
    /// from the cached set when it holds that horizon, else read from the
    /// store.
    pub async fn digest(&self, horizon_ms: u64, params: &Params) -> Result<[u8; 32], StoreError> {
        let floor = set_floor(horizon_ms, params);
        let mut current = self.sync_cache.current.lock().await;
        if let Some(digest) = self.digest_beside_sessions(&current, floor).await? {
            return Ok(digest);
        }
        let snapshot = self.current_set(&mut current, horizon_ms, params).await?;
        // Taken with the lock held: a patch meanwhile would copy the set
        // this holds rather than change it in place.
        let digest = tokio::task::spawn_blocking(move || snapshot.digest_at(floor));
        let digest = digest.await.map_err(|_| StoreError::Closed)?;
        drop(current);
        if let Some(digest) = digest {
            return Ok(digest);
        }
        let params = *params;
        self.read(move |c, p| super::query::digest(c, p, horizon_ms, &params)).await
    }

    /// The digest of the set a session holds with the changes since merged
    /// in on the fly, when it has changed: patching it would copy the whole
    /// set while the session keeps the old one (two sets in memory for a
    /// `status`). The changes stay in the feed for the next session.
    /// `None` when the cached set can be used or patched in place, or
    /// must be read again.
    async fn digest_beside_sessions(
        &self,
        current: &Option<Arc<SetSnapshot>>,
        floor: u64,
    ) -> Result<Option<[u8; 32]>, StoreError> {
        let Some(snap) = current.as_ref().filter(|s| Arc::strong_count(s) > 1) else {
            return Ok(None);
        };
        if floor < snap.floor {
            return Ok(None);
        }
        let feed = &self.sync_cache.feed;
        let delta = feed.take();
        let unchanged = delta.added.is_empty() && delta.removed.is_empty();
        if delta.stale || (unchanged && snap.next_end > floor) {
            feed.restore(delta);
            return Ok(None);
        }
        let snap = snap.clone();
        let digest = tokio::task::spawn_blocking(move || {
            let (added, keep) = sorted_delta(delta.clone(), floor);
            (digest_of(|| merge(&snap.entries, &added, &keep)), delta)
        });
        let (digest, delta) = digest.await.map_err(|_| StoreError::Closed)?;
        feed.restore(delta);
        Ok(Some(digest))
    }

    async fn read_set(
        &self,
        horizon_ms: u64,
        params: Params,
        size: usize,
    ) -> Result<SetSnapshot, StoreError> {
        let mut entries = self
            .read(move |c, p| {
                let mut entries = Vec::with_capacity(size);
                sync_set::each_sync_entry(c, p, horizon_ms, &params, |item, end_ms| {
                    entries.push(Entry { at: item.at, id: item.id, end_ms });
                })?;
                Ok(entries)
            })
            .await?;
        entries.sort_unstable_by_key(Entry::key);
        entries.dedup_by_key(|e| e.key());
        entries.shrink_to_fit();
        Ok(SetSnapshot::new(entries, set_floor(horizon_ms, &params)))
    }
}

/// `snap` with `delta` applied and the entries expired at `floor` left
/// out: changed in place when no session holds it (no copy of the set),
/// else a patched copy ([`patch`]).
fn patched(mut snap: Arc<SetSnapshot>, delta: Delta, floor: u64) -> Arc<SetSnapshot> {
    match Arc::get_mut(&mut snap) {
        Some(owned) => {
            patch_in_place(owned, delta, floor);
            snap
        }
        None => Arc::new(patch(&snap, delta, floor)),
    }
}

/// The added entries sorted, deduplicated and without those expired or
/// removed; and the test of whether an entry stays.
fn sorted_delta(delta: Delta, floor: u64) -> (Vec<Entry>, impl Fn(&Entry) -> bool) {
    let Delta { mut added, mut removed, .. } = delta;
    removed.sort_unstable();
    let keep = move |e: &Entry| e.end_ms > floor && removed.binary_search(&e.key()).is_err();
    added.sort_unstable_by_key(Entry::key);
    added.dedup_by_key(|e| e.key());
    added.retain(&keep);
    (added, keep)
}

/// [`patch`] without a copy: the entries that stay are kept in place and
/// the added ones merged in from the back (new records sort last, so
/// few entries move).
fn patch_in_place(snap: &mut SetSnapshot, delta: Delta, floor: u64) {
    let (mut added, keep) = sorted_delta(delta, floor);
    let entries = &mut snap.entries;
    entries.retain(&keep);
    added.retain(|e| entries.binary_search_by_key(&e.key(), Entry::key).is_err());
    let (mut old, mut new) = (entries.len(), added.len());
    entries.reserve_exact(new);
    entries.extend_from_slice(&added);
    while new > 0 {
        let at = old + new - 1;
        if old > 0 && entries[old - 1].key() > added[new - 1].key() {
            entries[at] = entries[old - 1];
            old -= 1;
        } else {
            entries[at] = added[new - 1];
            new -= 1;
        }
    }
    let floor = floor.max(snap.floor);
    *snap = SetSnapshot::new(std::mem::take(entries), floor);
}

/// `snap` with `delta` applied and the entries expired at `floor` left out:
/// one merge of two sorted lists into a new one.
fn patch(snap: &SetSnapshot, delta: Delta, floor: u64) -> SetSnapshot {
    let (added, keep) = sorted_delta(delta, floor);
    let mut entries = Vec::with_capacity(snap.entries.len() + added.len());
    entries.extend(merge(&snap.entries, &added, &keep).copied());
    SetSnapshot::new(entries, floor.max(snap.floor))
}

/// The state digest of the entries `entries` yields (called twice: once
/// to count them, once to hash them).
fn digest_of<'a, I: Iterator<Item = &'a Entry>>(entries: impl Fn() -> I) -> [u8; 32] {
    let items = entries().map(|e| (Hlc(e.at), Id(e.id)));
    digest_iter(entries().count() as u64, items)
}

/// The entries of `old` that `keep` keeps merged with `added` (sorted,
/// kept), in order, each key once.
fn merge<'a>(
    old: &'a [Entry],
    added: &'a [Entry],
    keep: &'a impl Fn(&Entry) -> bool,
) -> impl Iterator<Item = &'a Entry> + 'a {
    let mut old = old.iter().filter(move |e| keep(e)).peekable();
    let mut new = added.iter().peekable();
    std::iter::from_fn(move || match (old.peek(), new.peek()) {
        (Some(a), Some(b)) if a.key() == b.key() => {
            new.next();
            old.next()
        }
        (Some(a), Some(b)) if a.key() < b.key() => old.next(),
        (Some(_), Some(_)) | (None, Some(_)) => new.next(),
        (Some(_), None) => old.next(),
        (None, None) => None,
    })
}

#[cfg(test)]
mod tests;
