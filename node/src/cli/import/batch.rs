//! Sends an import's orders to the node in [`Command::Issue`] batches of at
//! most [`MAX_ISSUE_BATCH`] orders and [`MAX_BATCH_BYTES`] bytes, and
//! reports each order the node refused by its line number.

use std::path::{Path, PathBuf};

use banmesh_crdt::{Key, Kind};

use super::Summary;
use super::progress::Progress;
use crate::control::OrderSpec;
use crate::control::protocol::{MAX_ISSUE_BATCH, MAX_REQUEST_FRAME};

/// Largest encoded batch of orders sent in one call, leaving room in the
/// request frame for the envelope.
const MAX_BATCH_BYTES: usize = MAX_REQUEST_FRAME - 64 * 1024;

/// What every ban of the import carries.
#[derive(Debug, Clone)]
pub struct Spec {
    /// How long each ban lasts, in ms.
    pub duration_ms: u64,
    /// The jail recorded.
    pub jail: String,
    /// The reason recorded.
    pub reason: String,
    /// `import:NAME`.
    pub source: String,
}

/// The orders not sent yet, and the counts so far.
pub struct Batcher {
    socket: PathBuf,
    spec: Spec,
    orders: Vec<OrderSpec>,
    /// The line of each order (0 for an unban).
    lines: Vec<u64>,
    bytes: usize,
    /// The counts so far.
    pub summary: Summary,
}

impl Batcher {
    /// An empty batcher sending to the node on `socket`.
    pub fn new(socket: &Path, spec: Spec) -> Batcher {
        Batcher {
            socket: socket.to_owned(),
            spec,
            orders: Vec::new(),
            lines: Vec::new(),
            bytes: 0,
            summary: Summary::default(),
        }
    }

    /// Adds a ban of `key` (from line `line`), sending the batch first when
    /// it is full.
    pub async fn push(
        &mut self,
        key: Key,
        line: u64,
        progress: &mut Progress,
    ) -> anyhow::Result<()> {
        let order = OrderSpec {
            kind: Kind::Ban.as_str().to_owned(),
            key: key.to_string(),
            duration_ms: Some(self.spec.duration_ms),
            jail: self.spec.jail.clone(),
            reason: self.spec.reason.clone(),
            source: self.spec.source.clone(),
            keep_longer: true,
            ..OrderSpec::default()
        };
        self.add(order, line, progress).await
    }

    async fn add(
        &mut self,
        order: OrderSpec,
        line: u64,
        progress: &mut Progress,
    ) -> anyhow::Result<()> {
        let size = serde_json::to_vec(&order).map_or(0, |v| v.len() + 1);
        if self.orders.len() >= MAX_ISSUE_BATCH || self.bytes + size > MAX_BATCH_BYTES {
            self.flush(progress).await?;
        }
        self.orders.push(order);
        self.lines.push(line);
        self.bytes += size;
        Ok(())
    }

    /// Unbans `keys` (gone from the list), in batches.
    pub async fn unban(&mut self, keys: Vec<Key>, progress: &mut Progress) -> anyhow::Result<()> {
        for key in keys {
            let order = OrderSpec {
                kind: Kind::Unban.as_str().to_owned(),
                key: key.to_string(),
                source: self.spec.source.clone(),
                ..OrderSpec::default()
            };
            self.add(order, 0, progress).await?;
        }
        self.flush(progress).await
    }

    /// Sends the orders held, if any, and counts what became of them.
    pub async fn flush(&mut self, progress: &mut Progress) -> anyhow::Result<()> {
        if self.orders.is_empty() {
            return Ok(());
        }
        let orders = std::mem::take(&mut self.orders);
        let lines = std::mem::take(&mut self.lines);
        self.bytes = 0;
        let first = lines.first().copied().unwrap_or(0);
        let done = || match first {
            0 | 1 => "nothing more was imported".to_owned(),
            n => format!("the entries before line {n} were imported"),
        };
        let items = crate::cli::issue_batch::send(&self.socket, orders, done).await?;
        for (item, line) in items.iter().zip(lines) {
            if item.skipped.is_some() {
                self.summary.kept_longer += 1;
                continue;
            }
            match (&item.error, line) {
                (Some(error), 0) => {
                    progress.println(&format!("unban {}: refused: {error}", item.key))
                }
                (Some(error), _) => {
                    self.summary.refused += 1;
                    progress.println(&format!(
                        "line {line}: {} refused by the node: {error}",
                        item.key
                    ));
                }
                (None, 0) => self.summary.unbanned += 1,
                (None, _) => self.summary.imported += 1,
            }
        }
        progress.update_counts(&self.summary);
        Ok(())
    }
}
