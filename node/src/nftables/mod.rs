//! nftables: a backend of [`crate::enforce`] that has the kernel hold what
//! this host enforces, in banmesh's own table (`inet banmesh` by default),
//! with no Fail2Ban needed:
//!
//! - sets ([`Set`]): `ban4`/`ban6` (`flags timeout`) hold banned addresses,
//!   each with its ban's remaining time, so the kernel expires it by itself;
//!   `net4`/`net6` (`flags interval`) hold banned networks, prefixes kept;
//!   `allow4`/`allow6` hold the target's allows and never-ban list, accepted
//!   before any drop; every drop set has a named counter of the same name;
//! - a chain on the input hook (and forward, if configured) at the
//!   configured priority: allows accepted, then each drop set dropped.
//!
//! Task: [`Nftables::run`]. It keeps a shadow copy of what it put in the
//! kernel and, when the target changes, sends only the difference
//! ([`elements::diff`]) as `nft -f -` transactions of up to `batch`
//! elements each, never one process per address. Every `reconcile` period,
//! at start and after any failure, it reads the kernel (`nft -j list
//! table`), lays the structure again (the table, sets and chains made again
//! if someone flushed them) and repairs the elements: missing ones added,
//! stale ones removed, wrong timeouts renewed. A refused transaction is
//! logged, shown in `banmesh status`, and retried through a full reconcile
//! with doubling waits; a missing `nft` or no CAP_NET_ADMIN likewise, while
//! the node keeps running. On stop the table stays (bans hold across
//! restarts) unless `remove_on_stop`; at start it is reconciled, never
//! flushed.
//!
//! The table is banmesh's when it carries the comment [`kernel::MARK`],
//! set when banmesh makes it: a table of the same name without it is
//! someone else's, reported and never touched. An element an operator
//! deleted from a drop set while the node ran ([`pardons`]) is a local
//! pardon for the rest of its ban: left out, shown in `status` and
//! `trace`, never published.

pub mod elements;
pub mod kernel;
pub mod pardons;
pub mod script;
pub mod trace;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use banmesh_crdt::Key;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use elements::{Change, Elements, Set};
pub use kernel::{Kernel, NftError};

use crate::clock::now_ms;
use crate::config::NftablesConfig;
use crate::enforce::Target;
use crate::enforce::pardon::Pardons;

/// The first wait before trying again after a failure.
const RETRY: Duration = Duration::from_secs(2);
/// The longest wait between attempts while nft keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One set, for `banmesh status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetStatus {
    /// Its name in the table.
    pub name: String,
    /// Elements banmesh holds in it.
    pub elements: usize,
    /// Packets dropped by it (drop sets; at the last reconcile).
    pub packets: u64,
    /// Bytes dropped by it.
    pub bytes: u64,
}

/// What the backend last did, for `banmesh status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NftStatus {
    /// The table (`inet NAME`).
    pub table: String,
    /// Every set.
    pub sets: Vec<SetStatus>,
    /// When the kernel was last read and repaired (Unix ms).
    pub last_reconcile_ms: Option<u64>,
    /// The last failure, while it lasts.
    pub last_error: Option<String>,
    /// Local pardons: entries an operator deleted from a drop set, left
    /// out until their ban's end (Unix ms).
    pub pardoned: BTreeMap<Key, u64>,
    /// What the sets hold: the shadow copy, checked against the kernel
    /// at every reconcile (`banmesh trace`).
    pub held: Arc<Elements>,
}

/// The nftables backend's parts.
pub struct Nftables {
    /// `[nftables]`.
    pub config: NftablesConfig,
    /// What this host enforces.
    pub target: watch::Receiver<Arc<Target>>,
    /// Shared with `banmesh status`.
    pub status: Arc<Mutex<NftStatus>>,
}

impl Nftables {
    /// Reconciles at once, then follows the target, reconciling every
    /// period, until `shutdown`; then deletes the table if so configured.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut changes = self.target.clone();
        changes.mark_unchanged();
        let mut shadow: Option<Arc<Elements>> = None;
        let mut pardons = Pardons::default();
        let mut counters = BTreeMap::new();
        let mut next_full = Instant::now();
        let mut backoff = RETRY.min(self.config.reconcile);
        loop {
            let mut full = false;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep_until(next_full) => full = true,
                // While failing, only the backoff decides.
                Ok(()) = changes.changed(), if shadow.is_some() => changes.mark_unchanged(),
            }
            let target = self.target.borrow().clone();
            let reconciling = full || shadow.is_none();
            let have = shadow.take();
            let last = self.status.lock().unwrap_or_else(PoisonError::into_inner).last_reconcile_ms;
            let result = match &have {
                Some(have) if !reconciling => self.apply(have, &target, &mut pardons).await,
                _ => {
                    let last = last.unwrap_or(0);
                    let done = self.reconcile(&target, have.as_deref(), &mut pardons, last).await;
                    done.map(|(want, read)| {
                        counters = read;
                        next_full = Instant::now() + self.config.reconcile;
                        backoff = RETRY.min(self.config.reconcile);
                        want
                    })
                }
            };
            let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
            match result {
                Ok(want) => {
                    let want = Arc::new(want);
                    *status = self.status_of(&want, &counters, &pardons, last, reconciling);
                    shadow = Some(want);
                }
                Err(error) => {
                    tracing::warn!(%error, table = %self.config.table, "cannot bring the nftables table in line with the mesh; reconciling again in {} s", backoff.as_secs());
                    status.last_error = Some(error.to_string());
                    next_full = Instant::now() + backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF.max(self.config.reconcile));
                }
            }
        }
        if self.config.remove_on_stop {
            self.remove().await;
        }
    }

    /// Sends what changed since `have` (the shadow copy).
    async fn apply(
        &self,
        have: &Elements,
        target: &Target,
        pardons: &mut Pardons<(Set, Key)>,
    ) -> Result<Elements, NftError> {
        let now = now_ms();
        let want = wanted(target, now, pardons, &target.ends());
        self.send(&elements::diff(have, &want), now).await?;
        Ok(want)
    }

    /// Reads the kernel, lays the structure again and repairs the elements
    /// (what differs from `shadow`, the copy of what was put there, is
    /// logged as a repair, but for elements deleted by hand, which become
    /// pardons); returns what the table holds now, and the counters read.
    /// `reconciled_ms`: when the kernel was last brought in line.
    async fn reconcile(
        &self,
        target: &Target,
        shadow: Option<&Elements>,
        pardons: &mut Pardons<(Set, Key)>,
        reconciled_ms: u64,
    ) -> Result<(Elements, BTreeMap<String, (u64, u64)>), NftError> {
        let (nft, table) = (&self.config.nft, &self.config.table);
        let kernel = kernel::read(nft, table).await?;
        if kernel.exists && !kernel.owned {
            return Err(NftError::NotOurs { table: table.clone() });
        }
        let mut structure = script::structure(&self.config, &kernel);
        for (set, held) in kernel.sets.iter().filter(|(_, s)| s.ours && !s.foreign.is_empty()) {
            let list = held.foreign.join(", ");
            structure
                .push_str(&format!("delete element inet {table} {} {{ {list} }}\n", set.name()));
        }
        kernel::run(nft, &["-f", "-"], &structure).await?;
        let now = now_ms();
        let ends = target.ends();
        let held_before = kernel.elements(now);
        if let Some(shadow) = shadow {
            for ((set, key), end) in
                self.removed_by_hand(shadow, &kernel, &ends, reconciled_ms).await?
            {
                tracing::warn!(target: "banmesh::events::nftables_pardoned", key = %key, set = set.name(), until_ms = end, "an operator deleted a banned element from the nftables set: pardoned on this host until its ban ends (banmesh unban lifts a ban mesh-wide)");
                pardons.pardon((set, key), end);
            }
        }
        let want = wanted(target, now, pardons, &ends);
        let mut held = held_before;
        pardons::settle_long(&mut held, &want, now);
        let changes = elements::diff(&held, &want);
        let repairs = shadow.map_or(0, |shadow| {
            let expected = shadow.0.keys().filter(|e| !pardons.contains(e));
            expected.filter(|e| !held.0.contains_key(e)).count()
                + held.0.keys().filter(|e| !shadow.0.contains_key(e)).count()
        });
        if !kernel.exists {
            tracing::info!(target: "banmesh::events::nftables_repaired", table = %table, elements = changes.len(), "nftables table made (it was missing)");
        } else if repairs > 0 {
            tracing::warn!(target: "banmesh::events::nftables_repaired", table = %table, repairs, "nftables table repaired: it did not hold what banmesh put there");
        }
        self.send(&changes, now).await?;
        Ok((want, kernel.counters))
    }

    /// The elements of `shadow` deleted by hand from `kernel`. A dump of a
    /// hash set the kernel is resizing (after a large batch) can leave
    /// elements out: the table is read once more, and only elements both
    /// reads lack count.
    async fn removed_by_hand(
        &self,
        shadow: &Elements,
        kernel: &Kernel,
        ends: &BTreeMap<Key, u64>,
        reconciled_ms: u64,
    ) -> Result<Vec<((Set, Key), u64)>, NftError> {
        let first = pardons::removed_by_hand(shadow, kernel, ends, now_ms(), reconciled_ms);
        if first.is_empty() {
            return Ok(first);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let again = kernel::read(&self.config.nft, &self.config.table).await?;
        let second = pardons::removed_by_hand(shadow, &again, ends, now_ms(), reconciled_ms);
        let suspects = first.len();
        let gone: Vec<_> = first.into_iter().filter(|x| second.contains(x)).collect();
        if gone.len() < suspects {
            tracing::debug!(
                suspects,
                gone = gone.len(),
                "nft listing left out elements a second read holds"
            );
        }
        Ok(gone)
    }

    /// Sends `changes` in transactions of `batch` elements.
    async fn send(&self, changes: &[Change], now: u64) -> Result<(), NftError> {
        let batch = usize::try_from(self.config.batch).unwrap_or(usize::MAX);
        for text in script::batches(&self.config.table, changes, batch, now) {
            kernel::run(&self.config.nft, &["-f", "-"], &text).await?;
        }
        if !changes.is_empty() {
            tracing::debug!(changes = changes.len(), "nftables sets brought in line");
        }
        Ok(())
    }

    /// Deletes the table (`remove_on_stop`), if it is banmesh's.
    async fn remove(&self) {
        let table = &self.config.table;
        let terse =
            kernel::run(&self.config.nft, &["-t", "list", "table", "inet", table], "").await;
        if !terse.as_deref().is_ok_and(kernel::marked) {
            tracing::info!(table = %table, "nftables table not deleted: it is not there or not banmesh's");
            return;
        }
        match kernel::run(&self.config.nft, &["delete", "table", "inet", table], "").await {
            Ok(_) => tracing::info!(table = %table, "nftables table deleted (remove_on_stop)"),
            Err(error) => tracing::warn!(%error, "cannot delete the nftables table"),
        }
    }

    fn status_of(
        &self,
        held: &Arc<Elements>,
        counters: &BTreeMap<String, (u64, u64)>,
        pardons: &Pardons<(Set, Key)>,
        last: Option<u64>,
        reconciled: bool,
    ) -> NftStatus {
        let sets = Set::ALL
            .into_iter()
            .map(|set| {
                let (packets, bytes) = counters.get(set.name()).copied().unwrap_or_default();
                SetStatus { name: set.name().to_owned(), elements: held.count(set), packets, bytes }
            })
            .collect();
        NftStatus {
            table: format!("inet {}", self.config.table),
            sets,
            last_reconcile_ms: if reconciled { Some(now_ms()) } else { last },
            last_error: None,
            pardoned: pardons.iter().map(|((_, key), end)| (*key, *end)).collect(),
            held: held.clone(),
        }
    }
}

/// What the table should hold for `target` at `now_ms`, less the standing
/// pardons (those whose ban ended or changed are dropped first; `ends`:
/// each entry's ban end).
fn wanted(
    target: &Target,
    now_ms: u64,
    pardons: &mut Pardons<(Set, Key)>,
    ends: &BTreeMap<Key, u64>,
) -> Elements {
    pardons.keep(now_ms, |(_, key)| ends.get(key).copied());
    let mut want = Elements::wanted(target, now_ms);
    if !pardons.is_empty() {
        want.0.retain(|element, _| !pardons.contains(element));
    }
    want
}

#[cfg(test)]
mod tests;
