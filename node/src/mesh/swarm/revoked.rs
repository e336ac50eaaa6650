//! A revoked node is told so. A hello refused because the peer's key is
//! revoked carries the signed revocation in the refusal; the refused node
//! checks it against the cluster key, stores it (so `status` says its key is
//! revoked, and a restart still knows), and stops dialling: every peer
//! would refuse it, so redialling them only loops.

use std::sync::PoisonError;

use banmesh_keys::{PublicKey, Revocation};
use libp2p::PeerId;
use libp2p::identity::PublicKey as P2pPublicKey;
use serde_bytes::ByteBuf;

use super::Mesh;
use crate::clock::now_ms;
use crate::mesh::hello::{self, Hello, Refusal};
use crate::mesh::learnt::Learnt;

/// The node key a PeerId names (banmesh's node key is the libp2p identity:
/// an ed25519 key, inlined in the PeerId).
pub(super) fn key_of(peer: &PeerId) -> Option<PublicKey> {
    let key = P2pPublicKey::try_decode_protobuf(peer.as_ref().digest()).ok()?;
    PublicKey::from_bytes(&key.try_into_ed25519().ok()?.to_bytes()).ok()
}

impl Mesh {
    /// What a peer whose hello was refused is told: why, and when its key
    /// is revoked, the revocation, so it learns it.
    pub(super) fn refusal_for(&self, peer: &PeerId, refusal: &Refusal) -> Hello {
        let mut told = Hello::refusal(refusal.told(), self.own_name(), now_ms());
        if *refusal == Refusal::Revoked
            && let Some(node) = key_of(peer)
        {
            let trust = self.trust.read().unwrap_or_else(PoisonError::into_inner);
            let revocation = trust.revocations().get(&node).map(|r| ByteBuf::from(r.to_bytes()));
            told.revocations = revocation.into_iter().collect();
        }
        told
    }

    /// A peer refused this node's hello and sent revocations along: the
    /// ones of this node's own key that verify and are new go to the store
    /// (the trust follows), and the node says it is revoked.
    pub(super) fn told_revoked(&mut self, peer: PeerId, revocations: &[ByteBuf]) {
        let Some(own) = key_of(self.swarm.local_peer_id()) else { return };
        let ours: Vec<Revocation> = {
            let trust = self.trust.read().unwrap_or_else(PoisonError::into_inner);
            revocations
                .iter()
                .take(hello::MAX_REVOCATIONS)
                .filter_map(|bytes| Revocation::from_bytes(bytes).ok())
                .filter(|r| r.node() == &own && r.verify(&trust.cluster).is_ok() && trust.lacks(r))
                .collect()
        };
        let Some(first) = ours.first() else { return };
        tracing::error!(
            target: "banmesh::events::own_key_revoked",
            %peer,
            reason = first.reason(),
            "this node's key is revoked by the cluster key (told by {peer}): it stops dialling its peers"
        );
        if self.learnt_tx.try_send(Learnt { cert: None, revocations: ours }).is_err() {
            tracing::debug!("trust keeper busy: the revocation is learnt from a later refusal");
        }
    }

    /// Whether this node's own key is revoked (by what the trust holds).
    pub(super) fn own_revoked(&self) -> bool {
        let Some(own) = key_of(self.swarm.local_peer_id()) else { return false };
        self.trust.read().unwrap_or_else(PoisonError::into_inner).is_revoked(&own)
    }
}

#[cfg(test)]
mod tests {
    use super::key_of;

    #[test]
    fn a_peer_id_names_its_node_key() {
        let secret = banmesh_keys::SecretKey::generate().unwrap();
        let bytes = secret.public().to_bytes();
        let ed = libp2p::identity::ed25519::PublicKey::try_from_bytes(&bytes).unwrap();
        let peer = libp2p::identity::PublicKey::from(ed).to_peer_id();
        assert_eq!(key_of(&peer), Some(secret.public()));
        assert_eq!(key_of(&libp2p::PeerId::random()), None);
    }
}
