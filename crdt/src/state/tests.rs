use super::*;
use crate::record::{Metadata, Statement};

fn rec(kind: Kind, key: &str, origin: u8, issued_ms: u64, expires_ms: Option<u64>) -> Record {
    Record::new(
        Statement {
            key: key.parse().unwrap(),
            kind,
            issued_at: Hlc::from_millis(issued_ms),
            expires_at: expires_ms,
            strikes: u32::from(kind == Kind::Ban),
            meta: Metadata::default(),
            origin: Origin([origin; 32]),
        },
        [0; 64],
    )
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn state(records: &[Record]) -> State {
    let mut s = State::new();
    for r in records {
        s.insert(r.clone());
    }
    s
}

#[test]
fn ban_holds_until_expiry() {
    let s = state(&[rec(Kind::Ban, "10.0.0.1", 1, 100, Some(500))]);
    assert!(matches!(s.decision(addr("10.0.0.1"), 499), Decision::Banned { .. }));
    assert_eq!(s.decision(addr("10.0.0.1"), 500), Decision::Free);
    assert_eq!(s.decision(addr("10.0.0.2"), 200), Decision::Free);
}

#[test]
fn ban_until_is_the_latest_expiry_and_strikes_are_its() {
    let mut long = rec(Kind::Ban, "10.0.0.1", 2, 90, Some(900)).statement().clone();
    long.strikes = 3;
    let s = state(&[rec(Kind::Ban, "10.0.0.1", 1, 100, Some(500)), Record::new(long, [0; 64])]);
    let d = s.key_decision("10.0.0.1".parse().unwrap(), 0);
    let b = d.banned.unwrap();
    assert_eq!((b.until_ms, b.strikes), (900, 3));
}

#[test]
fn unban_lifts_older_bans_from_every_origin_but_not_newer() {
    let s = state(&[
        rec(Kind::Ban, "10.0.0.1", 1, 100, Some(1_000)),
        rec(Kind::Ban, "10.0.0.1", 2, 150, Some(1_000)),
        rec(Kind::Unban, "10.0.0.1", 3, 200, None),
    ]);
    assert_eq!(s.decision(addr("10.0.0.1"), 300), Decision::Free);
    let mut s = s;
    s.insert(rec(Kind::Ban, "10.0.0.1", 2, 250, Some(400)));
    let d = s.key_decision("10.0.0.1".parse().unwrap(), 300);
    assert_eq!(d.banned.map(|b| b.until_ms), Some(400));
}

#[test]
fn a_reban_after_an_unban_does_not_revive_other_origins_lifted_bans() {
    // B bans for long; A unbans; A re-bans briefly. B's ban stays lifted.
    let s = state(&[
        rec(Kind::Ban, "10.0.0.1", 2, 100, Some(10_000)),
        rec(Kind::Unban, "10.0.0.1", 1, 200, None),
        rec(Kind::Ban, "10.0.0.1", 1, 300, Some(400)),
    ]);
    assert!(matches!(s.decision(addr("10.0.0.1"), 350), Decision::Banned { .. }));
    assert_eq!(s.decision(addr("10.0.0.1"), 500), Decision::Free);
}

#[test]
fn unban_acts_on_its_exact_key_only() {
    let s = state(&[
        rec(Kind::Ban, "10.0.0.0/24", 1, 100, Some(1_000)),
        rec(Kind::Unban, "10.0.0.1", 2, 200, None),
    ]);
    assert!(matches!(s.decision(addr("10.0.0.1"), 300), Decision::Banned { .. }));
}

#[test]
fn allow_on_a_covering_network_wins_over_a_ban() {
    let s = state(&[
        rec(Kind::Ban, "10.0.0.1", 1, 300, Some(1_000)),
        rec(Kind::Allow, "10.0.0.0/16", 2, 100, Some(500)),
    ]);
    let key: Key = "10.0.0.0/16".parse().unwrap();
    assert!(
        matches!(s.decision(addr("10.0.0.1"), 200), Decision::Allowed { key: k, .. } if k == key)
    );
    assert!(matches!(s.decision(addr("10.0.0.1"), 600), Decision::Banned { .. }));
    let mut s = s;
    s.insert(rec(Kind::Disallow, "10.0.0.0/16", 3, 150, None));
    assert!(matches!(s.decision(addr("10.0.0.1"), 200), Decision::Banned { .. }));
}

#[test]
fn a_covering_ban_catches_every_address_inside_it() {
    let s = state(&[rec(Kind::Ban, "2001:db8::/48", 1, 100, Some(1_000))]);
    assert!(matches!(s.decision(addr("2001:db8::99"), 200), Decision::Banned { .. }));
    assert_eq!(s.decision(addr("2001:db9::1"), 200), Decision::Free);
    let v4 = state(&[rec(Kind::Ban, "192.0.2.0/24", 1, 100, Some(1_000))]);
    assert!(matches!(v4.decision(addr("::ffff:192.0.2.5"), 200), Decision::Banned { .. }));
}

#[test]
fn insert_keeps_the_greatest_record_per_slot() {
    let old = rec(Kind::Ban, "10.0.0.1", 1, 100, Some(1_000));
    let new = rec(Kind::Ban, "10.0.0.1", 1, 200, Some(300));
    let mut s = State::new();
    assert!(s.insert(new.clone()));
    assert!(!s.insert(old));
    assert!(!s.insert(new.clone()));
    assert_eq!(s.records().collect::<Vec<_>>(), vec![&new]);
    assert_eq!(s.greatest_on_key(new.key()), Some(new.issued_at()));
}

#[test]
fn gc_collects_only_past_the_horizon() {
    let p = Params { max_ttl_ms: 1_000, retention_ms: 100, skew_bound_ms: 10 };
    let mut s = state(&[
        rec(Kind::Ban, "10.0.0.1", 1, 0, Some(500)),
        rec(Kind::Unban, "10.0.0.2", 1, 0, None),
        rec(Kind::Ban, "10.0.0.3", 1, 100, Some(1_100)),
    ]);
    assert!(s.gc(1_110, &p).is_empty());
    let gone = s.gc(1_111, &p);
    assert_eq!(gone.len(), 2);
    assert_eq!(s.len(), 1);
}

#[test]
fn digest_changes_with_content_and_ignores_insert_order() {
    let p = Params::default();
    let a = rec(Kind::Ban, "10.0.0.1", 1, 100, Some(1_000));
    let b = rec(Kind::Allow, "10.0.0.0/8", 2, 100, Some(1_000));
    let ab = state(&[a.clone(), b.clone()]);
    let ba = state(&[b, a.clone()]);
    assert_eq!(ab.digest(0, &p), ba.digest(0, &p));
    assert_ne!(ab.digest(0, &p), state(&[a]).digest(0, &p));
    assert_ne!(State::new().digest(0, &p), ab.digest(0, &p));
}
