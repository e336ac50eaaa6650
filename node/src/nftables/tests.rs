//! Unit tests of the nftables backend's pure parts: what the sets should
//! hold for a target, the diff, the transactions' text, and reading
//! `nft -j list table` back.

use std::collections::HashMap;
use std::sync::Arc;

use banmesh_crdt::{Key, KeySummary};

use super::elements::{Change, Elements, Set, diff};
use super::{kernel, script};
use crate::config::Config;
use crate::enforce::{Policy, Target};

const NOW: u64 = 1_000_000;

fn key(s: &str) -> Key {
    s.parse().unwrap()
}

fn target(bans: &[(&str, u64)], allows: &[&str], never: &[&str]) -> Target {
    let never: Arc<[Key]> = never.iter().map(|s| key(s)).collect::<Vec<_>>().into();
    let mut policy = Policy::new(true, false, never);
    let summaries = bans
        .iter()
        .map(|(k, until)| {
            (key(k), KeySummary { ban_until_ms: *until, strikes: 1, allow_until_ms: 0 })
        })
        .chain(allows.iter().map(|k| {
            (key(k), KeySummary { ban_until_ms: 0, strikes: 0, allow_until_ms: NOW + 60_000 })
        }));
    policy.rebuild(summaries, HashMap::new(), NOW);
    policy.target()
}

#[test]
fn wanted_sorts_keys_into_sets_with_timeouts() {
    let t = target(
        &[
            ("192.0.2.7", NOW + 90_000),
            ("2001:db8::7", NOW + 5_000),
            ("198.51.100.0/24", NOW + 9_000),
        ],
        &["198.51.100.9"],
        &["127.0.0.0/8", "127.0.0.1"],
    );
    let want = Elements::wanted(&t, NOW);
    assert_eq!(want.0.get(&(Set::Ban4, key("192.0.2.7"))), Some(&Some(NOW + 90_000)));
    assert_eq!(want.0.get(&(Set::Ban6, key("2001:db8::7"))), Some(&Some(NOW + 5_000)));
    // The network is split around the allowed address, prefixes kept; its
    // one single-address piece is timed.
    assert_eq!(want.count(Set::Net4), 7);
    assert!(want.0.contains_key(&(Set::Net4, key("198.51.100.128/25"))));
    assert_eq!(want.0.get(&(Set::Ban4, key("198.51.100.8"))), Some(&Some(NOW + 9_000)));
    // Allows and the never-ban list, none inside another.
    assert!(want.0.contains_key(&(Set::Allow4, key("198.51.100.9"))));
    assert!(want.0.contains_key(&(Set::Allow4, key("127.0.0.0/8"))));
    assert_eq!(want.count(Set::Allow4), 2);
    // Less than a second left: left out (the kernel would round it up).
    assert_eq!(Elements::wanted(&t, NOW + 4_500).count(Set::Ban6), 0);
}

#[test]
fn mapped_v6_is_held_as_v4() {
    let t = target(&[("::ffff:192.0.2.8", NOW + 60_000)], &[], &[]);
    let want = Elements::wanted(&t, NOW);
    assert!(want.0.contains_key(&(Set::Ban4, key("192.0.2.8"))), "{want:?}");
    assert_eq!(want.count(Set::Ban6), 0);
}

#[test]
fn diff_removes_first_then_adds_and_renews_moved_ends() {
    let mut have = Elements::default();
    have.0.insert((Set::Ban4, key("192.0.2.1")), Some(NOW + 10_000));
    have.0.insert((Set::Ban4, key("192.0.2.2")), Some(NOW + 10_000));
    have.0.insert((Set::Net4, key("10.0.0.0/24")), None);
    let mut want = Elements::default();
    want.0.insert((Set::Ban4, key("192.0.2.1")), Some(NOW + 11_000));
    want.0.insert((Set::Ban4, key("192.0.2.2")), Some(NOW + 60_000));
    want.0.insert((Set::Net4, key("10.0.0.0/25")), None);
    assert_eq!(
        diff(&have, &want),
        vec![
            Change::Remove(Set::Net4, key("10.0.0.0/24")),
            Change::Renew(Set::Ban4, key("192.0.2.2"), NOW + 60_000),
            Change::Add(Set::Net4, key("10.0.0.0/25"), None),
        ]
    );
    assert!(diff(&want, &want).is_empty());
}

#[test]
fn transactions_carry_timeouts_and_never_fail_on_gone_elements() {
    let changes = [
        Change::Remove(Set::Net6, key("2001:db8::/48")),
        Change::Add(Set::Ban4, key("192.0.2.1"), Some(NOW + 1_500)),
        Change::Renew(Set::Ban4, key("192.0.2.2"), NOW + 3_600_000),
        Change::Add(Set::Allow4, key("10.0.0.0/8"), None),
    ];
    let texts = script::batches("banmesh", &changes, 2, NOW);
    assert_eq!(texts.len(), 3);
    // Removals alone first: nft refuses a network overlapping one the
    // kernel holds, even if the same transaction deletes it.
    assert_eq!(
        texts[0],
        "add element inet banmesh net6 { 2001:db8::/48 }\n\
         delete element inet banmesh net6 { 2001:db8::/48 }\n"
    );
    assert_eq!(
        texts[1],
        "add element inet banmesh ban4 { 192.0.2.2 }\n\
         delete element inet banmesh ban4 { 192.0.2.2 }\n\
         add element inet banmesh ban4 { 192.0.2.1 timeout 2s, 192.0.2.2 timeout 3600s }\n"
    );
    assert_eq!(texts[2], "add element inet banmesh allow4 { 10.0.0.0/8 }\n");
}

#[test]
fn structure_accepts_allows_before_drops_and_hooks_forward_if_asked() {
    let mut config = Config::from_toml("", "test", &Default::default()).unwrap().nftables;
    let text = script::structure(&config, &kernel::Kernel::default());
    assert!(text.starts_with("add table inet banmesh { comment \"banmesh\"; }\n"), "{text}");
    assert!(text.contains("add set inet banmesh ban4 { type ipv4_addr; flags timeout; }"));
    assert!(text.contains("add set inet banmesh net6 { type ipv6_addr; flags interval; }"));
    assert!(text.contains("add counter inet banmesh net6\n"));
    assert!(!text.contains("add counter inet banmesh allow4"));
    let allow = text.find("ip saddr @allow4 accept").unwrap();
    let drop = text.find("ip saddr @ban4 counter name \"ban4\" drop").unwrap();
    assert!(allow < drop);
    assert!(text.contains("hook input priority -10;"));
    assert!(!text.contains("forward"));
    config.forward = true;
    config.priority = 5;
    let mut kernel = kernel::Kernel::default();
    kernel.chains.push(kernel::KernelChain {
        name: "input".to_owned(),
        hook: Some("input".to_owned()),
        prio: Some(-10),
    });
    let text = script::structure(&config, &kernel);
    assert!(text.contains("delete chain inet banmesh input\n"), "{text}");
    assert!(text.contains("hook forward priority 5;"), "{text}");
}

#[test]
fn listing_is_read_back() {
    let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
      {"table": {"family": "inet", "name": "banmesh", "handle": 1}},
      {"counter": {"family": "inet", "name": "ban4", "table": "banmesh", "packets": 3, "bytes": 180}},
      {"set": {"family": "inet", "name": "ban4", "table": "banmesh", "type": "ipv4_addr",
        "flags": ["timeout"], "elem": [{"elem": {"val": "10.0.0.1", "timeout": 100, "expires": 99}}, "10.0.0.2"]}},
      {"set": {"family": "inet", "name": "net4", "table": "banmesh", "type": "ipv4_addr",
        "flags": ["interval"], "elem": [{"prefix": {"addr": "10.1.0.0", "len": 24}},
          {"range": ["10.3.0.1", "10.3.0.9"]}]}},
      {"set": {"family": "inet", "name": "allow6", "table": "banmesh", "type": "ipv4_addr", "flags": ["interval"]}},
      {"chain": {"family": "inet", "table": "banmesh", "name": "input", "type": "filter", "hook": "input", "prio": -10}}]}"#;
    let k = kernel::parse(json).unwrap();
    assert!(k.exists);
    assert_eq!(k.counters.get("ban4"), Some(&(3, 180)));
    assert_eq!(k.chains[0].prio, Some(-10));
    assert!(!k.sets[&Set::Allow6].ours);
    assert_eq!(k.sets[&Set::Net4].foreign, ["10.3.0.1-10.3.0.9"]);
    let held = k.elements(NOW);
    assert_eq!(held.0.get(&(Set::Ban4, key("10.0.0.1"))), Some(&Some(NOW + 99_000)));
    assert_eq!(held.0.get(&(Set::Ban4, key("10.0.0.2"))), Some(&Some(u64::MAX)));
    assert_eq!(held.0.get(&(Set::Net4, key("10.1.0.0/24"))), Some(&None));
    assert!(kernel::parse("{}").is_err());
}

#[test]
fn only_elements_deleted_by_hand_from_a_table_still_there_are_pardoned() {
    use super::elements::MAX_TIMEOUT_MS;
    use super::kernel::KernelSet;
    use super::pardons::{removed_by_hand, settle_long};
    let t = target(&[("192.0.2.1", NOW + 90_000), ("192.0.2.2", NOW + 1_000)], &[], &[]);
    let shadow = Elements::wanted(&t, NOW - 10_000);
    let ends = t.ends();
    let mut kernel = kernel::Kernel { exists: true, owned: true, ..kernel::Kernel::default() };
    kernel.sets.insert(Set::Ban4, KernelSet { ours: true, ..KernelSet::default() });
    // 192.0.2.1 deleted by hand; 192.0.2.2 expired by the kernel.
    let gone = removed_by_hand(&shadow, &kernel, &ends, NOW, NOW - 10_000);
    assert_eq!(gone, vec![((Set::Ban4, key("192.0.2.1")), NOW + 90_000)]);
    // A flushed (missing) table or set, or someone else's table: none.
    let flushed = kernel::Kernel { exists: false, ..kernel.clone() };
    assert!(removed_by_hand(&shadow, &flushed, &ends, NOW, NOW - 10_000).is_empty());
    let no_set = kernel::Kernel { sets: Default::default(), ..kernel.clone() };
    assert!(removed_by_hand(&shadow, &no_set, &ends, NOW, NOW - 10_000).is_empty());
    // A ban longer than the cap: its capped timeout may have run out when
    // no reconcile re-asserted it for that long.
    let long = target(&[("192.0.2.3", NOW + 3 * MAX_TIMEOUT_MS)], &[], &[]);
    let want = Elements::wanted(&long, NOW);
    let later = NOW + MAX_TIMEOUT_MS + 10_000;
    assert!(removed_by_hand(&want, &kernel, &long.ends(), later, NOW).is_empty());
    assert_eq!(removed_by_hand(&want, &kernel, &long.ends(), later, later - 1_000).len(), 1);

    // And it is right while over half the cap is left.
    let element = (Set::Ban4, key("192.0.2.3"));
    let mut held = Elements([(element, Some(NOW + MAX_TIMEOUT_MS - 1_000))].into());
    settle_long(&mut held, &want, NOW);
    assert!(diff(&held, &want).is_empty(), "re-added on every reconcile");
    let mut held = Elements([(element, Some(NOW + MAX_TIMEOUT_MS / 3))].into());
    settle_long(&mut held, &want, NOW);
    assert_eq!(diff(&held, &want).len(), 1, "never re-asserted");
}
