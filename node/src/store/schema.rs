//! The store's SQLite file: opening a connection with banmesh's pragmas,
//! the versioned schema and its migrations, the start-up integrity check
//! (skipped after a clean close, see `clean`), and turning SQLite's errors
//! into ones that say what to do.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::StoreError;
use super::clean::{self, Integrity};

/// The schema version this build writes. Version N is reached by applying
/// `MIGRATIONS[0..N]` in order; a file at a higher version is refused.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Each step moves the schema one version up, inside one transaction.
const MIGRATIONS: [&str; 5] = [
    // 1: records keyed by slot, interned origins, certificates, revocations.
    "CREATE TABLE origins (
        id INTEGER PRIMARY KEY,
        key BLOB NOT NULL UNIQUE
    ) STRICT;
    CREATE TABLE records (
        key BLOB NOT NULL,          -- Key::to_bytes: family, prefix length, network
        origin INTEGER NOT NULL,    -- origins.id
        kind INTEGER NOT NULL,      -- 1 ban, 2 unban, 3 allow, 4 disallow
        issued_at INTEGER NOT NULL, -- HLC: Unix ms << 16 | counter
        expires_at INTEGER,         -- Unix ms, Ban and Allow only
        strikes INTEGER NOT NULL,
        jail TEXT NOT NULL,
        reason TEXT NOT NULL,
        source TEXT NOT NULL,
        signature BLOB NOT NULL,
        id BLOB NOT NULL,           -- SHA-256 of the signed bytes
        end_ms INTEGER NOT NULL,    -- expires_at, or issued_at's ms: the sync horizon
        gc_after INTEGER NOT NULL,  -- Params::collectable_after_ms
        arrived_at INTEGER NOT NULL,
        PRIMARY KEY (key, origin, kind)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX records_items ON records (issued_at, id);
    CREATE INDEX records_origin ON records (origin);
    CREATE INDEX records_gc ON records (gc_after);
    CREATE TABLE certificates (
        id BLOB PRIMARY KEY,
        node BLOB NOT NULL,
        not_before INTEGER NOT NULL,
        not_after INTEGER NOT NULL,
        body BLOB NOT NULL
    ) STRICT;
    CREATE INDEX certificates_node ON certificates (node);
    CREATE TABLE revocations (
        node BLOB PRIMARY KEY,
        id BLOB NOT NULL,
        issued_at INTEGER NOT NULL,
        body BLOB NOT NULL
    ) STRICT;",
    // 2: which peer a record came from (NULL: issued on this node).
    "ALTER TABLE records ADD COLUMN arrived_from TEXT;",
    // 3: this node's standing orders (`--for permanent`), renewed until lifted.
    "CREATE TABLE orders (
        key BLOB NOT NULL,
        kind INTEGER NOT NULL,      -- 1 ban, 3 allow
        jail TEXT NOT NULL,
        reason TEXT NOT NULL,
        source TEXT NOT NULL,
        PRIMARY KEY (key, kind)
    ) STRICT;",
    // 4: where admitted peers' connections came from: never banned while
    // the peer's certificate is valid, connected or not.
    "CREATE TABLE peer_addrs (
        node BLOB NOT NULL,           -- the peer's node key
        addr BLOB NOT NULL,           -- Key::to_bytes of one address
        seen_ms INTEGER NOT NULL,     -- Unix ms of the last hello from there
        valid_until INTEGER NOT NULL, -- its certificate's not_after, Unix ms
        PRIMARY KEY (node, addr)
    ) STRICT, WITHOUT ROWID;",
    // 5: an origin's greatest `issued_at` (the clock's high-water mark at
    // start) by one index seek rather than a read of each of its records;
    // facts about the file itself (the clean-close marker).
    "DROP INDEX records_origin;
    CREATE INDEX records_origin ON records (origin, issued_at);
    CREATE TABLE meta (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;",
];

/// Opens the store file for writing: WAL, `synchronous=NORMAL` (a commit
/// survives the process being killed; only a power cut may lose the last
/// commits, and [`super::Db::apply_from`] syncs those of records issued
/// here), checks the file unless it was closed cleanly (or always, with
/// `always_check`), brings its schema up to date and clears the clean-close
/// marker.
pub fn open_writer(path: &Path, always_check: bool) -> Result<(Connection, Integrity), StoreError> {
    let journal_left = clean::journal_left(path);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| classify(path, e))?;
    let fail = |e| classify(path, e);
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(fail)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(fail)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Sqlite {
            path: path.to_owned(),
            detail: format!("cannot switch to WAL (journal mode is {mode})"),
        });
    }
    conn.execute_batch(
        "PRAGMA synchronous=NORMAL;
         PRAGMA temp_store=MEMORY;
         PRAGMA cache_size=-32768;",
    )
    .map_err(fail)?;
    let integrity = if !always_check && !journal_left && clean::closed_cleanly(&conn, path) {
        Integrity::CleanClose
    } else {
        check_integrity(&conn, path)?;
        Integrity::Checked
    };
    migrate(&conn, path)?;
    clean::clear(&conn, path)?;
    Ok((conn, integrity))
}

/// Opens a read-only connection to a store a writer has opened.
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| classify(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| classify(path, e))?;
    Ok(conn)
}

/// `PRAGMA quick_check`: a damaged or truncated file is refused at start,
/// before anything is written to it.
fn check_integrity(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let mut stmt = conn.prepare("PRAGMA quick_check").map_err(|e| classify(path, e))?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| classify(path, e))?;
    if rows.len() == 1 && rows[0] == "ok" {
        return Ok(());
    }
    Err(StoreError::Damaged { path: path.to_owned(), detail: rows.join("; ") })
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let fail = |e| classify(path, e);
    let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(fail)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (done, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = done + 1;
        let started = std::time::Instant::now();
        conn.execute_batch(&format!("BEGIN; {sql}; PRAGMA user_version={version}; COMMIT;"))
            .map_err(|e| {
                // Leave the file as it was before this step.
                let _ = conn.execute_batch("ROLLBACK");
                classify(path, e)
            })?;
        let ms = started.elapsed().as_millis();
        tracing::info!(path = %path.display(), version, ms, "store schema migrated");
    }
    Ok(())
}

/// Turns an SQLite error on the file at `path` into a [`StoreError`] that
/// names the file and what to do.
pub fn classify(path: &Path, error: rusqlite::Error) -> StoreError {
    let path: PathBuf = path.to_owned();
    match error.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreError::DiskFull { path },
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            StoreError::Damaged { path, detail: error.to_string() }
        }
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            StoreError::Unwritable { path, detail: error.to_string() }
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy { path },
        _ => StoreError::Sqlite { path, detail: error.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DB_FILE, Db, query};
    use banmesh_crdt::{Hlc, Origin, Params};

    /// A version 4 store holding one record is brought to version 5: the
    /// origin index covers `issued_at`, the high-water mark reads the same.
    #[test]
    fn schema_v4_store_migrates_to_v5() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let conn = Connection::open(&path).unwrap();
        for sql in &MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 4;
             INSERT INTO origins (id, key) VALUES (1, zeroblob(32));
             INSERT INTO records VALUES (x'01', 1, 1, 77, 99, 1, 'j', 'r', 's', zeroblob(64),
                zeroblob(32), 99, 199, 5, NULL);",
        )
        .unwrap();
        drop(conn);
        let db = Db::open(&path, Params::default()).unwrap();
        let version: u32 = db.conn().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, 5);
        let columns: Vec<String> = db
            .conn()
            .prepare("SELECT name FROM pragma_index_info('records_origin')")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .unwrap();
        assert_eq!(columns, ["origin", "issued_at"]);
        let high = query::greatest_issued_by(db.conn(), &path, Origin([0; 32])).unwrap();
        assert_eq!(high, Some(Hlc(77)));
    }
}
