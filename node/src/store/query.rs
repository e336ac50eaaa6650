//! Read queries over a store connection (a reader's, or the writer's when it
//! must see its own last commit): records by key and covering networks, by
//! origin, counts, the clock's high-water marks and the state digest.

use std::net::IpAddr;
use std::path::Path;

use banmesh_crdt::state::{decide_address, digest_items};
use banmesh_crdt::{Decision, Hlc, Id, Key, KeySummary, Kind, Origin, Params, Record};
use rusqlite::{Connection, params_from_iter};

use super::StoreError;
use super::rows::{
    RECORD_COLUMNS, RECORD_FROM, RowError, blob32, from_sql, record_from_row, to_sql,
};
use super::schema::classify;

/// Rows of origins the cluster revoked are left out of every decision.
const NOT_REVOKED: &str = "o.key NOT IN (SELECT node FROM revocations)";

pub(super) fn fail(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| classify(path, e)
}

pub(super) fn select_records(
    conn: &Connection,
    path: &Path,
    condition: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<Record>, StoreError> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM {RECORD_FROM} WHERE {condition}");
    let mut stmt = conn.prepare_cached(&sql).map_err(fail(path))?;
    let mut rows = stmt.query(args).map_err(fail(path))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(fail(path))? {
        out.push(record_from_row(row).map_err(|e| match e {
            RowError::Sqlite(e) => classify(path, e),
            RowError::Invalid(e) => {
                StoreError::Damaged { path: path.to_owned(), detail: e.to_string() }
            }
        })?);
    }
    Ok(out)
}

/// Every record on exactly these keys, revoked origins included.
pub fn records_on_keys(
    conn: &Connection,
    path: &Path,
    keys: &[Key],
) -> Result<Vec<Record>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; keys.len()].join(",");
    let blobs = keys.iter().map(Key::to_bytes);
    select_records(conn, path, &format!("r.key IN ({marks})"), params_from_iter(blobs))
}

/// Every record on exactly these keys whose origin is not revoked: the
/// records decisions count.
pub fn counted_records_on_keys(
    conn: &Connection,
    path: &Path,
    keys: &[Key],
) -> Result<Vec<Record>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; keys.len()].join(",");
    let blobs = keys.iter().map(Key::to_bytes);
    select_records(
        conn,
        path,
        &format!("r.key IN ({marks}) AND {NOT_REVOKED}"),
        params_from_iter(blobs),
    )
}

/// Every key that covers `key`: itself and every wider network holding it.
pub fn covering_keys(key: Key) -> Vec<Key> {
    Key::covering(key.net().network()).filter(|k| k.prefix_len() <= key.prefix_len()).collect()
}

/// Every record on `key` and on every network covering it (for `trace`).
pub fn records_covering(
    conn: &Connection,
    path: &Path,
    key: Key,
) -> Result<Vec<Record>, StoreError> {
    records_on_keys(conn, path, &covering_keys(key))
}

/// Every record an origin issued.
pub fn records_by_origin(
    conn: &Connection,
    path: &Path,
    origin: Origin,
) -> Result<Vec<Record>, StoreError> {
    select_records(conn, path, "o.key = ?1", [&origin.0[..]])
}

/// The decision for `addr` at `now_ms`, computed from the rows (the index
/// gives the same answer without a query; this one explains it).
pub fn decision(
    conn: &Connection,
    path: &Path,
    addr: IpAddr,
    now_ms: u64,
) -> Result<Decision, StoreError> {
    let keys: Vec<Key> = Key::covering(addr).collect();
    let marks = vec!["?"; keys.len()].join(",");
    let records = select_records(
        conn,
        path,
        &format!("r.key IN ({marks}) AND {NOT_REVOKED}"),
        params_from_iter(keys.iter().map(Key::to_bytes)),
    )?;
    let covering =
        keys.iter().map(|k| (*k, KeySummary::of(records.iter().filter(|r| r.key() == *k))));
    Ok(decide_address(covering, now_ms))
}

/// How much the store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Records, all kinds.
    pub records: u64,
    /// Records by kind: ban, unban, allow, disallow.
    pub by_kind: [u64; 4],
    /// Distinct origins ever seen.
    pub origins: u64,
    /// Certificates.
    pub certificates: u64,
    /// Revoked origins.
    pub revocations: u64,
}

/// Counts records by kind, origins, certificates and revocations.
pub fn counts(conn: &Connection, path: &Path) -> Result<Counts, StoreError> {
    let mut c = Counts::default();
    let mut stmt = conn
        .prepare_cached("SELECT kind, count(*) FROM records GROUP BY kind")
        .map_err(fail(path))?;
    let rows: Vec<(i64, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|r| r.collect())
        .map_err(fail(path))?;
    for (kind, n) in rows {
        let n = from_sql(n);
        if let Ok(kind) = Kind::from_byte(u8::try_from(kind).unwrap_or(0)) {
            c.by_kind[kind as usize - 1] = n;
        }
        c.records += n;
    }
    let one = |sql: &str| -> Result<u64, StoreError> {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0)).map(from_sql).map_err(fail(path))
    };
    c.origins = one("SELECT count(*) FROM origins")?;
    c.certificates = one("SELECT count(*) FROM certificates")?;
    c.revocations = one("SELECT count(*) FROM revocations")?;
    Ok(c)
}

/// The greatest `issued_at` of any record on `key` (the clock rule).
pub fn greatest_on_key(
    conn: &Connection,
    path: &Path,
    key: Key,
) -> Result<Option<Hlc>, StoreError> {
    conn.prepare_cached("SELECT max(issued_at) FROM records WHERE key = ?1")
        .and_then(|mut s| s.query_row([key.to_bytes()], |r| r.get::<_, Option<i64>>(0)))
        .map(|v| v.map(|v| Hlc(from_sql(v))))
        .map_err(fail(path))
}

/// The greatest `issued_at` an origin issued: the node's clock high-water
/// mark at start. One seek in the `records_origin` index on (`origin`,
/// `issued_at`), however many records the origin holds.
pub fn greatest_issued_by(
    conn: &Connection,
    path: &Path,
    origin: Origin,
) -> Result<Option<Hlc>, StoreError> {
    conn.query_row(
        "SELECT max(issued_at) FROM records WHERE origin = (SELECT id FROM origins WHERE key = ?1)",
        [&origin.0[..]],
        |r| r.get::<_, Option<i64>>(0),
    )
    .map(|v| v.map(|v| Hlc(from_sql(v))))
    .map_err(fail(path))
}

/// The state digest at `horizon_ms`: over every record whose
/// `end + retention` is after the horizon, every certificate (item: its
/// `not_before`, its id) and every revocation (its `issued_at`, its id),
/// sorted by (`issued_at`, `id`). Equal sets give equal digests.
pub fn digest(
    conn: &Connection,
    path: &Path,
    horizon_ms: u64,
    params: &Params,
) -> Result<[u8; 32], StoreError> {
    let mut items: Vec<(Hlc, Id)> = Vec::new();
    super::sync_set::each_sync_item(conn, path, horizon_ms, params, |item| {
        items.push((Hlc(item.at), Id(item.id)));
    })?;
    items.sort_unstable();
    Ok(digest_items(&items))
}

/// Every record in the store, in slot order (for `banmesh records`).
pub fn all_records(conn: &Connection, path: &Path) -> Result<Vec<Record>, StoreError> {
    select_records(conn, path, "1 = 1", [])
}

/// When a record arrived (Unix ms) and from which peer (`None`: issued here).
pub type Arrival = (u64, Option<String>);

/// A page of records with their arrivals, and where it ended.
pub type Page = (Vec<(Record, Arrival)>, Option<PageEnd>);

/// Where a page of [`records_page`] ended: its last row's primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageEnd {
    origin: i64,
    key: Vec<u8>,
    kind: i64,
}

/// Up to `limit` records after `after` (from the first when `None`), by
/// origin, then key and kind (the `records_origin` index's order, which a
/// full scan of the table follows), each with when and from whom it arrived; and where
/// the page ended, `None` when no record follows. Each page is its own read,
/// so a long listing never holds the store or every record at once.
pub fn records_page(
    conn: &Connection,
    path: &Path,
    after: Option<&PageEnd>,
    limit: usize,
) -> Result<Page, StoreError> {
    let first = PageEnd { origin: i64::MIN, key: Vec::new(), kind: i64::MIN };
    let after = after.unwrap_or(&first);
    let sql = format!(
        "SELECT {RECORD_COLUMNS}, r.origin, r.arrived_at, r.arrived_from FROM {RECORD_FROM} \
         WHERE (r.origin, r.key, r.kind) > (?1, ?2, ?3) ORDER BY r.origin, r.key, r.kind LIMIT ?4"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(fail(path))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = stmt
        .query(rusqlite::params![after.origin, after.key, after.kind, limit])
        .map_err(fail(path))?;
    let (mut out, mut end) = (Vec::new(), None);
    while let Some(row) = rows.next().map_err(fail(path))? {
        let record = record_from_row(row).map_err(|e| match e {
            RowError::Sqlite(e) => classify(path, e),
            RowError::Invalid(e) => {
                StoreError::Damaged { path: path.to_owned(), detail: e.to_string() }
            }
        })?;
        let cols = || -> rusqlite::Result<_> {
            let end = PageEnd { origin: row.get(10)?, key: row.get(0)?, kind: row.get(2)? };
            Ok((end, row.get::<_, i64>(11)?, row.get::<_, Option<String>>(12)?))
        };
        let (last, arrived_at, from) = cols().map_err(fail(path))?;
        end = Some(last);
        out.push((record, (from_sql(arrived_at), from)));
    }
    let more = i64::try_from(out.len()).is_ok_and(|n| n == limit);
    Ok((out, end.filter(|_| more)))
}

/// Canonical bodies of certificates, then of revocations.
pub type TrustBodies = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// The bodies of every stored certificate and revocation, for the node's
/// trust at start. Bodies that no longer decode are skipped by the caller.
pub fn trust_items(conn: &Connection, path: &Path) -> Result<TrustBodies, StoreError> {
    let bodies = |sql: &str| -> Result<Vec<Vec<u8>>, StoreError> {
        let mut stmt = conn.prepare_cached(sql).map_err(fail(path))?;
        stmt.query_map([], |r| r.get(0)).and_then(|r| r.collect()).map_err(fail(path))
    };
    Ok((bodies("SELECT body FROM certificates")?, bodies("SELECT body FROM revocations")?))
}

/// What an anti-entropy item is: a record, a certificate or a revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    /// A record: its `issued_at` and id.
    Record,
    /// A certificate: its `not_before` as an HLC and its id.
    Certificate,
    /// A revocation: its `issued_at` as an HLC and its id.
    Revocation,
}

/// One item of the replicated set, as reconciliation sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SyncItem {
    /// The timestamp negentropy orders by (an HLC reading).
    pub at: u64,
    /// The item's id.
    pub id: [u8; 32],
    /// What it is.
    pub kind: ItemKind,
}

/// The set reconciliation works on at `horizon_ms` (DESIGN.md "Catch-up"):
/// every record whose `end + retention` is after the horizon and whose
/// origin is not revoked, every certificate and every revocation. The same
/// items the digest hashes. A revoked origin's records are void on every
/// node that holds the revocation, so they are neither offered nor asked
/// for: a node that kept them and one that never had them agree, and no
/// session moves them again and again.
pub fn sync_items(
    conn: &Connection,
    path: &Path,
    horizon_ms: u64,
    params: &Params,
) -> Result<Vec<SyncItem>, StoreError> {
    let mut items = Vec::new();
    super::sync_set::each_sync_item(conn, path, horizon_ms, params, |item| items.push(item))?;
    Ok(items)
}

/// When and from which peer each record arrived (`None`: issued here), by id.
pub type Arrivals = std::collections::HashMap<Id, (u64, Option<String>)>;

/// Arrival of every record on these keys.
pub fn arrivals_on_keys(
    conn: &Connection,
    path: &Path,
    keys: &[Key],
) -> Result<Arrivals, StoreError> {
    if keys.is_empty() {
        return Ok(Arrivals::new());
    }
    let marks = vec!["?"; keys.len()].join(",");
    let sql = format!("SELECT id, arrived_at, arrived_from FROM records WHERE key IN ({marks})");
    arrivals(conn, path, &sql, params_from_iter(keys.iter().map(Key::to_bytes)))
}

/// Arrival of every record.
pub fn all_arrivals(conn: &Connection, path: &Path) -> Result<Arrivals, StoreError> {
    arrivals(conn, path, "SELECT id, arrived_at, arrived_from FROM records", [])
}

fn arrivals(
    conn: &Connection,
    path: &Path,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Arrivals, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(fail(path))?;
    let rows: Vec<(Vec<u8>, i64, Option<String>)> = stmt
        .query_map(args, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|r| r.collect())
        .map_err(fail(path))?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, at, from)| blob32(&id).ok().map(|id| (Id(id), (from_sql(at), from))))
        .collect())
}

/// This node's standing orders: key, kind (Ban or Allow) and metadata.
pub fn orders(
    conn: &Connection,
    path: &Path,
) -> Result<Vec<(Key, Kind, banmesh_crdt::Metadata)>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT key, kind, jail, reason, source FROM orders")
        .map_err(fail(path))?;
    let rows: Vec<(Vec<u8>, i64, String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .and_then(|r| r.collect())
        .map_err(fail(path))?;
    Ok(rows
        .into_iter()
        .filter_map(|(key, kind, jail, reason, source)| {
            let key = Key::from_bytes(&key).ok()?;
            let kind = Kind::from_byte(u8::try_from(kind).ok()?).ok()?;
            Some((key, kind, banmesh_crdt::Metadata { jail, reason, source }))
        })
        .collect())
}

/// A position in the (`issued_at`, `id`) order of records.
pub type Cursor = (u64, [u8; 32]);

/// Up to `limit` records of the sync set at `horizon_ms` after `after`, in
/// (`issued_at`, `id`) order, and the cursor to continue from (`None` when
/// this page is the last): how an empty node is streamed the whole set.
pub fn records_after(
    conn: &Connection,
    path: &Path,
    horizon_ms: u64,
    params: &Params,
    after: Option<Cursor>,
    limit: usize,
) -> Result<(Vec<Record>, Option<Cursor>), StoreError> {
    let floor = to_sql(horizon_ms.saturating_sub(params.retention_ms));
    let (at, id) = after.map_or((-1, Vec::new()), |(at, id)| (to_sql(at), id.to_vec()));
    let records = select_records(
        conn,
        path,
        &format!(
            "r.end_ms > ?1 AND {NOT_REVOKED}
             AND (r.issued_at > ?2 OR (r.issued_at = ?2 AND r.id > ?3))
             ORDER BY r.issued_at, r.id LIMIT {}",
            limit.max(1)
        ),
        rusqlite::params![floor, at, id],
    )?;
    let next = (records.len() >= limit.max(1))
        .then(|| records.last().map(|r| (r.issued_at().0, r.id().0)))
        .flatten();
    Ok((records, next))
}
