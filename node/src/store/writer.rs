//! The store's writer task: owns the [`Db`], takes one [`Command`] at a
//! time, and after each commit tells the index, the event subscribers and
//! the sync set what changed. It also keeps the trust (see [`Store`]).

use std::sync::{Arc, PoisonError, RwLock};

use banmesh_crdt::{Origin, Record};
use banmesh_keys::{Certificate, PublicKey, Revocation};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::counts::CountsCache;
use super::{Applied, Db, Index, SharedTrust, StoreError, StoreEvent, query, set_cache};
use crate::mesh::Trust;

/// A request to the writer task.
pub(super) enum Command {
    Apply {
        records: Vec<Record>,
        now_ms: u64,
        from: Option<String>,
        reply: oneshot::Sender<Result<Applied, StoreError>>,
    },
    Gc {
        now_ms: u64,
        /// Records deleted and keys dropped from the index.
        reply: oneshot::Sender<Result<(usize, usize), StoreError>>,
    },
    Certificate {
        cert: Box<Certificate>,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    Revocation {
        revocation: Box<Revocation>,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    /// Builds the trust from the stored items and keeps it.
    LoadTrust {
        cluster: PublicKey,
        reply: oneshot::Sender<Result<SharedTrust, StoreError>>,
    },
    /// Any other write that leaves the index alone.
    Run(Box<dyn FnOnce(&mut Db) + Send>),
    /// Ends the writer though handles remain (see [`Closer`]).
    Close,
}

/// Where the writer tells what a commit changed: the index's followers,
/// the event subscribers and the sync set.
pub(super) type Followers<'a> = (
    &'a watch::Sender<u64>,
    &'a broadcast::Sender<StoreEvent>,
    &'a set_cache::SetFeed,
    &'a CountsCache,
);

/// The writer task's loop: one command at a time until every handle is
/// gone; returns the store, still open.
pub(super) fn run_writer(
    mut db: Db,
    mut writer_rx: mpsc::Receiver<Command>,
    index: &RwLock<Index>,
    (changes_tx, events_tx, feed, counts): Followers<'_>,
) -> Db {
    let update = |summaries: &[(banmesh_crdt::Key, banmesh_crdt::KeySummary)]| {
        if summaries.is_empty() {
            return;
        }
        let mut index = index.write().unwrap_or_else(PoisonError::into_inner);
        for (key, summary) in summaries {
            index.set(*key, *summary);
        }
        drop(index);
        changes_tx.send_modify(|n| *n = n.wrapping_add(1));
    };
    let mut trust: Option<SharedTrust> = None;
    let follow = |trust: &Option<SharedTrust>, change: &dyn Fn(&mut Trust)| {
        if let Some(trust) = trust {
            change(&mut trust.write().unwrap_or_else(PoisonError::into_inner));
        }
    };
    while let Some(command) = writer_rx.blocking_recv() {
        match command {
            Command::Apply { records, now_ms, from, reply } => {
                let result = db.apply_from(records, now_ms, from.as_deref());
                counts.wrote();
                if let Ok(applied) = &result {
                    update(&applied.summaries);
                    feed.applied(&applied.new, &applied.replaced, |o| db.is_revoked(o));
                    if !applied.new.is_empty() && events_tx.receiver_count() > 0 {
                        let _ = events_tx.send(StoreEvent::Applied(applied.new.clone().into()));
                    }
                }
                let _ = reply.send(result);
            }
            Command::Gc { now_ms, reply } => {
                let result = db.gc(now_ms);
                if !matches!(result, Ok(0)) {
                    counts.wrote();
                }
                let keys = index.write().unwrap_or_else(PoisonError::into_inner).sweep(now_ms);
                let _ = reply.send(result.map(|records| (records, keys)));
            }
            Command::Certificate { cert, reply } => {
                let result = db.add_certificate(&cert);
                if !matches!(result, Ok(false)) {
                    counts.wrote();
                }
                if matches!(result, Ok(true)) {
                    feed.certificate(&cert);
                }
                if result.is_ok() {
                    follow(&trust, &|t| {
                        let _ = t.add_certificate((*cert).clone());
                    });
                }
                let _ = reply.send(result);
            }
            Command::LoadTrust { cluster, reply } => {
                let loaded = load_trust(&db, cluster).map(|t| Arc::new(RwLock::new(t)));
                trust = loaded.as_ref().ok().cloned();
                let _ = reply.send(loaded);
            }
            Command::Run(job) => {
                // Only a job that changed rows may have changed the counts
                // (a start's own writes need not make its first `status`
                // count a million records again).
                let before = db.conn().total_changes();
                job(&mut db);
                if db.conn().total_changes() != before {
                    counts.wrote();
                }
            }
            Command::Close => break,
            Command::Revocation { revocation, reply } => {
                let result = db.add_revocation(&revocation);
                if !matches!(result, Ok(None)) {
                    counts.wrote();
                }
                if result.is_ok() {
                    follow(&trust, &|t| {
                        let _ = t.add_revocation((*revocation).clone());
                    });
                }
                if let Ok(Some(summaries)) = &result {
                    feed.stale();
                    update(summaries);
                    let origin = Origin(revocation.node().to_bytes());
                    let _ = events_tx.send(StoreEvent::Revoked(origin));
                }
                let _ = reply.send(result.map(|changed| changed.is_some()));
            }
        }
    }
    tracing::debug!(path = %db.path().display(), "store writer stopped");
    db
}

/// Ends the store's writer at the stop when a handle outlived the tasks
/// that should have held the last ones. The writer finishes the commands
/// queued before it, then closes the file; later writes through a leftover
/// handle fail with [`StoreError::Closed`].
pub struct Closer(pub(super) mpsc::WeakSender<Command>);

impl Closer {
    /// Asks the writer to stop; false when it already has (every handle
    /// is gone).
    pub async fn close(&self) -> bool {
        match self.0.upgrade() {
            Some(tx) => tx.send(Command::Close).await.is_ok(),
            None => false,
        }
    }
}

/// The trust of `cluster` from the stored certificates and revocations
/// (items that no longer decode are left out).
fn load_trust(db: &Db, cluster: PublicKey) -> Result<Trust, StoreError> {
    let (certs, revocations) = query::trust_items(db.conn(), db.path())?;
    let mut trust = Trust::new(cluster);
    for cert in certs.iter().filter_map(|b| Certificate::from_bytes(b).ok()) {
        let _ = trust.add_certificate(cert);
    }
    for revocation in revocations.iter().filter_map(|b| Revocation::from_bytes(b).ok()) {
        let _ = trust.add_revocation(revocation);
    }
    Ok(trust)
}

impl super::Store {
    /// Frees the page caches of the write connection and the idle read
    /// connections (`PRAGMA shrink_memory`): after a join the writer's
    /// cache holds up to its 32 MiB of pages it may not need again. Pages
    /// are read back from the file when needed. Unlike [`Store::write`]
    /// this neither notes nor clears a write failure.
    ///
    /// [`Store::write`]: super::Store::write
    pub async fn shrink_caches(&self) {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn FnOnce(&mut Db) + Send> = Box::new(move |db| {
            let _ = reply.send(db.conn().execute_batch("PRAGMA shrink_memory"));
        });
        if self.writer_tx.send(Command::Run(job)).await.is_ok() {
            let _ = answer.await;
        }
        let readers = self.readers.clone();
        let idle = tokio::task::spawn_blocking(move || {
            for conn in readers.lock().unwrap_or_else(PoisonError::into_inner).iter() {
                let _ = conn.execute_batch("PRAGMA shrink_memory");
            }
        });
        let _ = idle.await;
    }
}
