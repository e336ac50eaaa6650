//! Reconcile, Fail2Ban to mesh: a ban a local jail holds that this node
//! has no record of (the action's hand-over missed it, typically because the
//! node was down) is published, sized from the time Fail2Ban says is left.
//! Records are issued by the node task, which owns the clock and the key:
//! the reconciler hands it the ban through the [`NodeHandle`], as the
//! action's hand-over does.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use banmesh_crdt::{Key, KeySlots, Kind, Origin, Record};

use super::client::Ticket;
use crate::api::{Handed, Handover, NodeHandle};
use crate::clock::now_ms;
use crate::store::{Store, query};

/// A ban with less than this left is not worth publishing.
const MIN_LEFT_MS: u64 = 5_000;
/// A record of this node's issued this long before Fail2Ban's ban started
/// still counts as the record of that ban (clocks, rounding to seconds).
const SLACK_MS: u64 = 60_000;
/// How long the node task may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Keys per query.
const CHUNK: usize = 500;

/// Publishes what the node missed; remembers the tickets it has checked.
pub struct Reconciler {
    store: Store,
    node: NodeHandle,
    origin: Origin,
    /// Tickets already checked, by jail and key, with their start.
    checked: HashMap<(String, Key), u64>,
    /// Bans published since start.
    pub published: u64,
}

impl Reconciler {
    /// A reconciler publishing as `origin` through `node`.
    pub fn new(store: Store, node: NodeHandle, origin: Origin) -> Reconciler {
        Reconciler { store, node, origin, checked: HashMap::new(), published: 0 }
    }

    /// Publishes every ticket of `jail` that this node has no record of.
    /// Each ticket is checked once (again only if Fail2Ban bans anew).
    pub async fn publish_missed(&mut self, jail: &str, tickets: Vec<Ticket>) -> Result<(), String> {
        let held: HashSet<Key> = tickets.iter().map(|t| t.key).collect();
        self.checked.retain(|(j, k), _| j != jail || held.contains(k));
        let fresh: Vec<Ticket> = tickets
            .into_iter()
            .filter(|t| self.checked.get(&(jail.to_owned(), t.key)) != Some(&t.start_ms))
            .collect();
        for chunk in fresh.chunks(CHUNK) {
            let keys: Vec<Key> = chunk.iter().map(|t| t.key).collect();
            let records = self
                .store
                .read(move |c, p| query::records_on_keys(c, p, &keys))
                .await
                .map_err(|e| e.to_string())?;
            let now = now_ms();
            for ticket in chunk {
                let on_key = records.iter().filter(|r| r.key() == ticket.key);
                if !known(on_key, self.origin, ticket, now) {
                    // The first failure ends the round: the next would
                    // most likely fail alike (clock skew, an odd jail name).
                    self.publish(jail, ticket, now).await.map_err(|e| {
                        format!("cannot publish {} from the {jail} jail: {e}", ticket.key)
                    })?;
                }
                self.checked.insert((jail.to_owned(), ticket.key), ticket.start_ms);
            }
        }
        Ok(())
    }

    async fn publish(&mut self, jail: &str, ticket: &Ticket, now: u64) -> Result<(), String> {
        let bantime_s = match ticket.end_ms {
            None => -1,
            Some(end) if end < now.saturating_add(MIN_LEFT_MS) => return Ok(()),
            Some(end) => i64::try_from((end - now).div_ceil(1000)).unwrap_or(-1),
        };
        let handover = Handover {
            key: ticket.key,
            jail: jail.to_owned(),
            bantime_s,
            failures: 0,
            bancount: 1,
            restored: false,
        };
        let handed = tokio::time::timeout(ANSWER_TIMEOUT, self.node.fail2ban_ban(handover))
            .await
            .map_err(|_| "the node task did not answer".to_owned())?
            .map_err(|e| e.to_string())?;
        match handed {
            Handed::Published(_) => {
                self.published += 1;
                tracing::info!(
                    target: "banmesh::events::fail2ban_reconciled",
                    jail, key = %ticket.key, bantime_s, "published a ban Fail2Ban made while the node did not hear of it"
                );
                Ok(())
            }
            Handed::Skipped(reason) => {
                tracing::debug!(jail, key = %ticket.key, reason, "not published");
                Ok(())
            }
        }
    }
}

/// Whether this node already has a record of `ticket`: a Ban of its own on
/// the key issued since the ticket started (less [`SLACK_MS`]), or one still
/// running that no later Unban of its own lifted (an Unban from another
/// node does not make Fail2Ban's ban new).
pub fn known<'a>(
    records: impl Iterator<Item = &'a Record> + Clone,
    origin: Origin,
    ticket: &Ticket,
    now_ms: u64,
) -> bool {
    let own = KeySlots::new(records.filter(|r| r.origin() == origin));
    let recent = |b: &Record| b.issued_at().millis().saturating_add(SLACK_MS) >= ticket.start_ms;
    own.of_kind(Kind::Ban).any(recent) || own.live_bans(now_ms).next().is_some()
}
