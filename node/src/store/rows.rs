//! Between records and rows: the columns a record is stored in, reading a
//! row back into a [`Record`], and the integer conversions SQLite needs.

use banmesh_crdt::{DecodeError, Hlc, Key, Kind, Metadata, Origin, Record, Statement};
use rusqlite::Row;

/// The columns [`record_from_row`] reads, in order, from `records r JOIN origins o`.
pub const RECORD_COLUMNS: &str = "r.key, o.key, r.kind, r.issued_at, r.expires_at, r.strikes, r.jail, r.reason, r.source, r.signature";

/// `records r JOIN origins o`, for queries selecting [`RECORD_COLUMNS`].
pub const RECORD_FROM: &str = "records r JOIN origins o ON o.id = r.origin";

/// A stored row that is not a valid record: the file was edited or damaged.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    /// SQLite failed to read the row.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A column holds a value no record has.
    #[error("stored record is invalid: {0}")]
    Invalid(#[from] DecodeError),
}

/// Reads a row selected with [`RECORD_COLUMNS`] back into a record.
pub fn record_from_row(row: &Row<'_>) -> Result<Record, RowError> {
    let key = Key::from_bytes(&row.get::<_, Vec<u8>>(0)?)?;
    let origin = Origin(blob32(&row.get::<_, Vec<u8>>(1)?)?);
    let kind = Kind::from_byte(u8::try_from(row.get::<_, i64>(2)?).unwrap_or(0))?;
    let issued_at = Hlc(from_sql(row.get(3)?));
    let expires_at = row.get::<_, Option<i64>>(4)?.map(from_sql);
    let strikes =
        u32::try_from(row.get::<_, i64>(5)?).map_err(|_| DecodeError::BadField("strikes"))?;
    let meta = Metadata { jail: row.get(6)?, reason: row.get(7)?, source: row.get(8)? };
    let signature: [u8; 64] =
        row.get::<_, Vec<u8>>(9)?.try_into().map_err(|_| DecodeError::BadField("signature"))?;
    let statement = Statement { key, kind, issued_at, expires_at, strikes, meta, origin };
    Ok(Record::new(statement, signature))
}

/// A 32-byte column (origin key, id).
pub fn blob32(bytes: &[u8]) -> Result<[u8; 32], DecodeError> {
    bytes.try_into().map_err(|_| DecodeError::BadField("32-byte column"))
}

/// A u64 as SQLite's i64. Valid records' times fit (`MAX_TIME_MS`); larger
/// values saturate rather than wrap so they still sort last.
pub fn to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// An i64 column back to u64 (negative values, which banmesh never writes, read as 0).
pub fn from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
