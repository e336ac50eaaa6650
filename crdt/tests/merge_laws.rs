//! Property tests of the crdt: the merge laws, order independence against a
//! reference model over the full history, GC safety, the digest, and the
//! strictness of the wire encoding.

mod common;

use banmesh_crdt::state::KeySummary;
use banmesh_crdt::{Decision, Key, Kind, Record, State};
use common::*;
use proptest::prelude::*;

fn merged(a: &State, b: &State) -> State {
    let mut m = a.clone();
    m.merge(b);
    m
}

/// Decisions straight from the definition over a multiset of records, with
/// no state: on each key, a Ban counts iff it is its origin's greatest Ban on
/// that key, it is greater than every Unban on the key, and it is unexpired.
fn reference(history: &[Record], addr: std::net::IpAddr, t: u64) -> Decision {
    // The live record of kind `on` with the latest expiry on `key` at `t`.
    let live = |key: Key, on: Kind, off: Kind| -> Option<(u64, u32)> {
        let on_key: Vec<&Record> = history.iter().filter(|r| r.key() == key).collect();
        let mut best: Option<(u64, &Record)> = None;
        for r in on_key.iter().filter(|r| r.kind() == on) {
            let superseded = on_key
                .iter()
                .any(|o| o.kind() == on && o.origin() == r.origin() && o.order_cmp(r).is_gt());
            let lifted = on_key.iter().any(|o| o.kind() == off && o.order_cmp(r).is_gt());
            let until = r.statement().expires_at.unwrap_or(0);
            if superseded || lifted || until <= t {
                continue;
            }
            let better =
                best.is_none_or(|(bu, b)| until > bu || (until == bu && r.order_cmp(b).is_gt()));
            if better {
                best = Some((until, r));
            }
        }
        best.map(|(until, r)| (until, r.statement().strikes))
    };
    // Allow wins over ban; the longest one decides; on a tie, the narrowest key.
    let mut allowed: Option<(Key, u64)> = None;
    let mut banned: Option<(Key, u64, u32)> = None;
    for key in Key::covering(addr) {
        if let Some((until, _)) = live(key, Kind::Allow, Kind::Disallow)
            && allowed.is_none_or(|(_, u)| until > u)
        {
            allowed = Some((key, until));
        }
        if let Some((until, strikes)) = live(key, Kind::Ban, Kind::Unban)
            && banned.is_none_or(|(_, u, _)| until > u)
        {
            banned = Some((key, until, strikes));
        }
    }
    match (allowed, banned) {
        (Some((key, until_ms)), _) => Decision::Allowed { key, until_ms },
        (None, Some((key, until_ms, strikes))) => Decision::Banned { key, until_ms, strikes },
        (None, None) => Decision::Free,
    }
}

fn decisions(s: &State, from: u64) -> Vec<Decision> {
    let mut out = Vec::new();
    for a in addrs() {
        for t in from..=HORIZON_MS {
            out.push(s.decision(a, t));
        }
    }
    out
}

fn config() -> ProptestConfig {
    // Bounded so the whole suite stays fast on 2 cores; raise with
    // PROPTEST_CASES for a longer local run.
    ProptestConfig { cases: 256, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn merge_is_commutative(a in prop::collection::vec(arb_record(), 0..30),
                            b in prop::collection::vec(arb_record(), 0..30)) {
        let (a, b) = (state_of(&a), state_of(&b));
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
    }

    #[test]
    fn merge_is_associative(a in prop::collection::vec(arb_record(), 0..20),
                            b in prop::collection::vec(arb_record(), 0..20),
                            c in prop::collection::vec(arb_record(), 0..20)) {
        let (a, b, c) = (state_of(&a), state_of(&b), state_of(&c));
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
    }

    #[test]
    fn merge_is_idempotent(a in prop::collection::vec(arb_record(), 0..30)) {
        let a = state_of(&a);
        prop_assert_eq!(merged(&a, &a), a.clone());
    }

    #[test]
    fn any_permutation_with_duplicates_gives_one_state_and_the_reference_decisions(
        (records, picks) in prop::collection::vec(arb_record(), 1..40).prop_flat_map(|v| {
            let n = v.len();
            (Just(v), prop::collection::vec(0..n, 0..80))
        }),
        seed in any::<u64>(),
    ) {
        // The delivered multiset: every record once, plus duplicates, shuffled.
        let mut delivered: Vec<Record> = records.clone();
        delivered.extend(picks.iter().map(|&i| records[i].clone()));
        shuffle(&mut delivered, seed);
        let in_order = state_of(&records);
        let shuffled = state_of(&delivered);
        prop_assert_eq!(&in_order, &shuffled);
        for a in addrs() {
            for t in 0..=HORIZON_MS {
                prop_assert_eq!(shuffled.decision(a, t), reference(&records, a, t), "{} at {}", a, t);
            }
        }
    }

    #[test]
    fn a_key_summary_decides_like_the_records_at_every_time(
        records in prop::collection::vec(arb_record(), 0..30),
    ) {
        let state = state_of(&records);
        for key in KEYS.iter().map(|k| k.parse::<Key>().expect("pool key")) {
            let summary = KeySummary::of(state.on_key(key));
            for t in 0..=HORIZON_MS {
                let d = state.key_decision(key, t);
                prop_assert_eq!(summary.banned_at(t), d.banned.map(|b| (b.until_ms, b.strikes)));
                prop_assert_eq!(summary.allowed_at(t), d.allowed.map(|a| a.until_ms));
                prop_assert_eq!(summary.is_spent(t), d.banned.is_none() && d.allowed.is_none());
            }
        }
    }

    #[test]
    fn gc_then_late_delivery_changes_no_decision(
        records in prop::collection::vec(arb_record(), 0..40),
        gc_at in 0..HORIZON_MS,
        late_mask in any::<u64>(),
    ) {
        let before = state_of(&records);
        let mut after = before.clone();
        let collected = after.gc(gc_at, &PARAMS);
        for (i, r) in collected.iter().enumerate() {
            if late_mask >> (i % 64) & 1 == 1 {
                after.insert(r.clone());
            }
        }
        prop_assert_eq!(decisions(&after, gc_at), decisions(&before, gc_at));
    }

    #[test]
    fn digests_are_equal_exactly_when_states_are(
        a in prop::collection::vec(arb_record(), 0..20),
        b in prop::collection::vec(arb_record(), 0..20),
        seed in any::<u64>(),
    ) {
        let sa = state_of(&a);
        let mut a2 = a.clone();
        shuffle(&mut a2, seed);
        prop_assert_eq!(sa.digest(0, &PARAMS), state_of(&a2).digest(0, &PARAMS));
        let sb = state_of(&b);
        prop_assert_eq!(sa == sb, sa.digest(0, &PARAMS) == sb.digest(0, &PARAMS));
    }

    #[test]
    fn encoding_round_trips(r in arb_record()) {
        prop_assert_eq!(Record::decode(&r.encode()), Ok(r));
    }

    #[test]
    fn decoding_garbage_never_panics_and_accepts_only_canonical_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        if let Ok(r) = Record::decode(&bytes) {
            prop_assert_eq!(r.encode(), bytes);
        }
    }

    #[test]
    fn any_single_byte_change_is_refused_or_changes_the_record(
        r in arb_record(), pos in any::<usize>(), xor in 1..=255u8,
    ) {
        let mut bytes = r.encode();
        let i = pos % bytes.len();
        bytes[i] ^= xor;
        if let Ok(other) = Record::decode(&bytes) {
            prop_assert!(other != r);
            prop_assert!(other.id() != r.id() || other.signature() != r.signature());
        }
    }
}

/// A seeded Fisher–Yates shuffle (splitmix64), so failures replay exactly.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        v.swap(i, (z % (i as u64 + 1)) as usize);
    }
}
