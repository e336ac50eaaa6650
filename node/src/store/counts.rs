//! The store's counts (records by kind, origins, certificates,
//! revocations) kept between calls: `status`, `/v1/status` and every
//! `/metrics` scrape ask for them, and counting scans the records table
//! (about 65 ms at 100,000 records). The writer bumps [`CountsCache::wrote`]
//! after every command that may have written and before it answers, so a
//! count taken at write number N is reused only while N is still the
//! latest: a caller whose write was acknowledged always gets a fresh count,
//! and an idle store counts once. The count kept at a clean stop is saved
//! with the index (`saved`), so the first `status` after the next start
//! (at a million records, a scan of about 0.3 s) need not count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::query::{self, Counts};
use super::{Store, StoreError};

/// The writer's write number and the last count with the number it was
/// taken at.
#[derive(Debug, Default)]
pub struct CountsCache {
    writes: AtomicU64,
    last: Mutex<Option<(u64, Counts)>>,
}

impl CountsCache {
    /// Called by the writer after each command that may have written,
    /// before it answers the command.
    pub(super) fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::AcqRel);
    }

    /// The last count, when nothing was written since it was taken.
    pub(super) fn current(&self) -> Option<Counts> {
        self.fresh(self.writes.load(Ordering::Acquire))
    }

    /// Takes `counts` as counted now (saved at the last stop beside an
    /// index the start trusts, so of the same file).
    pub(super) fn seed(&self, counts: &Counts) {
        self.keep(self.writes.load(Ordering::Acquire), counts);
    }

    fn fresh(&self, at: u64) -> Option<Counts> {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.as_ref().filter(|(taken, _)| *taken == at).map(|(_, counts)| counts.clone())
    }

    fn keep(&self, at: u64, counts: &Counts) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.as_ref().is_none_or(|(taken, _)| *taken <= at) {
            *last = Some((at, counts.clone()));
        }
    }
}

impl Store {
    /// The store's counts now: counted again only when something was
    /// written since the last count.
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        // Read the write number first: a count taken after it holds every
        // write up to it (and maybe later ones, which only makes the next
        // caller count again).
        let at = self.counts_cache.writes.load(Ordering::Acquire);
        if let Some(counts) = self.counts_cache.fresh(at) {
            return Ok(counts);
        }
        let counts = self.read(query::counts).await?;
        self.counts_cache.keep(at, &counts);
        Ok(counts)
    }
}
