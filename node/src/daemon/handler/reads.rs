//! The node task's read commands: status, peers, records and trace, and
//! how a stored record is shown.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::PoisonError;

use banmesh_crdt::{Decision, Key, Kind, Record};
use banmesh_keys::PublicKey;

use super::Node;
use crate::api::{NodeError, RecordFilter};
use crate::clock::now_ms;
use crate::control::views::{
    Fail2BanView, GatewayView, GcView, PeerState, PeerView, RecordView, StatusView, TraceEntry,
    TraceView, UnreachableView,
};
use crate::store::query;

impl Node {
    pub(super) fn names(&self) -> impl Fn(&PublicKey) -> Option<String> + '_ {
        |key| {
            let trust = self.trust.read().unwrap_or_else(PoisonError::into_inner);
            trust.cert_of(key).map(|c| c.name().to_owned())
        }
    }

    /// A record as the control socket shows it, with when and from which
    /// peer it arrived (`None` for the peer: issued here).
    pub(super) fn view(
        &self,
        record: &Record,
        arrival: Option<&(u64, Option<String>)>,
    ) -> RecordView {
        let s = record.statement();
        let origin = PublicKey::from_bytes(&s.origin.0).ok();
        let trust = self.trust.read().unwrap_or_else(PoisonError::into_inner);
        let valid = trust.check_record(record, &self.config.cluster.params).is_ok();
        RecordView {
            key: s.key.to_string(),
            kind: s.kind.to_string(),
            origin_name: origin
                .as_ref()
                .and_then(|o| trust.cert_of(o))
                .map(|c| c.name().to_owned()),
            origin_key: s.origin.to_string(),
            issued_at_ms: s.issued_at.millis(),
            issued_at: s.issued_at.to_string(),
            expires_at_ms: s.expires_at,
            strikes: s.strikes,
            jail: s.meta.jail.clone(),
            reason: s.meta.reason.clone(),
            source: s.meta.source.clone(),
            id: record.id().to_string(),
            valid,
            arrived_at_ms: arrival.map(|(at, _)| *at),
            arrived_from: arrival.and_then(|(_, from)| from.clone()),
        }
    }

    /// Every peer the node knows, as the control socket shows it.
    pub(super) async fn peers(&self) -> Vec<PeerView> {
        let last_sync =
            self.mesh.stats.lock().unwrap_or_else(PoisonError::into_inner).last_sync.clone();
        self.mesh
            .peers()
            .await
            .into_iter()
            .map(|p| PeerView {
                peer_id: p.peer.to_string(),
                name: p.name,
                state: match (p.blocked, p.connected, p.ready) {
                    (true, _, _) => PeerState::Blocked,
                    (false, false, _) => PeerState::Disconnected,
                    (false, true, true) => PeerState::Connected,
                    (false, true, false) => PeerState::Pending,
                },
                addrs: p.addrs.iter().map(ToString::to_string).collect(),
                last_sync_ms: last_sync.get(&p.peer).copied(),
                clock_offset_ms: p.offset_ms,
            })
            .collect()
    }

    pub(super) async fn status(&self) -> Result<StatusView, NodeError> {
        let counts = self.store.read(query::counts).await?;
        let params = self.config.cluster.params;
        let now = now_ms();
        let horizon = now - now % 60_000;
        let digest = self.store.read(move |c, p| query::digest(c, p, horizon, &params)).await;
        let mesh_peers = self.mesh.peers().await;
        let unreachable = unreachable(&mesh_peers);
        let peers = self.peers().await;
        let never_ban = self.mesh.never_ban(&self.config.safety.never_ban).await;
        let never_ban = never_ban.iter().map(ToString::to_string).collect();
        let stats = self.mesh.stats.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let mut record_counts = BTreeMap::new();
        for (kind, n) in Kind::ALL.iter().zip(counts.by_kind) {
            record_counts.insert(kind.to_string(), n);
        }
        let mut warnings = self.identity.notices.clone();
        warnings.extend(partition_warning(&unreachable, &mesh_peers, now));
        if let Some(failure) = self.store.write_failure() {
            let ago = now.saturating_sub(failure.since_ms) / 1000;
            warnings.push(format!(
                "the store has not been writable for {ago} s: {}; new records are refused or \
                 not kept until then (peers keep theirs, and sync brings them back)",
                failure.error
            ));
        }
        warnings.extend(self.config.warnings.iter().cloned());
        warnings.extend(self.skew().await.err().map(|e| e.to_string()));
        warnings.extend(self.clock_ahead_warning().await);
        let ready = peers.iter().filter(|p| p.state == PeerState::Connected).count();
        warnings.extend(crate::mesh::hello::refused_warning(&stats.refused_by, ready));
        warnings.extend(self.standing_warnings(now));
        let applier = self.applier.lock().unwrap_or_else(PoisonError::into_inner).clone();
        warnings.extend(applier.warnings());
        let gateway = self.gateway.as_ref().map(|g| {
            let g = g.lock().unwrap_or_else(PoisonError::into_inner).clone();
            if let Some(error) = &g.last_reload_error {
                warnings
                    .push(format!("gateway: the last reload failed, old tokens in force: {error}"));
            }
            GatewayView {
                listen: g.listen,
                tokens: g.tokens,
                last_reload_error: g.last_reload_error,
            }
        });
        let mut offsets: Vec<i64> = peers.iter().filter_map(|p| p.clock_offset_ms).collect();
        offsets.sort_unstable();
        Ok(StatusView {
            peer_id: self.mesh.peer_id.to_string(),
            node_key: self.identity.secret.public().to_string(),
            name: self.identity.cert.as_ref().map(|c| c.name().to_owned()),
            certificate_expires_at_ms: self.identity.cert.as_ref().map(|c| c.not_after_ms()),
            cluster_key: self.identity.cluster.to_string(),
            listen_addrs: stats.listen.iter().map(ToString::to_string).collect(),
            peers,
            record_counts,
            rejects: stats.refused,
            skipped: stats.skipped,
            never_ban,
            enforce: self.config.safety.enforce,
            clock_offset_ms: offsets.get(offsets.len() / 2).copied(),
            warnings,
            fail2ban: self.config.fail2ban.apply.then(|| Fail2BanView {
                applied: u64::try_from(applier.applied).unwrap_or(u64::MAX),
                published: applier.published,
            }),
            gateway,
            digest: digest.ok().map(hex::encode),
            unreachable,
            gc: gc_view(self.store.gc_report()),
        })
    }

    pub(super) async fn records(&self, filter: RecordFilter) -> Result<Vec<RecordView>, NodeError> {
        let RecordFilter { key, origin, kind } = filter;
        let (records, arrivals) = match key {
            Some(key) => {
                self.store
                    .read(move |c, p| {
                        let keys = query::covering_keys(key);
                        Ok((
                            query::records_on_keys(c, p, &keys)?,
                            query::arrivals_on_keys(c, p, &keys)?,
                        ))
                    })
                    .await
            }
            None => {
                self.store
                    .read(|c, p| Ok((query::all_records(c, p)?, query::all_arrivals(c, p)?)))
                    .await
            }
        }?;
        let names = self.names();
        let records = records
            .iter()
            .filter(|r| kind.is_none_or(|k| r.kind() == k))
            .filter(|r| {
                origin.as_deref().is_none_or(|o| {
                    r.origin().to_string() == o
                        || PublicKey::from_bytes(&r.origin().0)
                            .ok()
                            .and_then(|k| names(&k))
                            .as_deref()
                            == Some(o)
                })
            })
            .map(|r| self.view(r, arrivals.get(&r.id())))
            .collect();
        Ok(records)
    }

    pub(super) async fn trace(&self, addr: IpAddr) -> Result<TraceView, NodeError> {
        let key = Key::from_addr(addr);
        let now = now_ms();
        let (mut records, arrivals) = self
            .store
            .read(move |c, p| {
                let keys = query::covering_keys(key);
                Ok((query::records_on_keys(c, p, &keys)?, query::arrivals_on_keys(c, p, &keys)?))
            })
            .await?;
        records
            .sort_by(|a, b| b.key().prefix_len().cmp(&a.key().prefix_len()).then(a.order_cmp(b)));
        let decision = self.store.with_index(|i| i.decision(addr, now));
        let (text, until, by) = match decision {
            Decision::Allowed { key, until_ms } => (
                format!("allowed by an allow on {key}"),
                Some(until_ms),
                Some((key, Kind::Allow, until_ms)),
            ),
            Decision::Banned { key, until_ms, .. } => {
                let never = self.mesh.never_ban(&self.config.safety.never_ban).await;
                let local = if never.iter().any(|n| n.contains(addr)) {
                    ", but never banned on this node"
                } else {
                    ""
                };
                (
                    format!("banned by a ban on {key}{local}"),
                    Some(until_ms),
                    Some((key, Kind::Ban, until_ms)),
                )
            }
            Decision::Free => ("not banned".to_owned(), None, None),
        };
        let entries = records
            .iter()
            .map(|r| TraceEntry {
                decides: by.is_some_and(|(k, kind, until)| {
                    r.key() == k && r.kind() == kind && r.statement().expires_at == Some(until)
                }),
                record: self.view(r, arrivals.get(&r.id())),
            })
            .collect();
        Ok(TraceView {
            address: key.to_string(),
            records: entries,
            decision: text,
            until_ms: until,
        })
    }
}

/// Peers admitted in this run, not blocked, and not connected now.
fn unreachable(peers: &[crate::mesh::PeerState]) -> Vec<UnreachableView> {
    peers
        .iter()
        .filter(|p| !p.connected && !p.blocked && p.last_seen_ms.is_some())
        .map(|p| UnreachableView {
            peer_id: p.peer.to_string(),
            name: p.name.clone(),
            last_seen_ms: p.last_seen_ms,
        })
        .collect()
}

/// The warning for peers lost: how many of those admitted, and since when.
fn partition_warning(
    lost: &[UnreachableView],
    peers: &[crate::mesh::PeerState],
    now: u64,
) -> Option<String> {
    if lost.is_empty() {
        return None;
    }
    let admitted = peers.iter().filter(|p| p.last_seen_ms.is_some()).count();
    let names: Vec<String> = lost
        .iter()
        .map(|p| {
            let name = p.name.clone().unwrap_or_else(|| p.peer_id.clone());
            let ago = now.saturating_sub(p.last_seen_ms.unwrap_or(now)) / 1000;
            format!("{name} (last heard {ago} s ago)")
        })
        .collect();
    Some(format!(
        "{} of {admitted} peers unreachable (a partition, or stopped): {}",
        lost.len(),
        names.join(", ")
    ))
}

fn gc_view(report: crate::store::GcReport) -> GcView {
    GcView {
        last_run_ms: report.last_run_ms,
        last_collected: report.last_collected,
        total_collected: report.total_collected,
    }
}
