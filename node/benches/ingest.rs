//! Store ingest benchmark: records arrive as wire bytes, are decoded and
//! batch-verified on one thread, and stored 1,000 per transaction by the
//! writer on another, first into an empty store, then into one already
//! holding N records. Also prints the file size and the index's memory.
//! Prints figures; asserts nothing about speed. Run:
//! `cargo bench -p banmesh-node --bench ingest` (N = 1,000,000; set
//! BANMESH_BENCH_RECORDS to change it).

use std::sync::mpsc;
use std::time::Instant;

use banmesh_crdt::{Hlc, Kind, Metadata, Origin, Params, Record, Statement};
use banmesh_keys::{SecretKey, sign_record, verify_batch};
use banmesh_node::store::{DB_FILE, Db};

const BATCH: usize = 1_000;
const ORIGINS: usize = 20;
const T0: u64 = 1_800_000_000_000;

/// Record `i`: a ban on a distinct address (IPv4 for most, IPv6 for every
/// eighth), from one of 20 origins, encoded as it arrives from the network.
fn statement(i: u64) -> Statement {
    let key = if i % 8 == 7 {
        format!("2001:db8:{:x}:{:x}::1", i >> 16, i & 0xffff)
    } else {
        format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
    };
    Statement {
        key: key.parse().expect("generated address"),
        kind: Kind::Ban,
        issued_at: Hlc::from_millis(T0 + i),
        expires_at: Some(T0 + i + 86_400_000),
        strikes: 1,
        meta: Metadata {
            jail: "sshd".into(),
            reason: "5 failures".into(),
            source: "fail2ban".into(),
        },
        origin: Origin::default(),
    }
}

/// Signs records `from..to` on two threads, returning their wire bytes.
fn signed_wire(from: u64, to: u64, keys: &[SecretKey]) -> Vec<Vec<u8>> {
    let mid = from + (to - from) / 2;
    let sign = |a: u64, b: u64| -> Vec<Vec<u8>> {
        (a..b).map(|i| sign_record(&keys[i as usize % keys.len()], statement(i)).encode()).collect()
    };
    std::thread::scope(|s| {
        let first = s.spawn(|| sign(from, mid));
        let mut second = sign(mid, to);
        let mut out = first.join().expect("signing thread");
        out.append(&mut second);
        out
    })
}

/// Decode + verify on a second thread, pipelined into `db.apply` here.
fn ingest(db: &mut Db, wire: &[Vec<u8>]) -> f64 {
    let start = Instant::now();
    let (batch_tx, batch_rx) = mpsc::sync_channel::<Vec<Record>>(4);
    std::thread::scope(|s| {
        s.spawn(move || {
            for chunk in wire.chunks(BATCH) {
                let batch: Vec<Record> =
                    chunk.iter().map(|b| Record::decode(b).expect("valid encoding")).collect();
                verify_batch(&batch).expect("valid signatures");
                if batch_tx.send(batch).is_err() {
                    return;
                }
            }
        });
        let mut new = 0;
        for batch in batch_rx {
            // As from a peer: records issued here are synced per commit.
            new += db.apply_from(batch, T0, Some("bench")).expect("apply").new.len();
        }
        assert_eq!(new, wire.len(), "every record is new");
    });
    wire.len() as f64 / start.elapsed().as_secs_f64()
}

/// Resident memory of this process, in bytes.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn file_bytes(dir: &std::path::Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(dir.join(format!("{DB_FILE}{s}"))).ok())
        .map(|m| m.len())
        .sum()
}

fn main() {
    let n: u64 = std::env::var("BANMESH_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let extra = (n / 5).max(BATCH as u64);
    let keys: Vec<SecretKey> =
        (0..ORIGINS).map(|_| SecretKey::generate().expect("system RNG")).collect();
    let start = Instant::now();
    let wire = signed_wire(0, n, &keys);
    let more = signed_wire(n, n + extra, &keys);
    println!(
        "signed {} records from {ORIGINS} origins in {:.1} s (2 threads)",
        n + extra,
        start.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(DB_FILE);
    let mut db = Db::open(&path, Params::default()).expect("open store");
    let empty_rate = ingest(&mut db, &wire);
    println!(
        "ingest into an empty store:        {empty_rate:>9.0} records/s  ({n} records, {BATCH} per transaction)"
    );
    let full_rate = ingest(&mut db, &more);
    println!("ingest into a store holding {n}: {full_rate:>9.0} records/s  ({extra} records)");
    println!(
        "                                   {:>9.2}x the empty-store rate",
        full_rate / empty_rate
    );
    db.conn().execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").expect("checkpoint");
    let total = n + extra;
    let bytes = file_bytes(dir.path());
    println!(
        "store file: {:.1} MiB for {total} records ({} bytes/record)",
        bytes as f64 / 1048576.0,
        bytes / total
    );

    drop(wire);
    drop(more);
    let before = rss_bytes();
    let start = Instant::now();
    let index = db.build_index(T0).expect("index");
    let build = start.elapsed().as_secs_f64();
    let after = rss_bytes();
    let per_million = |b: u64| b as f64 * 1_000_000.0 / index.len() as f64 / 1048576.0;
    println!(
        "index: {} keys built in {build:.1} s; RSS +{:.1} MiB ({:.1} MiB per million records); table {:.1} MiB ({:.1} MiB per million)",
        index.len(),
        after.saturating_sub(before) as f64 / 1048576.0,
        per_million(after.saturating_sub(before)),
        index.heap_bytes() as f64 / 1048576.0,
        per_million(index.heap_bytes() as u64),
    );
    let lookups = 1_000_000u64;
    let start = Instant::now();
    let mut banned = 0;
    for i in 0..lookups {
        let addr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(
            10,
            (i >> 16) as u8,
            (i >> 8) as u8,
            i as u8,
        ));
        if matches!(index.decision(addr, T0 + 1), banmesh_crdt::Decision::Banned { .. }) {
            banned += 1;
        }
    }
    let rate = lookups as f64 / start.elapsed().as_secs_f64();
    println!("index lookups: {rate:.0} per second ({banned} of {lookups} banned)");
}
