//! The view task against a real store: loading, following events,
//! revocations, and wider Allows freeing the bans inside them.

use banmesh_crdt::{Hlc, Kind, Metadata, Statement};
use banmesh_keys::{SecretKey, sign_record};

use super::*;

fn ban(signer: &SecretKey, key: &str, now: u64) -> Record {
    let statement = Statement {
        key: key.parse().unwrap(),
        kind: Kind::Ban,
        issued_at: Hlc::from_millis(now),
        expires_at: Some(now + 3_600_000),
        strikes: 2,
        meta: Metadata { jail: "sshd".into(), reason: String::new(), source: "cli".into() },
        origin: Origin::default(),
    };
    sign_record(signer, statement)
}

fn allow(signer: &SecretKey, key: &str, now: u64, until: u64) -> Record {
    let statement = Statement {
        key: key.parse().unwrap(),
        kind: Kind::Allow,
        issued_at: Hlc::from_millis(now),
        expires_at: Some(until),
        strikes: 0,
        meta: Metadata { jail: String::new(), reason: String::new(), source: "cli".into() },
        origin: Origin::default(),
    };
    sign_record(signer, statement)
}

fn listed(snapshot: &Snapshot, status: Status) -> Vec<String> {
    let body = snapshot.list(status).answer("", &super::super::snapshot::Page::All);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let items = json["items"].as_array().unwrap().iter();
    items.map(|i| format!("{} {}", i["ip_address"], i["status"])).collect()
}

#[tokio::test]
async fn a_wider_allow_frees_the_narrower_bans_inside_it_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let now = 1_000_000_000;
    let (store, _writer) = Store::open(dir.path(), Params::default(), now).await.unwrap();
    let (snapshot_tx, _snapshot_rx) = watch::channel(Arc::new(Snapshot::default()));
    let windows = Windows { allowed_ms: 60_000, known_ms: 120_000 };
    let mut view = View {
        store,
        params: Params::default(),
        keys: keys::Keys::new(windows),
        revoked: HashSet::new(),
        snapshot_tx,
    };
    let signer = SecretKey::generate().unwrap();
    view.insert(&ban(&signer, "198.51.100.7", now));
    view.insert(&ban(&signer, "198.51.101.7", now));
    view.insert(&allow(&signer, "198.51.100.0/24", now + 10, now + 5_000));
    view.rebuild(now + 20);
    let snapshot = view.snapshot_tx.borrow().clone();
    assert_eq!(listed(&snapshot, Status::Blocked), ["\"198.51.101.7\" \"blocked\""]);
    assert_eq!(
        listed(&snapshot, Status::Allowed),
        ["\"198.51.100.0/24\" \"allowed\"", "\"198.51.100.7\" \"allowed\""],
        "the /24's Allow frees .7 (the index would not ban it either)"
    );
    assert_eq!(view.keys.next_step_ms(), now + 5_000, "the Allow's end is a step");
    let bodies = |snapshot: &Snapshot| {
        Status::ALL.map(|status| snapshot.list(status).full(false).as_ptr() as usize)
    };
    let before = bodies(&snapshot);
    view.rebuild(now + 30);
    let after = bodies(&view.snapshot_tx.borrow());
    assert_eq!(before, after, "lists that did not change share their rendered bodies");

    view.rebuild(now + 5_000);
    let snapshot = view.snapshot_tx.borrow().clone();
    assert_eq!(
        listed(&snapshot, Status::Blocked),
        ["\"198.51.100.7\" \"blocked\"", "\"198.51.101.7\" \"blocked\""],
        "blocked again once the Allow ends"
    );
}

fn blocked(view: &ViewHandle) -> Vec<String> {
    let snapshot = view.snapshot();
    let list = snapshot.list(Status::Blocked);
    let body = list.answer("", &super::super::snapshot::Page::All);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    json["items"].as_array().unwrap().iter().map(|i| i["ip_address"].to_string()).collect()
}

#[tokio::test]
async fn the_view_follows_the_store_and_drops_revoked_origins() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let (store, _writer) = Store::open(dir.path(), Params::default(), now).await.unwrap();
    let (good, bad) = (SecretKey::generate().unwrap(), SecretKey::generate().unwrap());
    store.apply(vec![ban(&good, "192.0.2.1", now)], now).await.unwrap();
    let windows = Windows { allowed_ms: 60_000, known_ms: 120_000 };
    let shutdown = CancellationToken::new();
    let (view, task) =
        start(store.clone(), windows, Params::default(), shutdown.clone()).await.unwrap();
    let task = tokio::spawn(task);
    assert_eq!(blocked(&view), ["\"192.0.2.1\""], "loaded at start");

    store.apply(vec![ban(&bad, "192.0.2.2", now), ban(&bad, "192.0.2.1", now)], now).await.unwrap();
    view.flush().await;
    assert_eq!(blocked(&view), ["\"192.0.2.1\"", "\"192.0.2.2\""]);
    let key: Key = "192.0.2.2".parse().unwrap();
    let state = view.lookup(vec![key]).await.unwrap();
    assert_eq!(
        state,
        [Some(KeyState { status: Status::Blocked, explicit_allow: false, block_count: 2 })]
    );

    let cluster = SecretKey::generate().unwrap();
    let revocation = Revocation::issue(&cluster, bad.public(), now, "stolen").unwrap();
    store.add_revocation(revocation).await.unwrap();
    view.flush().await;
    assert_eq!(blocked(&view), ["\"192.0.2.1\""], "the revoked origin's ban is gone");
    store.apply(vec![ban(&bad, "192.0.2.3", now + 1)], now).await.unwrap();
    view.flush().await;
    assert_eq!(blocked(&view), ["\"192.0.2.1\""], "and its later records never count");
    assert_eq!(view.lookup(vec![key]).await.unwrap(), [None]);

    shutdown.cancel();
    task.await.unwrap();
}
