//! The clean-close marker: what lets a start skip the store's integrity
//! check (`PRAGMA quick_check`, which reads the whole file: seconds at a
//! million records).
//!
//! When the [`Db`](super::Db) closes normally it writes a row `clean_close`
//! in the `meta` table and checkpoints the WAL into the file (which leaves
//! the WAL empty). The next open skips the check only when that row is
//! there, no WAL or rollback journal with content lies beside the file, and
//! the file is exactly as long as its header says; it then deletes the row
//! in a transaction synced to disk before anything else is written, so a
//! kill, a crash or a power cut from then on leaves no marker and the open
//! after it checks the whole file. A file cut short or grown while the node
//! was stopped fails the length test and is checked too. A start trusts
//! the index saved at the stop (`saved`) only when this check is skipped.
//!
//! Why an unclean stop checks before the node starts rather than in the
//! background: damage is found before the node enforces from the file or
//! serves its records to peers (who would reject a damaged record as a
//! forgery and block this node), at the cost of a slower start only after
//! a crash, which is rare.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::StoreError;
use super::schema::classify;

/// The `meta` row that marks a clean close; its value is the Unix ms of
/// the close (for people reading the file).
const MARKER: &str = "clean_close";

/// How the open dealt with the integrity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// The file was checked (`PRAGMA quick_check`) and is sound.
    Checked,
    /// The check was skipped: the store was closed cleanly.
    CleanClose,
}

/// Whether the WAL or rollback journal of the store at `path` holds
/// anything: taken before the file is opened (opening it replays them).
pub fn journal_left(path: &Path) -> bool {
    ["-wal", "-journal"].iter().any(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        std::fs::metadata(name).is_ok_and(|m| m.len() > 0)
    })
}

/// Whether `conn` (just opened, no journal left beside it) holds the
/// marker and a file of exactly the length its header gives. Any failure
/// to tell says no: the check then runs and reports it.
pub fn closed_cleanly(conn: &Connection, path: &Path) -> bool {
    let marked = || -> rusqlite::Result<bool> {
        let meta: Option<String> = conn
            .query_row(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name = 'meta'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if meta.is_none() {
            return Ok(false);
        }
        let marker: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE name = ?1", [MARKER], |r| r.get(0))
            .optional()?;
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let len = std::fs::metadata(path).map_or(-1, |m| i64::try_from(m.len()).unwrap_or(-1));
        Ok(marker.is_some() && len == pages.saturating_mul(page_size))
    };
    marked().unwrap_or(false)
}

/// Deletes the marker, if there is one, in a transaction synced to disk
/// (`synchronous=FULL` for that commit) before anything else is written.
pub fn clear(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let fail = |e| classify(path, e);
    let present: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE name = ?1", [MARKER], |r| r.get(0))
        .optional()
        .map_err(fail)?;
    if present.is_none() {
        return Ok(());
    }
    conn.execute_batch("PRAGMA synchronous=FULL").map_err(fail)?;
    let deleted = conn.execute("DELETE FROM meta WHERE name = ?1", [MARKER]).map_err(fail);
    conn.execute_batch("PRAGMA synchronous=NORMAL").map_err(fail)?;
    deleted.map(|_| ())
}

/// Writes the marker and checkpoints the WAL into the file (emptying it),
/// as the last thing before the connection closes.
pub fn mark(conn: &Connection, now_ms: u64) -> rusqlite::Result<()> {
    let at = i64::try_from(now_ms).unwrap_or(i64::MAX);
    conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)", (MARKER, at))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use banmesh_crdt::{Hlc, Kind, Metadata, Origin, Params, Statement};
    use banmesh_keys::{SecretKey, sign_record};

    use super::*;
    use crate::store::{DB_FILE, Db};

    const T0: u64 = 1_800_000_000_000;

    /// A store holding 3,000 bans, left open as a killed process leaves it
    /// (no clean close), with its WAL checkpointed into the file by another
    /// connection so that the file alone holds every page.
    fn killed_store(dir: &Path) -> PathBuf {
        let path = dir.join(DB_FILE);
        let mut db = Db::open(&path, Params::default()).unwrap();
        let signer = SecretKey::generate().unwrap();
        let records = (0..3_000u64)
            .map(|i| {
                let at = T0 + i;
                let statement = Statement {
                    key: format!("10.7.{}.{}", i / 250, i % 250).parse().unwrap(),
                    kind: Kind::Ban,
                    issued_at: Hlc::from_millis(at),
                    expires_at: Some(at + 3_600_000),
                    strikes: 1,
                    meta: Metadata { jail: "sshd".into(), reason: "x".into(), source: "t".into() },
                    origin: Origin::default(),
                };
                sign_record(&signer, statement)
            })
            .collect();
        db.apply(records, T0).unwrap();
        // The process dies: nothing runs at close.
        std::mem::forget(db);
        let other = Connection::open(&path).unwrap();
        other.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        path
    }

    /// Overwrites the middle fifth of the file (b-tree pages of the records
    /// table and its indexes) with junk.
    fn damage(path: &Path) {
        let mut bytes = std::fs::read(path).unwrap();
        let len = bytes.len();
        bytes[len * 2 / 5..len * 3 / 5].fill(0x5a);
        std::fs::write(path, bytes).unwrap();
    }

    fn opened(path: &Path) -> Integrity {
        Db::open(path, Params::default()).unwrap().integrity()
    }

    #[test]
    fn clean_close_skips_the_check_and_any_other_stop_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = killed_store(dir.path());
        assert_eq!(opened(&path), Integrity::Checked, "after a kill");
        // That open closed cleanly (`opened` dropped it): the next skips.
        assert_eq!(opened(&path), Integrity::CleanClose, "after a clean close");
        // An open clears the marker before anything else: killed after it,
        // the next open checks, though the WAL was emptied meanwhile.
        std::mem::forget(Db::open(&path, Params::default()).unwrap());
        let other = Connection::open(&path).unwrap();
        other.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        drop(other);
        assert!(!journal_left(&path));
        assert_eq!(opened(&path), Integrity::Checked, "after a kill that followed a clean open");
        // `banmesh store check` checks whatever the last stop was.
        let checked = Db::open_checked(&path, Params::default()).unwrap();
        assert_eq!(checked.integrity(), Integrity::Checked);
    }

    #[test]
    fn a_store_damaged_after_a_kill_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = killed_store(dir.path());
        damage(&path);
        let damaged = std::fs::read(&path).unwrap();
        let err = Db::open(&path, Params::default()).err().expect("a damaged store opened");
        assert!(matches!(err, StoreError::Damaged { .. }), "{err:?}");
        assert_eq!(std::fs::read(&path).unwrap(), damaged, "the damaged file was changed");
    }

    #[test]
    fn a_store_grown_or_cut_after_a_clean_close_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = killed_store(dir.path());
        assert_eq!(opened(&path), Integrity::Checked);
        let len = std::fs::metadata(&path).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len + 4096).unwrap();
        drop(file);
        assert_eq!(opened(&path), Integrity::Checked, "a page longer than its header says");
        // And the damage an unclean stop may leave is found, though the
        // stop before the damage was clean: `store check` finds it.
        damage(&path);
        let err = Db::open_checked(&path, Params::default()).err().expect("opened");
        assert!(matches!(err, StoreError::Damaged { .. }), "{err:?}");
    }
}
