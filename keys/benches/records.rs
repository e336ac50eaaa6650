//! How many records per second this machine signs, encodes, decodes and
//! verifies, one at a time and in batches. Prints figures; asserts nothing
//! about speed. Run with `cargo bench -p banmesh-keys` (N records per step,
//! default 20,000; set BANMESH_BENCH_RECORDS to change it).

use std::hint::black_box;
use std::time::Instant;

use banmesh_crdt::{Hlc, Kind, Metadata, Origin, Record, Statement};
use banmesh_keys::{SecretKey, sign_record, verify_batch, verify_record};

fn statements(n: usize) -> Vec<Statement> {
    let base_ms = 1_800_000_000_000u64;
    (0..n)
        .map(|i| {
            let i = i as u64;
            let key = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
            Statement {
                key: key.parse().expect("generated address"),
                kind: Kind::Ban,
                issued_at: Hlc::from_millis(base_ms + i),
                expires_at: Some(base_ms + i + 600_000),
                strikes: 1,
                meta: Metadata {
                    jail: "sshd".into(),
                    reason: "5 failures in 10m".into(),
                    source: "fail2ban".into(),
                },
                origin: Origin::default(),
            }
        })
        .collect()
}

/// Runs `f` once over `n` items and prints the rate.
fn step(label: &str, n: usize, f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    let secs = start.elapsed().as_secs_f64();
    let rate = n as f64 / secs;
    println!("{label:<34} {rate:>12.0} records/s   ({n} in {:.3} s)", secs);
    rate
}

fn main() {
    let n: usize =
        std::env::var("BANMESH_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    // A cluster of 8 nodes, where batches repeat origins (batch verification
    // merges the work per key), then the worst case of one origin per record.
    for origins in [8, n] {
        run(n, origins);
        println!();
    }
}

fn run(n: usize, origins: usize) {
    let keys: Vec<SecretKey> =
        (0..origins).map(|_| SecretKey::generate().expect("system RNG")).collect();
    let todo = statements(n);
    println!("banmesh record benchmark: {n} records from {origins} origins, one thread");

    let mut records: Vec<Record> = Vec::with_capacity(n);
    step("sign (statement -> record)", n, || {
        for (i, s) in todo.into_iter().enumerate() {
            records.push(sign_record(&keys[i % keys.len()], s));
        }
    });
    let mut wire: Vec<Vec<u8>> = Vec::with_capacity(n);
    step("encode", n, || wire.extend(records.iter().map(Record::encode)));
    let bytes: usize = wire.iter().map(Vec::len).sum();
    println!("{:<34} {:>12} bytes/record", "wire size", bytes / n.max(1));
    let mut decoded: Vec<Record> = Vec::with_capacity(n);
    step("decode (strict)", n, || {
        decoded.extend(wire.iter().map(|b| Record::decode(b).expect("own encoding")));
    });
    assert!(decoded == records, "decode must give back the signed records");

    let single = step("verify, one at a time", n, || {
        for r in &decoded {
            black_box(verify_record(r)).expect("valid signature");
        }
    });
    for size in [64usize, 256, 1000] {
        let rate = step(&format!("verify, batches of {size}"), n, || {
            for chunk in decoded.chunks(size) {
                black_box(verify_batch(chunk)).expect("valid batch");
            }
        });
        println!("{:<34} {:>12.2}x single", "", rate / single);
    }
    let decode_verify = step("decode + verify batches of 1000", n, || {
        for chunk in wire.chunks(1000) {
            let batch: Vec<Record> =
                chunk.iter().map(|b| Record::decode(b).expect("own encoding")).collect();
            black_box(verify_batch(&batch)).expect("valid batch");
        }
    });
    println!("{:<34} {:>12.2}x single", "", decode_verify / single);
}
