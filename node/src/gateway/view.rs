//! The gateway's view task: keeps every key's unrevoked records in memory
//! (the greatest per origin and kind, as the store does), follows the store
//! through its [`StoreEvent`]s, and publishes a new [`Snapshot`] when
//! records change (at most every [`REBUILD_DELAY`]) or when the earliest
//! lifecycle step passes.
//!
//! Task and channels: [`run`] owns the records; requests reach it through a
//! [`ViewHandle`] (a bounded `mpsc` of [`ViewMsg`], answered on oneshots) and
//! read snapshots from a `watch`. A lagging subscription reloads everything
//! from the store. Shutdown: the token fires, or the store's events close.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use banmesh_crdt::slots::merge_into;
use banmesh_crdt::{Key, Origin, Params, Record};
use banmesh_keys::Revocation;
use ipnet::IpNet;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::lifecycle::{Status, Windows, derive};
use super::snapshot::{Item, Snapshot};
use crate::clock::now_ms;
use crate::store::{Store, StoreError, StoreEvent, query};

/// Longest a change from elsewhere (gossip, sync, the CLI) waits before it
/// shows in the lists; a gateway write shows at once (`Flush`). A rebuild
/// walks every key, so a steady trickle of records costs one per period.
pub const REBUILD_DELAY: Duration = Duration::from_millis(500);
/// Shortest time between two rebuilds for lifecycle steps alone, so keys
/// expiring a few ms apart cost one rebuild, not one each.
pub const STEP_COALESCE: Duration = Duration::from_secs(1);
/// How often records past the GC rule are dropped from memory.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Where one key stands, for the write endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyState {
    /// Its status.
    pub status: Status,
    /// A live explicit Allow decides it.
    pub explicit_allow: bool,
    /// Its `block_count`.
    pub block_count: u32,
}

/// A request to the view task.
#[derive(Debug)]
pub enum ViewMsg {
    /// Where these keys stand now, after every committed record.
    Lookup {
        /// The keys.
        keys: Vec<Key>,
        /// One answer per key; `None`: not listed.
        reply: oneshot::Sender<Vec<Option<KeyState>>>,
    },
    /// Publish a snapshot holding every committed record now.
    Flush {
        /// Answered once it is published.
        reply: oneshot::Sender<()>,
    },
}

/// How the gateway's handlers reach the view.
#[derive(Debug, Clone)]
pub struct ViewHandle {
    /// The latest snapshot.
    pub snapshot_rx: watch::Receiver<Arc<Snapshot>>,
    /// Requests to the view task.
    pub msg_tx: mpsc::Sender<ViewMsg>,
}

impl ViewHandle {
    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot_rx.borrow().clone()
    }

    /// Where `keys` stand now; `None` when the view task has stopped.
    pub async fn lookup(&self, keys: Vec<Key>) -> Option<Vec<Option<KeyState>>> {
        let (reply, answer) = oneshot::channel();
        self.msg_tx.send(ViewMsg::Lookup { keys, reply }).await.ok()?;
        answer.await.ok()
    }

    /// Waits until the lists show every committed record.
    pub async fn flush(&self) {
        let (reply, answer) = oneshot::channel();
        if self.msg_tx.send(ViewMsg::Flush { reply }).await.is_ok() {
            let _ = answer.await;
        }
    }
}

/// One key: its records, and its item as of the last rebuild.
#[derive(Debug, Default)]
struct Entry {
    records: Vec<Record>,
    listed: Option<(Status, Item)>,
    /// When its live explicit Allow began, if it has one (as of the last
    /// rebuild): it frees every narrower key inside it too.
    allow_since: Option<u64>,
    /// Its item as freed by a wider key's Allow (issued at the `u64`), kept
    /// until it is derived again.
    freed: Option<(u64, Item)>,
    /// When `listed` must be derived again (a lifecycle step), or `u64::MAX`.
    valid_until: u64,
    dirty: bool,
}

/// Which prefix lengths (per family) hold a key with a live explicit Allow.
struct AllowLengths {
    v4: [bool; 33],
    v6: [bool; 129],
}

impl Default for AllowLengths {
    fn default() -> AllowLengths {
        AllowLengths { v4: [false; 33], v6: [false; 129] }
    }
}

impl AllowLengths {
    fn add(&mut self, key: Key) {
        let len = usize::from(key.prefix_len());
        if let Some(slot) = if key.is_v4() { self.v4.get_mut(len) } else { self.v6.get_mut(len) } {
            *slot = true;
        }
    }

    fn any(&self) -> bool {
        self.v4.contains(&true) || self.v6.contains(&true)
    }

    fn of(&self, key: Key) -> &[bool] {
        if key.is_v4() { &self.v4 } else { &self.v6 }
    }
}

/// The view task's state.
struct View {
    store: Store,
    windows: Windows,
    params: Params,
    keys: BTreeMap<Key, Entry>,
    revoked: HashSet<Origin>,
    snapshot_tx: watch::Sender<Arc<Snapshot>>,
    /// The earliest `valid_until`, for the timer.
    next_step_ms: u64,
    /// Records changed since the last rebuild.
    changed: bool,
}

/// Loads the view and starts serving it: returns the handle and the task's
/// future (for the daemon's `JoinSet`).
pub async fn start(
    store: Store,
    windows: Windows,
    params: Params,
    shutdown: CancellationToken,
) -> Result<(ViewHandle, impl Future<Output = ()> + Send + 'static), StoreError> {
    let events_rx = store.subscribe();
    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(Snapshot::default()));
    let mut view = View {
        store,
        windows,
        params,
        keys: BTreeMap::new(),
        revoked: HashSet::new(),
        snapshot_tx,
        next_step_ms: u64::MAX,
        changed: false,
    };
    view.reload().await?;
    view.rebuild(now_ms());
    let (msg_tx, msg_rx) = mpsc::channel(64);
    let handle = ViewHandle { snapshot_rx, msg_tx };
    Ok((handle, run(view, events_rx, msg_rx, shutdown)))
}

/// The view task's loop.
async fn run(
    mut view: View,
    mut events_rx: broadcast::Receiver<StoreEvent>,
    mut msg_rx: mpsc::Receiver<ViewMsg>,
    shutdown: CancellationToken,
) {
    let mut pending: Option<Instant> = None;
    let mut next_prune = Instant::now() + PRUNE_EVERY;
    let mut last_rebuild = Instant::now();
    loop {
        // Whatever changed the records (an event, or events drained before
        // a lookup) shows within REBUILD_DELAY.
        if view.changed {
            pending.get_or_insert_with(|| Instant::now() + REBUILD_DELAY);
        } else {
            pending = None;
        }
        let step = view.step_deadline().max(last_rebuild + STEP_COALESCE);
        let deadline = pending.map_or(step, |p| p.min(step)).min(next_prune);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            event = events_rx.recv() => {
                match event {
                    Ok(event) => view.apply(event),
                    Err(RecvError::Lagged(_)) => view.reload_or_log().await,
                    Err(RecvError::Closed) => break,
                }
            }
            msg = msg_rx.recv() => {
                let Some(msg) = msg else { break };
                view.drain(&mut events_rx).await;
                match msg {
                    ViewMsg::Lookup { keys, reply } => {
                        let _ = reply.send(view.lookup(&keys, now_ms()));
                    }
                    ViewMsg::Flush { reply } => {
                        // Flushes queued behind one another share its rebuild.
                        if view.changed {
                            view.rebuild(now_ms());
                            last_rebuild = Instant::now();
                        }
                        let _ = reply.send(());
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                let now = Instant::now();
                if next_prune <= now {
                    view.prune(now_ms());
                    next_prune = now + PRUNE_EVERY;
                }
                view.rebuild(now_ms());
                last_rebuild = Instant::now();
            }
        }
    }
    tracing::debug!("gateway view stopped");
}

impl View {
    /// Every record and revocation from the store, replacing what is held.
    async fn reload(&mut self) -> Result<(), StoreError> {
        let (_, revocations) = self.store.read(query::trust_items).await?;
        let records = self.store.read(query::all_records).await?;
        self.revoked = revocations
            .iter()
            .filter_map(|body| Revocation::from_bytes(body).ok())
            .map(|r| Origin(r.node().to_bytes()))
            .collect();
        self.keys.clear();
        for record in records {
            self.insert(record);
        }
        Ok(())
    }

    async fn reload_or_log(&mut self) {
        if let Err(error) = self.reload().await {
            tracing::error!(%error, "gateway view: cannot reload from the store");
        }
    }

    /// Applies every event already waiting.
    async fn drain(&mut self, events_rx: &mut broadcast::Receiver<StoreEvent>) {
        loop {
            match events_rx.try_recv() {
                Ok(event) => self.apply(event),
                Err(broadcast::error::TryRecvError::Lagged(_)) => self.reload_or_log().await,
                Err(_) => return,
            }
        }
    }

    fn apply(&mut self, event: StoreEvent) {
        match event {
            StoreEvent::Applied(records) => {
                for record in records.iter() {
                    self.insert(record.clone());
                }
            }
            StoreEvent::Revoked(origin) => {
                self.revoked.insert(origin);
                for entry in self.keys.values_mut() {
                    let before = entry.records.len();
                    entry.records.retain(|r| r.origin() != origin);
                    entry.dirty |= entry.records.len() != before;
                }
                self.changed = true;
            }
        }
    }

    /// Merges one record: kept iff it is greater than its (origin, kind) slot's.
    fn insert(&mut self, record: Record) {
        if self.revoked.contains(&record.origin()) {
            return;
        }
        let entry = self.keys.entry(record.key()).or_default();
        if merge_into(&mut entry.records, record) {
            entry.dirty = true;
            self.changed = true;
        }
    }

    fn lookup(&self, keys: &[Key], now: u64) -> Vec<Option<KeyState>> {
        keys.iter()
            .map(|key| {
                let entry = self.keys.get(key)?;
                let l = derive(&entry.records, now, self.windows)?;
                Some(KeyState {
                    status: l.status,
                    explicit_allow: l.explicit_allow,
                    block_count: l.block_count(),
                })
            })
            .collect()
    }

    /// Derives what changed and publishes a new snapshot.
    fn rebuild(&mut self, now: u64) {
        let started = std::time::Instant::now();
        let mut snapshot = Snapshot { built_at_ms: now, ..Snapshot::default() };
        {
            let previous = self.snapshot_tx.borrow();
            for (list, before) in snapshot.lists.iter_mut().zip(&previous.lists) {
                list.reserve(before.len() + before.len() / 8);
            }
        }
        let allows = self.refresh(now);
        let freed = self.free_covered(&allows, now);
        let mut freed = freed.iter().peekable();
        for (key, entry) in &self.keys {
            let Some((status, item)) = &entry.listed else { continue };
            let cover = if freed.next_if_eq(&key).is_some() { entry.freed.as_ref() } else { None };
            match cover {
                Some((_, item)) => snapshot.lists[Status::Allowed.index()].push(item.clone()),
                None => snapshot.lists[status.index()].push(item.clone()),
            }
        }
        {
            let previous = self.snapshot_tx.borrow();
            for (list, before) in snapshot.lists.iter_mut().zip(&previous.lists) {
                list.inherit(before);
            }
        }
        self.changed = false;
        let listed: [usize; 3] = std::array::from_fn(|i| snapshot.lists[i].len());
        self.snapshot_tx.send_replace(Arc::new(snapshot));
        tracing::debug!(
            keys = self.keys.len(),
            ?listed,
            took_ms = started.elapsed().as_millis(),
            "gateway view rebuilt"
        );
    }

    /// Derives again every key whose records changed or whose lifecycle
    /// stepped, sets the next step, and returns where live Allows are.
    fn refresh(&mut self, now: u64) -> AllowLengths {
        let mut next_step = u64::MAX;
        let mut allows = AllowLengths::default();
        for (key, entry) in &mut self.keys {
            if entry.dirty || entry.valid_until <= now {
                let lifecycle = derive(&entry.records, now, self.windows);
                entry.valid_until =
                    lifecycle.as_ref().and_then(|l| l.next_change_ms).unwrap_or(u64::MAX);
                entry.allow_since = lifecycle
                    .as_ref()
                    .filter(|l| l.explicit_allow)
                    .map(|l| l.allowed_since_ms.unwrap_or(0));
                entry.listed = lifecycle.map(|l| (l.status, Item::new(*key, &l)));
                entry.freed = None;
                entry.dirty = false;
            }
            next_step = next_step.min(entry.valid_until);
            if entry.allow_since.is_some() {
                allows.add(*key);
            }
        }
        self.next_step_ms = next_step;
        allows
    }

    /// The blocked keys a wider key's live Allow frees, in key order, each
    /// with its `freed` item made (or kept from the last rebuild).
    fn free_covered(&mut self, allows: &AllowLengths, now: u64) -> Vec<Key> {
        if !allows.any() {
            return Vec::new();
        }
        let freed: Vec<(Key, u64)> = self
            .keys
            .iter()
            .filter(|(_, entry)| matches!(entry.listed, Some((Status::Blocked, _))))
            .filter_map(|(key, _)| Some((*key, self.freed_since(*key, allows)?)))
            .collect();
        let windows = self.windows;
        for (key, since) in &freed {
            let Some(entry) = self.keys.get_mut(key) else { continue };
            if entry.freed.as_ref().is_none_or(|(was, _)| was != since) {
                let item = freed_item(*key, &entry.records, *since, now, windows);
                entry.freed = item.map(|item| (*since, item));
            }
        }
        freed.into_iter().map(|(key, _)| key).collect()
    }

    /// When the live Allow on a wider key covering `key` began, if one does
    /// (DESIGN: an address is allowed iff some key covering it is allowed).
    /// Probes only the prefix lengths some live Allow has.
    fn freed_since(&self, key: Key, allows: &AllowLengths) -> Option<u64> {
        let lengths = allows.of(key);
        let addr = key.net().network();
        (0..key.prefix_len())
            .filter(|len| lengths.get(usize::from(*len)).copied().unwrap_or(false))
            .filter_map(|len| IpNet::new(addr, len).ok())
            .filter_map(|net| self.keys.get(&Key::from_net(net))?.allow_since)
            .max()
    }

    /// The timer for the next lifecycle step.
    fn step_deadline(&self) -> Instant {
        let wait = self.next_step_ms.saturating_sub(now_ms()).min(86_400_000);
        Instant::now() + Duration::from_millis(wait)
    }

    /// Drops records the store's GC rule lets go, and keys left empty.
    fn prune(&mut self, now: u64) {
        let params = self.params;
        self.keys.retain(|_, entry| {
            let before = entry.records.len();
            entry.records.retain(|r| {
                let s = r.statement();
                params.collectable_after_ms(s.issued_at.millis(), s.end_ms()) >= now
            });
            entry.dirty |= entry.records.len() != before;
            !entry.records.is_empty()
        });
    }
}

/// `key`'s item as an explicit allow, for a blocked key a wider Allow
/// (issued at `since`) frees. That Allow's end is the covering key's own
/// lifecycle step, so the rebuild then lists this key blocked again.
fn freed_item(
    key: Key,
    records: &[Record],
    since: u64,
    now: u64,
    windows: Windows,
) -> Option<Item> {
    let mut lifecycle = derive(records, now, windows)?;
    lifecycle.status = Status::Allowed;
    lifecycle.explicit_allow = true;
    lifecycle.allowed_since_ms = Some(since);
    Some(Item::new(key, &lifecycle))
}

#[cfg(test)]
mod tests;
