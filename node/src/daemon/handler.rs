//! The node task: answers control calls one at a time. Writes (ban, unban,
//! allow, disallow) are issued by the clock rule, signed, committed to the
//! store, then gossiped; reads come from the store and the index.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use banmesh_crdt::{HlcClock, Key, KeySlots, Kind, Metadata, Record};
use banmesh_keys::Revocation;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(super) mod clock;
mod fail2ban;
mod reads;
mod standing;

use super::identity::Identity;
use super::issue::{self, Lifetime, Order};
use crate::clock::now_ms;
use crate::config::Config;
use crate::control::protocol::{Command, IssuedView, MAX_ISSUE_BATCH, OrderSpec, Response};
use crate::control::server::Call;
use crate::fail2ban::ApplierStatus;
use crate::gateway::GatewayStatus;
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
    applier: Arc<Mutex<ApplierStatus>>,
    gateway: Option<Arc<Mutex<GatewayStatus>>>,
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
        applier: Arc<Mutex<ApplierStatus>>,
    ) -> Node {
        Node { config, identity, store, clock, mesh, trust, applier, gateway: None }
    }

    /// Shows the gateway's status in `banmesh status`.
    pub fn with_gateway(mut self, status: Arc<Mutex<GatewayStatus>>) -> Node {
        self.gateway = Some(status);
        self
    }

    /// Answers calls until the token fires or the control server is gone,
    /// and renews standing orders as they near their expiry.
    pub async fn run(mut self, mut call_rx: mpsc::Receiver<Call>, shutdown: CancellationToken) {
        let every = Duration::from_millis(self.config.cluster.params.max_ttl_ms / 10)
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut renewals = tokio::time::interval(every);
        loop {
            let call = tokio::select! {
                () = shutdown.cancelled() => break,
                _ = renewals.tick() => {
                    if let Err(e) = self.renew().await {
                        tracing::warn!(error = %e, "cannot renew standing orders");
                    }
                    continue;
                }
                call = call_rx.recv() => match call {
                    Some(call) => call,
                    None => break,
                },
            };
            let response = self.handle(call.command).await;
            let _ = call.reply.send(response);
        }
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
                self.write(kind, key.to_string(), Lifetime::Permanent, meta).await?;
                tracing::info!(target: "banmesh::events::order_renewed", %key, %kind, "standing order renewed");
            }
        }
        Ok(())
    }

    async fn handle(&mut self, command: Command) -> Response {
        let result = match command {
            Command::Status => self.status().await,
            Command::Peers => Ok(Response::Peers(self.peers().await)),
            Command::Ban { key, duration_ms, permanent, jail, reason } => {
                let meta = Metadata {
                    jail: jail.unwrap_or_default(),
                    reason: reason.unwrap_or_default(),
                    source: "cli".into(),
                };
                self.write(Kind::Ban, key, lifetime(duration_ms, permanent), meta).await
            }
            Command::Unban { key } => {
                self.write(Kind::Unban, key, Lifetime::Default, cli_meta()).await
            }
            Command::Allow { key, duration_ms, permanent } => {
                self.write(Kind::Allow, key, lifetime(duration_ms, permanent), cli_meta()).await
            }
            Command::Disallow { key } => {
                self.write(Kind::Disallow, key, Lifetime::Default, cli_meta()).await
            }
            Command::Records { ip, origin, kind } => self.records(ip, origin, kind).await,
            Command::Trace { ip } => self.trace(&ip).await,
            Command::Sync { peer } => self.sync(peer).await,
            Command::RevokePublish { pem } => self.revoke(&pem).await,
            Command::Fail2BanBan { ip, jail, bantime_s, failures, bancount, restored } => {
                self.fail2ban_ban(ip, jail, bantime_s, failures, bancount, restored).await
            }
            Command::Fail2BanUnban { ip, jail } => self.fail2ban_unban(ip, jail).await,
            Command::Issue { orders } => self.issue_batch(orders).await,
        };
        result.unwrap_or_else(Response::error)
    }

    /// The median clock offset of ready peers, when it is past half the skew bound.
    async fn skew_warning(&self) -> Option<String> {
        let offsets: Vec<i64> = self
            .mesh
            .peers()
            .await
            .iter()
            .filter(|p| p.ready)
            .filter_map(|p| p.offset_ms)
            .collect();
        let median = median_offset(offsets)?;
        let bound = self.config.cluster.params.skew_bound_ms / 2;
        (median.unsigned_abs() > bound).then(|| {
            format!(
                "this node's clock is {} {} its peers' (median): fix the clock (NTP); it refuses to issue records until then",
                banmesh_crdt::duration::format_duration(Duration::from_millis(median.unsigned_abs())),
                if median > 0 { "behind" } else { "ahead of" }
            )
        })
    }

    async fn write(
        &mut self,
        kind: Kind,
        key: String,
        lifetime: Lifetime,
        meta: Metadata,
    ) -> Result<Response, String> {
        self.write_order(Order { kind, key, lifetime, strikes: 1, meta }).await
    }

    /// Issues, commits and gossips the record for `order`.
    async fn write_order(&mut self, order: Order) -> Result<Response, String> {
        if let Some(skew) = self.skew_warning().await {
            return Err(skew);
        }
        let (kind, lifetime) = (order.kind, order.lifetime);
        let now = now_ms();
        let parsed = Key::parse(&order.key).map_err(|e| e.to_string())?;
        let greatest = {
            let key = parsed.key;
            self.store
                .read(move |c, p| query::greatest_on_key(c, p, key))
                .await
                .map_err(|e| e.to_string())?
        };
        let (record, mut notes) = issue::issue(
            &order,
            &self.identity.secret,
            &mut self.clock,
            now,
            |_| greatest,
            &self.config.cluster.params,
            &self.config.bans,
        )
        .map_err(|e| e.to_string())?;
        self.check_own(&record)?;
        let applied =
            self.store.apply(vec![record.clone()], now).await.map_err(|e| e.to_string())?;
        self.keep_orders(&record, lifetime).await?;
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
        Ok(Response::Written { record: self.view(&record, Some(&(now, None))), notes })
    }

    /// Issues a batch: every order signed in turn, the valid ones committed
    /// in one transaction and gossiped together; each order reports its own
    /// error.
    async fn issue_batch(&mut self, specs: Vec<OrderSpec>) -> Result<Response, String> {
        if specs.len() > MAX_ISSUE_BATCH {
            return Err(format!(
                "{} orders in one batch; send at most {MAX_ISSUE_BATCH} at a time",
                specs.len()
            ));
        }
        if let Some(skew) = self.skew_warning().await {
            return Err(skew);
        }
        let now = now_ms();
        let keys: Vec<Option<Key>> =
            specs.iter().map(|s| Key::parse(&s.key).ok().map(|p| p.key)).collect();
        let wanted: Vec<Key> = keys.iter().flatten().copied().collect();
        let keeping: Vec<Key> = specs
            .iter()
            .zip(&keys)
            .filter(|(s, _)| s.keep_longer && s.kind == Kind::Ban.as_str())
            .filter_map(|(_, k)| *k)
            .collect();
        let own = banmesh_keys::origin_of(&self.identity.secret.public());
        let (greatest, standing) = self
            .store
            .read(move |c, p| {
                let greatest = wanted
                    .into_iter()
                    .map(|k| query::greatest_on_key(c, p, k).map(|g| (k, g)))
                    .collect::<Result<HashMap<_, _>, _>>()?;
                let mut by_key: HashMap<Key, Vec<Record>> = HashMap::new();
                for record in query::records_on_keys(c, p, &keeping)? {
                    by_key.entry(record.key()).or_default().push(record);
                }
                let standing: HashMap<Key, u64> = by_key
                    .iter()
                    .filter_map(|(k, on_key)| {
                        Some((*k, issue::standing_ban(on_key, own)?.statement().expires_at?))
                    })
                    .collect();
                Ok((greatest, standing))
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut items = Vec::with_capacity(specs.len());
        let mut issued = Vec::new();
        for (spec, parsed) in specs.into_iter().zip(keys) {
            let key = spec.key.clone();
            let longer = parsed.and_then(|k| standing.get(&k)).copied();
            let until = spec.duration_ms.filter(|_| !spec.permanent).map(|d| now.saturating_add(d));
            if spec.keep_longer && longer.zip(until).is_some_and(|(have, new)| have >= new) {
                let why = "this node already bans it for longer; that ban stands".to_owned();
                items.push(IssuedView { key, id: None, error: None, skipped: Some(why) });
                continue;
            }
            let result = order_of(spec).and_then(|order| {
                let lifetime = order.lifetime;
                issue::issue(
                    &order,
                    &self.identity.secret,
                    &mut self.clock,
                    now,
                    |k| greatest.get(&k).copied().flatten(),
                    &self.config.cluster.params,
                    &self.config.bans,
                )
                .map_err(|e| e.to_string())
                .and_then(|(record, _)| self.check_own(&record).map(|()| (record, lifetime)))
            });
            items.push(match result {
                Ok((record, lifetime)) => {
                    let id = record.id().to_string();
                    issued.push((record, lifetime));
                    IssuedView { key, id: Some(id), error: None, skipped: None }
                }
                Err(error) => IssuedView { key, id: None, error: Some(error), skipped: None },
            });
        }
        let records: Vec<Record> = issued.iter().map(|(r, _)| r.clone()).collect();
        let applied = self.store.apply(records, now).await.map_err(|e| e.to_string())?;
        for (record, lifetime) in &issued {
            self.keep_orders(record, *lifetime).await?;
        }
        tracing::info!(
            target: "banmesh::events::records_issued",
            count = issued.len(), new = applied.new.len(), "records issued"
        );
        self.mesh.publish(applied.new).await;
        Ok(Response::Issued(items))
    }

    /// Refuses a record this node's own certificate does not allow (role,
    /// prefix, validity, revocation), as every peer would: stored here, it
    /// would be enforced here alone and its gossip batch refused whole.
    /// Without a certificate the record is kept locally (the write says so).
    fn check_own(&self, record: &Record) -> Result<(), String> {
        let Some(cert) = &self.identity.cert else { return Ok(()) };
        let trust = self.trust.read().unwrap_or_else(PoisonError::into_inner);
        banmesh_keys::record_valid(record, cert, trust.revocations())
            .map_err(|e| format!("this node's certificate does not allow that record: {e}"))
    }

    /// Records a standing order for a permanent Ban or Allow; an Unban or
    /// Disallow issued here ends this node's order on that key.
    async fn keep_orders(&self, record: &Record, lifetime: Lifetime) -> Result<(), String> {
        let key = record.key();
        let meta = record.statement().meta.clone();
        let result = match (record.kind(), lifetime) {
            (kind @ (Kind::Ban | Kind::Allow), Lifetime::Permanent) => {
                self.store.write(move |db| db.add_order(key, kind, &meta)).await
            }
            (Kind::Unban, _) => {
                self.store.write(move |db| db.remove_order(key, Kind::Ban).map(|_| ())).await
            }
            (Kind::Disallow, _) => {
                self.store.write(move |db| db.remove_order(key, Kind::Allow).map(|_| ())).await
            }
            _ => Ok(()),
        };
        result.map_err(|e| e.to_string())
    }

    async fn sync(&self, peer: Option<String>) -> Result<Response, String> {
        let peer =
            match peer {
                Some(text) => Some(text.parse::<libp2p::PeerId>().map_err(|_| {
                    format!("invalid peer id {text:?}: copy it from `banmesh peers`")
                })?),
                None => None,
            };
        let asked = peer.is_some();
        let done = self.mesh.sync(peer).await;
        if asked && done.is_empty() {
            return Err(
                "the sync did not finish: is the peer connected and ready? see `banmesh peers`"
                    .to_owned(),
            );
        }
        Ok(Response::Synced { peers: done.iter().map(ToString::to_string).collect() })
    }

    async fn revoke(&self, pem: &str) -> Result<Response, String> {
        let revocation = Revocation::from_pem(pem).map_err(|e| e.to_string())?;
        revocation.verify(&self.identity.cluster).map_err(|e| e.to_string())?;
        let node = revocation.node().to_string();
        // The store writer adds it to the trust once stored.
        let new = self.store.add_revocation(revocation.clone()).await.map_err(|e| e.to_string())?;
        self.mesh.publish_revocation(revocation).await;
        Ok(Response::Revoked { node, new })
    }
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

/// The order a batch item asks for.
fn order_of(spec: OrderSpec) -> Result<Order, String> {
    let kind = Kind::ALL.into_iter().find(|k| k.as_str() == spec.kind).ok_or_else(|| {
        format!("unknown kind {:?}: write ban, unban, allow or disallow", spec.kind)
    })?;
    let meta = Metadata { jail: spec.jail, reason: spec.reason, source: spec.source };
    Ok(Order {
        kind,
        key: spec.key,
        lifetime: lifetime(spec.duration_ms, spec.permanent),
        strikes: spec.strikes.max(1),
        meta,
    })
}

fn cli_meta() -> Metadata {
    Metadata { jail: String::new(), reason: String::new(), source: "cli".into() }
}

fn lifetime(duration_ms: Option<u64>, permanent: bool) -> Lifetime {
    match (permanent, duration_ms) {
        (true, _) => Lifetime::Permanent,
        (false, Some(ms)) => Lifetime::For(ms),
        (false, None) => Lifetime::Default,
    }
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
