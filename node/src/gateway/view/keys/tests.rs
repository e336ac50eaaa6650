//! Property-style (seeded) checks of the patched rebuild: after random
//! records, revocations, prunes and passing time, the patched snapshot
//! equals a snapshot built from scratch over the same records, and both
//! agree with a naive reading of every key (its own lifecycle, freed by
//! any wider key's live Allow).

use std::collections::HashSet;

use banmesh_crdt::{Hlc, Kind, Metadata, Statement};

use super::*;
use crate::gateway::lifecycle::Lifecycle;
use crate::gateway::snapshot::Page;
use crate::test_rng::Rng;

const W: Windows = Windows { allowed_ms: 3_000, known_ms: 7_000 };

const KEYS: &[&str] = &[
    "10.0.0.0/16",
    "10.0.0.0/24",
    "10.0.0.0/28",
    "10.0.0.1",
    "10.0.0.2",
    "10.0.0.17",
    "10.0.1.5",
    "10.0.1.0/24",
    "10.1.0.9",
    "192.0.2.7",
    "2001:db8::/32",
    "2001:db8::/64",
    "2001:db8::1",
    "2001:db8:1::1",
];

fn random_record(rng: &mut Rng, now: u64) -> Record {
    let kind = *rng.pick(&Kind::ALL);
    let issued = now.saturating_sub(2_000) + rng.below(4_000);
    let expires = kind.expires().then(|| issued + 500 + rng.below(12_000));
    let jails = ["sshd", "nginx", ""];
    let statement = Statement {
        key: rng.pick(KEYS).parse().unwrap(),
        kind,
        issued_at: Hlc(Hlc::from_millis(issued).0 + rng.below(2)),
        expires_at: expires,
        strikes: if kind == Kind::Ban { 1 + u32::try_from(rng.below(4)).unwrap() } else { 0 },
        meta: Metadata {
            jail: rng.pick(&jails).to_string(),
            reason: rng.pick(&["", "5 failures"]).to_string(),
            source: "test".into(),
        },
        origin: Origin([u8::try_from(rng.below(3)).unwrap() + 1; 32]),
    };
    Record::new(statement, [0; 64])
}

/// One list's items and jail counts.
type Contents = (Vec<Item>, Vec<(String, u64)>);

/// Every list's items and jail counts, comparable.
fn contents(snapshot: &Snapshot) -> Vec<Contents> {
    Status::ALL
        .iter()
        .map(|s| {
            let list = snapshot.list(*s);
            let counts = list.jail_counts().map(|(j, n)| (j.to_owned(), n)).collect();
            (list.items().cloned().collect(), counts)
        })
        .collect()
}

/// The naive reading: each key's own lifecycle, then allowed (since the
/// latest) when any wider key of its family holds a live explicit Allow.
fn naive(records: &[Record], now: u64) -> Vec<(Key, Status, Option<u64>)> {
    let mut by_key: BTreeMap<Key, Vec<Record>> = BTreeMap::new();
    for record in records {
        let on_key = by_key.entry(record.key()).or_default();
        banmesh_crdt::slots::merge_into(on_key, record.clone());
    }
    let lifecycles: Vec<(Key, Lifecycle<'_>)> =
        by_key.iter().filter_map(|(key, r)| Some((*key, derive(r, now, W)?))).collect();
    lifecycles
        .iter()
        .map(|(key, l)| {
            let freed = lifecycles
                .iter()
                .filter(|(wider, w)| {
                    w.explicit_allow
                        && wider.prefix_len() < key.prefix_len()
                        && within(*wider, *key)
                })
                .filter_map(|(_, w)| w.allowed_since_ms)
                .max();
            match freed {
                Some(since) if l.status == Status::Blocked => (*key, Status::Allowed, Some(since)),
                _ => (*key, l.status, l.allowed_since_ms),
            }
        })
        .collect()
}

fn shown(snapshot: &Snapshot) -> Vec<(Key, Status, Option<u64>)> {
    let mut all: Vec<_> = Status::ALL
        .iter()
        .flat_map(|s| {
            snapshot.list(*s).items().map(|i| (i.key, *s, i.allowed_since_ms())).collect::<Vec<_>>()
        })
        .collect();
    all.sort_by_key(|(key, _, _)| *key);
    all
}

fn from_scratch(records: &[Record], revoked: &HashSet<Origin>, now: u64) -> Snapshot {
    let mut keys = Keys::new(W);
    for record in records.iter().filter(|r| !revoked.contains(&r.origin())) {
        keys.insert(record, true);
    }
    keys.rebuild(&Snapshot::default(), now)
}

fn run(seed: u64) {
    let mut rng = Rng(seed);
    let mut now = 1_000_000;
    let mut keys = Keys::new(W);
    let mut snapshot = keys.rebuild(&Snapshot::default(), now);
    let (mut records, mut revoked) = (Vec::new(), HashSet::new());
    for round in 0..60 {
        for _ in 0..rng.below(6) {
            let record = random_record(&mut rng, now);
            if !revoked.contains(&record.origin()) {
                keys.insert(&record, true);
            }
            records.push(record);
        }
        if rng.below(40) == 0 {
            let origin = Origin([u8::try_from(rng.below(3)).unwrap() + 1; 32]);
            revoked.insert(origin);
            keys.revoke(origin);
        }
        now += rng.below(2_500);
        snapshot = keys.rebuild(&snapshot, now);
        let scratch = from_scratch(&records, &revoked, now);
        assert_eq!(contents(&snapshot), contents(&scratch), "seed {seed}, round {round}, at {now}");
        let live: Vec<Record> =
            records.iter().filter(|r| !revoked.contains(&r.origin())).cloned().collect();
        assert_eq!(shown(&snapshot), naive(&live, now), "seed {seed}, round {round}, at {now}");
    }
    // The records' ends pass: every list empties with no new record.
    now += 60_000;
    snapshot = keys.rebuild(&snapshot, now);
    assert!(Status::ALL.iter().all(|s| snapshot.list(*s).is_empty()), "seed {seed}");
    let later = now + 100 * 86_400_000;
    keys.prune(Params::default(), later);
    snapshot = keys.rebuild(&snapshot, later);
    assert_eq!(keys.len(), 0, "seed {seed}: pruned keys leave the map");
    let body = snapshot.list(Status::Blocked).answer("", &Page::All);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["total"], 0);
}

#[test]
fn a_patched_snapshot_equals_one_built_from_scratch() {
    for seed in 0..200 {
        run(seed);
    }
}

#[test]
fn a_rebuild_with_nothing_changed_shares_every_list() {
    let mut rng = Rng(7);
    let mut keys = Keys::new(W);
    for _ in 0..50 {
        keys.insert(&random_record(&mut rng, 1_000_000), true);
    }
    let first = keys.rebuild(&Snapshot::default(), 1_000_000);
    let second = keys.rebuild(&first, 1_000_000);
    for (a, b) in first.lists.iter().zip(&second.lists) {
        assert!(Arc::ptr_eq(a, b));
    }
}
