//! The lifecycle at explicit times: ban, allow, expiry into allowed then
//! known then gone, unban, revoked-free inputs, CIDR-free keys.

use banmesh_crdt::{Hlc, Key, Kind, Metadata, Origin, Record, Statement};

use super::*;

const W: Windows = Windows { allowed_ms: 2_000, known_ms: 4_000 };

fn record(kind: Kind, at: u64, until: Option<u64>, strikes: u32, origin: u8) -> Record {
    let statement = Statement {
        key: "192.0.2.7".parse::<Key>().unwrap(),
        kind,
        issued_at: Hlc::from_millis(at),
        expires_at: until,
        strikes,
        meta: Metadata {
            jail: format!("jail{strikes}"),
            reason: String::new(),
            source: String::new(),
        },
        origin: Origin([origin; 32]),
    };
    Record::new(statement, [0; 64])
}

fn ban(at: u64, until: u64, strikes: u32) -> Record {
    record(Kind::Ban, at, Some(until), strikes, 1)
}

fn status(records: &[Record], now: u64) -> Option<Status> {
    derive(records, now, W).map(|l| l.status)
}

#[test]
fn a_ban_runs_through_blocked_allowed_known_and_gone() {
    let records = [ban(1_000, 11_000, 1)];
    assert_eq!(status(&records, 500), Some(Status::Blocked), "issued in the future still blocks");
    let l = derive(&records, 5_000, W).unwrap();
    assert_eq!(l.status, Status::Blocked);
    assert_eq!(l.ban_end_ms, Some(11_000));
    assert_eq!(l.allowed_since_ms, None);
    assert_eq!(l.block_count(), 1);
    assert_eq!(l.next_change_ms, Some(11_000));
    let l = derive(&records, 11_000, W).unwrap();
    assert_eq!(l.status, Status::Allowed);
    assert!(!l.explicit_allow);
    assert_eq!(l.allowed_since_ms, Some(11_000));
    assert_eq!(l.next_change_ms, Some(13_000));
    let l = derive(&records, 13_000, W).unwrap();
    assert_eq!(l.status, Status::Known);
    assert_eq!(l.next_change_ms, Some(15_000));
    assert_eq!(status(&records, 14_999), Some(Status::Known));
    assert_eq!(status(&records, 15_000), None);
}

#[test]
fn allow_ip_is_an_unban_and_an_allow() {
    let records = [
        ban(1_000, 100_000, 2),
        record(Kind::Unban, 5_000, None, 0, 2),
        record(Kind::Allow, 5_001, Some(7_001), 0, 2),
    ];
    let l = derive(&records, 6_000, W).unwrap();
    assert_eq!(l.status, Status::Allowed);
    assert!(l.explicit_allow);
    assert_eq!(l.ban_end_ms, Some(5_000));
    assert_eq!(l.allowed_since_ms, Some(5_001));
    assert_eq!(l.block_count(), 2, "the lifted ban's strikes carry on");
    assert_eq!(l.next_change_ms, Some(7_000));
    assert_eq!(status(&records, 7_001), Some(Status::Known));
    assert_eq!(status(&records, 9_000), None);
}

#[test]
fn a_live_allow_wins_over_a_live_ban() {
    let records = [ban(1_000, 100_000, 1), record(Kind::Allow, 2_000, Some(3_000), 0, 2)];
    assert_eq!(status(&records, 2_500), Some(Status::Allowed));
    let l = derive(&records, 2_500, W).unwrap();
    assert!(l.explicit_allow);
    assert_eq!(l.next_change_ms, Some(3_000));
    assert_eq!(status(&records, 3_000), Some(Status::Blocked));
}

#[test]
fn a_newer_ban_after_an_unban_blocks_again() {
    let records = [
        ban(1_000, 100_000, 1),
        record(Kind::Unban, 2_000, None, 0, 2),
        record(Kind::Ban, 3_000, Some(50_000), 2, 2),
    ];
    let l = derive(&records, 4_000, W).unwrap();
    assert_eq!(l.status, Status::Blocked);
    assert_eq!(l.ban_end_ms, Some(50_000), "the lifted five-week ban no longer counts");
    assert_eq!(l.block_count(), 2);
}

#[test]
fn the_longest_standing_ban_decides() {
    let records = [ban(1_000, 90_000, 3), record(Kind::Ban, 2_000, Some(20_000), 1, 2)];
    let l = derive(&records, 10_000, W).unwrap();
    assert_eq!(l.ban_end_ms, Some(90_000));
    assert_eq!(l.block_count(), 3);
    assert_eq!(l.ban.unwrap().statement().meta.jail, "jail3");
}

#[test]
fn an_unban_after_the_natural_end_does_not_extend_it() {
    let records = [ban(1_000, 2_000, 1), record(Kind::Unban, 10_000, None, 0, 2)];
    assert_eq!(derive(&records, 3_000, W).unwrap().ban_end_ms, Some(2_000));
    assert_eq!(status(&records, 6_000), None);
}

#[test]
fn an_allow_alone_is_allowed_until_it_ends_then_gone() {
    let records = [record(Kind::Allow, 1_000, Some(5_000), 0, 1)];
    let l = derive(&records, 2_000, W).unwrap();
    assert_eq!(l.status, Status::Allowed);
    assert_eq!(l.ban_end_ms, None);
    assert_eq!(l.block_count(), 0);
    assert_eq!(status(&records, 5_000), None);
    let disallowed = [records[0].clone(), record(Kind::Disallow, 1_500, None, 0, 2)];
    assert_eq!(status(&disallowed, 2_000), None);
}

#[test]
fn nothing_and_an_unban_alone_are_not_listed() {
    assert_eq!(status(&[], 0), None);
    assert_eq!(status(&[record(Kind::Unban, 1_000, None, 0, 1)], 1_000), None);
}

/// splitmix64, for the seeded comparison below.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn the_lifecycle_agrees_with_the_crdt_key_slots_on_random_records() {
    for seed in 0..500u64 {
        let mut state = seed;
        let mut records: Vec<Record> = Vec::new();
        for _ in 0..next(&mut state) % 7 {
            let kind = Kind::ALL[usize::try_from(next(&mut state) % 4).unwrap()];
            let at = 1_000 + next(&mut state) % 5_000;
            let until = kind.expires().then(|| at + next(&mut state) % 8_000);
            let origin = u8::try_from(next(&mut state) % 3).unwrap();
            let strikes = u32::try_from(next(&mut state) % 3).unwrap();
            let r = record(kind, at, until, strikes, origin);
            banmesh_crdt::slots::merge_into(&mut records, r);
        }
        // After every issue: the lifecycle places an Unban in time (a ban
        // lifted by one issued later still blocks until then), the slots do not.
        let now = 6_000 + next(&mut state) % 14_000;
        let decision = banmesh_crdt::KeySlots::new(&records).decision(now);
        let l = derive(&records, now, W);
        let blocked = l.as_ref().is_some_and(|l| l.status == Status::Blocked);
        let explicit = l.as_ref().is_some_and(|l| l.explicit_allow);
        assert_eq!(blocked, decision.banned.is_some() && decision.allowed.is_none(), "seed {seed}");
        assert_eq!(explicit, decision.allowed.is_some(), "seed {seed}");
        if blocked && let Some(l) = &l {
            assert_eq!(l.ban_end_ms, decision.banned.map(|b| b.until_ms), "seed {seed}");
        }
    }
}
