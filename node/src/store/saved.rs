//! The index saved at a clean close, so that the next start loads it (a
//! file read, tens of ms at a million keys) instead of building it from
//! the records (a scan of the whole table, about 300 ms at a million).
//!
//! When the writer has closed the store (the clean-close marker written
//! and the WAL checkpointed into the file, see `clean`), [`save`] writes
//! the index to `banmesh.db.index` beside the file, with the state of the
//! store file at that moment (length, modification time to the
//! nanosecond, inode) and a SHA-256 of the whole. At the next start
//! [`take`] reads it and deletes it before the store is opened, so a saved
//! index is used once at most; [`Saved::index`] then trusts it only when
//!
//! - the open found the clean-close marker, no WAL or journal with content
//!   and a file as long as its header says (a kill, a crash or a stop that
//!   could not mark leaves no marker: the index is built);
//! - the store file is the one it was saved beside, untouched since: same
//!   inode, length and modification time (a copy, a restored backup or an
//!   edit with `sqlite3` while the node was stopped changes one of them);
//! - it is whole: the SHA-256 matches and it parses to the end.
//!
//! Otherwise the index is built from the records as before, and the log
//! says why. A file's modification time is taken from a clock that
//! advances in ticks (up to 10 ms), so an edit in the same tick as the
//! close could leave the time unchanged: [`save`] returns only once the
//! clock has passed the file's time by more than a tick, and the node
//! exits after it, so any later write gives the file a later time.
//!
//! Keys spent at the start are left out as a build leaves them out, so a
//! loaded index is the index a build makes (`tests` checks this).

use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use banmesh_crdt::{Key, KeySummary};
use sha2::{Digest as _, Sha256};

use super::Index;
use super::hosts::{Hosts, pack, unpack};
use super::index::host;
use super::query::Counts;
use super::schema::SCHEMA_VERSION;

/// The first bytes of a saved index: the format and its version.
const MAGIC: &[u8; 8] = b"bmindex1";

/// How long after the store file's modification time [`save`] returns: more
/// than the longest tick of the clock file times are taken from.
const TICK: Duration = Duration::from_millis(25);

/// Why a saved index was not used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Untrusted {
    /// No index was saved (the first start, or one after a kill or crash).
    #[error("no index was saved at the last stop")]
    Missing,
    /// The last stop did not close the store cleanly.
    #[error("the store was not closed cleanly")]
    NotClean,
    /// The store file changed after the index was saved.
    #[error("the store file changed after the index was saved")]
    Changed,
    /// The saved index is damaged or of another format or schema.
    #[error("the saved index is damaged or of another version ({0})")]
    Damaged(&'static str),
}

/// What identifies the store file as the one the index was saved beside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileState {
    len: u64,
    mtime_s: i64,
    mtime_ns: i64,
    ino: u64,
}

impl FileState {
    fn of(m: &std::fs::Metadata) -> FileState {
        FileState { len: m.len(), mtime_s: m.mtime(), mtime_ns: m.mtime_nsec(), ino: m.ino() }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.mtime_s.to_le_bytes());
        out.extend_from_slice(&self.mtime_ns.to_le_bytes());
        out.extend_from_slice(&self.ino.to_le_bytes());
    }
}

/// The saved index file of the store file at `db_path`.
pub fn index_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push(".index");
    PathBuf::from(name)
}

/// The saved index as read before the store was opened.
#[derive(Debug)]
pub struct Saved {
    bytes: Option<Vec<u8>>,
    state: Option<FileState>,
}

/// Reads the index saved beside the store file at `db_path` and deletes it,
/// with the state of the store file now: call before opening the store.
pub fn take(db_path: &Path) -> Saved {
    let file = index_path(db_path);
    let bytes = std::fs::read(&file).ok();
    if bytes.is_some()
        && let Err(error) = std::fs::remove_file(&file)
    {
        tracing::warn!(path = %file.display(), %error, "cannot delete the saved index");
    }
    Saved { bytes, state: std::fs::metadata(db_path).ok().map(|m| FileState::of(&m)) }
}

impl Saved {
    /// The saved index, with the keys spent at `now_ms` left out, and the
    /// store's counts if they were saved, when the open found the store
    /// closed cleanly (`clean`) and the file is the one the index was saved
    /// beside, unchanged.
    pub fn index(self, clean: bool, now_ms: u64) -> Result<(Index, Option<Counts>), Untrusted> {
        let bytes = self.bytes.ok_or(Untrusted::Missing)?;
        if !clean {
            return Err(Untrusted::NotClean);
        }
        let body_len = bytes.len().checked_sub(32).ok_or(Untrusted::Damaged("too short"))?;
        let (body, sum) = bytes.split_at(body_len);
        if Sha256::digest(body).as_slice() != sum {
            return Err(Untrusted::Damaged("checksum"));
        }
        let mut r = Reader(body);
        if r.take(8)? != MAGIC || r.u32()? != SCHEMA_VERSION {
            return Err(Untrusted::Damaged("format"));
        }
        let mut state = Vec::new();
        self.state.ok_or(Untrusted::Changed)?.encode(&mut state);
        if r.take(state.len())? != state.as_slice() {
            return Err(Untrusted::Changed);
        }
        let n = r.count(12)?;
        let addrs = r.take(n * 4)?.chunks_exact(4).map(|b| u32_at(b, 0)).collect();
        let packed = r.take(n * 8)?.chunks_exact(8).map(|b| u64_at(b, 0)).collect();
        let live = |p| !unpack(p).is_spent(now_ms);
        let hosts = Hosts::from_sorted(addrs, packed, live).ok_or(Untrusted::Damaged("hosts"))?;
        let n = r.count(21)?;
        let mut others = Vec::with_capacity(n);
        for _ in 0..n {
            let len = usize::from(r.take(1)?[0]);
            let key = Key::from_bytes(r.take(len)?).map_err(|_| Untrusted::Damaged("key"))?;
            let (ban_until_ms, strikes, allow_until_ms) = (r.u64()?, r.u32()?, r.u64()?);
            others.push((key, KeySummary { ban_until_ms, strikes, allow_until_ms }));
        }
        let counts = match r.take(1)?[0] {
            0 => None,
            _ => Some(Counts {
                records: r.u64()?,
                by_kind: [r.u64()?, r.u64()?, r.u64()?, r.u64()?],
                origins: r.u64()?,
                certificates: r.u64()?,
                revocations: r.u64()?,
            }),
        };
        if !r.0.is_empty() {
            return Err(Untrusted::Damaged("trailing bytes"));
        }
        others.retain(|(_, s)| !s.is_spent(now_ms) && *s != KeySummary::default());
        Ok((Index::from_parts(hosts, others), counts))
    }
}

/// The little-endian `u32` at `at` in `b` (which holds it).
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The little-endian `u64` at `at` in `b` (which holds it).
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(std::array::from_fn(|i| b[at + i]))
}

/// Reads a saved index's fields, little-endian.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Untrusted> {
        if self.0.len() < n {
            return Err(Untrusted::Damaged("cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, Untrusted> {
        Ok(u32_at(self.take(4)?, 0))
    }

    fn u64(&mut self) -> Result<u64, Untrusted> {
        Ok(u64_at(self.take(8)?, 0))
    }

    /// A count of entries of at least `min_size` bytes each, no more than
    /// the bytes left can hold.
    fn count(&mut self, min_size: usize) -> Result<usize, Untrusted> {
        let n = usize::try_from(self.u64()?).map_err(|_| Untrusted::Damaged("count"))?;
        if n.saturating_mul(min_size) > self.0.len() {
            return Err(Untrusted::Damaged("count"));
        }
        Ok(n)
    }
}

/// The bytes of `index` saved beside a store file in `state`.
fn encode(index: &Index, counts: Option<&Counts>, state: FileState) -> Vec<u8> {
    let mut hosts = Vec::with_capacity(index.len());
    let mut others = Vec::new();
    let mut n_others = 0u64;
    for (key, summary) in index.entries() {
        match host(key).zip(pack(summary)) {
            Some(entry) => hosts.push(entry),
            None => {
                let bytes = key.to_bytes();
                others.push(u8::try_from(bytes.len()).unwrap_or(u8::MAX));
                others.extend_from_slice(&bytes);
                others.extend_from_slice(&summary.ban_until_ms.to_le_bytes());
                others.extend_from_slice(&summary.strikes.to_le_bytes());
                others.extend_from_slice(&summary.allow_until_ms.to_le_bytes());
                n_others += 1;
            }
        }
    }
    hosts.sort_unstable_by_key(|(addr, _)| *addr);
    let mut out = Vec::with_capacity(96 + hosts.len() * 12 + others.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&SCHEMA_VERSION.to_le_bytes());
    state.encode(&mut out);
    out.extend_from_slice(&(hosts.len() as u64).to_le_bytes());
    out.extend(hosts.iter().flat_map(|(addr, _)| addr.to_le_bytes()));
    out.extend(hosts.iter().flat_map(|(_, packed)| packed.to_le_bytes()));
    out.extend_from_slice(&n_others.to_le_bytes());
    out.extend_from_slice(&others);
    out.push(u8::from(counts.is_some()));
    if let Some(c) = counts {
        let fields = [c.records, c.by_kind[0], c.by_kind[1], c.by_kind[2], c.by_kind[3]];
        let more = [c.origins, c.certificates, c.revocations];
        out.extend(fields.iter().chain(&more).flat_map(|n| n.to_le_bytes()));
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// Saves `index` (and the store's `counts`, when known) beside the store
/// file at `db_path`, which the writer has just closed cleanly; a failure
/// only means the next start builds it. Returns once the clock is a tick
/// past the store file's time (module docs).
pub fn save(db_path: &Path, index: &Index, counts: Option<&Counts>) -> std::io::Result<()> {
    let meta = std::fs::metadata(db_path)?;
    let state = FileState::of(&meta);
    let file = index_path(db_path);
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut out = std::fs::File::create(&tmp)?;
    out.write_all(&encode(index, counts, state))?;
    out.sync_all()?;
    drop(out);
    std::fs::rename(&tmp, &file)?;
    let after = meta.modified()? + TICK;
    if let Ok(wait) = after.duration_since(SystemTime::now()) {
        std::thread::sleep(wait);
    }
    Ok(())
}

#[cfg(test)]
#[path = "saved_tests.rs"]
mod tests;
