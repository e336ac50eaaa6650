//! Tests of the saved index: loaded after a clean stop and equal to a
//! build; never trusted after a kill, an edit of the stopped store, a
//! copy beside another store, or damage.

use banmesh_crdt::{Hlc, Kind, Metadata, Origin, Params, Record, Statement};
use banmesh_keys::{Revocation, SecretKey, sign_record};
use rusqlite::Connection;

use super::*;
use crate::store::{DB_FILE, Db, Store};
use crate::test_rng::Rng;

const T0: u64 = 1_800_000_000_000;

/// Random records over many hosts, some networks, IPv6 and Allows, from
/// three signers; some keys hold several records.
fn records(seed: u64, n: usize, signers: &[SecretKey]) -> Vec<Record> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let kind = *rng.pick(&Kind::ALL);
            let key = match rng.below(6) {
                0 => format!("10.1.{}.0/24", rng.below(4)),
                1 => format!("2001:db8::{:x}", rng.below(500)),
                2 => format!("10.3.0.{}", rng.below(8)),
                _ => format!("10.2.{}.{}", rng.below(8), rng.below(256)),
            };
            let at = T0 + rng.below(600_000);
            let statement = Statement {
                key: key.parse().unwrap(),
                kind,
                issued_at: Hlc::from_millis(at),
                expires_at: kind.expires().then(|| at + 1 + rng.below(900_000)),
                strikes: u32::from(kind == Kind::Ban) * (1 + rng.below(5) as u32),
                meta: Metadata::default(),
                origin: Origin::default(),
            };
            sign_record(rng.pick(signers), statement)
        })
        .collect()
}

/// A store of random records, one signer revoked, closed cleanly with its
/// index saved as the writer saves it; returns the store file and how many
/// keys the index held.
fn saved_store(dir: &Path) -> (PathBuf, usize) {
    let path = dir.join(DB_FILE);
    let mut db = Db::open(&path, Params::default()).unwrap();
    let signers: Vec<SecretKey> = (0..3).map(|_| SecretKey::generate().unwrap()).collect();
    db.apply(records(1, 3_000, &signers), T0).unwrap();
    let cluster = SecretKey::generate().unwrap();
    db.add_revocation(&Revocation::issue(&cluster, signers[2].public(), T0, "gone").unwrap())
        .unwrap();
    let index = db.build_index(T0).unwrap();
    assert!(index.len() > 300, "{} keys", index.len());
    drop(db);
    save(&path, &index, None).unwrap();
    (path, index.len())
}

/// Opens the store as a start does: what the saved index gave, and the
/// index a build gives now.
fn reopen(path: &Path, now_ms: u64) -> (Result<Index, Untrusted>, Index) {
    let saved = take(path);
    assert!(!index_path(path).exists(), "a saved index is used once at most");
    let db = Db::open(path, Params::default()).unwrap();
    let clean = db.integrity() == super::super::Integrity::CleanClose;
    (saved.index(clean, now_ms).map(|(index, _)| index), db.build_index_full(now_ms).unwrap())
}

#[test]
fn a_clean_stop_saves_an_index_equal_to_a_build() {
    let dir = tempfile::tempdir().unwrap();
    let (path, saved) = saved_store(dir.path());
    let bytes = std::fs::read(index_path(&path)).unwrap();
    // Keys spent by the next start are left out as a build leaves them out.
    let later = T0 + 700_000;
    let (loaded, built) = reopen(&path, later);
    let loaded = loaded.unwrap();
    assert!(loaded.same_as(&built), "{} keys loaded, {} built", loaded.len(), built.len());
    assert!(!loaded.is_empty() && loaded.len() < saved, "{} of {saved}", loaded.len());
    // The same bytes beside the same file, once it is closed cleanly again,
    // no longer match: the open changed the file.
    std::fs::write(index_path(&path), &bytes).unwrap();
    assert_eq!(reopen(&path, later).0.err(), Some(Untrusted::Changed));
    assert_eq!(reopen(&path, later).0.err(), Some(Untrusted::Missing));
}

#[test]
fn a_saved_index_is_not_trusted_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = saved_store(dir.path());
    let bytes = std::fs::read(index_path(&path)).unwrap();
    // A start that loads it, writes a record, and is killed.
    let _ = take(&path);
    let mut db = Db::open(&path, Params::default()).unwrap();
    let signer = SecretKey::generate().unwrap();
    db.apply(records(9, 1, &[signer]), T0).unwrap();
    std::mem::forget(db);
    let other = Connection::open(&path).unwrap();
    other.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    drop(other);
    // Even a saved index left behind is not trusted: no clean close.
    std::fs::write(index_path(&path), &bytes).unwrap();
    let (loaded, _) = reopen(&path, T0);
    assert_eq!(loaded.err(), Some(Untrusted::NotClean));
}

#[test]
fn a_store_edited_while_stopped_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = saved_store(dir.path());
    let len = std::fs::metadata(&path).unwrap().len();
    // As the catchup bench edits a stopped node: SQL through SQLite, which
    // leaves the clean-close marker, no WAL, and (deleting) the same length.
    let edit = Connection::open(&path).unwrap();
    let deleted = edit
        .execute("DELETE FROM records WHERE key IN (SELECT key FROM records LIMIT 50)", [])
        .unwrap();
    assert!(deleted >= 50);
    drop(edit);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len, "the edit changed the length");
    let (loaded, built) = reopen(&path, T0);
    assert_eq!(loaded.err(), Some(Untrusted::Changed));
    assert!(built.len() > 300);
}

#[test]
fn a_damaged_or_foreign_saved_index_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = saved_store(dir.path());
    let file = index_path(&path);
    let bytes = std::fs::read(&file).unwrap();
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 1;
    let cases: [(&str, Vec<u8>); 3] =
        [("flipped", flipped), ("cut", bytes[..bytes.len() - 100].to_vec()), ("empty", Vec::new())];
    for (what, damaged) in cases {
        std::fs::write(&file, damaged).unwrap();
        let saved = take(&path);
        assert!(matches!(saved.index(true, T0), Err(Untrusted::Damaged(_))), "{what}");
    }
    // Beside a copy of the store (another inode and time): not trusted.
    let other = tempfile::tempdir().unwrap();
    let copy = other.path().join(DB_FILE);
    std::fs::copy(&path, &copy).unwrap();
    std::fs::write(index_path(&copy), &bytes).unwrap();
    let (loaded, _) = reopen(&copy, T0);
    assert_eq!(loaded.err(), Some(Untrusted::Changed));
}

/// The whole path through the store: the writer saves the index and the
/// counts when the last handle goes, the next open loads them, and they
/// answer as a build and a count do; after writes, a stop and a start,
/// still the same. A start after a kill builds the index.
#[tokio::test]
async fn the_store_saves_at_its_stop_and_loads_at_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    let signers: Vec<SecretKey> = (0..2).map(|_| SecretKey::generate().unwrap()).collect();
    for round in 0..4u64 {
        let (store, writer) = Store::open(dir.path(), Params::default(), T0).await.unwrap();
        assert!(!index_path(&path).exists(), "round {round}: the saved index was not taken");
        // Round 0 starts empty and round 3 after a kill: built; else loaded.
        assert_eq!(store.index_loaded(), round == 1 || round == 2, "round {round}");
        let built = store.write(move |db| db.build_index_full(T0)).await.unwrap();
        assert!(store.with_index(|index| index.same_as(&built)), "round {round}");
        let counted = store.read(super::super::query::counts).await.unwrap();
        assert_eq!(store.counts().await.unwrap(), counted, "round {round}");
        store.apply(records(round, 500, &signers), T0).await.unwrap();
        let counted = store.read(super::super::query::counts).await.unwrap();
        assert_eq!(store.counts().await.unwrap(), counted, "round {round}, after a write");
        drop(store);
        writer.await.unwrap();
        assert!(index_path(&path).exists(), "round {round}: no index saved at the stop");
        if round == 2 {
            // A start that writes a record and is killed: the index saved
            // before it is left beside the file, untrusted.
            let bytes = std::fs::read(index_path(&path)).unwrap();
            let mut db = Db::open(&path, Params::default()).unwrap();
            db.apply(records(99, 1, &signers), T0).unwrap();
            std::mem::forget(db);
            let other = Connection::open(&path).unwrap();
            other.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
            std::fs::write(index_path(&path), bytes).unwrap();
        }
    }
}

#[test]
fn the_counts_are_saved_with_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = saved_store(dir.path());
    let conn = Connection::open(&path).unwrap();
    let counts = super::super::query::counts(&conn, &path).unwrap();
    drop(conn);
    let db = Db::open(&path, Params::default()).unwrap();
    let index = db.build_index(T0).unwrap();
    drop(db);
    save(&path, &index, Some(&counts)).unwrap();
    let saved = take(&path);
    let db = Db::open(&path, Params::default()).unwrap();
    let (loaded, loaded_counts) = saved.index(true, T0).unwrap();
    assert!(loaded.same_as(&db.build_index(T0).unwrap()));
    assert_eq!(loaded_counts, Some(counts));
}
