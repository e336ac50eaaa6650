//! Reads of the replicated set for anti-entropy (DESIGN.md "Catch-up"),
//! each row handed over as it is read so a million-item set is never held
//! twice: the items negentropy orders, whether the node holds any live
//! record, how many, and the items a peer asked for by (timestamp, id).

use std::path::Path;

use banmesh_crdt::{Hlc, Params, Record};
use rusqlite::Connection;

use super::StoreError;
use super::query::{ItemKind, SyncItem, fail, select_records};
use super::rows::{blob32, from_sql, to_sql};

/// Live records whose origin is not revoked, at the floor `?1`.
const LIVE: &str = "end_ms > ?1
     AND origin NOT IN (SELECT o.id FROM origins o JOIN revocations v ON v.node = o.key)";

fn floor(horizon_ms: u64, params: &Params) -> i64 {
    to_sql(set_floor(horizon_ms, params))
}

/// The set at `horizon_ms` holds the records whose `end_ms` is past this.
pub fn set_floor(horizon_ms: u64, params: &Params) -> u64 {
    horizon_ms.saturating_sub(params.retention_ms)
}

/// Calls `f` with every item of the set at `horizon_ms` (see
/// [`super::query::sync_items`]): records, then certificates, then
/// revocations, without collecting them.
pub fn each_sync_item(
    conn: &Connection,
    path: &Path,
    horizon_ms: u64,
    params: &Params,
    mut f: impl FnMut(SyncItem),
) -> Result<(), StoreError> {
    each_sync_entry(conn, path, horizon_ms, params, |item, _| f(item))
}

/// [`each_sync_item`], each item with the `end_ms` it leaves the set by (it
/// is in the set at horizon H while `end_ms > H - retention`;
/// [`u64::MAX`] for certificates and revocations, which never leave).
pub fn each_sync_entry(
    conn: &Connection,
    path: &Path,
    horizon_ms: u64,
    params: &Params,
    mut f: impl FnMut(SyncItem, u64),
) -> Result<(), StoreError> {
    let damaged = |e: &dyn std::fmt::Display| StoreError::Damaged {
        path: path.to_owned(),
        detail: e.to_string(),
    };
    let mut each = |sql: &str, args: &[i64], kind: ItemKind, millis: bool| {
        let mut stmt = conn.prepare_cached(sql).map_err(fail(path))?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args)).map_err(fail(path))?;
        while let Some(row) = rows.next().map_err(fail(path))? {
            let at: i64 = row.get(0).map_err(fail(path))?;
            let at = if millis { Hlc::from_millis(from_sql(at)).0 } else { from_sql(at) };
            let id = row.get_ref(1).map_err(fail(path))?.as_blob().map_err(|e| damaged(&e))?;
            let id = blob32(id).map_err(|e| damaged(&e))?;
            let end: i64 = row.get(2).map_err(fail(path))?;
            let end = if end < 0 { u64::MAX } else { from_sql(end) };
            f(SyncItem { at, id, kind }, end);
        }
        Ok::<(), StoreError>(())
    };
    let floor = floor(horizon_ms, params);
    each(
        &format!("SELECT issued_at, id, end_ms FROM records WHERE {LIVE}"),
        &[floor],
        ItemKind::Record,
        false,
    )?;
    each("SELECT not_before, id, -1 FROM certificates", &[], ItemKind::Certificate, true)?;
    each("SELECT issued_at, id, -1 FROM revocations", &[], ItemKind::Revocation, true)
}

/// Whether the set at `horizon_ms` holds any record: a node without one is
/// streamed the whole set rather than reconciled.
pub fn has_records(
    conn: &Connection,
    path: &Path,
    horizon_ms: u64,
    params: &Params,
) -> Result<bool, StoreError> {
    let sql = format!("SELECT EXISTS (SELECT 1 FROM records WHERE {LIVE})");
    conn.query_row(&sql, [floor(horizon_ms, params)], |r| r.get(0)).map_err(fail(path))
}

/// How many records the set at `horizon_ms` holds (a stream's total).
pub fn count_records(
    conn: &Connection,
    path: &Path,
    horizon_ms: u64,
    params: &Params,
) -> Result<u64, StoreError> {
    let sql = format!("SELECT count(*) FROM records WHERE {LIVE}");
    conn.query_row(&sql, [floor(horizon_ms, params)], |r| r.get::<_, i64>(0))
        .map(from_sql)
        .map_err(fail(path))
}

/// Records, certificate bodies and revocation bodies, as fetched.
pub type FetchedItems = (Vec<Record>, Vec<Vec<u8>>, Vec<Vec<u8>>);

/// The stored items named by (timestamp, id): a record found through the
/// `records_items` index, else a certificate or revocation by id. Items no
/// longer stored are left out.
pub fn fetch_items(
    conn: &Connection,
    path: &Path,
    items: &[(u64, [u8; 32])],
) -> Result<FetchedItems, StoreError> {
    let (mut records, mut certs, mut revocations) = (Vec::new(), Vec::new(), Vec::new());
    for (at, id) in items {
        let found = select_records(
            conn,
            path,
            "r.issued_at = ?1 AND r.id = ?2",
            rusqlite::params![to_sql(*at), &id[..]],
        )?;
        if !found.is_empty() {
            records.extend(found);
            continue;
        }
        for (table, out) in [("certificates", &mut certs), ("revocations", &mut revocations)] {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT body FROM {table} WHERE id = ?1"))
                .map_err(fail(path))?;
            let bodies: Vec<Vec<u8>> = stmt
                .query_map([&id[..]], |r| r.get(0))
                .and_then(|r| r.collect())
                .map_err(fail(path))?;
            out.extend(bodies);
        }
    }
    Ok((records, certs, revocations))
}
