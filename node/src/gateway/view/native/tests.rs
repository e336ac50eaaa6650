//! The view's counts and pages against a plain reading of the same records
//! as the store keeps them (the greatest per key, origin and kind), judged
//! by `Trust::check_record` and `KeySlots`, as the store scan did: over
//! random records from origins with full, partial, late or no
//! certificates, some breaking the cluster rules, and again after a
//! certificate arrives.

use std::collections::BTreeMap;

use banmesh_crdt::slots::KeySlots;
use banmesh_crdt::{Hlc, Metadata, Params, Record, Statement};
use banmesh_keys::{Roles, SecretKey, sign_record};

use super::*;
use crate::gateway::lifecycle::Windows;
use crate::gateway::v1::decisions::Decision;
use crate::test_rng::Rng;

const NOW: u64 = 1_800_000_000_000;
const HOUR: u64 = 3_600_000;
const KEYS: &[&str] = &[
    "10.0.0.0/8",
    "10.0.0.0/24",
    "10.0.0.1",
    "10.0.0.2",
    "192.0.2.7",
    "2001:db8::/32",
    "2001:db8::1",
];
const PARAMS: Params = Params { max_ttl_ms: 20 * HOUR, retention_ms: 100 * HOUR, skew_bound_ms: 1 };

fn random_record(rng: &mut Rng, node: &SecretKey) -> Record {
    let kind = *rng.pick(&Kind::ALL);
    let issued = NOW - 10 * HOUR + rng.below(10 * HOUR);
    // Some outlast max_ttl (20 h): they break the cluster rules.
    let expires = kind.expires().then(|| issued + 1 + rng.below(24 * HOUR));
    let statement = Statement {
        key: rng.pick(KEYS).parse().unwrap(),
        kind,
        issued_at: Hlc::from_millis(issued),
        expires_at: expires,
        strikes: u32::from(kind == Kind::Ban),
        meta: Metadata {
            jail: rng.pick(&["sshd", "nginx", ""]).to_string(),
            reason: rng.pick(&["", "5 failures"]).to_string(),
            source: "test".into(),
        },
        origin: Origin(node.public().to_bytes()),
    };
    sign_record(node, statement)
}

/// The records the store keeps: the greatest per key, origin and kind.
fn stored(records: &[Record]) -> Vec<Record> {
    let mut kept: BTreeMap<(Key, Origin, Kind), Record> = BTreeMap::new();
    for r in records {
        let slot = (r.key(), r.origin(), r.kind());
        if kept.get(&slot).is_none_or(|old| r.order_cmp(old).is_gt()) {
            kept.insert(slot, r.clone());
        }
    }
    kept.into_values().collect()
}

/// Every Ban and Allow with its state, judged from the records themselves.
fn plain(records: &[Record], trust: &Trust, now: u64) -> Vec<(Record, &'static str)> {
    let mut out = Vec::new();
    for group in records.chunk_by(|a, b| a.key() == b.key()) {
        let slots = KeySlots::new(group);
        for r in group.iter().filter(|r| matches!(r.kind(), Kind::Ban | Kind::Allow)) {
            let state = if trust.check_record(r, &PARAMS).is_err() {
                "invalid"
            } else if slots.is_lifted(r) {
                "lifted"
            } else if r.statement().expires_at.is_some_and(|e| e <= now) {
                "expired"
            } else {
                "live"
            };
            out.push((r.clone(), state));
        }
    }
    out
}

fn plain_counts(judged: &[(Record, &'static str)], trust: &Trust, now: u64) -> Counts {
    let mut counter = Counter::default();
    for (r, _) in judged.iter().filter(|(_, s)| *s == "live") {
        let node = PublicKey::from_bytes(&r.origin().0).unwrap();
        let name = trust.cert_of(&node).map(|c| c.name().to_owned());
        counter.add(r.kind(), &r.statement().meta.jail, &r.origin().to_string(), name.as_deref());
    }
    counter.finish(now)
}

/// Every page of `filter`, walked by cursor, with `limit` per page.
fn all_pages(keys: &Keys, trust: &Trust, mut filter: Filter) -> Vec<Decision> {
    let mut all = Vec::new();
    loop {
        let page = page(keys, trust, &filter, NOW);
        assert!(page.decisions.len() < filter.limit + 8, "a key holds at most 8");
        all.extend(page.decisions);
        let Some(cursor) = page.next_cursor else { return all };
        let bytes = hex::decode(cursor.trim_start_matches('n')).unwrap();
        if filter.newest {
            let (time, key) = bytes.split_first_chunk::<8>().unwrap();
            filter.before = Some((u64::from_be_bytes(*time), Key::from_bytes(key).unwrap()));
        } else {
            filter.after = Some(Key::from_bytes(&bytes).unwrap());
        }
    }
}

fn check(keys: &Keys, records: &[Record], trust: &Trust) {
    let judged = plain(records, trust, NOW);
    assert_eq!(counts(keys, trust, NOW), plain_counts(&judged, trust, NOW));
    let since = NOW - 3 * HOUR;
    for (state, since_ms) in
        [(StateFilter::All, None), (StateFilter::Live, None), (StateFilter::All, Some(since))]
    {
        let filter = Filter {
            jail: None,
            origin: None,
            since_ms,
            kind: None,
            state,
            limit: 3,
            after: None,
            newest: false,
            before: None,
        };
        let mut want: Vec<(Key, Origin, Kind, &str)> = judged
            .iter()
            .filter(|(_, s)| state == StateFilter::All || *s == "live")
            .filter(|(r, _)| since_ms.is_none_or(|t| r.issued_at().millis() >= t))
            .map(|(r, s)| (r.key(), r.origin(), r.kind(), *s))
            .collect();
        want.sort();
        let got: Vec<_> = all_pages(keys, trust, filter.clone()).iter().map(listed).collect();
        assert_eq!(got, want, "{state:?} since {since_ms:?}");
        // Newest first: the same decisions, latest issued first.
        let newest = all_pages(keys, trust, Filter { newest: true, ..filter });
        let times: Vec<&str> = newest.iter().map(|d| d.issued_at.as_str()).collect();
        assert!(times.is_sorted_by(|a, b| a >= b), "{state:?} since {since_ms:?}: {times:?}");
        let mut got: Vec<_> = newest.iter().map(listed).collect();
        got.sort();
        assert_eq!(got, want, "{state:?} since {since_ms:?}, newest first");
    }
}

/// A decision's key, origin, kind and state.
fn listed(d: &Decision) -> (Key, Origin, Kind, &'static str) {
    let key: Key = d.key.parse().unwrap();
    let origin = Origin(hex::decode(&d.origin.key).unwrap().try_into().unwrap());
    let kind = if d.kind == "ban" { Kind::Ban } else { Kind::Allow };
    (key, origin, kind, d.state)
}

#[test]
fn counts_and_pages_match_a_plain_reading_of_the_records() {
    let cluster = SecretKey::generate().unwrap();
    let nodes: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate().unwrap()).collect();
    let cert = |node: &SecretKey, name: &str, roles: &str, from: u64| {
        let roles: Roles = roles.parse().unwrap();
        Certificate::issue(&cluster, node.public(), name, roles, from, NOW + HOUR, None).unwrap()
    };
    let mut trust = Trust::new(cluster.public());
    trust.add_certificate(cert(&nodes[0], "full", "ban,allow,wide-prefix", 0)).unwrap();
    trust.add_certificate(cert(&nodes[1], "bans", "ban", 0)).unwrap();
    trust
        .add_certificate(cert(&nodes[2], "late", "ban,allow,wide-prefix", NOW - 5 * HOUR))
        .unwrap();
    let mut rng = Rng(7);
    let records: Vec<Record> = (0..400)
        .map(|_| {
            let node = &nodes[usize::try_from(rng.below(4)).unwrap()];
            random_record(&mut rng, node)
        })
        .collect();
    let mut keys = Keys::new(Windows { allowed_ms: HOUR, known_ms: HOUR });
    for r in &records {
        keys.insert(r, r.statement().validate(&PARAMS).is_ok());
    }
    let records = stored(&records);
    check(&keys, &records, &trust);
    // The fourth node's certificate arrives: its records count from now on.
    trust.add_certificate(cert(&nodes[3], "new", "ban,allow,wide-prefix", 0)).unwrap();
    check(&keys, &records, &trust);
}
