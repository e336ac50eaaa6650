//! What this host enforces, decided once for every backend: the only module
//! that decides it. From the store's index (what every key decides), the
//! never-ban list, `[safety] enforce` and `apply_jails`, it keeps a
//! [`Target`]: every banned key that applies, split around the allowed and
//! never-ban networks inside it ([`split`]), the allows every backend lifts,
//! what was left out and why, and when it changes next with no new record.
//!
//! Rules, in order, for a key banned now: `apply_jails` must apply it
//! ([`filter`]); an allow covering it wins; a never-ban entry covering it
//! wins; an allowed or never-ban network inside it is a hole, and the rest
//! is split into the largest networks around the holes, at most
//! [`MAX_PIECES`] of them, or the ban is left out; an entry inside another
//! is left out of [`Target::entries`]. Observe only (`enforce = false`)
//! enforces nothing.
//!
//! Backends (Fail2Ban today, nftables next) diff what they hold against the
//! published target; they may leave out more, for facts of their own
//! ([`Target::excluding`] for Fail2Ban's `ignoreip`; networks an action
//! cannot hold), never less.
//!
//! Task: [`Enforcer::start`] builds the first target from the whole index,
//! then [`run`] follows the store's events ([`Store::subscribe`]): only the
//! keys a commit touched are decided again (with the keys an allow among
//! them overlaps), and the time-driven changes at [`Target::next_change_ms`].
//! A revocation, a lagging subscription or a new never-ban list (read again
//! with every change, and every [`NEVER_POLL`]) decides every key again.
//! Snapshots go out on a `watch` of `Arc<Target>`, at most one per [`GAP`],
//! and only when the target changed. It ends when its token fires.

pub mod filter;
pub mod pardon;
mod policy;
pub mod split;
mod target;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use banmesh_crdt::{Key, KeySummary, Record};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use policy::Policy;
pub use split::TooManyPieces;
pub use target::{Banned, Excluded, Target, Why};

use crate::clock::now_ms;
use crate::mesh::MeshHandle;
use crate::store::{Store, StoreError, StoreEvent};

/// The most pieces one banned network may be split into.
pub const MAX_PIECES: usize = 256;
/// The shortest time between two snapshots started by commits.
pub const GAP: Duration = Duration::from_millis(250);
/// How often the never-ban list is read again when nothing else changes.
pub const NEVER_POLL: Duration = Duration::from_secs(10);
/// The wait before trying again when the store cannot be read.
const RETRY: Duration = Duration::from_secs(5);

/// Where the never-ban list comes from.
#[derive(Clone)]
pub enum NeverBan {
    /// The mesh's list from `[safety] never_ban`: with loopback, this
    /// host's addresses and its peers' ([`MeshHandle::never_ban`]).
    Mesh(Box<MeshHandle>, Vec<Key>),
    /// A list that never changes (a node without a mesh; tests).
    Fixed(Arc<[Key]>),
}

impl NeverBan {
    /// The list now.
    async fn read(&self) -> Arc<[Key]> {
        match self {
            NeverBan::Mesh(mesh, configured) => mesh.never_ban(configured).await.into(),
            NeverBan::Fixed(list) => list.clone(),
        }
    }
}

/// The enforce task's inputs.
pub struct Enforcer {
    /// The store: its index and its events.
    pub store: Store,
    /// The never-ban list.
    pub never_ban: NeverBan,
    /// `[safety] enforce`.
    pub enforce: bool,
    /// `[fail2ban] apply_jails`.
    pub apply_jails: Vec<String>,
}

impl Enforcer {
    /// Builds the first target; returns its `watch` and the task keeping it
    /// current (for the daemon's `Tasks`).
    pub async fn start(
        self,
        shutdown: CancellationToken,
    ) -> Result<(watch::Receiver<Arc<Target>>, impl Future<Output = ()> + Send + 'static), StoreError>
    {
        // Subscribed before the first read: nothing committed in between is missed.
        let events = self.store.subscribe();
        let filtered = !self.apply_jails.is_empty();
        let never = self.never_ban.read().await;
        let mut task =
            Task { policy: Policy::new(self.enforce, filtered, never.clone()), inputs: self };
        task.rebuild(never, now_ms()).await?;
        let (target_tx, target_rx) = watch::channel(Arc::new(task.policy.target()));
        Ok((target_rx, run(task, events, target_tx, shutdown)))
    }
}

/// The task's state.
struct Task {
    inputs: Enforcer,
    policy: Policy,
}

impl Task {
    /// Decides every key again, from the whole index.
    async fn rebuild(&mut self, never: Arc<[Key]>, now: u64) -> Result<(), StoreError> {
        let summaries: Vec<(Key, KeySummary)> =
            self.inputs.store.with_index(|index| index.live(now).collect());
        let applied = if self.policy.filtered() {
            let banned: Vec<Key> = summaries
                .iter()
                .filter(|(_, s)| s.banned_at(now).is_some())
                .map(|(k, _)| *k)
                .collect();
            filter::read_applied(&self.inputs.store, &banned, &self.inputs.apply_jails).await?
        } else {
            HashMap::new()
        };
        self.policy = Policy::new(self.inputs.enforce, self.policy.filtered(), never);
        self.policy.rebuild(summaries, applied, now);
        Ok(())
    }

    /// Decides `keys` again (their records changed).
    async fn update(&mut self, keys: Vec<Key>, now: u64) -> Result<(), StoreError> {
        let applied = if self.policy.filtered() {
            filter::read_applied(&self.inputs.store, &keys, &self.inputs.apply_jails).await?
        } else {
            HashMap::new()
        };
        let summaries: Vec<(Key, KeySummary)> = self.inputs.store.with_index(|index| {
            keys.iter().map(|k| (*k, index.get(*k).unwrap_or_default())).collect()
        });
        for (key, summary) in summaries {
            self.policy.set(key, summary, applied.get(&key).copied(), now);
        }
        Ok(())
    }

    /// Brings the policy up to date: the never-ban list, then `full` (every
    /// key) or the `dirty` keys, then the time.
    async fn refresh(&mut self, full: bool, dirty: Vec<Key>) -> Result<(), StoreError> {
        let never = self.inputs.never_ban.read().await;
        let now = now_ms();
        if full {
            return self.rebuild(never, now).await;
        }
        if never != *self.policy.never() {
            self.policy.set_never(never, now);
        }
        if !dirty.is_empty() {
            self.update(dirty, now).await?;
        }
        self.policy.expire(now);
        Ok(())
    }
}

/// Follows the store's events and the clock; publishes each new target.
async fn run(
    mut task: Task,
    mut events: broadcast::Receiver<StoreEvent>,
    target_tx: watch::Sender<Arc<Target>>,
    shutdown: CancellationToken,
) {
    let mut dirty: HashSet<Key> = HashSet::new();
    let mut full = false;
    let mut not_before = Instant::now();
    let mut next_poll = Instant::now() + NEVER_POLL;
    loop {
        let pending = (full || !dirty.is_empty()).then_some(not_before);
        let timed = task.policy.next_change().map(|at| {
            let left = Duration::from_millis(at.saturating_sub(now_ms()) + 1);
            (Instant::now() + left).max(not_before)
        });
        let deadline = [pending, timed].into_iter().flatten().fold(next_poll, Instant::min);
        tokio::select! {
            () = shutdown.cancelled() => break,
            event = events.recv() => match event {
                Ok(StoreEvent::Applied(records)) => dirty.extend(records.iter().map(Record::key)),
                Ok(StoreEvent::Revoked(_)) | Err(RecvError::Lagged(_)) => full = true,
                Err(RecvError::Closed) => break,
            },
            () = tokio::time::sleep_until(deadline) => {
                let keys: Vec<Key> = dirty.drain().collect();
                match task.refresh(full, keys.clone()).await {
                    Ok(()) => {
                        full = false;
                        not_before = Instant::now() + GAP;
                        publish(&target_tx, task.policy.target());
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the store to decide what to enforce; retrying");
                        dirty.extend(keys);
                        not_before = Instant::now() + RETRY;
                    }
                }
                next_poll = Instant::now() + NEVER_POLL;
            }
        }
    }
    tracing::debug!("enforce task stopped");
}

/// Sends `target` if it differs from the last one sent.
fn publish(target_tx: &watch::Sender<Arc<Target>>, target: Target) {
    target_tx.send_if_modified(|last| {
        if **last == target {
            return false;
        }
        *last = Arc::new(target);
        true
    });
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod task_tests;
