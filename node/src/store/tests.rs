//! The store's tests: merge and idempotence, the index and the SQL decisions
//! against crdt's `State`, the digest, persistence, revocation, GC, and
//! every bad file the store must refuse at start with a clear error.

use std::net::IpAddr;

use banmesh_crdt::{Decision, Hlc, Key, Kind, Metadata, Origin, Params, Record, State, Statement};
use banmesh_keys::{SecretKey, sign_record};
use rusqlite::Connection;

use super::*;
use crate::test_rng::Rng;

const T0: u64 = 1_800_000_000_000;

const KEYS: [&str; 7] = [
    "10.0.0.1",
    "10.0.0.2",
    "10.0.0.0/24",
    "10.0.0.0/16",
    "2001:db8::1",
    "2001:db8::/48",
    "192.0.2.1",
];
const ADDRS: [&str; 6] =
    ["10.0.0.1", "10.0.0.2", "10.0.0.9", "10.0.9.9", "2001:db8::1", "192.0.2.1"];

fn statement(kind: Kind, key: &str, issued_ms: u64, ttl_ms: u64) -> Statement {
    Statement {
        key: key.parse().unwrap(),
        kind,
        issued_at: Hlc::from_millis(issued_ms),
        expires_at: kind.expires().then_some(issued_ms + ttl_ms),
        strikes: u32::from(kind == Kind::Ban),
        meta: Metadata { jail: "sshd".into(), reason: "test".into(), source: "cli".into() },
        origin: Origin::default(),
    }
}

/// `n` records from three nodes over a few nested keys and minutes.
fn random_records(seed: u64, n: usize, signers: &[SecretKey]) -> Vec<Record> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let kind = Kind::ALL[rng.below(4) as usize];
            let key = KEYS[rng.below(KEYS.len() as u64) as usize];
            let at = T0 + rng.below(600_000);
            let signer = &signers[rng.below(signers.len() as u64) as usize];
            sign_record(signer, statement(kind, key, at, 1 + rng.below(900_000)))
        })
        .collect()
}

fn signers() -> Vec<SecretKey> {
    (0..3).map(|_| SecretKey::generate().unwrap()).collect()
}

fn addrs() -> Vec<IpAddr> {
    ADDRS.iter().map(|a| a.parse().unwrap()).collect()
}

async fn open(dir: &Path) -> Store {
    Store::open(dir, Params::default(), T0).await.unwrap().0
}

#[tokio::test]
async fn store_apply_reports_new_records_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    assert_eq!(store.counts().await.unwrap().records, 0, "an empty store, counted and kept");
    let records = random_records(1, 200, &signers());
    let first = store.apply(records.clone(), T0).await.unwrap();
    assert!(!first.new.is_empty());
    let again = store.apply(records.clone(), T0).await.unwrap();
    assert!(again.new.is_empty(), "a batch applied twice reported {} new", again.new.len());
    assert!(again.summaries.is_empty());
    let mut state = State::new();
    let expected: usize = records.iter().filter(|r| state.insert((*r).clone())).count();
    assert_eq!(first.new.len(), expected, "new records are exactly the state's changes");
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.records as usize, state.len(), "the kept count outlived a write");
    assert_eq!(counts.origins, 3);
}

#[tokio::test]
async fn store_changes_mark_commits_that_change_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let mut changes = store.changes();
    assert!(!changes.has_changed().unwrap(), "nothing committed yet");
    let ban = sign_record(&SecretKey::generate().unwrap(), statement(Kind::Ban, "10.0.0.1", T0, 1));
    store.apply(vec![ban.clone()], T0).await.unwrap();
    assert!(changes.has_changed().unwrap(), "a new ban changed the index");
    changes.mark_unchanged();
    store.apply(vec![ban], T0).await.unwrap();
    assert!(!changes.has_changed().unwrap(), "the same ban again changed nothing");
}

#[tokio::test]
async fn store_keeps_the_greatest_record_per_slot_whatever_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let node = SecretKey::generate().unwrap();
    let old = sign_record(&node, statement(Kind::Ban, "10.0.0.1", T0, 60_000));
    let new = sign_record(&node, statement(Kind::Ban, "10.0.0.1", T0 + 1, 1_000));
    assert_eq!(store.apply(vec![new.clone()], T0).await.unwrap().new, vec![new.clone()]);
    assert!(store.apply(vec![old], T0).await.unwrap().new.is_empty());
    let key: Key = "10.0.0.1".parse().unwrap();
    let on_key = store.read(move |c, p| query::records_on_keys(c, p, &[key])).await.unwrap();
    assert_eq!(on_key, vec![new]);
}

/// Applies `records` in seeded random batches, then checks the index, the
/// SQL decision and a rebuilt index against crdt's `State` everywhere.
#[tokio::test]
async fn store_decisions_match_the_crdt_state() {
    for seed in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let records = random_records(seed, 300, &signers());
        let mut rng = Rng(seed);
        let mut rest = records.as_slice();
        while !rest.is_empty() {
            let n = (1 + rng.below(40) as usize).min(rest.len());
            store.apply(rest[..n].to_vec(), T0).await.unwrap();
            rest = &rest[n..];
        }
        let mut state = State::new();
        records.iter().for_each(|r| {
            state.insert(r.clone());
        });
        drop(store);
        let reopened = open(dir.path()).await;
        for t in (T0..T0 + 1_600_000).step_by(37_000) {
            for a in addrs() {
                let expected = state.decision(a, t);
                assert_eq!(reopened.with_index(|i| i.decision(a, t)), expected, "index {a} at {t}");
                let sql = reopened.read(move |c, p| query::decision(c, p, a, t)).await.unwrap();
                assert_eq!(sql, expected, "sql {a} at {t}");
            }
        }
        let params = Params::default();
        for horizon in [0, T0 + 3_000_000, T0 + params.retention_ms + 1_000_000] {
            let digest =
                reopened.read(move |c, p| query::digest(c, p, horizon, &params)).await.unwrap();
            assert_eq!(digest, state.digest(horizon, &params), "digest at {horizon}");
            let cached = reopened.digest(horizon, &params).await.unwrap();
            assert_eq!(cached, digest, "the cached set's digest at {horizon}");
        }
    }
}

#[tokio::test]
async fn store_index_follows_each_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let node = SecretKey::generate().unwrap();
    let addr: IpAddr = "10.0.0.1".parse().unwrap();
    store
        .apply(vec![sign_record(&node, statement(Kind::Ban, "10.0.0.0/24", T0, 60_000))], T0)
        .await
        .unwrap();
    let banned = store.with_index(|i| i.decision(addr, T0 + 1));
    assert!(matches!(banned, Decision::Banned { until_ms, .. } if until_ms == T0 + 60_000));
    store
        .apply(vec![sign_record(&node, statement(Kind::Allow, "10.0.0.1", T0 + 5, 10_000))], T0)
        .await
        .unwrap();
    assert!(matches!(store.with_index(|i| i.decision(addr, T0 + 6)), Decision::Allowed { .. }));
    let other = SecretKey::generate().unwrap();
    store
        .apply(vec![sign_record(&other, statement(Kind::Unban, "10.0.0.0/24", T0 + 9, 0))], T0)
        .await
        .unwrap();
    assert_eq!(store.with_index(|i| i.decision(addr, T0 + 20_000)), Decision::Free);
}

#[tokio::test]
async fn store_revocation_voids_an_origin_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let cluster = SecretKey::generate().unwrap();
    let (good, bad) = (SecretKey::generate().unwrap(), SecretKey::generate().unwrap());
    store
        .apply(
            vec![
                sign_record(&good, statement(Kind::Ban, "10.0.0.1", T0, 1_000)),
                sign_record(&bad, statement(Kind::Ban, "10.0.0.1", T0, 60_000)),
                sign_record(&bad, statement(Kind::Ban, "10.0.0.2", T0, 60_000)),
            ],
            T0,
        )
        .await
        .unwrap();
    let a1: IpAddr = "10.0.0.1".parse().unwrap();
    let a2: IpAddr = "10.0.0.2".parse().unwrap();
    assert!(
        matches!(store.with_index(|i| i.decision(a1, T0)), Decision::Banned { until_ms, .. } if until_ms == T0 + 60_000)
    );
    let revocation = Revocation::issue(&cluster, bad.public(), T0, "stolen").unwrap();
    assert!(store.add_revocation(revocation.clone()).await.unwrap());
    assert!(!store.add_revocation(revocation).await.unwrap(), "the same revocation twice");
    assert!(
        matches!(store.with_index(|i| i.decision(a1, T0)), Decision::Banned { until_ms, .. } if until_ms == T0 + 1_000)
    );
    assert_eq!(store.with_index(|i| i.decision(a2, T0)), Decision::Free);
    assert_eq!(
        store.read(move |c, p| query::decision(c, p, a2, T0)).await.unwrap(),
        Decision::Free
    );
    // New records from the revoked origin do not count either, and the
    // index rebuilt at start agrees.
    store
        .apply(vec![sign_record(&bad, statement(Kind::Ban, "10.0.0.3", T0 + 1, 60_000))], T0)
        .await
        .unwrap();
    drop(store);
    let reopened = open(dir.path()).await;
    assert_eq!(
        reopened.with_index(|i| i.decision("10.0.0.3".parse().unwrap(), T0 + 2)),
        Decision::Free
    );
    assert_eq!(reopened.with_index(|i| i.decision(a2, T0)), Decision::Free);
}

/// A revoked origin's records leave the sync set: a store that kept them and
/// one that never had them reconcile to nothing and show one digest, and
/// an empty node is never streamed them.
#[tokio::test]
async fn store_sync_set_leaves_out_revoked_origins() {
    let cluster = SecretKey::generate().unwrap();
    let (good, bad) = (SecretKey::generate().unwrap(), SecretKey::generate().unwrap());
    let valid = vec![sign_record(&good, statement(Kind::Ban, "10.0.0.1", T0, 60_000))];
    let void = sign_record(&bad, statement(Kind::Ban, "10.0.0.2", T0 + 1, 60_000));
    let revocation = banmesh_keys::Revocation::issue(&cluster, bad.public(), T0, "gone").unwrap();
    let (kept_dir, clean_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (kept, clean) = (open(kept_dir.path()).await, open(clean_dir.path()).await);
    kept.apply([valid.clone(), vec![void]].concat(), T0).await.unwrap();
    clean.apply(valid.clone(), T0).await.unwrap();
    for store in [&kept, &clean] {
        store.add_revocation(revocation.clone()).await.unwrap();
    }
    let params = Params::default();
    let set = |store: &Store| {
        let store = store.clone();
        async move {
            let items = store.read(move |c, p| query::sync_items(c, p, T0, &params)).await;
            let digest = store.read(move |c, p| query::digest(c, p, T0, &params)).await;
            let page = store
                .read(move |c, p| query::records_after(c, p, T0, &params, None, 100))
                .await
                .unwrap();
            let mut ids: Vec<[u8; 32]> = items.unwrap().iter().map(|i| i.id).collect();
            ids.sort_unstable();
            (ids, digest.unwrap(), page.0)
        }
    };
    let (kept_set, clean_set) = (set(&kept).await, set(&clean).await);
    assert_eq!(kept_set, clean_set);
    assert_eq!(kept_set.2, valid, "only the valid record is streamed");
    assert_eq!(kept.read(query::all_records).await.unwrap().len(), 2, "the void row is kept");
}

#[tokio::test]
async fn store_gc_collects_only_what_can_no_longer_matter() {
    let dir = tempfile::tempdir().unwrap();
    let params = Params::default();
    let store = Store::open(dir.path(), params, T0).await.unwrap().0;
    let records = random_records(7, 300, &signers());
    store.apply(records.clone(), T0).await.unwrap();
    let mut state = State::new();
    records.iter().for_each(|r| {
        state.insert(r.clone());
    });
    // Counted before GC (and kept), then asked again after each write:
    // the kept count must not outlive the write.
    assert_eq!(store.counts().await.unwrap().records as usize, state.len());
    let late = T0 + params.max_ttl_ms + params.retention_ms + params.skew_bound_ms + 300_000;
    let gone = store.gc(late).await.unwrap();
    let collected = state.gc(late, &params);
    assert_eq!(gone, collected.len());
    assert!(gone > 0 && gone < records.len(), "gc took {gone} of {}", records.len());
    let counts = store.counts().await.unwrap();
    assert_eq!(counts, store.read(query::counts).await.unwrap());
    assert_eq!(counts.records as usize, state.len());
    let report = store.gc_report();
    assert_eq!(report.last_run_ms, Some(late));
    assert_eq!((report.last_collected, report.total_collected), (gone as u64, gone as u64));
    // A late copy of a collected record is left out, and reported as nothing new.
    let again = store.apply(collected.clone(), late).await.unwrap();
    assert!(again.new.is_empty() && again.summaries.is_empty());
    let counts = store.read(query::counts).await.unwrap();
    assert_eq!(counts.records as usize, state.len());
    assert_eq!(store.gc(late).await.unwrap(), 0);
    assert_eq!(store.gc_report().total_collected, gone as u64);
}

#[tokio::test]
async fn store_clock_queries_give_high_water_marks() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let node = SecretKey::generate().unwrap();
    let origin = banmesh_keys::origin_of(&node.public());
    assert_eq!(
        store.read(move |c, p| query::greatest_issued_by(c, p, origin)).await.unwrap(),
        None
    );
    store
        .apply(vec![sign_record(&node, statement(Kind::Ban, "10.0.0.1", T0 + 5, 9))], T0)
        .await
        .unwrap();
    store
        .apply(vec![sign_record(&node, statement(Kind::Ban, "10.0.0.2", T0 + 9, 9))], T0)
        .await
        .unwrap();
    let high = store.read(move |c, p| query::greatest_issued_by(c, p, origin)).await.unwrap();
    assert_eq!(high, Some(Hlc::from_millis(T0 + 9)));
    let key: Key = "10.0.0.1".parse().unwrap();
    assert_eq!(
        store.read(move |c, p| query::greatest_on_key(c, p, key)).await.unwrap(),
        Some(Hlc::from_millis(T0 + 5))
    );
    let covering = store
        .read(move |c, p| query::records_covering(c, p, "10.0.0.1".parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(covering.len(), 1);
    let by_origin = store.read(move |c, p| query::records_by_origin(c, p, origin)).await.unwrap();
    assert_eq!(by_origin.len(), 2);
}

fn open_error(dir: &Path) -> StoreError {
    match Db::open(&dir.join(DB_FILE), Params::default()) {
        Ok(_) => panic!("opened a bad store"),
        Err(e) => e,
    }
}

#[test]
fn store_refuses_a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    std::fs::write(&path, vec![0x42; 8192]).unwrap();
    let err = open_error(dir.path());
    assert!(matches!(err, StoreError::Damaged { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains("move the file aside"),
        "{text}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), vec![0x42; 8192], "the bad file was changed");
}

#[test]
fn store_refuses_a_truncated_file_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    {
        let mut db = Db::open(&path, Params::default()).unwrap();
        db.apply(random_records(3, 2_000, &signers()), T0).unwrap();
        db.conn().execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    }
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let err = open_error(dir.path());
    assert!(matches!(err, StoreError::Damaged { .. }), "{err:?}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len / 2);
}

#[test]
fn store_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    drop(Db::open(&path, Params::default()).unwrap());
    Connection::open(&path).unwrap().execute_batch("PRAGMA user_version = 99").unwrap();
    let err = open_error(dir.path());
    assert!(matches!(err, StoreError::NewerSchema { found: 99, .. }), "{err:?}");
    assert!(err.to_string().contains("upgrade banmesh"), "{err}");
}

#[test]
fn store_reports_a_full_disk_and_loses_nothing_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    let mut db = Db::open(&path, Params::default()).unwrap();
    let signers = signers();
    db.apply(random_records(4, 50, &signers), T0).unwrap();
    let kept = query::counts(db.conn(), &path).unwrap().records;
    // SQLite reports a page limit exactly as a full disk (SQLITE_FULL).
    let pages: i64 = db.conn().query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
    db.conn().execute_batch(&format!("PRAGMA max_page_count = {pages}")).unwrap();
    let many: Vec<Record> = (0..5_000u64)
        .map(|i| {
            sign_record(
                &signers[0],
                statement(Kind::Ban, &format!("10.1.{}.{}", i / 250, i % 250), T0 + i, 60_000),
            )
        })
        .collect();
    let err = db.apply(many, T0).unwrap_err();
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err:?}");
    assert!(err.to_string().contains("free space"), "{err}");
    let counts = query::counts(db.conn(), &path).unwrap();
    assert_eq!(counts.records, kept, "the failed batch left no trace and lost nothing");
    // The origins cache was rolled back with the transaction: a new origin
    // still interns once space is back.
    db.conn().execute_batch("PRAGMA max_page_count = 1073741823").unwrap();
    let fresh = SecretKey::generate().unwrap();
    let r = sign_record(&fresh, statement(Kind::Ban, "10.9.9.9", T0, 60_000));
    assert_eq!(db.apply(vec![r], T0).unwrap().new.len(), 1);
}

#[test]
fn store_refuses_a_missing_data_dir_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = open_error(&dir.path().join("no/such/dir"));
    assert!(matches!(err, StoreError::Unwritable { .. }), "{err:?}");
    assert!(err.to_string().contains("no/such/dir/banmesh.db"), "{err}");
}

#[tokio::test]
async fn store_keeps_peers_addresses_while_their_certificate_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let (peer, other) = (SecretKey::generate().unwrap(), SecretKey::generate().unwrap());
    let until = T0 + 60_000;
    let store = open(dir.path()).await;
    // One more address than is kept: the oldest goes.
    for i in 0..=KEEP_PER_PEER as u64 {
        let addr: IpAddr = format!("10.0.0.{i}").parse().unwrap();
        store.note_peer_addr(peer.public(), addr, T0 + i, until).await.unwrap();
    }
    store.note_peer_addr(other.public(), "2001:db8::7".parse().unwrap(), T0, until).await.unwrap();
    let listed = |list: Vec<PeerAddr>, node: &SecretKey| -> Vec<String> {
        list.iter().filter(|p| p.node == node.public()).map(|p| p.addr.to_string()).collect()
    };
    let kept = listed(store.peer_addrs(T0).await.unwrap(), &peer);
    assert_eq!(kept.len(), KEEP_PER_PEER);
    assert!(!kept.contains(&"10.0.0.0".to_owned()), "the oldest address was kept: {kept:?}");
    drop(store);
    // Kept across a restart, gone once the certificate has expired.
    let store = open(dir.path()).await;
    assert_eq!(listed(store.peer_addrs(T0).await.unwrap(), &other), ["2001:db8::7"]);
    assert!(store.peer_addrs(until).await.unwrap().is_empty());
    // A revoked peer's addresses leave the list, and the table.
    let cluster = SecretKey::generate().unwrap();
    let revocation = Revocation::issue(&cluster, other.public(), T0, "stolen").unwrap();
    store.add_revocation(revocation).await.unwrap();
    assert!(listed(store.peer_addrs(T0).await.unwrap(), &other).is_empty());
    assert_eq!(store.prune_peer_addrs(T0).await.unwrap(), 1);
    assert_eq!(store.prune_peer_addrs(until).await.unwrap(), KEEP_PER_PEER);
}

#[tokio::test]
async fn store_closer_ends_the_writer_while_a_handle_is_still_held() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = Store::open(dir.path(), Params::default(), T0).await.unwrap();
    let ban = sign_record(&SecretKey::generate().unwrap(), statement(Kind::Ban, "10.0.0.1", T0, 1));
    store.apply(vec![ban.clone()], T0).await.unwrap();
    let closer = store.closer();
    let leftover = store.clone();
    drop(store);
    assert!(closer.close().await, "the writer was still running");
    let ended = tokio::time::timeout(std::time::Duration::from_secs(60), writer).await;
    assert!(ended.is_ok(), "the writer kept running after the close");
    let after = leftover.apply(vec![ban], T0).await;
    assert!(matches!(after, Err(StoreError::Closed)), "a write after the close: {after:?}");
    drop(leftover);
    assert!(!closer.close().await, "the writer had already stopped");
    let reopened = open(dir.path()).await;
    let counts = reopened.read(query::counts).await.unwrap();
    assert_eq!(counts.records, 1, "the record written before the close was kept");
}
