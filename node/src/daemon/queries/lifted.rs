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

#[cfg(test)]
mod tests {
    use banmesh_crdt::{Hlc, Key, Metadata, Origin, Statement};
    use banmesh_keys::{SecretKey, sign_record};

    use super::*;

    fn record(secret: &SecretKey, kind: Kind, at: u64, ttl: Option<u64>) -> Record {
        let statement = Statement {
            key: Key::parse("192.0.2.1").expect("ip").key,
            kind,
            issued_at: Hlc::from_millis(at),
            expires_at: ttl.map(|t| at + t),
            strikes: u32::from(kind == Kind::Ban),
            meta: Metadata::default(),
            origin: Origin::default(),
        };
        sign_record(secret, statement)
    }

    #[test]
    fn the_greatest_valid_unban_over_a_live_ban_lifts_it() {
        let (a, b) = (SecretKey::generate().expect("key"), SecretKey::generate().expect("key"));
        let ban = record(&a, Kind::Ban, 1_000, Some(10_000));
        let old_unban = record(&b, Kind::Unban, 2_000, None);
        let unban = record(&b, Kind::Unban, 3_000, None);
        let records = [ban.clone(), old_unban.clone(), unban.clone()];
        assert_eq!(lifting(&records, &[true; 3], 5_000), [false, false, true]);
        // The ban has ended by itself: nothing was lifted.
        assert_eq!(lifting(&records, &[true; 3], 20_000), [false; 3]);
        // A void (revoked) unban lifts nothing; the older valid one does.
        assert_eq!(lifting(&records, &[true, true, false], 5_000), [false, true, false]);
        // An unban older than the ban lifts nothing.
        assert_eq!(
            lifting(&[old_unban, record(&a, Kind::Ban, 2_500, None)], &[true; 2], 5_000),
            [false; 2]
        );
    }
}
