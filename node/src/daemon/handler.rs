//! The node task: answers the [`NodeHandle`](crate::api::NodeHandle)'s
//! requests one at a time. It only issues: records (ban, unban, allow,
//! disallow) are issued by the clock rule, signed, committed to the store,
//! then gossiped; revocations are stored and spread; standing orders are
//! renewed. Reads are [`Queries`](super::queries::Queries), run by the
//! control server beside it.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use banmesh_crdt::{HlcClock, Key, KeySlots, Kind, Metadata, Record};
use banmesh_keys::{Revocation, SecretKey};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod batch;
mod fail2ban;
mod reload;

use super::identity::Identity;
use super::issue::{self, Lifetime, Order};
use super::queries::SharedStanding;
use crate::api::{NodeError, Request, Revoked, Written};
use crate::clock::now_ms;
use crate::config::Config;
use crate::control::views::RecordView;
use crate::mesh::{MeshHandle, Trust};
use crate::store::{Store, query};

/// The node task's state.
pub struct Node {
    config: Config,
    identity: Identity,
    store: Store,
    clock: HlcClock,
    mesh: MeshHandle,
    trust: Arc<RwLock<Trust>>,
    /// What `status` shows of this node's standing, updated on a reload.
    standing: Option<SharedStanding>,
    /// The node key again, for signing a batch on several threads.
    signer: Arc<SecretKey>,
    /// The batch being committed while the next one is signed, if any.
    committing: Option<batch::Committing>,
}

impl Node {
    /// The node task over its parts.
    pub fn new(
        config: Config,
        identity: Identity,
        store: Store,
        clock: HlcClock,
        mesh: MeshHandle,
        trust: Arc<RwLock<Trust>>,
    ) -> Node {
        let signer = Arc::new(SecretKey::from_bytes(&identity.secret.seed()));
        Node {
            config,
            identity,
            store,
            clock,
            mesh,
            trust,
            standing: None,
            signer,
            committing: None,
        }
    }

    /// Answers requests until the token fires or every handle is gone, and
    /// renews standing orders as they near their expiry.
    pub async fn run(mut self, mut requests: mpsc::Receiver<Request>, shutdown: CancellationToken) {
        let every = Duration::from_millis(self.config.cluster.params.max_ttl_ms / 10)
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut renewals = tokio::time::interval(every);
        loop {
            let request = tokio::select! {
                () = shutdown.cancelled() => break,
                _ = renewals.tick() => {
                    self.settle().await;
                    if let Err(e) = self.renew().await {
                        tracing::warn!(error = %e, "cannot renew standing orders");
                    }
                    continue;
                }
                request = requests.recv() => match request {
                    Some(request) => request,
                    None => break,
                },
            };
            if !matches!(request, Request::Issue { .. }) {
                self.settle().await;
            }
            self.handle(request).await;
        }
        self.settle().await;
    }

    /// Renews every standing order (`--for permanent`) whose record has less
    /// than half of `max_ttl` left, and forgets orders an Unban or Disallow
    /// (from any node) has lifted.
    async fn renew(&mut self) -> Result<(), String> {
        let orders = self.store.read(query::orders).await.map_err(|e| e.to_string())?;
        let own = banmesh_keys::origin_of(&self.identity.secret.public());
        let now = now_ms();
        let half = self.config.cluster.params.max_ttl_ms / 2;
        for (key, kind, meta) in orders {
            let records = self
                .store
                .read(move |c, p| query::records_on_keys(c, p, &[key]))
                .await
                .map_err(|e| e.to_string())?;
            let slots = KeySlots::new(&records);
            let mine = slots.greatest_of(own, kind);
            if mine.is_some_and(|m| slots.is_lifted(m)) {
                self.store
                    .write(move |db| db.remove_order(key, kind))
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(%key, %kind, "standing order lifted");
                continue;
            }
            let due = mine
                .and_then(|m| m.statement().expires_at)
                .is_none_or(|e| e.saturating_sub(now) < half);
            if due {
                self.write(kind, key, Lifetime::Permanent, meta)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(target: "banmesh::events::order_renewed", %key, %kind, "standing order renewed");
            }
        }
        Ok(())
    }

    /// Answers one request on its own `oneshot`.
    async fn handle(&mut self, request: Request) {
        match request {
            Request::Write { order, reply } => {
                let _ = reply.send(self.write_order(order).await);
            }
            Request::Issue { orders, reply } => self.issue(orders, reply).await,
            Request::Fail2BanBan { handover, reply } => {
                let _ = reply.send(self.fail2ban_ban(handover).await);
            }
            Request::Fail2BanUnban { key, jail, reply } => {
                let _ = reply.send(self.fail2ban_unban(key, jail).await);
            }
            Request::Revoke { revocation, reply } => {
                let _ = reply.send(self.revoke(*revocation).await);
            }
            Request::ReloadCert { reply } => {
                let _ = reply.send(self.reload_cert().await);
            }
            Request::Ping { reply } => {
                let _ = reply.send(Ok(()));
            }
        }
    }

    async fn skew(&self) -> Result<(), NodeError> {
        skew(&self.mesh, self.config.cluster.params.skew_bound_ms).await
    }

    /// A record as the control socket shows it.
    fn view(&self, record: &Record, arrival: Option<&(u64, Option<String>)>) -> RecordView {
        let trust = self.trust.read().unwrap_or_else(PoisonError::into_inner);
        super::queries::record_view(record, arrival, &trust, &self.config.cluster.params)
    }

    async fn write(
        &mut self,
        kind: Kind,
        key: Key,
        lifetime: Lifetime,
        meta: Metadata,
    ) -> Result<Written, NodeError> {
        self.write_order(Order { lifetime, meta, ..Order::new(kind, key) }).await
    }

    /// Issues, commits and gossips the record for `order`.
    async fn write_order(&mut self, order: Order) -> Result<Written, NodeError> {
        self.skew().await?;
        let (kind, lifetime) = (order.kind, order.lifetime);
        let now = now_ms();
        let greatest = {
            let key = order.key;
            self.store.read(move |c, p| query::greatest_on_key(c, p, key)).await?
        };
        let mut notes = Vec::new();
        let record = issue::issue(
            &order,
            &self.identity.secret,
            &mut self.clock,
            now,
            |_| greatest,
            &self.config.cluster.params,
            &self.config.bans,
        )?;
        self.check_own(&record)?;
        let applied = self.store.apply(vec![record.clone()], now).await?;
        keep_orders(&self.store, &record, lifetime).await?;
        tracing::info!(
            target: "banmesh::events::record_issued",
            key = %record.key(), kind = %record.kind(), issued_at = record.issued_at().0, "record issued"
        );
        self.mesh.publish(applied.new).await;
        if matches!(lifetime, Lifetime::Permanent) {
            notes.push(
                "standing order: this node renews it before it expires until it is lifted"
                    .to_owned(),
            );
        }
        let addr = record.key().net().network();
        let after = self.store.with_index(|i| i.decision(addr, now));
        notes.extend(issue::covering_note(kind, record.key(), after));
        if self.identity.cert.is_none() {
            notes.push(
                "this node is not enrolled: the record is kept here but peers refuse it".to_owned(),
            );
        }
        Ok(Written { record: self.view(&record, Some(&(now, None))), notes })
    }

    /// Refuses a record this node's own certificate does not allow (role,
    /// prefix, validity, revocation), as every peer would: stored here, it
    /// would be enforced here alone and its gossip batch refused whole.
    /// Without a certificate the record is kept locally (the write says so).
    fn check_own(&self, record: &Record) -> Result<(), NodeError> {
        let Some(cert) = &self.identity.cert else { return Ok(()) };
        let trust = self.trust.read().unwrap_or_else(PoisonError::into_inner);
        banmesh_keys::record_valid(record, cert, trust.revocations()).map_err(NodeError::NotAllowed)
    }

    async fn revoke(&self, revocation: Revocation) -> Result<Revoked, NodeError> {
        let bad = |e: &dyn std::fmt::Display| NodeError::BadRevocation(e.to_string());
        revocation.verify(&self.identity.cluster).map_err(|e| bad(&e))?;
        let node = revocation.node().to_string();
        // The store writer adds it to the trust once stored.
        let new = self.store.add_revocation(revocation.clone()).await?;
        self.mesh.publish_revocation(revocation).await;
        Ok(Revoked { node, new })
    }
}

/// [`NodeError::ClockSkew`] when the median clock offset of ready peers
/// is past half the skew bound.
pub(super) async fn skew(mesh: &MeshHandle, skew_bound_ms: u64) -> Result<(), NodeError> {
    skew_of(&mesh.peers().await, skew_bound_ms)
}

/// [`skew`] over peers already asked for.
pub(super) fn skew_of(
    peers: &[crate::mesh::PeerState],
    skew_bound_ms: u64,
) -> Result<(), NodeError> {
    let offsets: Vec<i64> = peers.iter().filter(|p| p.ready).filter_map(|p| p.offset_ms).collect();
    let Some(median_ms) = median_offset(offsets) else { return Ok(()) };
    if median_ms.unsigned_abs() > skew_bound_ms / 2 {
        return Err(NodeError::ClockSkew { median_ms });
    }
    Ok(())
}

/// The median of the peers' clock offsets with this node counted as one
/// more voter at 0, so one peer with a wrong clock cannot make a node with a
/// right one refuse; for an even count the middle value nearer 0 wins (with
/// one peer, neither side can tell which clock is wrong). `None` without peers.
fn median_offset(mut offsets: Vec<i64>) -> Option<i64> {
    if offsets.is_empty() {
        return None;
    }
    offsets.push(0);
    offsets.sort_unstable();
    let n = offsets.len();
    let upper = offsets[n / 2];
    if n % 2 == 1 {
        return Some(upper);
    }
    let lower = offsets[n / 2 - 1];
    Some(if lower.unsigned_abs() <= upper.unsigned_abs() { lower } else { upper })
}

/// Keeps the standing order a record asks for (`--for permanent`), or
/// forgets the one an Unban or Disallow lifts.
async fn keep_orders(store: &Store, record: &Record, lifetime: Lifetime) -> Result<(), NodeError> {
    let key = record.key();
    let meta = record.statement().meta.clone();
    let result = match (record.kind(), lifetime) {
        (kind @ (Kind::Ban | Kind::Allow), Lifetime::Permanent) => {
            store.write(move |db| db.add_order(key, kind, &meta)).await
        }
        (Kind::Unban, _) => {
            store.write(move |db| db.remove_order(key, Kind::Ban).map(|_| ())).await
        }
        (Kind::Disallow, _) => {
            store.write(move |db| db.remove_order(key, Kind::Allow).map(|_| ())).await
        }
        _ => Ok(()),
    };
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::median_offset;

    #[test]
    fn one_wrong_clock_does_not_outvote_the_others() {
        assert_eq!(median_offset(vec![]), None);
        // A node whose clock is right, with one peer 10 minutes ahead.
        assert_eq!(median_offset(vec![3, 600_000]), Some(3));
        // The node 10 minutes ahead sees everyone behind it.
        assert_eq!(median_offset(vec![-600_000, -600_003]), Some(-600_000));
        // Two nodes: neither can tell.
        assert_eq!(median_offset(vec![600_000]), Some(0));
        assert_eq!(median_offset(vec![-600_000]), Some(0));
    }
}
