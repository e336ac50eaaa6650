//! The store's one writer: owns the write connection and applies batches of
//! verified records in one transaction each, keeping the greatest record per
//! slot, and reports what was new and what each touched key now decides.
//! Also certificates, revocations and the GC sweep.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use banmesh_crdt::slots::merge_into;
use banmesh_crdt::{Key, KeySummary, Kind, Metadata, Origin, Params, Record};
use banmesh_keys::{Certificate, Revocation};
use rusqlite::{Connection, OptionalExtension, params};

use super::clean::{self, Integrity};
use super::rows::{RECORD_COLUMNS, RECORD_FROM, RowError, record_from_row, to_sql};
use super::schema::{classify, open_writer};
use super::{Index, StoreError};

const INSERT_RECORD: &str = "INSERT OR REPLACE INTO records (key, origin, kind, issued_at,
    expires_at, strikes, jail, reason, source, signature, id, end_ms, gc_after, arrived_at,
    arrived_from) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";

/// A row that cannot be read: an SQLite failure, or a damaged file.
fn row_error(path: &Path, e: RowError) -> StoreError {
    match e {
        RowError::Sqlite(e) => classify(path, e),
        RowError::Invalid(e) => {
            StoreError::Damaged { path: path.to_owned(), detail: e.to_string() }
        }
    }
}

/// What one applied batch changed.
#[derive(Debug, Default)]
pub struct Applied {
    /// The records that were new to the store, in batch order: the ones
    /// worth gossiping on.
    pub new: Vec<Record>,
    /// What every key a new record landed on decides now.
    pub summaries: Vec<(Key, KeySummary)>,
    /// The (timestamp, id) of the stored records the new ones replaced in
    /// their slot (they left the store, and the sync set).
    pub replaced: Vec<(u64, [u8; 32])>,
}

/// The write side of the store: one per store file, owned by one task.
pub struct Db {
    conn: Connection,
    path: PathBuf,
    params: Params,
    /// Interned origins: public key to `origins.id`.
    origins: HashMap<Origin, i64>,
    /// Origins whose records no longer count.
    revoked: HashSet<Origin>,
    /// Whether the open checked the file or skipped it (a clean close).
    integrity: Integrity,
}

impl Db {
    /// Opens (creating if needed) the store file at `path`, checking its
    /// integrity unless it was closed cleanly (see `clean`).
    pub fn open(path: &Path, params: Params) -> Result<Db, StoreError> {
        Db::open_with(path, params, false)
    }

    /// [`Db::open`], checking the file's integrity even after a clean close
    /// (`banmesh store check`).
    pub fn open_checked(path: &Path, params: Params) -> Result<Db, StoreError> {
        Db::open_with(path, params, true)
    }

    fn open_with(path: &Path, params: Params, always_check: bool) -> Result<Db, StoreError> {
        let (conn, integrity) = open_writer(path, always_check)?;
        let mut db = Db {
            conn,
            path: path.to_owned(),
            params,
            origins: HashMap::new(),
            revoked: HashSet::new(),
            integrity,
        };
        db.load_origins()?;
        Ok(db)
    }

    /// Whether the open checked the file, or skipped the check after a
    /// clean close.
    pub fn integrity(&self) -> Integrity {
        self.integrity
    }

    fn fail(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |e| classify(&self.path, e)
    }

    fn row_fail(&self) -> impl Fn(RowError) -> StoreError + '_ {
        |e| row_error(&self.path, e)
    }

    fn load_origins(&mut self) -> Result<(), StoreError> {
        let mut origins = HashMap::new();
        let mut stmt = self.conn.prepare("SELECT id, key FROM origins").map_err(self.fail())?;
        let mut rows = stmt.query([]).map_err(self.fail())?;
        while let Some(row) = rows.next().map_err(self.fail())? {
            let key: Vec<u8> = row.get(1).map_err(self.fail())?;
            let origin = Origin(super::rows::blob32(&key).map_err(|e| StoreError::Damaged {
                path: self.path.clone(),
                detail: e.to_string(),
            })?);
            origins.insert(origin, row.get(0).map_err(self.fail())?);
        }
        drop(rows);
        drop(stmt);
        let mut revoked = HashSet::new();
        let mut stmt = self.conn.prepare("SELECT node FROM revocations").map_err(self.fail())?;
        let nodes: Vec<Vec<u8>> = stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(self.fail())?;
        for node in nodes {
            if let Ok(key) = super::rows::blob32(&node) {
                revoked.insert(Origin(key));
            }
        }
        drop(stmt);
        self.origins = origins;
        self.revoked = revoked;
        Ok(())
    }

    /// The path of the store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The write connection, for queries that must see the latest commit.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Applies verified records in one transaction: each is kept iff its slot
    /// is empty or it is greater than the slot's record. Applying the same
    /// batch again changes nothing and reports nothing new. A record GC
    /// would already collect at `now_ms` is left out. On error nothing of the
    /// batch is stored.
    pub fn apply(&mut self, records: Vec<Record>, now_ms: u64) -> Result<Applied, StoreError> {
        self.apply_from(records, now_ms, None)
    }

    /// [`Db::apply`] for records that arrived from peer `from` (kept with
    /// each stored record for `banmesh trace`); `None` means issued here.
    /// Records issued here are durable once this returns: their commit
    /// syncs the WAL (`synchronous=FULL`), for no peer holds them yet and
    /// the node acknowledges them next. Records from peers commit with the
    /// connection's `NORMAL` (a power cut may lose the last of them; the
    /// peers that sent them still hold them, and sync brings them back).
    pub fn apply_from(
        &mut self,
        records: Vec<Record>,
        now_ms: u64,
        from: Option<&str>,
    ) -> Result<Applied, StoreError> {
        let mut interned = Vec::new();
        let durable = from.is_none();
        if durable {
            self.conn.execute_batch("PRAGMA synchronous=FULL").map_err(self.fail())?;
        }
        let result = self.apply_in_transaction(records, now_ms, from, &mut interned);
        if durable && let Err(error) = self.conn.execute_batch("PRAGMA synchronous=NORMAL") {
            // Only slower: every commit stays synced.
            tracing::warn!(%error, "store: cannot go back to synchronous=NORMAL");
        }
        match result {
            Ok(touched) => {
                let changed: HashSet<Key> = touched.1.iter().map(Record::key).collect();
                let summaries = touched
                    .0
                    .into_iter()
                    .filter(|(k, _)| changed.contains(k))
                    .map(|(k, on_key)| (k, self.summary(&on_key)))
                    .collect();
                Ok(Applied { new: touched.1, summaries, replaced: touched.2 })
            }
            Err(e) => {
                // The transaction rolled back: so did the origins it interned.
                for origin in interned {
                    self.origins.remove(&origin);
                }
                Err(e)
            }
        }
    }

    /// The transaction of [`Db::apply`]: returns the records now on every
    /// key the batch touched, the new records, and the (timestamp, id) of
    /// those they replaced.
    #[allow(clippy::type_complexity)]
    fn apply_in_transaction(
        &mut self,
        records: Vec<Record>,
        now_ms: u64,
        from: Option<&str>,
        interned: &mut Vec<Origin>,
    ) -> Result<(HashMap<Key, Vec<Record>>, Vec<Record>, Vec<(u64, [u8; 32])>), StoreError> {
        let Db { conn, path, params, origins, .. } = self;
        let fail = |e| classify(path, e);
        let tx = conn.transaction().map_err(fail)?;
        let mut touched: HashMap<Key, Vec<Record>> = HashMap::new();
        let (mut new, mut replaced) = (Vec::new(), Vec::new());
        {
            let mut select = tx
                .prepare_cached(&format!(
                    "SELECT {RECORD_COLUMNS} FROM {RECORD_FROM} WHERE r.key = ?1"
                ))
                .map_err(fail)?;
            let mut insert = tx.prepare_cached(INSERT_RECORD).map_err(fail)?;
            let mut intern =
                tx.prepare_cached("INSERT INTO origins (key) VALUES (?1)").map_err(fail)?;
            for record in records {
                let s = record.statement();
                if params.collectable_after_ms(s.issued_at.millis(), s.end_ms()) < now_ms {
                    // A late copy of a record GC has (or would have)
                    // collected: it decides nothing any more.
                    continue;
                }
                let key = record.key();
                let key_bytes = key.to_bytes();
                let on_key = match touched.entry(key) {
                    Entry::Occupied(o) => o.into_mut(),
                    Entry::Vacant(v) => {
                        let mut rows = select.query([&key_bytes]).map_err(fail)?;
                        let mut on_key = Vec::new();
                        while let Some(row) = rows.next().map_err(fail)? {
                            on_key.push(record_from_row(row).map_err(|e| row_error(path, e))?);
                        }
                        v.insert(on_key)
                    }
                };
                // Merged into the key's list first: the list is returned
                // only if the whole transaction commits.
                let slot = on_key
                    .iter()
                    .find(|r| r.origin() == record.origin() && r.kind() == record.kind())
                    .map(|r| (r.statement().issued_at.0, r.id().0));
                if !merge_into(on_key, record.clone()) {
                    continue;
                }
                replaced.extend(slot);
                let origin_id = match origins.get(&record.origin()) {
                    Some(id) => *id,
                    None => {
                        intern.execute([&record.origin().0[..]]).map_err(fail)?;
                        let id = tx.last_insert_rowid();
                        origins.insert(record.origin(), id);
                        interned.push(record.origin());
                        id
                    }
                };
                let end_ms = s.end_ms();
                insert
                    .execute(params![
                        key_bytes,
                        origin_id,
                        s.kind as i64,
                        to_sql(s.issued_at.0),
                        s.expires_at.map(to_sql),
                        i64::from(s.strikes),
                        s.meta.jail,
                        s.meta.reason,
                        s.meta.source,
                        &record.signature()[..],
                        &record.id().0[..],
                        to_sql(end_ms),
                        to_sql(params.collectable_after_ms(s.issued_at.millis(), end_ms)),
                        to_sql(now_ms),
                        from,
                    ])
                    .map_err(fail)?;
                new.push(record);
            }
        }
        tx.commit().map_err(fail)?;
        Ok((touched, new, replaced))
    }

    /// Whether `origin` is revoked (its records are out of the sync set).
    pub fn is_revoked(&self, origin: &Origin) -> bool {
        self.revoked.contains(origin)
    }

    /// What `on_key` decides, leaving out revoked origins.
    fn summary(&self, on_key: &[Record]) -> KeySummary {
        KeySummary::of(on_key.iter().filter(|r| !self.revoked.contains(&r.origin())))
    }

    /// Deletes every record the GC rule lets go at `now_ms`; returns how many.
    /// Decisions at `now_ms` and later do not change (see `Params`).
    pub fn gc(&mut self, now_ms: u64) -> Result<usize, StoreError> {
        self.conn
            .execute("DELETE FROM records WHERE gc_after < ?1", [to_sql(now_ms)])
            .map_err(self.fail())
    }

    /// Stores a certificate (already verified against the cluster key).
    /// Returns whether it was new.
    pub fn add_certificate(&mut self, cert: &Certificate) -> Result<bool, StoreError> {
        let body = cert.to_bytes();
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO certificates (id, node, not_before, not_after, body)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    &cert.id()[..],
                    &cert.node().to_bytes()[..],
                    to_sql(cert.not_before_ms()),
                    to_sql(cert.not_after_ms()),
                    body
                ],
            )
            .map_err(self.fail())?;
        Ok(n == 1)
    }

    /// Stores a revocation (already verified against the cluster key); of two
    /// revocations of one node the earlier is kept, as on every node. When it
    /// is new, every key the revoked origin had records on is decided anew:
    /// the returned summaries replace the index's.
    pub fn add_revocation(
        &mut self,
        revocation: &Revocation,
    ) -> Result<Option<Vec<(Key, KeySummary)>>, StoreError> {
        let node = revocation.node().to_bytes();
        let kept: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT body FROM revocations WHERE node = ?1", [&node[..]], |r| r.get(0))
            .optional()
            .map_err(self.fail())?;
        if let Some(body) = kept
            && let Ok(kept) = Revocation::from_bytes(&body)
            && !revocation.precedes(&kept)
        {
            return Ok(None);
        }
        self.conn
            .execute(
                "INSERT OR REPLACE INTO revocations (node, id, issued_at, body) VALUES (?1, ?2, ?3, ?4)",
                params![&node[..], &revocation.id()[..], to_sql(revocation.issued_at_ms()), revocation.to_bytes()],
            )
            .map_err(self.fail())?;
        let origin = Origin(node);
        let first = self.revoked.insert(origin);
        if !first {
            return Ok(Some(Vec::new()));
        }
        let keys = self.keys_of_origin(origin)?;
        let mut summaries = Vec::with_capacity(keys.len());
        for key in keys {
            let on_key = super::query::records_on_keys(&self.conn, &self.path, &[key])?;
            summaries.push((key, self.summary(&on_key)));
        }
        Ok(Some(summaries))
    }

    fn keys_of_origin(&self, origin: Origin) -> Result<Vec<Key>, StoreError> {
        let Some(id) = self.origins.get(&origin) else {
            return Ok(Vec::new());
        };
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT key FROM records WHERE origin = ?1")
            .map_err(self.fail())?;
        let blobs: Vec<Vec<u8>> =
            stmt.query_map([id], |r| r.get(0)).and_then(|r| r.collect()).map_err(self.fail())?;
        blobs
            .iter()
            .map(|b| {
                Key::from_bytes(b).map_err(|e| StoreError::Damaged {
                    path: self.path.clone(),
                    detail: e.to_string(),
                })
            })
            .collect()
    }

    /// Records a standing order (`--for permanent`) of this node.
    pub fn add_order(&mut self, key: Key, kind: Kind, meta: &Metadata) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO orders (key, kind, jail, reason, source) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![key.to_bytes(), kind as i64, meta.jail, meta.reason, meta.source],
            )
            .map_err(self.fail())?;
        Ok(())
    }

    /// Forgets a standing order; returns whether there was one.
    pub fn remove_order(&mut self, key: Key, kind: Kind) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM orders WHERE key = ?1 AND kind = ?2",
                params![key.to_bytes(), kind as i64],
            )
            .map_err(self.fail())?;
        Ok(n > 0)
    }

    /// Builds the in-memory index, leaving out revoked origins and keys
    /// that decide nothing at `now_ms` or later: from the summary columns,
    /// decoding only the keys that hold several records (see `warm`).
    pub fn build_index(&self, now_ms: u64) -> Result<Index, StoreError> {
        let revoked: HashSet<i64> = self
            .origins
            .iter()
            .filter(|(origin, _)| self.revoked.contains(origin))
            .map(|(_, id)| *id)
            .collect();
        super::warm::build_index(&self.conn, &self.path, &revoked, now_ms, |on_key| {
            self.summary(on_key)
        })
    }

    /// [`Db::build_index`] the slow way, decoding every stored record (and
    /// so checking each decodes): `banmesh store check` compares the two.
    pub fn build_index_full(&self, now_ms: u64) -> Result<Index, StoreError> {
        let mut index = Index::default();
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {RECORD_COLUMNS} FROM {RECORD_FROM} ORDER BY r.key"))
            .map_err(self.fail())?;
        let mut rows = stmt.query([]).map_err(self.fail())?;
        let mut on_key: Vec<Record> = Vec::new();
        let flush = |on_key: &mut Vec<Record>, index: &mut Index| {
            if let Some(first) = on_key.first() {
                let summary = self.summary(on_key);
                if !summary.is_spent(now_ms) {
                    index.set(first.key(), summary);
                }
            }
            on_key.clear();
        };
        while let Some(row) = rows.next().map_err(self.fail())? {
            let record = record_from_row(row).map_err(self.row_fail())?;
            if on_key.first().is_some_and(|f| f.key() != record.key()) {
                flush(&mut on_key, &mut index);
            }
            on_key.push(record);
        }
        flush(&mut on_key, &mut index);
        Ok(index)
    }
}

impl Drop for Db {
    /// A normal close marks the file closed cleanly, so the next open may
    /// skip the integrity check; not while a panic unwinds.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        if let Err(e) = clean::mark(&self.conn, crate::clock::now_ms()) {
            let path = self.path.display();
            tracing::warn!(path = %path, error = %e, "store not marked closed cleanly: the next start checks it");
        }
    }
}
