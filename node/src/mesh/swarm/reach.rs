//! A peer's other addresses in the never-ban list: an admitted peer's hello
//! names the addresses it listens on (its IPv6 beside the IPv4 it connected
//! from, other interfaces); this node dials each once and, when Noise proves
//! the peer's own key at the other end, keeps that address never-ban like
//! the one the peer connected from. A claim alone never counts: an enrolled
//! node could otherwise shield any address from every node's bans. Reaching
//! the peer there shows it could connect from that address anyway, so the
//! rule grants nothing the observed-address rule does not.
//!
//! Bounds: only the peer's own addresses (its `/p2p/` part), single
//! addresses (never networks), routable ones (not loopback, unspecified,
//! link-local or multicast), at most [`MAX_PER_PEER`] per peer and
//! [`MAX_PROBES`] dials in flight; an address is tried again only after
//! [`TRY_AGAIN_AFTER`]. The probe connection is closed once it has spoken.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use banmesh_keys::PublicKey;
use libp2p::swarm::ConnectionId;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId};

use super::Mesh;
use crate::mesh::ip_of;
use crate::mesh::never_ban::Seen;

/// Addresses of one peer probed (or kept) at most.
pub const MAX_PER_PEER: usize = 8;
/// Probe dials in flight at most.
pub const MAX_PROBES: usize = 32;
/// How long before an address tried is tried again (the store keeps a
/// reached one meanwhile).
pub const TRY_AGAIN_AFTER: Duration = Duration::from_secs(600);

/// Probes in flight and addresses tried.
#[derive(Default)]
pub struct Reach {
    probes: HashMap<ConnectionId, Probe>,
    tried: HashMap<(PeerId, IpAddr), Instant>,
}

/// One address being dialled to see whether the peer answers there.
struct Probe {
    peer: PeerId,
    ip: IpAddr,
    node: PublicKey,
    valid_until_ms: u64,
}

/// Whether `ip`, announced by a peer whose connection comes from `remote`,
/// is worth a probe: another address than the one seen, and one a single
/// host can own and be reached on.
pub fn worth_probing(ip: IpAddr, remote: Option<IpAddr>) -> bool {
    let special = match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    Some(ip) != remote
        && !ip.is_loopback()
        && !ip.is_unspecified()
        && !ip.is_multicast()
        && !special
}

impl Mesh {
    /// Dials the addresses `peer` (node key `node`, certificate valid until
    /// `valid_until_ms`) announced as its own, within the bounds above.
    pub(super) fn probe_addrs(
        &mut self,
        peer: PeerId,
        addrs: &[Multiaddr],
        node: PublicKey,
        valid_until_ms: u64,
    ) {
        let remote = self.peers.get(&peer).and_then(|p| p.state.remote.as_ref()).and_then(ip_of);
        let now = Instant::now();
        self.reach.tried.retain(|_, at| now.saturating_duration_since(*at) < TRY_AGAIN_AFTER);
        for addr in addrs {
            let Some(ip) = ip_of(addr).filter(|ip| worth_probing(*ip, remote)) else { continue };
            let reach = &mut self.reach;
            let of_peer = reach.tried.keys().filter(|(p, _)| *p == peer).count();
            if reach.tried.contains_key(&(peer, ip))
                || of_peer >= MAX_PER_PEER
                || reach.probes.len() >= MAX_PROBES
            {
                continue;
            }
            reach.tried.insert((peer, ip), now);
            let opts = DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::Always)
                .build();
            let id = opts.connection_id();
            match self.dial(opts) {
                Ok(()) => {
                    self.reach.probes.insert(id, Probe { peer, ip, node, valid_until_ms });
                }
                Err(error) => {
                    tracing::debug!(%peer, %addr, %error, "cannot probe a peer's address")
                }
            }
        }
    }

    /// A connection is up: if it is a probe, the peer is reached on its
    /// address (Noise proved its key), which becomes never-ban; the probe
    /// is closed unless it is the peer's only connection now.
    pub(super) fn probe_reached(&mut self, peer: PeerId, id: ConnectionId, only: bool) {
        let Some(probe) = self.reach.probes.remove(&id) else { return };
        if probe.peer == peer {
            tracing::info!(
                target: "banmesh::events::peer_reached", %peer, addr = %probe.ip,
                "peer reached on an address it announced: never banned here"
            );
            let seen =
                Seen { node: probe.node, addr: probe.ip, valid_until_ms: probe.valid_until_ms };
            if self.seen_tx.try_send(seen).is_err() {
                tracing::debug!(%peer, addr = %probe.ip, "never-ban keeper busy: tried again later");
                self.reach.tried.remove(&(peer, probe.ip));
            }
        }
        if !only {
            self.swarm.close_connection(id);
        }
    }

    /// A probe dial failed: the peer is not reached there (counted nowhere:
    /// an address a peer cannot be reached on is common and harmless).
    pub(super) fn probe_failed(&mut self, id: ConnectionId, error: &dyn std::fmt::Display) {
        if let Some(probe) = self.reach.probes.remove(&id) {
            tracing::debug!(peer = %probe.peer, addr = %probe.ip, %error, "peer not reached on an address it announced");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_other_routable_single_addresses_are_probed() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let remote = Some(ip("10.77.0.2"));
        assert!(worth_probing(ip("fd77::2"), remote));
        assert!(worth_probing(ip("10.78.0.2"), remote));
        for never in [
            "10.77.0.2",
            "127.0.0.1",
            "::1",
            "0.0.0.0",
            "::",
            "fe80::1",
            "169.254.1.1",
            "224.0.0.1",
        ] {
            assert!(!worth_probing(ip(never), remote), "{never}");
        }
    }
}
