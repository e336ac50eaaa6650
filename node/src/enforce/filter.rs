//! `apply_jails`: which mesh bans this node applies, by the `jail` their
//! records name. A key applies while some live Ban on it, greater than
//! every Unban on it, names a listed jail or no jail at all (an operator's
//! `banmesh ban`, the gateway); an empty list applies every ban. The answer
//! per key is read again whenever a record on the key arrives (the enforce
//! task follows the store's events), never per round.

use std::collections::HashMap;

use banmesh_crdt::{Key, KeySlots, Kind, Record};

use crate::store::{Store, StoreError, query};

/// Keys per query.
const CHUNK: usize = 500;

/// Until when a ban from an applied jail holds on each of `keys` (Unix ms,
/// 0 for none), read from their records.
pub(super) async fn read_applied(
    store: &Store,
    keys: &[Key],
    jails: &[String],
) -> Result<HashMap<Key, u64>, StoreError> {
    let mut out = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(CHUNK) {
        let keys: Vec<Key> = chunk.to_vec();
        let records = store.read(move |c, p| query::counted_records_on_keys(c, p, &keys)).await?;
        for key in chunk {
            let on_key = records.iter().filter(|r| r.key() == *key);
            out.insert(*key, applied_until(on_key, jails));
        }
    }
    Ok(out)
}

/// Until when a Ban from an applied jail (or from no jail) holds among
/// `records` (one key's), ignoring bans an Unban on the key lifts; 0 for none.
pub(super) fn applied_until<'a>(
    records: impl Iterator<Item = &'a Record> + Clone,
    jails: &[String],
) -> u64 {
    KeySlots::new(records)
        .standing(Kind::Ban)
        .filter(|r| {
            let jail = &r.statement().meta.jail;
            jail.is_empty() || jails.iter().any(|j| j == jail)
        })
        .filter_map(|r| r.statement().expires_at)
        .max()
        .unwrap_or(0)
}
