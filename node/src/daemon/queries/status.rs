//! `banmesh status`: the node's state gathered from the store, the mesh,
//! the applier, the gateway and this node's standing, with its warnings.

use std::collections::BTreeMap;
use std::sync::PoisonError;

use banmesh_crdt::Kind;

use super::Queries;
use crate::api::NodeError;
use crate::clock::now_ms;
use crate::control::views::{
    Fail2BanView, GatewayView, GcView, NftSetView, NftablesView, PeerState, StatusView,
    UnreachableView,
};
use crate::daemon::handler;

impl Queries {
    /// The node's status, as `banmesh status` shows it.
    pub async fn status(&self) -> Result<StatusView, NodeError> {
        let counts = self.store.counts().await?;
        let params = self.config.cluster.params;
        let now = now_ms();
        let horizon = now - now % crate::store::set_cache::HORIZON_STEP_MS;
        let stats = self.mesh.stats.lock().unwrap_or_else(PoisonError::into_inner).clone();
        // While the set streams in, each page changes it: a digest would
        // cost a pass over the whole set per call and be stale at once.
        let digest = if stats.sync.streaming_in() {
            None
        } else {
            self.store.digest_unless_warming(horizon, &params).await
        };
        // The swarm is asked for its peers once; everything below uses it.
        let mesh_peers = self.mesh.peers().await;
        let unreachable = unreachable(&mesh_peers);
        let never_ban = self.mesh.never_ban_with(&self.config.safety.never_ban, &mesh_peers).await;
        let peers = self.peer_views(mesh_peers.clone());
        let never_ban = never_ban.iter().map(ToString::to_string).collect();
        let mut record_counts = BTreeMap::new();
        for (kind, n) in Kind::ALL.iter().zip(counts.by_kind) {
            record_counts.insert(kind.to_string(), n);
        }
        let standing = self.standing();
        let mut warnings = standing.notices.clone();
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
        let skew = handler::skew_of(&mesh_peers, self.config.cluster.params.skew_bound_ms).err();
        warnings.extend(skew.as_ref().map(ToString::to_string));
        warnings.extend(self.clock_ahead_warning().await);
        let ready = peers.iter().filter(|p| p.state == PeerState::Connected).count();
        warnings.extend(crate::mesh::hello::refused_warning(&stats.refused_by, ready));
        warnings.extend(self.standing_warnings(now));
        let applier = self.backends.fail2ban.lock().unwrap_or_else(PoisonError::into_inner).clone();
        warnings.extend(applier.warnings());
        let nftables = self.backends.nftables.as_ref().map(|n| {
            let n = n.lock().unwrap_or_else(PoisonError::into_inner).clone();
            warnings.extend(n.last_error.as_ref().map(|e| format!("nftables: {e}")));
            Box::new(nftables_view(n))
        });
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
        let checks = self.checks(now, &peers, skew.as_ref(), &applier);
        let mut offsets: Vec<i64> = peers.iter().filter_map(|p| p.clock_offset_ms).collect();
        offsets.sort_unstable();
        Ok(StatusView {
            peer_id: self.mesh.peer_id.to_string(),
            node_key: standing.node_key.to_string(),
            name: standing.cert.as_ref().map(|c| c.name().to_owned()),
            certificate_expires_at_ms: standing.cert.as_ref().map(|c| c.not_after_ms()),
            cluster_key: standing.cluster.to_string(),
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
                pardoned: u64::try_from(applier.pardoned.len()).unwrap_or(u64::MAX),
            }),
            nftables,
            gateway,
            digest: digest.and_then(Result::ok).map(hex::encode),
            unreachable,
            discovery: Box::new(stats.discovery.clone()),
            gc: gc_view(self.store.gc_report()),
            sync: Box::new(crate::mesh::sync::sessions::view(&stats.sync, now)),
            checks,
        })
    }
}

fn nftables_view(n: crate::nftables::NftStatus) -> NftablesView {
    let sets = n
        .sets
        .into_iter()
        .map(|s| NftSetView {
            name: s.name,
            elements: u64::try_from(s.elements).unwrap_or(u64::MAX),
            packets: s.packets,
            bytes: s.bytes,
        })
        .collect();
    NftablesView {
        table: n.table,
        sets,
        last_reconcile_ms: n.last_reconcile_ms,
        last_error: n.last_error,
        pardoned: u64::try_from(n.pardoned.len()).unwrap_or(u64::MAX),
    }
}

fn gc_view(report: crate::store::GcReport) -> GcView {
    GcView {
        last_run_ms: report.last_run_ms,
        last_collected: report.last_collected,
        total_collected: report.total_collected,
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
