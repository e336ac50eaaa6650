//! Reading a Fail2BanSync server's `ip_management.db`, read-only: the schema
//! check, its rows as loosely typed values (SQLite lets any column hold any
//! type), and its naive local-time timestamps turned into Unix milliseconds.

use std::path::Path;

use anyhow::Context as _;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

/// The columns `import-seed` reads; the old server's table has exactly these.
const COLUMNS: [&str; 9] = [
    "id",
    "ip_address",
    "description",
    "status",
    "reported_by",
    "blocked_until",
    "allowed_since",
    "block_count",
    "jail",
];

/// A timestamp column of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamp {
    /// NULL or empty.
    Missing,
    /// Unix milliseconds.
    At(u64),
    /// Not a timestamp; the text as stored.
    Bad(String),
}

/// One row of `ip_addresses`, every text column as text (NULL as empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedRow {
    /// The row's `id`.
    pub id: i64,
    /// `ip_address` as stored.
    pub ip: String,
    /// `description`.
    pub description: String,
    /// `status` as stored.
    pub status: String,
    /// `reported_by`.
    pub reported_by: String,
    /// `blocked_until`.
    pub blocked_until: Stamp,
    /// `allowed_since`.
    pub allowed_since: Stamp,
    /// `block_count` (NULL counts as 1, as the column's default), or the text
    /// stored when it is not a whole number.
    pub block_count: Result<i64, String>,
    /// `jail`.
    pub jail: String,
}

/// An open, read-only old server database.
#[derive(Debug)]
pub struct SeedDb {
    conn: Connection,
}

impl SeedDb {
    /// Opens `path` read-only and checks it is a Fail2BanSync database.
    pub fn open(path: &Path) -> anyhow::Result<SeedDb> {
        let shown = path.display();
        let meta = std::fs::metadata(path).with_context(|| {
            format!("cannot read {shown}: give the old server's ip_management.db")
        })?;
        anyhow::ensure!(
            meta.is_file(),
            "{shown} is not a file: give the old server's ip_management.db"
        );
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .with_context(|| format!("cannot open {shown} read-only"))?;
        let db = SeedDb { conn };
        db.check_schema(path)?;
        Ok(db)
    }

    /// An in-memory database whose `ip_addresses` (columns without types)
    /// holds `rows`, each in [`COLUMNS`] order. For the fuzz targets.
    #[cfg(feature = "fuzzing")]
    pub fn in_memory(rows: &[[Value; 9]]) -> anyhow::Result<SeedDb> {
        let conn = Connection::open_in_memory()?;
        conn.execute(&format!("CREATE TABLE ip_addresses ({})", COLUMNS.join(", ")), [])?;
        let sql = format!("INSERT INTO ip_addresses VALUES ({})", ["?"; 9].join(", "));
        let mut insert = conn.prepare(&sql)?;
        for row in rows {
            insert.execute(rusqlite::params_from_iter(row.iter()))?;
        }
        drop(insert);
        Ok(SeedDb { conn })
    }

    /// Refuses a file that is not SQLite, or SQLite without the old server's
    /// `ip_addresses` table and columns.
    fn check_schema(&self, path: &Path) -> anyhow::Result<()> {
        let shown = path.display();
        let columns: Vec<String> = self
            .conn
            .prepare("SELECT name FROM pragma_table_info('ip_addresses')")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| {
                anyhow::anyhow!(
                    "{shown} is not a readable SQLite database ({e}): give the old server's ip_management.db"
                )
            })?;
        anyhow::ensure!(
            !columns.is_empty(),
            "{shown} is not a Fail2BanSync database: it has no ip_addresses table"
        );
        let missing: Vec<&str> =
            COLUMNS.iter().copied().filter(|c| !columns.iter().any(|have| have == c)).collect();
        anyhow::ensure!(
            missing.is_empty(),
            "{shown} is not a Fail2BanSync database: its ip_addresses table lacks {}",
            missing.join(", ")
        );
        Ok(())
    }

    /// Every row, in `id` order, timestamps converted from local time.
    pub fn rows(&self) -> anyhow::Result<Vec<SeedRow>> {
        let sql = format!("SELECT {} FROM ip_addresses ORDER BY id", COLUMNS.join(", "));
        let mut statement = self.conn.prepare(&sql).context("cannot read ip_addresses")?;
        let raw: Vec<[Value; 9]> = statement
            .query_map([], |r| {
                Ok([
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ])
            })
            .and_then(|rows| rows.collect())
            .context("cannot read ip_addresses")?;
        raw.into_iter().map(|values| self.row(values)).collect()
    }

    fn row(&self, values: [Value; 9]) -> anyhow::Result<SeedRow> {
        let [id, ip, description, status, reported_by, blocked_until, allowed_since, count, jail] =
            values;
        Ok(SeedRow {
            id: match id {
                Value::Integer(id) => id,
                other => anyhow::bail!("a row has the id {}: the table is damaged", text(&other)),
            },
            ip: text(&ip),
            description: text(&description),
            status: text(&status),
            reported_by: text(&reported_by),
            blocked_until: self.stamp(&blocked_until)?,
            allowed_since: self.stamp(&allowed_since)?,
            block_count: match count {
                Value::Null => Ok(1),
                Value::Integer(n) => Ok(n),
                Value::Text(t) => t.trim().parse().map_err(|_| t),
                other => Err(text(&other)),
            },
            jail: text(&jail),
        })
    }

    fn stamp(&self, value: &Value) -> anyhow::Result<Stamp> {
        let Value::Text(raw) = value else {
            return Ok(match value {
                Value::Null => Stamp::Missing,
                other => Stamp::Bad(text(other)),
            });
        };
        if raw.trim().is_empty() {
            return Ok(Stamp::Missing);
        }
        let Some((whole, millis)) = parse_naive(raw.trim()) else {
            return Ok(Stamp::Bad(raw.clone()));
        };
        let seconds: Option<i64> = self
            .conn
            .query_row("SELECT unixepoch(?1, 'utc')", [whole], |r| r.get(0))
            .context("cannot convert a timestamp from local time")?;
        Ok(match seconds.and_then(|s| u64::try_from(s).ok()) {
            Some(s) => Stamp::At(s.saturating_mul(1000).saturating_add(millis)),
            None => Stamp::Bad(raw.clone()),
        })
    }
}

/// A value as text: NULL empty, numbers written out, a blob by its size.
fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Integer(n) => n.to_string(),
        Value::Real(x) => x.to_string(),
        Value::Text(t) => t.clone(),
        Value::Blob(b) => format!("<{} bytes>", b.len()),
    }
}

/// Checks Python's `str(datetime)` form, `YYYY-MM-DD HH:MM:SS[.ffffff]`
/// (`T` accepted for the space, as `isoformat()` writes it), and returns
/// the whole seconds as SQLite reads them and the milliseconds of the
/// fraction. `None` for anything else, including impossible dates.
pub fn parse_naive(text: &str) -> Option<(String, u64)> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    let b = whole.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(range)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let shape = b.len() == 19
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b' ' || b[10] == b'T')
        && b[13] == b':'
        && b[16] == b':';
    if !shape || fraction.len() > 6 || !fraction.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if text.contains('.') && fraction.is_empty() {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let days = *month_days.get(usize::try_from(month).ok()?.checked_sub(1)?)?;
    if day == 0 || day > days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let millis = format!("{fraction:0<3}").get(..3)?.parse().ok()?;
    Some((format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}"), millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_seed_parses_python_datetimes() {
        let at = |t| parse_naive(t).map(|(w, ms)| format!("{w}+{ms}"));
        assert_eq!(at("2026-11-25 12:56:08.123456").as_deref(), Some("2026-11-25 12:56:08+123"));
        assert_eq!(at("2026-11-25 12:56:08").as_deref(), Some("2026-11-25 12:56:08+0"));
        assert_eq!(at("2026-11-25T12:56:08.5").as_deref(), Some("2026-11-25 12:56:08+500"));
        assert_eq!(at("2024-02-29 00:00:00").as_deref(), Some("2024-02-29 00:00:00+0"));
        for bad in [
            "yesterday",
            "now",
            "2026-02-29 00:00:00",
            "2026-13-01 00:00:00",
            "2026-11-25 24:00:00",
            "2026-11-25 12:56:08.",
            "2026-11-25 12:56:08.1234567",
            "2026-11-25 12:56",
            "2459000.5",
            "2026-11-25 12:56:08+01:00",
        ] {
            assert_eq!(parse_naive(bad), None, "{bad}");
        }
    }
}
