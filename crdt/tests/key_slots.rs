//! Property tests of [`KeySlots`], the one definition of a key's state,
//! against the decision functions (`decide_key`) and against the
//! definition over the full history: which records stand, which are lifted,
//! which hold at each time, and the list merge against the state's.

mod common;

use banmesh_crdt::slots::{lifted_by, merge_into};
use banmesh_crdt::state::decide_key;
use banmesh_crdt::{Key, KeySlots, Kind, Record};
use common::*;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, ..ProptestConfig::default() }
}

fn keys() -> Vec<Key> {
    KEYS.iter().map(|k| k.parse().expect("pool key")).collect()
}

/// Whether `r` is lifted by the definition: some record of the lifting kind
/// on its key, anywhere in the history, is greater.
fn lifted_in(history: &[Record], r: &Record) -> bool {
    lifted_by(r.kind()).is_some_and(|off| {
        history.iter().any(|o| o.key() == r.key() && o.kind() == off && o.order_cmp(r).is_gt())
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn key_slots_decide_like_decide_key_at_every_time(
        records in prop::collection::vec(arb_record(), 0..40),
    ) {
        let state = state_of(&records);
        for key in keys() {
            let slots = KeySlots::new(state.on_key(key));
            for t in 0..=HORIZON_MS {
                prop_assert_eq!(slots.decision(t), decide_key(state.on_key(key), t), "{} at {}", key, t);
            }
        }
    }

    #[test]
    fn key_slots_agree_with_the_full_history(
        records in prop::collection::vec(arb_record(), 0..40),
    ) {
        let state = state_of(&records);
        for key in keys() {
            let slots = KeySlots::new(state.on_key(key));
            for r in state.on_key(key) {
                prop_assert_eq!(slots.is_lifted(r), lifted_in(&records, r), "{:?}", r);
            }
            for kind in [Kind::Ban, Kind::Allow] {
                for t in 0..=HORIZON_MS {
                    // Live: its origin's greatest of its kind, not lifted, unexpired.
                    let mut want: Vec<&Record> = records
                        .iter()
                        .filter(|r| r.key() == key && r.kind() == kind)
                        .filter(|r| !records.iter().any(|o| {
                            o.key() == key && o.kind() == kind && o.origin() == r.origin()
                                && o.order_cmp(r).is_gt()
                        }))
                        .filter(|r| !lifted_in(&records, r))
                        .filter(|r| r.statement().expires_at.is_some_and(|e| e > t))
                        .collect();
                    let mut got: Vec<&Record> = slots.live(kind, t).collect();
                    want.sort_by(|a, b| a.order_cmp(b));
                    want.dedup_by(|a, b| a.order_cmp(b).is_eq());
                    got.sort_by(|a, b| a.order_cmp(b));
                    prop_assert_eq!(got, want, "{} {} at {}", key, kind, t);
                }
            }
        }
    }

    #[test]
    fn merging_into_a_list_keeps_what_the_state_keeps(
        records in prop::collection::vec(arb_record(), 0..40),
    ) {
        let state = state_of(&records);
        let mut lists: std::collections::HashMap<Key, Vec<Record>> = Default::default();
        let mut model = banmesh_crdt::State::new();
        for r in &records {
            let changed = merge_into(lists.entry(r.key()).or_default(), r.clone());
            prop_assert_eq!(changed, model.insert(r.clone()));
        }
        for key in keys() {
            let mut got = lists.remove(&key).unwrap_or_default();
            got.sort_by(|a, b| a.order_cmp(b));
            let mut want: Vec<Record> = state.on_key(key).cloned().collect();
            want.sort_by(|a, b| a.order_cmp(b));
            prop_assert_eq!(got, want);
        }
    }
}
