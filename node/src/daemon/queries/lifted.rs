//! Which records of a `trace` lifted the decision: when an address is not
//! banned (or not allowed) because an Unban (Disallow) is greater than a
//! Ban (Allow) on its key that would still be live, that record decides the
//! address, and `trace` marks it so the operator sees who lifted it.

use std::cmp::Ordering;

use banmesh_crdt::{Kind, Record};

/// For each of `records` (their validity in `valid`), whether it is the
/// greatest valid Unban or Disallow on its key and lifts a valid Ban or
/// Allow on that key still live at `now`.
pub fn lifting(records: &[Record], valid: &[bool], now: u64) -> Vec<bool> {
    let counted = |i: usize| valid.get(i).copied().unwrap_or(false);
    (0..records.len())
        .map(|i| {
            let lift = &records[i];
            let target = match lift.kind() {
                Kind::Unban => Kind::Ban,
                Kind::Disallow => Kind::Allow,
                Kind::Ban | Kind::Allow => return false,
            };
            let same = |j: usize, kind: Kind| {
                counted(j) && records[j].key() == lift.key() && records[j].kind() == kind
            };
            let greatest = counted(i)
                && (0..records.len()).all(|j| {
                    !same(j, lift.kind()) || records[j].order_cmp(lift) != Ordering::Greater
                });
            greatest
                && (0..records.len()).any(|j| {
                    same(j, target)
                        && records[j].order_cmp(lift) == Ordering::Less
                        && records[j].statement().expires_at.is_none_or(|end| end > now)
                })
        })
        .collect()
}
