//! Building the index at start from the store's summary columns, fast:
//! one scan of the records in key order reading only key, origin, kind,
//! expiry and strikes, no record decoded and no id hashed. A key holding
//! one counted record (the bulk of a large set) is summarised from those
//! columns by [`lone_summary`]; a key holding several is read back as full
//! records and summarised by the CRDT's own rule (`KeySummary::of`).
//! `banmesh store check` builds the index both ways and compares them.

use std::collections::HashSet;
use std::path::Path;

use banmesh_crdt::{Key, KeySummary, Kind};
use rusqlite::Connection;

use super::query::{fail, records_on_keys};
use super::rows::from_sql;
use super::{Index, StoreError};

/// One row of the scan: the columns a lone record's summary needs.
struct Lean {
    origin: i64,
    kind: i64,
    expires_at: Option<i64>,
    strikes: i64,
}

/// What a key holding exactly `record` decides: the same as
/// `KeySummary::of` over that one record (a Ban or an Allow stands, nothing
/// lifting it, while its expiry is after 0; an Unban or a Disallow alone
/// decides nothing). `store_tests` checks the two agree.
pub fn lone_summary(kind: Kind, expires_at: Option<u64>, strikes: u32) -> KeySummary {
    let until = expires_at.unwrap_or(0);
    match kind {
        Kind::Ban if until > 0 => KeySummary { ban_until_ms: until, strikes, allow_until_ms: 0 },
        Kind::Allow if until > 0 => KeySummary { allow_until_ms: until, ..KeySummary::default() },
        _ => KeySummary::default(),
    }
}

fn damaged(path: &Path, detail: impl ToString) -> StoreError {
    StoreError::Damaged { path: path.to_owned(), detail: detail.to_string() }
}

/// The index of every key that decides something at `now_ms` or later,
/// leaving out the records of `revoked` origins (by `origins.id`);
/// `summary` summarises a key's full records (revoked ones left out).
pub fn build_index(
    conn: &Connection,
    path: &Path,
    revoked: &HashSet<i64>,
    now_ms: u64,
    summary: impl Fn(&[banmesh_crdt::Record]) -> KeySummary,
) -> Result<Index, StoreError> {
    let mut stmt = conn
        .prepare("SELECT key, origin, kind, expires_at, strikes FROM records ORDER BY key")
        .map_err(fail(path))?;
    let mut rows = stmt.query([]).map_err(fail(path))?;
    let mut entries = Vec::new();
    let mut key_bytes: Vec<u8> = Vec::new();
    let mut group: Vec<Lean> = Vec::new();
    let mut flush = |key_bytes: &[u8], group: &mut Vec<Lean>| -> Result<(), StoreError> {
        group.retain(|r| !revoked.contains(&r.origin));
        let summary = match group.as_slice() {
            [] => KeySummary::default(),
            [lone] => {
                let byte = u8::try_from(lone.kind).unwrap_or(0);
                let kind = Kind::from_byte(byte).map_err(|e| damaged(path, e))?;
                let strikes = u32::try_from(lone.strikes).map_err(|e| damaged(path, e))?;
                lone_summary(kind, lone.expires_at.map(from_sql), strikes)
            }
            _ => {
                let key = Key::from_bytes(key_bytes).map_err(|e| damaged(path, e))?;
                summary(&records_on_keys(conn, path, &[key])?)
            }
        };
        group.clear();
        if !summary.is_spent(now_ms) {
            entries.push((Key::from_bytes(key_bytes).map_err(|e| damaged(path, e))?, summary));
        }
        Ok(())
    };
    while let Some(row) = rows.next().map_err(fail(path))? {
        let key = row.get_ref(0).map_err(fail(path))?.as_blob().map_err(|e| damaged(path, e))?;
        if key != key_bytes.as_slice() {
            if !group.is_empty() {
                flush(&key_bytes, &mut group)?;
            }
            key_bytes.clear();
            key_bytes.extend_from_slice(key);
        }
        let lean = Lean {
            origin: row.get(1).map_err(fail(path))?,
            kind: row.get(2).map_err(fail(path))?,
            expires_at: row.get(3).map_err(fail(path))?,
            strikes: row.get(4).map_err(fail(path))?,
        };
        group.push(lean);
    }
    if !group.is_empty() {
        flush(&key_bytes, &mut group)?;
    }
    Ok(Index::from_entries(entries))
}

#[cfg(test)]
mod tests {
    use banmesh_crdt::{Hlc, Metadata, Origin, Params, Statement};
    use banmesh_keys::{Revocation, SecretKey, sign_record};

    use super::*;
    use crate::store::Db;
    use crate::test_rng::Rng;

    const T0: u64 = 1_800_000_000_000;

    fn record(
        signer: &SecretKey,
        kind: Kind,
        key: &str,
        at: u64,
        expires: Option<u64>,
    ) -> banmesh_crdt::Record {
        let statement = Statement {
            key: key.parse().unwrap(),
            kind,
            issued_at: Hlc::from_millis(at),
            expires_at: expires,
            strikes: u32::from(kind == Kind::Ban) * 3,
            meta: Metadata::default(),
            origin: Origin::default(),
        };
        sign_record(signer, statement)
    }

    #[test]
    fn a_lone_record_is_summarised_as_the_crdt_does() {
        let signer = SecretKey::generate().unwrap();
        for kind in Kind::ALL {
            for expires in [None, Some(0), Some(1), Some(T0 + 5)] {
                let r = record(&signer, kind, "10.0.0.1", T0, expires);
                let s = r.statement();
                let lone = lone_summary(s.kind, s.expires_at, s.strikes);
                assert_eq!(lone, KeySummary::of([&r]), "{kind:?} expiring {expires:?}");
            }
        }
    }

    /// Random records, most keys holding one and some several, from three
    /// origins one of which is revoked: the index from the columns is the
    /// index from the decoded records.
    #[test]
    fn the_index_from_the_columns_is_the_index_from_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("banmesh.db"), Params::default()).unwrap();
        let signers: Vec<SecretKey> = (0..3).map(|_| SecretKey::generate().unwrap()).collect();
        let mut rng = Rng(7);
        let records = (0..2_000)
            .map(|_| {
                let kind = *rng.pick(&Kind::ALL);
                let key = match rng.below(4) {
                    0 => format!("10.1.0.{}", rng.below(20)),
                    1 => format!("2001:db8::{:x}", rng.below(2_000)),
                    _ => format!("10.2.{}.{}", rng.below(8), rng.below(256)),
                };
                let at = T0 + rng.below(600_000);
                let expires = kind.expires().then(|| at + 1 + rng.below(900_000));
                record(rng.pick(&signers), kind, &key, at, expires)
            })
            .collect();
        let applied = db.apply(records, T0).unwrap();
        assert!(applied.new.len() > 1_000, "{} stored", applied.new.len());
        let cluster = SecretKey::generate().unwrap();
        let revocation = Revocation::issue(&cluster, signers[2].public(), T0, "gone").unwrap();
        for revoked in [false, true] {
            if revoked {
                db.add_revocation(&revocation).unwrap();
            }
            for now in [T0, T0 + 400_000, T0 + 1_200_000] {
                let fast = db.build_index(now).unwrap();
                assert!(fast.len() > 10, "{} keys", fast.len());
                assert!(fast.same_as(&db.build_index_full(now).unwrap()), "at {now}, {revoked}");
            }
        }
    }
}
