//! `/banmesh/hello/1`: what two nodes tell each other on every new
//! connection (certificate, wall clock, revocations, peer addresses), and
//! how a received hello is judged. Until a peer's hello is accepted its
//! gossip is ignored and its sync requests refused.

use banmesh_keys::{Certificate, Revocation};
use libp2p::identity::{PublicKey as P2pPublicKey, ed25519};
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::trust::Trust;

/// The hello protocol's version.
pub const HELLO_VERSION: u32 = 1;
/// At most this many peer addresses are sent or read.
pub const MAX_ADDRS: usize = 16;
/// At most this many revocations ride in one hello.
pub const MAX_REVOCATIONS: usize = 256;

/// One side's hello (both the request and the response).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// [`HELLO_VERSION`].
    pub version: u32,
    /// The sender's certificate, canonical bytes (empty if not enrolled).
    pub cert: ByteBuf,
    /// The sender's wall clock, Unix ms.
    pub clock_ms: u64,
    /// Revocations the sender knows, canonical bytes.
    pub revocations: Vec<ByteBuf>,
    /// Addresses of the sender and of its peers, as multiaddrs with `/p2p/`.
    pub addrs: Vec<String>,
}

/// What a valid hello taught us.
#[derive(Debug, Clone)]
pub struct Welcome {
    /// The peer's certificate (checked).
    pub cert: Certificate,
    /// Their clock minus ours when the hello arrived, ms.
    pub offset_ms: i64,
    /// Revocations that verified.
    pub revocations: Vec<Revocation>,
    /// Addresses to dial, with their PeerId.
    pub addrs: Vec<(PeerId, Multiaddr)>,
}

/// The PeerId of a node key: banmesh's node key is the libp2p identity.
pub fn peer_id_of(node: &banmesh_keys::PublicKey) -> Option<PeerId> {
    let key = ed25519::PublicKey::try_from_bytes(&node.to_bytes()).ok()?;
    Some(P2pPublicKey::from(key).to_peer_id())
}

/// Judges a hello from `peer` at `now_ms`: right version, a certificate for
/// exactly this PeerId, signed by our cluster, valid now, not revoked.
pub fn judge(
    hello: &Hello,
    peer: &PeerId,
    trust: &Trust,
    now_ms: u64,
) -> Result<Welcome, &'static str> {
    if hello.version != HELLO_VERSION {
        return Err("hello version");
    }
    if hello.cert.is_empty() {
        return Err("not enrolled");
    }
    let cert = Certificate::from_bytes(&hello.cert).map_err(|_| "malformed certificate")?;
    if peer_id_of(cert.node()).as_ref() != Some(peer) {
        return Err("certificate is not the peer's");
    }
    if cert.cluster() != &trust.cluster || cert.verify_signature(&trust.cluster).is_err() {
        return Err("certificate not from this cluster");
    }
    if cert.check_time(now_ms).is_err() {
        return Err("certificate not valid now");
    }
    let revocations: Vec<Revocation> = hello
        .revocations
        .iter()
        .take(MAX_REVOCATIONS)
        .filter_map(|b| Revocation::from_bytes(b).ok())
        .filter(|r| r.verify(&trust.cluster).is_ok())
        .collect();
    if trust.is_revoked(cert.node()) || revocations.iter().any(|r| r.node() == cert.node()) {
        return Err("revoked");
    }
    let addrs = hello
        .addrs
        .iter()
        .take(MAX_ADDRS)
        .filter_map(|a| a.parse::<Multiaddr>().ok())
        .filter_map(|a| peer_of_addr(&a).map(|p| (p, a)))
        .collect();
    let offset_ms = i64::try_from(hello.clock_ms)
        .unwrap_or(i64::MAX)
        .saturating_sub(i64::try_from(now_ms).unwrap_or(i64::MAX));
    Ok(Welcome { cert, offset_ms, revocations, addrs })
}

/// The PeerId in a multiaddr's `/p2p/` part.
pub fn peer_of_addr(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}
