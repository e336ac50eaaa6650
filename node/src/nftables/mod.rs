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

pub mod elements;
pub mod kernel;
pub mod script;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use elements::{Change, Elements, Set};
pub use kernel::{Kernel, NftError};

use crate::clock::now_ms;
use crate::config::NftablesConfig;
use crate::enforce::Target;

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
        let mut shadow: Option<Elements> = None;
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
            let result = match &have {
                Some(have) if !reconciling => self.apply(have, &target).await,
                _ => self.reconcile(&target, have.as_ref()).await.map(|(want, read)| {
                    counters = read;
                    next_full = Instant::now() + self.config.reconcile;
                    backoff = RETRY.min(self.config.reconcile);
                    want
                }),
            };
            let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
            match result {
                Ok(want) => {
                    *status =
                        self.status_of(&want, &counters, status.last_reconcile_ms, reconciling);
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
    async fn apply(&self, have: &Elements, target: &Target) -> Result<Elements, NftError> {
        let now = now_ms();
        let want = Elements::wanted(target, now);
        self.send(&elements::diff(have, &want), now).await?;
        Ok(want)
    }

    /// Reads the kernel, lays the structure again and repairs the elements
    /// (what differs from `shadow`, the copy of what was put there, is
    /// logged as a repair); returns what the table holds now, and the
    /// counters read.
    async fn reconcile(
        &self,
        target: &Target,
        shadow: Option<&Elements>,
    ) -> Result<(Elements, BTreeMap<String, (u64, u64)>), NftError> {
        let (nft, table) = (&self.config.nft, &self.config.table);
        let kernel = kernel::read(nft, table).await?;
        let mut structure = script::structure(&self.config, &kernel);
        for (set, held) in kernel.sets.iter().filter(|(_, s)| s.ours && !s.foreign.is_empty()) {
            let list = held.foreign.join(", ");
            structure
                .push_str(&format!("delete element inet {table} {} {{ {list} }}\n", set.name()));
        }
        kernel::run(nft, &["-f", "-"], &structure).await?;
        let now = now_ms();
        let want = Elements::wanted(target, now);
        let held = kernel.elements(now);
        let changes = elements::diff(&held, &want);
        let repairs = shadow.map_or(0, |shadow| elements::diff(&held, shadow).len());
        if !kernel.exists {
            tracing::info!(target: "banmesh::events::nftables_repaired", table = %table, elements = changes.len(), "nftables table made (it was missing)");
        } else if repairs > 0 {
            tracing::warn!(target: "banmesh::events::nftables_repaired", table = %table, repairs, "nftables table repaired: it did not hold what banmesh put there");
        }
        self.send(&changes, now).await?;
        Ok((want, kernel.counters))
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

    /// Deletes the table (`remove_on_stop`).
    async fn remove(&self) {
        let table = &self.config.table;
        match kernel::run(&self.config.nft, &["delete", "table", "inet", table], "").await {
            Ok(_) => tracing::info!(table = %table, "nftables table deleted (remove_on_stop)"),
            Err(error) => tracing::warn!(%error, "cannot delete the nftables table"),
        }
    }

    fn status_of(
        &self,
        held: &Elements,
        counters: &BTreeMap<String, (u64, u64)>,
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
        }
    }
}

#[cfg(test)]
mod tests;
