//! Unit tests of the applier's pure parts: what the mesh jail should hold
//! (never-ban and allows, splitting, the cap, the jail filter) and when
//! reconcile counts a Fail2Ban ban as already published.

use banmesh_crdt::{Hlc, KeySummary, Kind, Metadata, Origin, Record, Statement};

use super::client::Ticket;
use super::filter::applied_until;
use super::reconcile::known;
use super::*;

fn key(s: &str) -> Key {
    s.parse().unwrap()
}

fn ban(until: u64) -> KeySummary {
    KeySummary { ban_until_ms: until, strikes: 1, allow_until_ms: 0 }
}

fn allow(until: u64) -> KeySummary {
    KeySummary { ban_until_ms: 0, strikes: 0, allow_until_ms: until }
}

fn plan(index: &Index, never: &[&str], applies: impl Fn(Key, KeySummary) -> bool) -> Wanted {
    let candidates: Vec<(Key, KeySummary)> =
        index.live(100).filter(|(_, s)| s.banned_at(100).is_some()).collect();
    let never: Vec<Key> = never.iter().map(|s| key(s)).collect();
    wanted(index, &candidates, &never, applies, 100)
}

fn keys(list: &[&str]) -> BTreeSet<Key> {
    list.iter().map(|s| key(s)).collect()
}

#[test]
fn never_ban_and_allows_are_left_out_and_networks_split_around_them() {
    let mut index = Index::default();
    index.set(key("192.0.2.1"), ban(500));
    index.set(key("192.0.2.2"), ban(500));
    index.set(key("10.0.0.0/29"), ban(500));
    index.set(key("10.0.1.0/30"), ban(500));
    index.set(key("10.0.1.2"), allow(500));
    index.set(key("198.51.100.0/24"), allow(500));
    index.set(key("198.51.100.7"), ban(500));
    let want = plan(&index, &["192.0.2.2", "10.0.0.5"], |_, _| true);
    assert_eq!(
        want.keys,
        keys(&["192.0.2.1", "10.0.0.0/30", "10.0.0.4", "10.0.0.6/31", "10.0.1.0/31", "10.0.1.3"])
    );
    assert!(want.too_wide.is_empty());
}

#[test]
fn a_split_beyond_the_cap_leaves_the_ban_out_and_says_so() {
    let mut index = Index::default();
    index.set(key("2001:db8::/32"), ban(500));
    for far_apart in ["2001:db8::1", "2001:db8:4000::1", "2001:db8:8000::1", "2001:db8:c000::1"] {
        index.set(key(far_apart), allow(500));
    }
    let want = plan(&index, &[], |_, _| true);
    assert!(want.keys.is_empty(), "{:?}", want.keys);
    assert_eq!(want.too_wide.len(), 1);
    let status =
        ApplierStatus { too_wide: vec!["2001:db8::/32".into()], ..ApplierStatus::default() };
    assert!(status.warnings()[0].contains("2001:db8::/32"), "{:?}", status.warnings());
}

#[test]
fn the_next_change_is_the_first_ban_or_allow_to_end() {
    let mut index = Index::default();
    assert_eq!(next_change(&index, 100), None);
    index.set(key("192.0.2.1"), ban(500));
    index.set(key("192.0.2.2"), KeySummary { ban_until_ms: 900, strikes: 1, allow_until_ms: 300 });
    index.set(key("192.0.2.3"), ban(50));
    assert_eq!(next_change(&index, 100), Some(300));
    assert_eq!(next_change(&index, 300), Some(500));
}

#[test]
fn the_jail_filter_decides_per_key() {
    let mut index = Index::default();
    index.set(key("192.0.2.1"), ban(500));
    index.set(key("192.0.2.2"), ban(500));
    let want = plan(&index, &[], |k, _| k == key("192.0.2.2"));
    assert_eq!(want.keys, keys(&["192.0.2.2"]));
}

fn record(kind: Kind, origin: u8, issued: u64, ttl: u64, jail: &str) -> Record {
    let statement = Statement {
        key: key("192.0.2.1"),
        kind,
        issued_at: Hlc::from_millis(issued),
        expires_at: kind.expires().then_some(issued + ttl),
        strikes: u32::from(kind == Kind::Ban),
        meta: Metadata { jail: jail.into(), reason: String::new(), source: "fail2ban".into() },
        origin: Origin([origin; 32]),
    };
    Record::new(statement, [0; 64])
}

#[test]
fn applied_jails_count_only_their_bans_and_unbans_lift_them() {
    let jails = vec!["sshd".to_owned()];
    let sshd = record(Kind::Ban, 1, 1_000, 1_000, "sshd");
    let nginx = record(Kind::Ban, 2, 1_000, 9_000, "nginx");
    let operator = record(Kind::Ban, 3, 1_000, 5_000, "");
    assert_eq!(applied_until([&sshd, &nginx].into_iter(), &jails), 2_000);
    assert_eq!(applied_until([&nginx].into_iter(), &jails), 0);
    assert_eq!(applied_until([&nginx, &operator].into_iter(), &jails), 6_000);
    let unban = record(Kind::Unban, 2, 1_500, 0, "");
    assert_eq!(applied_until([&sshd, &unban].into_iter(), &jails), 0);
    let rebanned = record(Kind::Ban, 1, 1_600, 1_000, "sshd");
    assert_eq!(applied_until([&rebanned, &unban].into_iter(), &jails), 2_600);
}

#[test]
fn reconcile_knows_its_own_bans_and_only_those() {
    let me = Origin([1; 32]);
    let ticket = Ticket { key: key("192.0.2.1"), start_ms: 100_000, end_ms: Some(700_000) };
    let now = 200_000;
    let none: [&Record; 0] = [];
    assert!(!known(none.into_iter(), me, &ticket, now), "nothing at all");
    let other = record(Kind::Ban, 2, 100_000, 600_000, "sshd");
    assert!(!known([&other].into_iter(), me, &ticket, now), "another node's ban");
    let handed_over = record(Kind::Ban, 1, 100_400, 600_000, "sshd");
    assert!(known([&handed_over].into_iter(), me, &ticket, now), "the action's hand-over");
    let old = record(Kind::Ban, 1, 1_000, 2_000, "sshd");
    assert!(!known([&old].into_iter(), me, &ticket, now), "an earlier, ended ban");
    let running = record(Kind::Ban, 1, 1_000, 500_000, "sshd");
    assert!(known([&running].into_iter(), me, &ticket, now), "still running");
    let unbanned = record(Kind::Unban, 1, 2_000, 0, "");
    assert!(!known([&running, &unbanned].into_iter(), me, &ticket, now), "lifted here");
}

#[test]
fn negative_bantimes_but_minus_one_are_refused() {
    for fine in [-1, 0, 1, 600, i64::MAX] {
        assert_eq!(check_bantime(fine), Ok(()), "{fine}");
    }
    for odd in [-2, -99, i64::MIN] {
        let err = check_bantime(odd).expect_err("refused");
        assert!(err.contains("invalid bantime"), "{err}");
    }
}

#[test]
fn entries_inside_another_are_left_out() {
    let mut index = Index::default();
    for k in
        ["10.0.0.0/24", "10.0.0.5", "10.0.0.128/25", "10.0.1.1", "2001:db8::/48", "2001:db8::1"]
    {
        index.set(key(k), ban(500));
    }
    let want = plan(&index, &[], |_, _| true);
    assert_eq!(want.keys, keys(&["10.0.0.0/24", "10.0.1.1", "2001:db8::/48"]));
}

#[test]
fn an_action_that_cannot_hold_networks_and_entries_not_taken_are_warned_about() {
    let status = ApplierStatus {
        networks: Some(Networks::NotHeld { action: "nftables".into(), why: "no interval" }),
        unheld: vec!["10.0.0.0/24".into()],
        not_taken: vec!["192.0.2.1".into()],
        ..ApplierStatus::default()
    };
    let warnings = status.warnings().join("\n");
    assert!(warnings.contains("action nftables cannot hold networks (no interval): 1 banned network(s) not applied, such as 10.0.0.0/24"), "{warnings}");
    assert!(warnings.contains("did not take 1 entr(ies)"), "{warnings}");
    let held = ApplierStatus { networks: Some(Networks::Held), ..ApplierStatus::default() };
    assert!(held.warnings().is_empty());
}
