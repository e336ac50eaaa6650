//! The store: the replicated set kept in one SQLite file (`banmesh.db` in the
//! node's data dir), durable across `kill -9`, and the in-memory index of what
//! every key decides.
//!
//! Tasks and channels: one writer task (in `spawn_blocking`) owns the write
//! connection and takes [`Command`]s on a bounded channel, answering each on a
//! oneshot. Reads run on their own read-only connections from a small pool,
//! also in `spawn_blocking`. The writer updates the shared [`Index`] after
//! each commit, so readers of the index never see uncommitted records.
//! After each commit that changes what some key decides, the writer also
//! sends a [`StoreEvent`] on a broadcast channel ([`Store::subscribe`]), so
//! in-memory views (the gateway's) follow the store without polling it.
//! The writer also owns trust: it keeps the in-memory [`Trust`] (handed out
//! by [`Store::load_trust`]) and changes it only after a certificate or
//! revocation is stored, so memory never knows what the store does not.
//! Shutdown: when the last [`Store`] handle is dropped the channel closes, the
//! writer finishes its current command and closes the file.

mod db;
mod hosts;
mod index;
mod peer_addrs;
pub mod query;
mod rows;
mod schema;
pub mod set_cache;
pub mod sync_set;
mod warm;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use banmesh_crdt::{Origin, Params, Record};
use banmesh_keys::{Certificate, PublicKey, Revocation};
use rusqlite::Connection;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use db::{Applied, Db};
pub use index::Index;
pub use peer_addrs::{KEEP_PER_PEER, PeerAddr};
pub use schema::{SCHEMA_VERSION, classify};

use crate::mesh::Trust;

/// The in-memory trust the writer keeps: read it anywhere, change it only
/// through [`Store::add_certificate`] and [`Store::add_revocation`].
pub type SharedTrust = Arc<RwLock<Trust>>;

/// The store file's name inside the data dir.
pub const DB_FILE: &str = "banmesh.db";

/// How many commands may wait for the writer before senders wait.
const WRITER_QUEUE: usize = 64;

/// How many [`StoreEvent`]s a slow subscriber may fall behind before it is
/// told it lagged (and must reload).
const EVENT_QUEUE: usize = 4096;

/// What a commit changed, for subscribers that keep their own view.
#[derive(Debug, Clone)]
pub enum StoreEvent {
    /// These records, new to the store, are committed.
    Applied(Arc<[Record]>),
    /// This origin is revoked: none of its records counts any more.
    Revoked(Origin),
}

/// Why the store could not do what was asked. Every variant names the file.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The file is not a database, or fails its integrity check.
    #[error(
        "the store {} is damaged ({detail}): stop the node, move the file aside (keep it for \
         diagnosis) and start again; the node refills from its peers",
        path.display()
    )]
    Damaged {
        /// The store file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },
    /// The file was written by a newer banmesh.
    #[error(
        "the store {} has schema version {found}, newer than this build's {known}: upgrade \
         banmesh, or move the file aside to start empty",
        path.display()
    )]
    NewerSchema {
        /// The store file.
        path: PathBuf,
        /// The file's schema version.
        found: u32,
        /// The newest version this build knows.
        known: u32,
    },
    /// The filesystem is full.
    #[error(
        "no space left to write the store {}: free space on its filesystem; records already \
         stored are kept",
        path.display()
    )]
    DiskFull {
        /// The store file.
        path: PathBuf,
    },
    /// The file or its directory cannot be written.
    #[error(
        "cannot write the store {} ({detail}): make the data directory writable by the node's \
         user (is it mounted read-only?)",
        path.display()
    )]
    Unwritable {
        /// The store file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },
    /// Another process holds the file's lock.
    #[error(
        "the store {} is locked by another process: is another banmesh node using this data dir?",
        path.display()
    )]
    Busy {
        /// The store file.
        path: PathBuf,
    },
    /// Any other SQLite failure.
    #[error("store {}: {detail}", path.display())]
    Sqlite {
        /// The store file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },
    /// The writer task has stopped (the node is shutting down).
    #[error("the store's writer has stopped")]
    Closed,
}

/// A request to the writer task.
enum Command {
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

/// A handle on the store: cheap to clone, usable from any task.
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    /// Idle read connections. Declared before `writer_tx` so that when the
    /// last handle drops they close first: the writer's connection is then
    /// the last one open, and SQLite checkpoints and deletes the WAL as it
    /// closes (a read-only connection closing last leaves the WAL behind).
    readers: Arc<Mutex<Vec<Connection>>>,
    writer_tx: mpsc::Sender<Command>,
    index: Arc<RwLock<Index>>,
    /// Counts the commits that changed the index.
    changes: watch::Receiver<u64>,
    events_tx: broadcast::Sender<StoreEvent>,
    /// The last write that failed for want of space or permission, until a
    /// write succeeds again.
    write_failure: Arc<Mutex<Option<WriteFailure>>>,
    /// What GC has collected since the store was opened.
    gc_report: Arc<Mutex<GcReport>>,
    /// The sync set, followed from the writer.
    sync_cache: Arc<set_cache::SetCache>,
}

/// What GC collected: the last run and the total since the store opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Unix ms of the last run that succeeded; `None` before the first.
    pub last_run_ms: Option<u64>,
    /// Records the last run deleted.
    pub last_collected: u64,
    /// Keys the last run dropped from the index (they decide nothing now).
    pub last_keys: u64,
    /// Records deleted since the store was opened.
    pub total_collected: u64,
}

/// A write the store could not make, shown by `status` until one succeeds.
#[derive(Debug, Clone)]
pub struct WriteFailure {
    /// Unix ms of the first failure in a row.
    pub since_ms: u64,
    /// What failed, with what to do.
    pub error: String,
}

impl Store {
    /// Opens the store in `data_dir`, builds the index, and spawns the
    /// writer task. Returns the handle and the writer's join handle.
    pub async fn open(
        data_dir: &Path,
        params: Params,
        now_ms: u64,
    ) -> Result<(Store, JoinHandle<()>), StoreError> {
        let path = data_dir.join(DB_FILE);
        let open_path = path.clone();
        let (db, index) = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let db = Db::open(&open_path, params)?;
            let opened = started.elapsed();
            let index = db.build_index(now_ms)?;
            tracing::info!(
                keys = index.len(),
                heap_bytes = index.heap_bytes(),
                open_ms = opened.as_millis(),
                index_ms = (started.elapsed() - opened).as_millis(),
                "store opened and index built"
            );
            Ok::<_, StoreError>((db, index))
        })
        .await
        .map_err(|_| StoreError::Closed)??;
        let index = Arc::new(RwLock::new(index));
        let (writer_tx, writer_rx) = mpsc::channel(WRITER_QUEUE);
        let (changes_tx, changes) = watch::channel(0);
        let (events_tx, _) = broadcast::channel(EVENT_QUEUE);
        let sync_cache = Arc::new(set_cache::SetCache::default());
        let writer = tokio::task::spawn_blocking({
            let index = index.clone();
            let events_tx = events_tx.clone();
            let feed = sync_cache.feed.clone();
            move || run_writer(db, writer_rx, &index, (&changes_tx, &events_tx, &feed))
        });
        let readers = Arc::new(Mutex::new(Vec::new()));
        let write_failure = Arc::new(Mutex::new(None));
        let gc_report = Arc::new(Mutex::new(GcReport::default()));
        let store = Store {
            path,
            writer_tx,
            index,
            readers,
            changes,
            events_tx,
            write_failure,
            gc_report,
            sync_cache,
        };
        Ok((store, writer))
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A way to end the writer at the stop that does not itself keep the
    /// store open.
    pub fn closer(&self) -> Closer {
        Closer(self.writer_tx.downgrade())
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer_tx.send(make(reply)).await.map_err(|_| StoreError::Closed)?;
        let result = answer.await.map_err(|_| StoreError::Closed)?;
        self.note_write(&result);
        result
    }

    /// Keeps the last failed write while the disk is full or the file
    /// unwritable; any write that succeeds clears it.
    fn note_write<T>(&self, result: &Result<T, StoreError>) {
        let mut failure = self.write_failure.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(_) => *failure = None,
            Err(e @ (StoreError::DiskFull { .. } | StoreError::Unwritable { .. })) => {
                let since_ms = failure.as_ref().map_or_else(crate::clock::now_ms, |f| f.since_ms);
                *failure = Some(WriteFailure { since_ms, error: e.to_string() });
            }
            Err(_) => {}
        }
    }

    /// The write failure in force, if the last writes failed for want of
    /// space or permission.
    pub fn write_failure(&self) -> Option<WriteFailure> {
        self.write_failure.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Applies a batch of verified records issued on this node; returns once
    /// it is committed.
    pub async fn apply(&self, records: Vec<Record>, now_ms: u64) -> Result<Applied, StoreError> {
        self.ask(|reply| Command::Apply { records, now_ms, from: None, reply }).await
    }

    /// Applies a batch of verified records that arrived from peer `from`.
    pub async fn apply_from(
        &self,
        records: Vec<Record>,
        now_ms: u64,
        from: String,
    ) -> Result<Applied, StoreError> {
        self.ask(|reply| Command::Apply { records, now_ms, from: Some(from), reply }).await
    }

    /// Runs the GC rule at `now_ms`: deletes the records it lets go and
    /// drops from the index the keys that decide nothing any more; returns
    /// how many records went, and counts them in [`Store::gc_report`].
    pub async fn gc(&self, now_ms: u64) -> Result<usize, StoreError> {
        let (records, keys) = self.ask(|reply| Command::Gc { now_ms, reply }).await?;
        let mut report = self.gc_report.lock().unwrap_or_else(PoisonError::into_inner);
        let n = |count: usize| u64::try_from(count).unwrap_or(u64::MAX);
        report.last_run_ms = Some(now_ms);
        report.last_collected = n(records);
        report.last_keys = n(keys);
        report.total_collected = report.total_collected.saturating_add(n(records));
        Ok(records)
    }

    /// What GC has collected since the store was opened.
    pub fn gc_report(&self) -> GcReport {
        *self.gc_report.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores a verified certificate; returns whether it was new.
    pub async fn add_certificate(&self, cert: Certificate) -> Result<bool, StoreError> {
        self.ask(|reply| Command::Certificate { cert: Box::new(cert), reply }).await
    }

    /// Stores a verified revocation; the revoked origin's records stop
    /// counting in the index at once. Returns whether it changed anything.
    pub async fn add_revocation(&self, revocation: Revocation) -> Result<bool, StoreError> {
        self.ask(|reply| Command::Revocation { revocation: Box::new(revocation), reply }).await
    }

    /// The trust of cluster `cluster`: every stored certificate and
    /// revocation, kept by the writer from now on (each one stored later is
    /// added to it once stored). Call once, at start.
    pub async fn load_trust(&self, cluster: PublicKey) -> Result<SharedTrust, StoreError> {
        self.ask(|reply| Command::LoadTrust { cluster, reply }).await
    }

    /// Runs a write that does not change what any key decides (standing
    /// orders, bookkeeping) on the writer, in turn with every other write.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Db) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn FnOnce(&mut Db) + Send> = Box::new(move |db| {
            let _ = reply.send(f(db));
        });
        self.writer_tx.send(Command::Run(job)).await.map_err(|_| StoreError::Closed)?;
        let result = answer.await.map_err(|_| StoreError::Closed)?;
        self.note_write(&result);
        result
    }

    /// A round trip through the writer, touching nothing (the watchdog's
    /// proof that the writer turns); unlike [`Store::write`] it neither
    /// notes nor clears a write failure.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn FnOnce(&mut Db) + Send> = Box::new(move |_| {
            let _ = reply.send(());
        });
        self.writer_tx.send(Command::Run(job)).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)
    }

    /// A receiver that is marked changed after every commit that changed
    /// what some key decides (for tasks that follow the index, such as the
    /// Fail2Ban applier).
    pub fn changes(&self) -> watch::Receiver<u64> {
        let mut changes = self.changes.clone();
        changes.mark_unchanged();
        changes
    }

    /// Events for every later commit that changes a decision: subscribe
    /// first, then read the store, and nothing is missed (a record seen in
    /// both is merged twice, which changes nothing).
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events_tx.subscribe()
    }

    /// Runs `f` with the index (shared, read-only). Keep `f` short: the
    /// writer waits for it to update the index.
    pub fn with_index<T>(&self, f: impl FnOnce(&Index) -> T) -> T {
        f(&self.index.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs a read query on a connection of its own, off the async threads.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &Path) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let path = self.path.clone();
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let idle = readers.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let conn = match idle {
                Some(conn) => conn,
                None => schema::open_reader(&path)?,
            };
            let result = f(&conn, &path);
            readers.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
            result
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

/// Where the writer tells what a commit changed: the index's followers,
/// the event subscribers and the sync set.
type Followers<'a> =
    (&'a watch::Sender<u64>, &'a broadcast::Sender<StoreEvent>, &'a set_cache::SetFeed);

/// The writer task's loop: one command at a time until every handle is gone.
fn run_writer(
    mut db: Db,
    mut writer_rx: mpsc::Receiver<Command>,
    index: &RwLock<Index>,
    (changes_tx, events_tx, feed): Followers<'_>,
) {
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
                let keys = index.write().unwrap_or_else(PoisonError::into_inner).sweep(now_ms);
                let _ = reply.send(result.map(|records| (records, keys)));
            }
            Command::Certificate { cert, reply } => {
                let result = db.add_certificate(&cert);
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
            Command::Run(job) => job(&mut db),
            Command::Close => break,
            Command::Revocation { revocation, reply } => {
                let result = db.add_revocation(&revocation);
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
}

/// Ends the store's writer at the stop when a handle outlived the tasks
/// that should have held the last ones. The writer finishes the commands
/// queued before it, then closes the file; later writes through a leftover
/// handle fail with [`StoreError::Closed`].
pub struct Closer(mpsc::WeakSender<Command>);

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

#[cfg(test)]
mod tests;
