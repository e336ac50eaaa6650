//! `Issue` batches (`banmesh import`, the gateway's bulk requests): what
//! the store holds on the batch's keys read in one pass, each order's
//! statement made in turn (the clock is the node task's), the statements
//! signed on several threads, the valid records committed in one
//! transaction and gossiped together. Each order reports its own error.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use banmesh_crdt::{Hlc, Key, Kind, Origin, Record, Statement};
use banmesh_keys::{SecretKey, sign_record};
use rusqlite::Connection;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Node;
use crate::api::{NodeError, Outcome};
use crate::clock::now_ms;
use crate::control::protocol::MAX_ISSUE_BATCH;
use crate::daemon::issue::{self, Lifetime, Order};
use crate::mesh::MeshHandle;
use crate::store::{Store, StoreError, classify, query};

/// Below this many statements a batch is signed on the node task itself.
const SIGN_ALONE_BELOW: usize = 64;
/// At most this many threads sign one batch.
const MAX_SIGNERS: usize = 4;

/// Where a batch's answer goes.
type BatchReply = oneshot::Sender<Result<Vec<Result<Outcome, NodeError>>, NodeError>>;

/// A batch signed, not committed yet.
struct Prepared {
    items: Vec<Result<Outcome, NodeError>>,
    issued: Vec<(Record, Lifetime)>,
    now: u64,
}

/// What the store holds on a batch's keys.
struct OnKeys {
    /// The greatest `issued_at` on each key (the clock rule).
    greatest: HashMap<Key, Option<Hlc>>,
    /// When this node's standing Ban on each `keep_longer` key ends.
    standing: HashMap<Key, u64>,
}

/// A batch whose commit runs while the node signs the next one: the
/// keys it writes, and the task that commits it and answers its caller.
pub(super) struct Committing {
    keys: HashSet<Key>,
    task: JoinHandle<()>,
}

impl Node {
    /// Issues a batch and answers on `reply` once it is committed. The
    /// commit runs on its own task while the node goes on to the next
    /// request: a batch that follows is read and signed meanwhile, unless
    /// it names a key of the batch being committed (its reads must see
    /// that commit); any other request waits for the commit
    /// ([`Node::settle`]). Commits run one at a time, in order.
    pub(super) async fn issue(&mut self, orders: Vec<Order>, reply: BatchReply) {
        if self.committing.as_ref().is_some_and(|c| orders.iter().any(|o| c.keys.contains(&o.key)))
        {
            self.settle().await;
        }
        let Prepared { items, issued, now } = match self.prepare_batch(orders).await {
            Ok(prepared) => prepared,
            Err(error) => {
                let _ = reply.send(Err(error));
                return;
            }
        };
        self.settle().await;
        let keys = issued.iter().map(|(r, _)| r.key()).collect();
        let (store, mesh) = (self.store.clone(), self.mesh.clone());
        let task = tokio::spawn(async move {
            let _ = reply.send(commit(&store, &mesh, issued, now).await.map(|()| items));
        });
        self.committing = Some(Committing { keys, task });
    }

    /// Waits for the batch being committed, if any.
    pub(super) async fn settle(&mut self) {
        if let Some(Committing { task, .. }) = self.committing.take() {
            // A commit task that panicked dropped its reply: its caller
            // hears the node failed; nothing else is waiting on it.
            let _ = task.await;
        }
    }

    /// The batch's records, signed: the orders' statements made in turn,
    /// signed in parallel; each order's own error in its item.
    async fn prepare_batch(&mut self, orders: Vec<Order>) -> Result<Prepared, NodeError> {
        if orders.len() > MAX_ISSUE_BATCH {
            return Err(NodeError::TooManyOrders { count: orders.len(), max: MAX_ISSUE_BATCH });
        }
        self.skew().await?;
        let now = now_ms();
        let wanted: Vec<Key> = orders.iter().map(|o| o.key).collect();
        let keeping: Vec<Key> =
            orders.iter().filter(|o| o.keep_longer && o.kind == Kind::Ban).map(|o| o.key).collect();
        let own = banmesh_keys::origin_of(&self.identity.secret.public());
        let known = self.store.read(move |c, p| on_keys(c, p, &wanted, &keeping, own)).await?;
        let mut items = Vec::with_capacity(orders.len());
        // (item, lifetime) of each statement to sign.
        let mut made = Vec::new();
        let mut statements = Vec::new();
        for order in &orders {
            if let Some(why) = kept_longer(order, &known, now) {
                items.push(Ok(Outcome::Skipped(why)));
                continue;
            }
            let statement = issue::statement(
                order,
                &mut self.clock,
                now,
                |k| known.greatest.get(&k).copied().flatten(),
                &self.config.cluster.params,
                &self.config.bans,
            );
            match statement {
                Ok(statement) => {
                    made.push((items.len(), order.lifetime));
                    items.push(Ok(Outcome::Issued(String::new())));
                    statements.push(statement);
                }
                Err(error) => items.push(Err(error)),
            }
        }
        let signed = sign_all(self.signer.clone(), statements).await?;
        let mut issued = Vec::with_capacity(signed.len());
        for ((item, lifetime), record) in made.into_iter().zip(signed) {
            items[item] = self.check_own(&record).map(|()| {
                let id = record.id().to_string();
                issued.push((record, lifetime));
                Outcome::Issued(id)
            });
        }
        Ok(Prepared { items, issued, now })
    }
}

/// Commits a batch's records, keeps standing orders, then gossips what
/// was new.
async fn commit(
    store: &Store,
    mesh: &MeshHandle,
    issued: Vec<(Record, Lifetime)>,
    now: u64,
) -> Result<(), NodeError> {
    let records: Vec<Record> = issued.iter().map(|(r, _)| r.clone()).collect();
    let applied = store.apply(records, now).await?;
    for (record, lifetime) in &issued {
        super::keep_orders(store, record, *lifetime).await?;
    }
    issued_summary(issued.len(), applied.new.len());
    mesh.publish(applied.new).await;
    Ok(())
}

/// The log's one line per batch.
fn issued_summary(count: usize, new: usize) {
    tracing::info!(target: "banmesh::events::records_issued", count, new, "records issued");
}

/// Why `order` is left out: it asks to keep a longer ban of this node's,
/// and there is one.
fn kept_longer(order: &Order, known: &OnKeys, now: u64) -> Option<String> {
    let longer = known.standing.get(&order.key).copied();
    let until = match order.lifetime {
        Lifetime::For(ms) => Some(now.saturating_add(ms)),
        Lifetime::Default | Lifetime::Permanent => None,
    };
    (order.keep_longer && longer.zip(until).is_some_and(|(have, new)| have >= new))
        .then(|| "this node already bans it for longer; that ban stands".to_owned())
}

/// Reads what the store holds on `wanted` (the greatest `issued_at`) and
/// on `keeping` (this node's standing Ban), in one pass on one connection.
fn on_keys(
    conn: &Connection,
    path: &Path,
    wanted: &[Key],
    keeping: &[Key],
    own: Origin,
) -> Result<OnKeys, StoreError> {
    // One read transaction for every lookup (each would take the file's
    // lock apart); only read, so dropping it is the end.
    let tx = conn.unchecked_transaction().map_err(|e| classify(path, e))?;
    let conn: &Connection = &tx;
    let greatest = wanted
        .iter()
        .map(|k| query::greatest_on_key(conn, path, *k).map(|g| (*k, g)))
        .collect::<Result<HashMap<_, _>, _>>()?;
    let mut by_key: HashMap<Key, Vec<Record>> = HashMap::new();
    for record in query::records_on_keys(conn, path, keeping)? {
        by_key.entry(record.key()).or_default().push(record);
    }
    let standing = by_key
        .iter()
        .filter_map(|(k, on_key)| {
            Some((*k, issue::standing_ban(on_key, own)?.statement().expires_at?))
        })
        .collect();
    Ok(OnKeys { greatest, standing })
}

/// Signs `statements`, in order: on the node task when they are few, else
/// on up to [`MAX_SIGNERS`] threads (one per core) off the runtime.
async fn sign_all(
    secret: Arc<SecretKey>,
    statements: Vec<Statement>,
) -> Result<Vec<Record>, NodeError> {
    if statements.len() < SIGN_ALONE_BELOW {
        return Ok(statements.into_iter().map(|s| sign_record(&secret, s)).collect());
    }
    tokio::task::spawn_blocking(move || sign_parallel(&secret, statements))
        .await
        .map_err(|_| NodeError::ShuttingDown)
}

/// Signs `statements` on one thread per core (at most [`MAX_SIGNERS`]),
/// keeping their order.
fn sign_parallel(secret: &SecretKey, statements: Vec<Statement>) -> Vec<Record> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_SIGNERS);
    crate::parallel::map_in_order(statements, threads, |s| sign_record(secret, s))
        .into_iter()
        // A signer that panicked is a bug: it goes on up, as on one thread.
        .flat_map(|(_, run)| run.unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
        .collect()
}

#[cfg(test)]
mod tests {
    use banmesh_crdt::{Metadata, Statement};

    use super::*;

    #[test]
    fn a_batch_signed_in_parallel_keeps_its_order_and_verifies() {
        let secret = SecretKey::from_bytes(&[7; 32]);
        for count in [0, 1, 5, 64, 1001] {
            let statements: Vec<Statement> = (0..count)
                .map(|i| Statement {
                    key: Key::parse(&format!("10.0.{}.{}", i / 256, i % 256)).expect("key").key,
                    kind: Kind::Ban,
                    issued_at: Hlc::from_millis(1_000 + i as u64),
                    expires_at: Some(100_000),
                    strikes: 1,
                    meta: Metadata::default(),
                    origin: Origin::default(),
                })
                .collect();
            let records = sign_parallel(&secret, statements.clone());
            assert_eq!(records.len(), count);
            for (record, statement) in records.iter().zip(&statements) {
                assert_eq!(record.key(), statement.key);
                assert_eq!(record.issued_at(), statement.issued_at);
                banmesh_keys::verify_record(record).expect("signature verifies");
            }
        }
    }
}
