//! `banmesh peers unblock PEER|ADDR`: lifts the blocks on one peer, or on
//! every blocked peer seen at an address, before their ten minutes are up,
//! and dials them again at once.

use std::net::IpAddr;

use libp2p::{Multiaddr, PeerId};

use super::Mesh;
use crate::mesh::ip_of;

/// What to unblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unblock {
    /// One peer.
    Peer(PeerId),
    /// Every blocked peer connecting from, or known at, this address.
    Addr(IpAddr),
}

impl Unblock {
    /// A peer id, an IP address, or a multiaddr holding either.
    pub fn parse(text: &str) -> Result<Unblock, String> {
        let text = text.trim();
        if let Ok(peer) = text.parse::<PeerId>() {
            return Ok(Unblock::Peer(peer));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Unblock::Addr(ip));
        }
        let addr: Multiaddr = text.parse().map_err(|_| {
            format!("{text:?} is neither a peer id nor an address: copy one from `banmesh peers`")
        })?;
        match (crate::mesh::hello::peer_of_addr(&addr), ip_of(&addr)) {
            (Some(peer), _) => Ok(Unblock::Peer(peer)),
            (None, Some(ip)) => Ok(Unblock::Addr(ip)),
            (None, None) => Err(format!("{text:?} names no peer id and no IP address")),
        }
    }
}

impl Mesh {
    /// Lifts the blocks `target` names; returns the peers unblocked.
    pub(super) fn unblock(&mut self, target: Unblock) -> Vec<PeerId> {
        let blocked: Vec<PeerId> = self.unblocks.iter().map(|(_, p)| *p).collect();
        let mut lifted: Vec<PeerId> =
            blocked.into_iter().filter(|peer| self.blocked_matches(peer, target)).collect();
        lifted.sort_unstable();
        lifted.dedup();
        for peer in &lifted {
            self.unblocks.retain(|(_, p)| p != peer);
            self.blocked_from.remove(peer);
            self.rejects.remove(peer);
            self.swarm.behaviour_mut().blocked.unblock_peer(*peer);
            tracing::info!(target: "banmesh::events::peer_unblocked", %peer, "peer unblocked by the operator");
            if let Some(addrs) = self.known.get(peer).cloned() {
                for addr in addrs {
                    if let Err(error) = self.dial(addr.clone()) {
                        tracing::debug!(%peer, %addr, %error, "cannot dial the unblocked peer");
                    }
                }
            }
        }
        lifted
    }

    fn blocked_matches(&self, peer: &PeerId, target: Unblock) -> bool {
        match target {
            Unblock::Peer(p) => p == *peer,
            Unblock::Addr(ip) => {
                let remote = self.blocked_from.get(peer);
                let admitted = self.admitted.get(peer).and_then(|a| a.remote.as_ref());
                let known = self.known.get(peer).into_iter().flatten();
                remote.into_iter().chain(admitted).chain(known).any(|a| ip_of(a) == Some(ip))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Unblock;

    #[test]
    fn a_target_is_a_peer_id_an_ip_or_a_multiaddr() {
        let peer = libp2p::PeerId::random();
        assert_eq!(Unblock::parse(&peer.to_string()), Ok(Unblock::Peer(peer)));
        let ip = "192.0.2.7".parse().unwrap();
        assert_eq!(Unblock::parse(" 192.0.2.7 "), Ok(Unblock::Addr(ip)));
        assert_eq!(Unblock::parse("/ip4/192.0.2.7/tcp/4646"), Ok(Unblock::Addr(ip)));
        let with_peer = format!("/ip4/192.0.2.7/tcp/4646/p2p/{peer}");
        assert_eq!(Unblock::parse(&with_peer), Ok(Unblock::Peer(peer)));
        assert!(Unblock::parse("web1").unwrap_err().contains("banmesh peers"));
    }
}
