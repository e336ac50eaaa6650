//! The enforce task against a real store: the first target, commits it
//! follows one key at a time (a jail's ban that changes no summary
//! included), and a change with no commit (an allow ending).

use std::collections::BTreeSet;
use std::time::Duration;

use banmesh_crdt::{Hlc, Kind, Metadata, Params, Statement};
use banmesh_keys::{SecretKey, sign_record};

use super::*;

/// How long a test waits for the target it expects.
const SOON: Duration = Duration::from_secs(30);

fn record(signer: &SecretKey, kind: Kind, key: &str, at: u64, until: u64, jail: &str) -> Record {
    let statement = Statement {
        key: key.parse().unwrap(),
        kind,
        issued_at: Hlc::from_millis(at),
        expires_at: kind.expires().then_some(until),
        strikes: u32::from(kind == Kind::Ban),
        meta: Metadata { jail: jail.into(), reason: String::new(), source: "cli".into() },
        origin: banmesh_crdt::Origin::default(),
    };
    sign_record(signer, statement)
}

fn key(s: &str) -> Key {
    s.parse().unwrap()
}

/// Waits until the published target satisfies `wanted`.
async fn until(rx: &mut watch::Receiver<Arc<Target>>, wanted: impl Fn(&Target) -> bool) {
    let waited = tokio::time::timeout(SOON, async {
        loop {
            if wanted(&rx.borrow_and_update()) {
                return;
            }
            rx.changed().await.unwrap();
        }
    });
    waited.await.unwrap_or_else(|_| panic!("target never came: {:?}", rx.borrow()));
}

async fn started(
    store: &Store,
    never: &[&str],
    jails: &[&str],
) -> (watch::Receiver<Arc<Target>>, CancellationToken, tokio::task::JoinHandle<()>) {
    let enforcer = Enforcer {
        store: store.clone(),
        never_ban: NeverBan::Fixed(never.iter().map(|s| key(s)).collect::<Vec<_>>().into()),
        enforce: true,
        apply_jails: jails.iter().map(|j| (*j).to_owned()).collect(),
    };
    let shutdown = CancellationToken::new();
    let (rx, task) = enforcer.start(shutdown.clone()).await.unwrap();
    (rx, shutdown, tokio::spawn(task))
}

#[tokio::test]
async fn the_task_follows_commits_and_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let (store, _writer) = Store::open(dir.path(), Params::default(), now).await.unwrap();
    let signer = SecretKey::generate().unwrap();
    let hour = now + 3_600_000;
    store.apply(vec![record(&signer, Kind::Ban, "10.0.0.0/24", now, hour, "")], now).await.unwrap();
    let (mut rx, shutdown, task) = started(&store, &["10.0.0.9"], &[]).await;
    let first = rx.borrow().clone();
    assert_eq!(first.bans[&key("10.0.0.0/24")].pieces.len(), 8, "split around the never-ban entry");
    assert!(!first.entries.contains(&key("10.0.0.0/24")));

    store.apply(vec![record(&signer, Kind::Ban, "192.0.2.1", now, hour, "")], now).await.unwrap();
    until(&mut rx, |t| t.entries.contains(&key("192.0.2.1"))).await;
    // An allow of a few seconds over it: left out, then back with no commit.
    let allow = record(&signer, Kind::Allow, "192.0.2.0/24", now_ms(), now_ms() + 2_000, "");
    store.apply(vec![allow], now_ms()).await.unwrap();
    until(&mut rx, |t| {
        t.left_out.get(&key("192.0.2.1")) == Some(&Why::Allowed(key("192.0.2.0/24")))
    })
    .await;
    assert!(rx.borrow().allows_all_of(key("192.0.2.1")));
    until(&mut rx, |t| t.entries.contains(&key("192.0.2.1")) && t.allows.is_empty()).await;
    // An Unban takes the network out.
    let unban = record(&signer, Kind::Unban, "10.0.0.0/24", now_ms(), 0, "");
    store.apply(vec![unban], now_ms()).await.unwrap();
    until(&mut rx, |t| t.entries == BTreeSet::from([key("192.0.2.1")])).await;
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_ban_from_an_applied_jail_counts_though_it_changes_no_summary() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let (store, _writer) = Store::open(dir.path(), Params::default(), now).await.unwrap();
    let (a, b) = (SecretKey::generate().unwrap(), SecretKey::generate().unwrap());
    let long = record(&a, Kind::Ban, "192.0.2.5", now, now + 7_200_000, "nginx");
    store.apply(vec![long], now).await.unwrap();
    let (mut rx, shutdown, task) = started(&store, &[], &["sshd"]).await;
    assert_eq!(rx.borrow().left_out.get(&key("192.0.2.5")), Some(&Why::JailNotApplied));
    let summary = store.with_index(|index| index.get(key("192.0.2.5")));
    // A shorter sshd ban from another node: the key's summary (the latest
    // ban's end) stays the same, the answer does not.
    let short = record(&b, Kind::Ban, "192.0.2.5", now_ms(), now + 3_600_000, "sshd");
    store.apply(vec![short], now_ms()).await.unwrap();
    assert_eq!(store.with_index(|index| index.get(key("192.0.2.5"))), summary);
    until(&mut rx, |t| t.entries.contains(&key("192.0.2.5"))).await;
    assert_eq!(rx.borrow().next_change_ms, Some(now + 3_600_000), "the sshd ban's end");
    shutdown.cancel();
    task.await.unwrap();
}
