//! The store under `kill -9`: a child process (this test binary re-executed)
//! commits batches of 1,000 records and acknowledges each on stdout; the
//! parent kills it mid-stream, many times, and checks nothing acked was lost.
//! Each kill comes a number of acks into a run, not a time: on a loaded
//! machine the child is slower, and every round still does its share.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use banmesh_crdt::wire::Reader;
use banmesh_crdt::{Hlc, Id, Key, Kind, Metadata, Origin, Params, Record, Statement};
use banmesh_keys::{SecretKey, sign_record};
use banmesh_node::store::{DB_FILE, Db, Integrity, query};

/// Records per batch: one transaction each, as the store's writer commits.
const BATCH: u32 = 1_000;
/// A child stops by itself after this many batches, so a run cannot hang.
const CHILD_MAX_BATCHES: u32 = 400;
/// Kill-and-reopen rounds on one data dir.
const ROUNDS: u32 = 25;
/// The kill comes after this many acks of a run: min and max.
const KILL_AFTER_ACKS: (u64, u64) = (1, 12);
/// And this long after that ack, to land anywhere in the next batch's
/// transaction: min and max, ms.
const KILL_DELAY_MS: (u64, u64) = (0, 15);
/// How long the parent waits for any one ack (generous: a shared machine).
const ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// Batches signed before the rounds start (signing is slow in a debug build;
/// a child or check needing a later batch signs it itself).
const PRESIGNED: u32 = 220;
/// Batches above this would run out of 10.0.0.0/8.
const MAX_BATCH: u32 = (1 << 24) / BATCH - 1;
const SEED: u64 = 0x5eed_d0ab_1e00_0001;
const T0: u64 = 1_800_000_000_000;
/// The child's environment: the data dir, the first batch to write, and
/// the directory of presigned batches.
const DIR_VAR: &str = "BANMESH_DURABILITY_DIR";
const FIRST_VAR: &str = "BANMESH_DURABILITY_FIRST";
const POOL_VAR: &str = "BANMESH_DURABILITY_POOL";

struct Rng(u64);

impl Rng {
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        lo + (z ^ (z >> 31)) % (hi - lo + 1)
    }
}

/// The key of record `i` of batch `n`: an address in 10.0.0.0/8 that no
/// other record of any batch uses.
fn key(n: u32, i: u32) -> Key {
    assert!(n <= MAX_BATCH && i < BATCH, "batch {n} record {i} is out of 10.0.0.0/8");
    Key::from_addr(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (n * BATCH + i))))
}

fn batch_keys(n: u32) -> Vec<Key> {
    (0..BATCH).map(|i| key(n, i)).collect()
}

/// Batch `n`: a ban on each of its keys, signed by one fixed node.
fn sign_batch(n: u32) -> Vec<Record> {
    let secret = SecretKey::from_bytes(&[7; 32]);
    (0..BATCH)
        .map(|i| {
            let at = T0 + u64::from(n * BATCH + i);
            let statement = Statement {
                key: key(n, i),
                kind: Kind::Ban,
                issued_at: Hlc::from_millis(at),
                expires_at: Some(at + 86_400_000),
                strikes: 1,
                meta: Metadata {
                    jail: "sshd".into(),
                    reason: format!("durability batch {n}"),
                    source: "test".into(),
                },
                origin: Origin::default(),
            };
            sign_record(&secret, statement)
        })
        .collect()
}

fn pool_file(pool: &Path, n: u32) -> PathBuf {
    pool.join(format!("{n}.bin"))
}

/// Signs batches `1..=PRESIGNED` on two threads into `pool`, one file each.
fn presign(pool: &Path) {
    std::thread::scope(|s| {
        for half in 0..2 {
            s.spawn(move || {
                for n in (1..=PRESIGNED).filter(|n| n % 2 == half) {
                    let mut bytes = Vec::new();
                    for record in sign_batch(n) {
                        record.encode_into(&mut bytes);
                    }
                    std::fs::write(pool_file(pool, n), bytes).expect("write a presigned batch");
                }
            });
        }
    });
}

/// Batch `n`, from the pool when it was presigned.
fn batch(pool: &Path, n: u32) -> Vec<Record> {
    let Ok(bytes) = std::fs::read(pool_file(pool, n)) else {
        return sign_batch(n);
    };
    let mut reader = Reader::new(&bytes);
    let mut records = Vec::with_capacity(BATCH as usize);
    while !reader.is_empty() {
        records.push(Record::decode_from(&mut reader).expect("decode a presigned record"));
    }
    assert_eq!(records.len(), BATCH as usize, "presigned batch {n}");
    records
}

fn ids(records: &[Record]) -> HashSet<Id> {
    records.iter().map(Record::id).collect()
}

/// The child: applies batches `first..` one transaction each, printing
/// `ack n apply_us loop_us` only once batch n is committed, until killed.
#[test]
#[ignore = "the child process of store_survives_sigkill_mid_stream, which runs it"]
fn store_durability_child() {
    let Some(dir) = std::env::var_os(DIR_VAR) else {
        panic!("store_durability_child is only run by store_survives_sigkill_mid_stream");
    };
    let first: u32 =
        std::env::var(FIRST_VAR).expect("first batch").parse().expect("first batch number");
    let pool = PathBuf::from(std::env::var_os(POOL_VAR).expect("pool dir"));
    let mut db = Db::open(&Path::new(&dir).join(DB_FILE), Params::default()).expect("open");
    let mut out = std::io::stdout().lock();
    let mut last = Instant::now();
    for n in first..first + CHILD_MAX_BATCHES {
        let records = batch(&pool, n);
        let start = Instant::now();
        db.apply(records, T0).expect("apply a batch");
        let apply_us = start.elapsed().as_micros();
        let loop_us = last.elapsed().as_micros();
        last = Instant::now();
        writeln!(out, "ack {n} {apply_us} {loop_us}").expect("write an ack");
        out.flush().expect("flush an ack");
    }
}

/// What one child run did.
struct Run {
    /// The batches it acknowledged, in order.
    acks: Vec<u32>,
    /// Microseconds it spent inside `apply`, and in its loop overall.
    apply_us: u64,
    loop_us: u64,
    /// Whether it died of SIGKILL (rather than finishing).
    killed: bool,
}

/// Runs the child from batch `first` and kills it `delay` after its
/// `kill_after`th ack.
fn run_child(data: &Path, pool: &Path, first: u32, kill_after: usize, delay: Duration) -> Run {
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new(exe)
        .args(["--exact", "store_durability_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(DIR_VAR, data)
        .env(FIRST_VAR, first.to_string())
        .env(POOL_VAR, pool)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("the child's stdout");
    let (ack_tx, ack_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read the child's stdout");
            // The first ack shares its line with libtest's "test ... ".
            let Some((_, ack)) = line.split_once("ack ") else {
                continue;
            };
            let fields: Vec<u64> =
                ack.split(' ').map(|f| f.parse().expect("an ack's numbers")).collect();
            let _ = ack_tx.send(fields);
        }
    });
    let mut acks = Vec::new();
    while acks.len() < kill_after {
        match ack_rx.recv_timeout(ACK_TIMEOUT) {
            Ok(ack) => acks.push(ack),
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "ack {} of {kill_after} never came from the child starting at batch {first}: {e}",
                    acks.len() + 1
                );
            }
        }
    }
    std::thread::sleep(delay);
    child.kill().expect("kill the child");
    let status = child.wait().expect("wait for the child");
    reader.join().expect("the stdout reader");
    acks.extend(ack_rx.try_iter());
    Run {
        acks: acks.iter().map(|a| u32::try_from(a[0]).expect("a batch number")).collect(),
        apply_us: acks.iter().map(|a| a[1]).sum(),
        loop_us: acks.iter().map(|a| a[2]).sum(),
        killed: status.signal() == Some(9),
    }
}

/// Opens the store as the node would and checks it after a run that began
/// at batch `first`; returns the highest batch now stored. `stored` counts
/// every batch found so far and is updated.
fn check_after_run(path: &Path, pool: &Path, first: u32, run: &Run, stored: &mut u64) -> u32 {
    let expected: Vec<u32> = (first..first + run.acks.len() as u32).collect();
    assert_eq!(run.acks, expected, "acks out of order");
    let db = Db::open(path, Params::default()).expect("the store opens after SIGKILL");
    if run.killed {
        assert_eq!(db.integrity(), Integrity::Checked, "the open after SIGKILL skipped the check");
    }
    let integrity: Vec<String> = db
        .conn()
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("run integrity_check");
    assert_eq!(integrity, ["ok"], "integrity_check after SIGKILL");
    let last_acked = first + run.acks.len() as u32 - 1;
    let mut highest = first - 1;
    // Every acked batch in full; the one after, wholly or not at all.
    for n in first..=last_acked + 1 {
        let found = query::records_on_keys(db.conn(), path, &batch_keys(n)).expect("query");
        if found.is_empty() && n > last_acked {
            continue;
        }
        let (got, want) = (ids(&found), ids(&batch(pool, n)));
        assert!(
            got == want,
            "batch {n} (last acked {last_acked}): {} of its {BATCH} records stored, {} others \
             on its keys",
            got.intersection(&want).count(),
            got.difference(&want).count()
        );
        *stored += 1;
        highest = n;
    }
    // Nothing else appeared and nothing earlier went missing.
    let counts = query::counts(db.conn(), path).expect("counts");
    assert_eq!(counts.records, *stored * u64::from(BATCH), "records stored");
    highest
}

#[test]
fn store_survives_sigkill_mid_stream() {
    let started = Instant::now();
    let data = tempfile::tempdir().expect("data dir");
    let pool = tempfile::tempdir().expect("pool dir");
    presign(pool.path());
    let presigned = started.elapsed();
    let path = data.path().join(DB_FILE);
    let mut rng = Rng(SEED);
    let (mut next, mut stored, mut acked) = (1, 0, 0);
    let (mut mid_stream, mut unacked_commits, mut apply_us, mut loop_us) = (0, 0, 0, 0);
    let mut awaited = 0;
    for _ in 0..ROUNDS {
        let kill_after = rng.between(KILL_AFTER_ACKS.0, KILL_AFTER_ACKS.1) as usize;
        let delay = Duration::from_millis(rng.between(KILL_DELAY_MS.0, KILL_DELAY_MS.1));
        let run = run_child(data.path(), pool.path(), next, kill_after, delay);
        let highest = check_after_run(&path, pool.path(), next, &run, &mut stored);
        if run.killed && !run.acks.is_empty() {
            mid_stream += 1;
        }
        if highest as usize >= next as usize + run.acks.len() {
            unacked_commits += 1;
        }
        acked += run.acks.len();
        awaited += kill_after;
        apply_us += run.apply_us;
        loop_us += run.loop_us;
        next = highest + 1;
    }
    eprintln!(
        "store durability: {ROUNDS} SIGKILL rounds ({mid_stream} mid-stream), {acked} acked \
         batches + {unacked_commits} committed unacked, {} records verified, child in apply \
         {}% of its loop; {:.1}s ({:.1}s presigning)",
        stored * u64::from(BATCH),
        apply_us * 100 / loop_us.max(1),
        started.elapsed().as_secs_f64(),
        presigned.as_secs_f64(),
    );
    assert!(
        mid_stream >= ROUNDS * 9 / 10,
        "only {mid_stream} of {ROUNDS} rounds ended by a kill mid-stream"
    );
    // The kills came after the acks awaited, and at least 5 a round.
    assert!(acked >= awaited, "only {acked} batches acked, {awaited} awaited");
    assert!(awaited >= 5 * ROUNDS as usize, "only {awaited} acks awaited in {ROUNDS} rounds");
}
