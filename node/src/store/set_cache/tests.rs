//! Tests of the cached sync set: it follows the store, patches in place
//! or by copy, and reads the store again when stale.

use banmesh_crdt::{Kind, Metadata, Statement};
use banmesh_keys::roles::{Role, Roles};
use banmesh_keys::{Revocation, SecretKey, sign_record};

use super::*;
use crate::store::query;

const T0: u64 = 1_800_000_000_000;

fn ban(signer: &SecretKey, key: &str, at: u64, ttl_ms: u64) -> Record {
    let statement = Statement {
        key: key.parse().unwrap(),
        kind: Kind::Ban,
        issued_at: Hlc::from_millis(at),
        expires_at: Some(at + ttl_ms),
        strikes: 1,
        meta: Metadata { jail: "sshd".into(), reason: "test".into(), source: "cli".into() },
        origin: Origin::default(),
    };
    sign_record(signer, statement)
}

/// The cached set and the set read from the store at `horizon`, having
/// checked that their digests agree.
async fn both(store: &Store, horizon: u64) -> (Vec<(u64, [u8; 32])>, Vec<(u64, [u8; 32])>) {
    let params = Params::default();
    let snapshot = store.sync_set(horizon, &params).await.unwrap();
    let cached = snapshot.entries().iter().map(Entry::key).collect();
    let items = store.read(move |c, p| query::sync_items(c, p, horizon, &params)).await;
    let mut stored: Vec<_> = items.unwrap().iter().map(|i| (i.at, i.id)).collect();
    stored.sort_unstable();
    let digest = store.digest(horizon, &params).await.unwrap();
    let read = store.read(move |c, p| query::digest(c, p, horizon, &params)).await.unwrap();
    assert_eq!(digest, read, "the cached set's digest at {horizon}");
    (cached, stored)
}

#[tokio::test]
async fn set_cache_follows_writes_replacements_certificates_revocations_and_the_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let params = Params::default();
    let store = Store::open(dir.path(), params, T0).await.unwrap().0;
    let (cluster, a, b) = (
        SecretKey::generate().unwrap(),
        SecretKey::generate().unwrap(),
        SecretKey::generate().unwrap(),
    );
    let long = 60_000 + params.retention_ms + 3_600_000;
    store
        .apply(vec![ban(&a, "10.0.0.1", T0, 60_000), ban(&b, "10.0.0.2", T0, long)], T0)
        .await
        .unwrap();
    let (cached, stored) = both(&store, T0).await;
    assert_eq!((cached.len(), &cached), (2, &stored));
    let first = store.sync_set(T0, &params).await.unwrap();
    assert!(Arc::ptr_eq(&first, &store.sync_set(T0 + 1, &params).await.unwrap()), "shared");
    // A newer record replaces a's in its slot; a certificate joins.
    store.apply(vec![ban(&a, "10.0.0.1", T0 + 1, 60_000)], T0 + 1).await.unwrap();
    let roles: Roles = [Role::Ban].into_iter().collect();
    let cert = Certificate::issue(&cluster, b.public(), "b", roles, T0, T0 + long, None).unwrap();
    assert!(store.add_certificate(cert).await.unwrap());
    let (cached, stored) = both(&store, T0 + 1).await;
    assert_eq!((cached.len(), &cached), (3, &stored));
    assert_eq!(first.entries().len(), 2, "a session's snapshot stays as it was");
    // a's record leaves the set once the horizon passes its end + retention;
    // the cache holds the set at the start of that minute, so it still
    // holds it then, while the digest (exact) leaves it out.
    let within = T0 + 1 + 60_000 + params.retention_ms + 1;
    let (cached, stored) = both(&store, within).await;
    assert_eq!((cached.len(), stored.len()), (3, 2));
    let later = within + HORIZON_STEP_MS;
    let (cached, stored) = both(&store, later).await;
    assert_eq!((cached.len(), &cached), (2, &stored));
    // At an earlier horizon the snapshot lacks a's record: the digest
    // is read from the store.
    let earlier = store.digest(T0 + 1, &params).await.unwrap();
    let read = store.read(move |c, p| query::digest(c, p, T0 + 1, &params)).await.unwrap();
    assert_eq!(earlier, read, "the digest at an earlier horizon than the cache's");
    // b is revoked: its record leaves, the revocation joins.
    let revocation = Revocation::issue(&cluster, b.public(), T0, "gone").unwrap();
    assert!(store.add_revocation(revocation).await.unwrap());
    let (cached, stored) = both(&store, later).await;
    assert_eq!((cached.len(), &cached), (2, &stored));
}

fn entry(at: u64, byte: u8, end_ms: u64) -> Entry {
    Entry { at, id: [byte; 32], end_ms }
}

#[test]
fn set_cache_patch_merges_adds_drops_replaced_and_expired() {
    let snap = SetSnapshot::new(vec![entry(1, 1, 50), entry(2, 2, 500), entry(4, 4, 500)], 0);
    let delta = Delta {
        added: vec![entry(3, 3, 500), entry(2, 2, 500), entry(5, 5, 10), entry(0, 9, 500)],
        removed: vec![(4, [4; 32])],
        stale: false,
    };
    let delta_again =
        Delta { added: delta.added.clone(), removed: delta.removed.clone(), stale: false };
    let patched = patch(&snap, delta, 100);
    let keys: Vec<u64> = patched.entries().iter().map(|e| e.at).collect();
    assert_eq!(keys, [0, 2, 3], "expired (1, 5) and replaced (4) left out, 2 once");
    assert_eq!(patched.next_end, 500);
    assert_eq!(patched.find(&[[3; 32], [4; 32], [9; 32]]), [(3, [3; 32]), (0, [9; 32])]);
    let mut in_place = snap;
    in_place.find(&[[1; 32]]);
    patch_in_place(&mut in_place, delta_again, 100);
    assert_eq!(in_place.entries(), patched.entries(), "the same set, patched in place");
    assert_eq!((in_place.next_end, in_place.floor), (500, 100));
    assert_eq!(in_place.find(&[[3; 32], [1; 32]]), [(3, [3; 32])], "positions found anew");
}

/// Patches of entries interleaved with the snapshot's, at random, give
/// the same set in place as by copy.
#[test]
fn set_cache_patch_in_place_matches_the_copy() {
    let mut rng = crate::test_rng::Rng(7);
    for _ in 0..200 {
        let mut old: Vec<Entry> = (0..rng.below(40))
            .map(|_| entry(rng.below(60), rng.below(250) as u8, 10 + rng.below(200)))
            .collect();
        old.sort_unstable_by_key(Entry::key);
        old.dedup_by_key(|e| e.key());
        let added: Vec<Entry> = (0..rng.below(20))
            .map(|_| entry(rng.below(60), rng.below(250) as u8, 10 + rng.below(200)))
            .collect();
        let removed: Vec<(u64, [u8; 32])> =
            old.iter().filter(|_| rng.below(5) == 0).map(Entry::key).collect();
        let floor = rng.below(100);
        let delta = || Delta { added: added.clone(), removed: removed.clone(), stale: false };
        let copy = patch(&SetSnapshot::new(old.clone(), 0), delta(), floor);
        let mut in_place = SetSnapshot::new(old, 0);
        patch_in_place(&mut in_place, delta(), floor);
        assert_eq!(in_place.entries(), copy.entries());
        assert_eq!(in_place.next_end, copy.next_end);
    }
}

/// The set is not copied when no session holds the snapshot, and not
/// kept once read again.
#[tokio::test]
async fn set_cache_patches_in_place_unless_a_session_holds_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let params = Params::default();
    let store = Store::open(dir.path(), params, T0).await.unwrap().0;
    let a = SecretKey::generate().unwrap();
    store.apply(vec![ban(&a, "10.0.0.1", T0, 60_000)], T0).await.unwrap();
    let held = store.sync_set(T0, &params).await.unwrap();
    store.apply(vec![ban(&a, "10.0.0.2", T0, 60_000)], T0).await.unwrap();
    let second = store.sync_set(T0, &params).await.unwrap();
    assert!(!Arc::ptr_eq(&held, &second), "a held snapshot is copied");
    assert_eq!((held.entries().len(), second.entries().len()), (1, 2));
    drop(held);
    let at = Arc::as_ptr(&second) as usize;
    drop(second);
    store.apply(vec![ban(&a, "10.0.0.3", T0, 60_000)], T0).await.unwrap();
    let third = store.sync_set(T0, &params).await.unwrap();
    assert_eq!(Arc::as_ptr(&third) as usize, at, "patched in place");
    assert_eq!(third.entries().len(), 3);
    let (cached, stored) = both(&store, T0).await;
    assert_eq!(cached, stored);
    let old = Arc::downgrade(&third);
    drop(third);
    store.sync_cache.feed.stale();
    let read = store.sync_set(T0, &params).await.unwrap();
    assert_eq!(read.entries().len(), 3);
    assert!(old.upgrade().is_none(), "the snapshot read again replaces the old one");
}

/// A digest taken while a session holds the set merges the changes since
/// on the fly: no copy of the set is made, the changes stay for the next
/// session, and expiry at the later horizon counts.
#[tokio::test]
async fn set_cache_digest_beside_a_session_copies_nothing_and_keeps_the_changes() {
    let dir = tempfile::tempdir().unwrap();
    let params = Params::default();
    let store = Store::open(dir.path(), params, T0).await.unwrap().0;
    let (a, b) = (SecretKey::generate().unwrap(), SecretKey::generate().unwrap());
    let first = ban(&a, "10.0.0.1", T0, 60_000);
    store.apply(vec![first.clone(), ban(&a, "10.0.0.2", T0, 60_000)], T0).await.unwrap();
    let held = store.sync_set(T0, &params).await.unwrap();
    // A new record, and one replacing a held one in its slot.
    let replacing = ban(&a, "10.0.0.1", T0 + 5, 3_600_000);
    store.apply(vec![ban(&b, "10.0.0.3", T0 + 1, 60_000), replacing], T0 + 5).await.unwrap();
    let stored =
        |horizon: u64| store.read(move |c, p| query::digest(c, p, horizon, &Params::default()));
    for horizon in [T0 + 10, T0 + 60_000 + params.retention_ms + 1] {
        let digest = store.digest(horizon, &params).await.unwrap();
        assert_eq!(digest, stored(horizon).await.unwrap(), "digest at {horizon}");
        let current = store.sync_cache.current.lock().await.clone().unwrap();
        assert!(Arc::ptr_eq(&current, &held), "no copy while the session holds the set");
    }
    assert_eq!(held.entries().len(), 2);
    drop(held);
    let (cached, stored) = both(&store, T0 + 10).await;
    assert_eq!((cached.len(), cached), (3, stored), "the changes were kept for the next read");
    assert!(!cached_has(&store, &first).await, "the replaced record left the set");
}

async fn cached_has(store: &Store, record: &Record) -> bool {
    let snapshot = store.sync_set(T0 + 10, &Params::default()).await.unwrap();
    snapshot.entries().iter().any(|e| e.id == record.id().0)
}
