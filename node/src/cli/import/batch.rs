//! Sends an import's orders to the node in [`Command::Issue`] batches of at
//! most [`MAX_ISSUE_BATCH`] orders and [`MAX_BATCH_BYTES`] bytes, and
//! reports each order the node refused by its line number.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use banmesh_crdt::{Key, Kind};

use super::Summary;
use super::progress::Progress;
use tokio::task::JoinHandle;

use crate::control::protocol::{MAX_ISSUE_BATCH, MAX_REQUEST_FRAME};
use crate::control::{IssuedView, OrderSpec};

/// Largest encoded batch of orders sent in one call, leaving room in the
/// request frame for the envelope.
const MAX_BATCH_BYTES: usize = MAX_REQUEST_FRAME - 64 * 1024;
/// Batches sent and not answered yet: the node decodes the next batch
/// while it issues one, and never waits for this client between two.
const MAX_IN_FLIGHT: usize = 2;

/// A batch sent, its answer to come.
struct Sent {
    answer: JoinHandle<anyhow::Result<Vec<IssuedView>>>,
    /// The line of each order (0 for an unban).
    lines: Vec<u64>,
}

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
    /// Batches sent, oldest first, at most [`MAX_IN_FLIGHT`].
    sent: VecDeque<Sent>,
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
            sent: VecDeque::new(),
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
            self.send(progress).await?;
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

    /// Sends the orders held, if any, and waits for every batch sent.
    pub async fn flush(&mut self, progress: &mut Progress) -> anyhow::Result<()> {
        self.send(progress).await?;
        while let Some(sent) = self.sent.pop_front() {
            self.count(sent, progress).await?;
        }
        Ok(())
    }

    /// Sends the orders held, if any, once fewer than [`MAX_IN_FLIGHT`]
    /// batches are unanswered (counting what became of the oldest first).
    async fn send(&mut self, progress: &mut Progress) -> anyhow::Result<()> {
        if self.orders.is_empty() {
            return Ok(());
        }
        while self.sent.len() >= MAX_IN_FLIGHT {
            if let Some(sent) = self.sent.pop_front() {
                self.count(sent, progress).await?;
            }
        }
        let orders = std::mem::take(&mut self.orders);
        let lines = std::mem::take(&mut self.lines);
        self.bytes = 0;
        let first = lines.first().copied().unwrap_or(0);
        let done = move || match first {
            0 | 1 => "nothing more was imported".to_owned(),
            n => format!("the entries before line {n} were imported"),
        };
        let socket = self.socket.clone();
        let answer =
            tokio::spawn(async move { crate::cli::issue_batch::send(&socket, orders, done).await });
        self.sent.push_back(Sent { answer, lines });
        Ok(())
    }

    /// Waits for a batch's answer and counts what became of its orders.
    /// On an error the batches sent after it are abandoned (the node may
    /// still issue them: importing again renews them).
    async fn count(&mut self, sent: Sent, progress: &mut Progress) -> anyhow::Result<()> {
        let answered = sent.answer.await.map_err(|e| anyhow::anyhow!("a batch was lost: {e}"));
        let items = match answered.and_then(|items| items) {
            Ok(items) => items,
            Err(error) => {
                for later in self.sent.drain(..) {
                    later.answer.abort();
                }
                return Err(error);
            }
        };
        for (item, line) in items.iter().zip(sent.lines) {
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
