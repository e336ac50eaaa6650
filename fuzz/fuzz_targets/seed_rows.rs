//! The Fail2BanSync database row parser (`banmesh import-seed`): rows of
//! any SQLite values in any column, read and planned as a dry run.
#![no_main]

use arbitrary::Arbitrary;
use banmesh_fuzz::NOW_MS;
use libfuzzer_sys::fuzz_target;
use rusqlite::types::Value;

/// An SQLite value; text is likeliest, as in a real database.
#[derive(Debug, Arbitrary)]
enum ArbValue {
    Text(String),
    Null,
    Integer(i64),
    Real(f64),
    Blob(Vec<u8>),
}

impl From<&ArbValue> for Value {
    fn from(value: &ArbValue) -> Value {
        match value {
            ArbValue::Text(t) => Value::Text(t.clone()),
            ArbValue::Null => Value::Null,
            ArbValue::Integer(n) => Value::Integer(*n),
            ArbValue::Real(x) => Value::Real(*x),
            ArbValue::Blob(b) => Value::Blob(b.clone()),
        }
    }
}

fuzz_target!(|rows: Vec<[ArbValue; 9]>| {
    let rows: Vec<[Value; 9]> =
        rows.iter().take(32).map(|r| r.each_ref().map(Value::from)).collect();
    let _ = banmesh_node::fuzzing::seed_rows(&rows, NOW_MS);
});
