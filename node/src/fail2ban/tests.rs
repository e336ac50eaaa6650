//! Unit tests of the applier's pure parts: its warnings, and when
//! reconcile counts a Fail2Ban ban as already published (what the mesh jail
//! should hold is `enforce`'s, tested there).

use banmesh_crdt::{Kind, Origin, Record};

use super::client::Ticket;
use super::reconcile::known;
use super::*;
use crate::enforce::tests::{key, record};

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

#[test]
fn a_split_beyond_the_cap_is_warned_about() {
    let status =
        ApplierStatus { too_wide: vec!["2001:db8::/32".into()], ..ApplierStatus::default() };
    assert!(status.warnings()[0].contains("2001:db8::/32"), "{:?}", status.warnings());
}
