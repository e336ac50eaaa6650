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

mod clean;
mod counts;
mod db;
mod error;
mod hosts;
mod index;
mod peer_addrs;
pub mod query;
mod rows;
mod saved;
mod schema;
pub mod set_cache;
pub mod sync_set;
mod warm;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use banmesh_crdt::{Origin, Params, Record};
use banmesh_keys::{Certificate, PublicKey, Revocation};
use rusqlite::Connection;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use clean::Integrity;
use counts::CountsCache;
pub use db::{Applied, Db};
pub use error::StoreError;
pub use index::Index;
pub use peer_addrs::{KEEP_PER_PEER, PeerAddr};
pub use schema::{SCHEMA_VERSION, classify};
pub use writer::Closer;
use writer::{Command, run_writer};

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
    /// The last counts, kept until the next write.
    counts_cache: Arc<CountsCache>,
    /// Whether the index was the one saved at the last stop (else built).
    index_loaded: bool,
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
        let warm = tokio::task::spawn_blocking(move || open_and_warm(&open_path, params, now_ms));
        let Warm { db, index, counts, loaded: index_loaded } =
            warm.await.map_err(|_| StoreError::Closed)??;
        let index = Arc::new(RwLock::new(index));
        let (writer_tx, writer_rx) = mpsc::channel(WRITER_QUEUE);
        let (changes_tx, changes) = watch::channel(0);
        let (events_tx, _) = broadcast::channel(EVENT_QUEUE);
        let sync_cache = Arc::new(set_cache::SetCache::default());
        let counts_cache = Arc::new(CountsCache::default());
        if let Some(counts) = counts {
            counts_cache.seed(&counts);
        }
        let writer = tokio::task::spawn_blocking({
            let index = index.clone();
            let events_tx = events_tx.clone();
            let feed = sync_cache.feed.clone();
            let counts = counts_cache.clone();
            move || {
                let db =
                    run_writer(db, writer_rx, &index, (&changes_tx, &events_tx, &feed, &counts));
                // Not reached when the writer panicked: nothing is saved.
                close_saving(db, &index.read().unwrap_or_else(PoisonError::into_inner), &counts);
            }
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
            counts_cache,
            index_loaded,
        };
        Ok((store, writer))
    }

    /// Whether the index was the one saved at the last stop rather than
    /// built from the records.
    pub fn index_loaded(&self) -> bool {
        self.index_loaded
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

/// Closes the store (cleanly: the marker, the WAL checkpointed) and saves
/// the index and the counts (counted now if no count is current: a scan,
/// about 0.3 s at a million records) for the next start to load.
fn close_saving(db: Db, index: &Index, counts: &CountsCache) {
    let counts = counts.current().or_else(|| query::counts(db.conn(), db.path()).ok());
    let path = db.path().to_owned();
    drop(db);
    if let Err(error) = saved::save(&path, index, counts.as_ref()) {
        tracing::warn!(path = %path.display(), %error, "index not saved: the next start builds it");
    }
}

/// The store as opened, with its index (and counts, when saved).
struct Warm {
    db: Db,
    index: Index,
    counts: Option<query::Counts>,
    /// Whether the index (and counts) were the saved ones.
    loaded: bool,
}

/// Opens the store file at `path` and gets its index: the one saved at the
/// last stop when it can be trusted (see `saved`), else built from the
/// records. Logs how long each step took.
fn open_and_warm(path: &Path, params: Params, now_ms: u64) -> Result<Warm, StoreError> {
    let started = std::time::Instant::now();
    let saved = saved::take(path);
    let taken = started.elapsed();
    let db = Db::open(path, params)?;
    let opened = started.elapsed() - taken;
    let clean = db.integrity() == Integrity::CleanClose;
    let (index, counts, how, loaded) = match saved.index(clean, now_ms) {
        Ok((index, counts)) => (index, counts, "loaded (saved at the last stop)".to_owned(), true),
        Err(why) => (db.build_index(now_ms)?, None, format!("built ({why})"), false),
    };
    let integrity = if clean { "skipped (closed cleanly)" } else { "checked" };
    tracing::info!(
        keys = index.len(),
        heap_bytes = index.heap_bytes(),
        integrity,
        index = how,
        open_ms = opened.as_millis(),
        index_ms = (started.elapsed() - opened).as_millis(),
        "store opened and index built"
    );
    Ok(Warm { db, index, counts, loaded })
}

#[cfg(test)]
mod tests;
