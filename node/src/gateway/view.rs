//! The gateway's view task: keeps what the lists need of every key's
//! unrevoked records in memory ([`fact::Fact`]: the greatest per origin and
//! kind, as the store does), follows the store through its
//! [`StoreEvent`]s, and publishes a new [`Snapshot`], patched from the last
//! for the keys that changed, when records change (at most every
//! [`REBUILD_DELAY`]) or when the earliest lifecycle step passes.
//!
//! It also answers `/v1/counts` and `/v1/decisions` from those records
//! ([`native`]), after every committed record, without reading the store.
//!
//! Task and channels: [`run`] owns the records; requests reach it through a
//! [`ViewHandle`] (a bounded `mpsc` of [`ViewMsg`], answered on oneshots) and
//! read snapshots from a `watch`. A lagging subscription reloads everything
//! from the store. Shutdown: the token fires, or the store's events close.

pub mod fact;
mod keys;
mod native;

use std::collections::HashSet;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use banmesh_crdt::{Key, Origin, Params, Record};
use banmesh_keys::Revocation;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::lifecycle::{Status, Windows};
use super::snapshot::Snapshot;
use super::v1::counts::Counts;
use super::v1::decisions::{DecisionPage, Filter};
use crate::clock::now_ms;
use crate::mesh::Trust;
use crate::store::{Store, StoreError, StoreEvent, query};

/// Longest a change from elsewhere (gossip, sync, the CLI) waits before it
/// shows in the lists; a gateway write shows at once (`Flush`). A steady
/// trickle of records costs one rebuild per period.
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
    /// The live decisions counted (`/v1/counts`), after every committed
    /// record.
    Counts {
        /// Judges the records' certificates and names their origins.
        trust: Arc<RwLock<Trust>>,
        /// The answer.
        reply: oneshot::Sender<Counts>,
    },
    /// One page of decisions (`/v1/decisions`), after every committed record.
    Decisions {
        /// Judges the records' certificates and names their origins.
        trust: Arc<RwLock<Trust>>,
        /// The query.
        filter: Box<Filter>,
        /// The answer.
        reply: oneshot::Sender<DecisionPage>,
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

    /// The live decisions counted now; `None` when the view task has stopped.
    pub async fn counts(&self, trust: Arc<RwLock<Trust>>) -> Option<Counts> {
        let (reply, answer) = oneshot::channel();
        self.msg_tx.send(ViewMsg::Counts { trust, reply }).await.ok()?;
        answer.await.ok()
    }

    /// The page of decisions `filter` asks for now; `None` when the view
    /// task has stopped.
    pub async fn decisions(
        &self,
        trust: Arc<RwLock<Trust>>,
        filter: Filter,
    ) -> Option<DecisionPage> {
        let (reply, answer) = oneshot::channel();
        let filter = Box::new(filter);
        self.msg_tx.send(ViewMsg::Decisions { trust, filter, reply }).await.ok()?;
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

/// The view task's state.
struct View {
    store: Store,
    params: Params,
    keys: keys::Keys,
    revoked: HashSet<Origin>,
    snapshot_tx: watch::Sender<Arc<Snapshot>>,
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
        params,
        keys: keys::Keys::new(windows),
        revoked: HashSet::new(),
        snapshot_tx,
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
        if view.keys.changed() {
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
                    ViewMsg::Counts { trust, reply } => {
                        let trust = trust.read().unwrap_or_else(PoisonError::into_inner);
                        let _ = reply.send(native::counts(&view.keys, &trust, now_ms()));
                    }
                    ViewMsg::Decisions { trust, filter, reply } => {
                        let trust = trust.read().unwrap_or_else(PoisonError::into_inner);
                        let _ = reply.send(native::page(&view.keys, &trust, &filter, now_ms()));
                    }
                    ViewMsg::Flush { reply } => {
                        // Flushes queued behind one another share its rebuild.
                        if view.keys.changed() {
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
        for record in &records {
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
                    self.insert(record);
                }
            }
            StoreEvent::Revoked(origin) => {
                self.revoked.insert(origin);
                self.keys.revoke(origin);
            }
        }
    }

    /// Merges one record: kept iff it is greater than its (origin, kind) slot's.
    fn insert(&mut self, record: &Record) {
        if !self.revoked.contains(&record.origin()) {
            let rule_ok = record.statement().validate(&self.params).is_ok();
            self.keys.insert(record, rule_ok);
        }
    }

    fn lookup(&self, keys: &[Key], now: u64) -> Vec<Option<KeyState>> {
        self.keys.lookup(keys, now)
    }

    /// Patches the last snapshot with what changed and publishes it.
    fn rebuild(&mut self, now: u64) {
        let started = std::time::Instant::now();
        let previous = self.snapshot_tx.borrow().clone();
        let snapshot = self.keys.rebuild(&previous, now);
        let listed: [usize; 3] = std::array::from_fn(|i| snapshot.lists[i].len());
        self.snapshot_tx.send_replace(Arc::new(snapshot));
        drop(previous);
        tracing::debug!(
            keys = self.keys.len(),
            ?listed,
            took_us = started.elapsed().as_micros(),
            "gateway view rebuilt"
        );
    }

    /// The timer for the next lifecycle step.
    fn step_deadline(&self) -> Instant {
        let wait = self.keys.next_step_ms().saturating_sub(now_ms()).min(86_400_000);
        Instant::now() + Duration::from_millis(wait)
    }

    /// Drops records the store's GC rule lets go, and keys left empty.
    fn prune(&mut self, now: u64) {
        self.keys.prune(self.params, now);
    }
}

#[cfg(test)]
mod tests;
