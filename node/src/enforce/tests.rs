//! Unit tests of the target: allows win, never-ban, holes split around
//! protected addresses, the cap, the jail filter, the next change, and the
//! incremental updates agreeing with a full rebuild.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use banmesh_crdt::{Hlc, Key, KeySummary, Kind, Metadata, Origin, Record, Statement};

use super::filter::applied_until;
use super::*;

/// A key from text (tests here and in `fail2ban`).
pub(crate) fn key(s: &str) -> Key {
    s.parse().unwrap()
}

fn keys(list: &[&str]) -> BTreeSet<Key> {
    list.iter().map(|s| key(s)).collect()
}

fn ban(until: u64) -> KeySummary {
    KeySummary { ban_until_ms: until, strikes: 1, allow_until_ms: 0 }
}

fn allow(until: u64) -> KeySummary {
    KeySummary { ban_until_ms: 0, strikes: 0, allow_until_ms: until }
}

fn never(list: &[&str]) -> Arc<[Key]> {
    list.iter().map(|s| key(s)).collect::<Vec<_>>().into()
}

/// A policy built at 100 from `summaries`, every jail applied.
fn policy(summaries: &[(&str, KeySummary)], never_ban: &[&str]) -> Policy {
    let mut policy = Policy::new(true, false, never(never_ban));
    policy.rebuild(summaries.iter().map(|(k, s)| (key(k), *s)), HashMap::new(), 100);
    policy
}

#[test]
fn never_ban_and_allows_are_left_out_and_networks_split_around_them() {
    let summaries = [
        ("192.0.2.1", ban(500)),
        ("192.0.2.2", ban(500)),
        ("10.0.0.0/29", ban(500)),
        ("10.0.1.0/30", ban(500)),
        ("10.0.1.2", allow(500)),
        ("198.51.100.0/24", allow(500)),
        ("198.51.100.7", ban(500)),
    ];
    let target = policy(&summaries, &["192.0.2.2", "10.0.0.5"]).target();
    assert_eq!(
        target.entries,
        keys(&["192.0.2.1", "10.0.0.0/30", "10.0.0.4", "10.0.0.6/31", "10.0.1.0/31", "10.0.1.3"])
    );
    assert_eq!(target.left_out[&key("192.0.2.2")], Why::NeverBan(key("192.0.2.2")));
    assert_eq!(target.left_out[&key("198.51.100.7")], Why::Allowed(key("198.51.100.0/24")));
    assert_eq!(target.bans[&key("10.0.0.0/29")].until_ms, 500);
    assert_eq!(target.bans[&key("10.0.0.0/29")].pieces.len(), 3);
    assert!(target.too_wide().next().is_none());
    assert!(target.allows_all_of(key("198.51.100.7")));
    assert!(target.allows_all_of(key("10.0.1.2")));
    assert!(!target.allows_all_of(key("10.0.1.0/30")), "an allow inside covers not the whole");
}

#[test]
fn an_allow_wins_over_a_ban_on_the_same_key() {
    let both = KeySummary { ban_until_ms: 900, strikes: 1, allow_until_ms: 300 };
    let mut policy = policy(&[("192.0.2.9", both)], &[]);
    let target = policy.target();
    assert!(target.entries.is_empty());
    assert_eq!(target.left_out[&key("192.0.2.9")], Why::Allowed(key("192.0.2.9")));
    policy.expire(300);
    assert_eq!(policy.target().entries, keys(&["192.0.2.9"]), "the ban outlives the allow");
}

#[test]
fn a_split_beyond_the_cap_leaves_the_ban_out_and_says_so() {
    let mut summaries = vec![("2001:db8::/32", ban(500))];
    for far_apart in ["2001:db8::1", "2001:db8:4000::1", "2001:db8:8000::1", "2001:db8:c000::1"] {
        summaries.push((far_apart, allow(500)));
    }
    let target = policy(&summaries, &[]).target();
    assert!(target.entries.is_empty(), "{:?}", target.entries);
    let too_wide: Vec<_> = target.too_wide().collect();
    assert_eq!(too_wide.len(), 1);
    assert_eq!(too_wide[0].net.to_string(), "2001:db8::/32");
}

#[test]
fn the_next_change_is_the_first_ban_or_allow_to_end() {
    assert_eq!(policy(&[], &[]).target().next_change_ms, None);
    let both = KeySummary { ban_until_ms: 900, strikes: 1, allow_until_ms: 300 };
    let mut p =
        policy(&[("192.0.2.1", ban(500)), ("192.0.2.2", both), ("192.0.2.3", ban(50))], &[]);
    assert_eq!(p.target().next_change_ms, Some(300));
    p.expire(300);
    assert_eq!(p.target().next_change_ms, Some(500));
    p.expire(500);
    assert_eq!(p.target().entries, keys(&["192.0.2.2"]));
    assert_eq!(p.target().next_change_ms, Some(900));
}

#[test]
fn the_jail_filter_decides_per_key_and_its_end_is_a_change() {
    let mut p = Policy::new(true, true, never(&[]));
    let applied = HashMap::from([(key("192.0.2.2"), 400)]);
    p.rebuild([(key("192.0.2.1"), ban(500)), (key("192.0.2.2"), ban(500))], applied, 100);
    let target = p.target();
    assert_eq!(target.entries, keys(&["192.0.2.2"]));
    assert_eq!(target.left_out[&key("192.0.2.1")], Why::JailNotApplied);
    assert_eq!(target.next_change_ms, Some(400));
    p.expire(400);
    assert!(p.target().entries.is_empty());
}

#[test]
fn entries_inside_another_are_left_out() {
    let summaries: Vec<(&str, KeySummary)> =
        ["10.0.0.0/24", "10.0.0.5", "10.0.0.128/25", "10.0.1.1", "2001:db8::/48", "2001:db8::1"]
            .into_iter()
            .map(|k| (k, ban(500)))
            .collect();
    let target = policy(&summaries, &[]).target();
    assert_eq!(target.entries, keys(&["10.0.0.0/24", "10.0.1.1", "2001:db8::/48"]));
    assert_eq!(target.bans.len(), 6, "each ban is still enforced, through the wider entry");
}

#[test]
fn observe_only_enforces_nothing() {
    let mut p = Policy::new(false, false, never(&[]));
    p.rebuild([(key("192.0.2.1"), ban(500)), (key("10.0.0.1"), allow(500))], HashMap::new(), 100);
    let target = p.target();
    assert!(!target.enforce);
    assert!(target.entries.is_empty() && target.bans.is_empty() && target.allows.is_empty());
}

#[test]
fn updates_one_key_at_a_time_agree_with_a_rebuild() {
    let mut p = policy(&[("10.0.0.0/24", ban(900)), ("192.0.2.1", ban(900))], &[]);
    // An allow inside a banned network makes a hole; its end closes it.
    p.set(key("10.0.0.7"), allow(500), None, 100);
    let split = policy(
        &[("10.0.0.0/24", ban(900)), ("192.0.2.1", ban(900)), ("10.0.0.7", allow(500))],
        &[],
    );
    assert_eq!(p.target(), split.target());
    assert_eq!(p.target().bans[&key("10.0.0.0/24")].pieces.len(), 8);
    // A never-ban list with the address in it: a rebuild, same target.
    p.set_never(never(&["192.0.2.1"]), 100);
    assert_eq!(p.target().left_out[&key("192.0.2.1")], Why::NeverBan(key("192.0.2.1")));
    p.set_never(never(&[]), 100);
    // An Unban (the summary decides nothing) removes the key.
    p.set(key("192.0.2.1"), KeySummary::default(), None, 100);
    p.expire(500);
    assert_eq!(p.target().entries, keys(&["10.0.0.0/24"]));
    assert_eq!(p.target().next_change_ms, Some(900));
}

#[test]
fn a_backend_exclusion_drops_or_splits_like_the_never_ban_list() {
    let target =
        policy(&[("10.0.0.0/29", ban(500)), ("192.0.2.1", ban(500))], &["127.0.0.0/8"]).target();
    let same = target.excluding(&[key("127.0.0.1")]);
    assert_eq!(same.entries, target.entries, "already never-ban: nothing to do");
    let out = target.excluding(&[key("10.0.0.5"), key("192.0.2.0/24")]);
    assert_eq!(out.entries, keys(&["10.0.0.0/30", "10.0.0.4", "10.0.0.6/31"]));
    let with_never = policy(&[("10.0.0.0/29", ban(500))], &["10.0.0.5"]).target();
    assert_eq!(with_never.excluding(&[]).entries, out.entries);
}

/// A record on 192.0.2.1 from `origin`, unsigned (tests here and in `fail2ban`).
pub(crate) fn record(kind: Kind, origin: u8, issued: u64, ttl: u64, jail: &str) -> Record {
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
