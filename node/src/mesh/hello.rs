//! `/banmesh/hello/1`: what two nodes tell each other on every new
//! connection (certificate, wall clock, revocations, peer addresses, cluster
//! constants), how a received hello is judged, and the refusal a judged peer
//! is told. Until a peer's hello is accepted its gossip is ignored and its
//! sync requests refused.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use banmesh_crdt::Params;
use banmesh_crdt::duration::FormatDuration;
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
/// At most this many characters of a refusal a peer tells are kept.
pub const MAX_REASON: usize = 200;
/// At most this many peers' refusals are kept for `status`.
pub const MAX_REFUSERS: usize = 32;
/// At most this many of them are named in the warning.
const NAMED_REFUSERS: usize = 4;

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
    /// The sender's cluster constants. Absent from hellos of nodes built
    /// before they were sent: those are admitted unchecked.
    #[serde(default)]
    pub constants: Option<Constants>,
    /// Set when this is no hello but a refusal of the receiver's hello: why,
    /// in the receiver's terms. Older nodes read it as a hello without a
    /// certificate (and refuse it as "not enrolled").
    #[serde(default)]
    pub refused: Option<String>,
    /// With a refusal: the refusing node's name (from its certificate), so
    /// the refused node can say who refused it. Unchecked: shown, never trusted.
    #[serde(default)]
    pub by: Option<String>,
}

impl Hello {
    /// The refusal told to a peer whose hello was refused, by the node
    /// named `by`.
    pub fn refusal(reason: String, by: Option<String>, clock_ms: u64) -> Hello {
        Hello {
            version: HELLO_VERSION,
            cert: ByteBuf::new(),
            clock_ms,
            revocations: Vec::new(),
            addrs: Vec::new(),
            constants: None,
            refused: Some(reason),
            by,
        }
    }
}

/// The cluster constants every node must share (`Params`): two nodes that
/// judge validity differently never converge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constants {
    /// `cluster.max_ttl`, ms.
    pub max_ttl_ms: u64,
    /// `cluster.retention`, ms.
    pub retention_ms: u64,
    /// `cluster.skew_bound`, ms.
    pub skew_bound_ms: u64,
}

impl From<Params> for Constants {
    fn from(p: Params) -> Constants {
        Constants {
            max_ttl_ms: p.max_ttl_ms,
            retention_ms: p.retention_ms,
            skew_bound_ms: p.skew_bound_ms,
        }
    }
}

/// One constant that differs: its name, our value, the peer's (ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// `max_ttl`, `retention` or `skew_bound`.
    pub name: &'static str,
    /// This node's value, ms.
    pub here_ms: u64,
    /// The peer's value, ms.
    pub there_ms: u64,
}

impl Constants {
    /// The constants that differ between `self` (here) and `there`.
    pub fn differences(&self, there: &Constants) -> Vec<Difference> {
        [
            ("max_ttl", self.max_ttl_ms, there.max_ttl_ms),
            ("retention", self.retention_ms, there.retention_ms),
            ("skew_bound", self.skew_bound_ms, there.skew_bound_ms),
        ]
        .into_iter()
        .filter(|(_, here, there)| here != there)
        .map(|(name, here_ms, there_ms)| Difference { name, here_ms, there_ms })
        .collect()
    }
}

/// Why a hello was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Another hello protocol version.
    #[error("hello version")]
    Version,
    /// No certificate.
    #[error("not enrolled")]
    NotEnrolled,
    /// The certificate does not decode.
    #[error("malformed certificate")]
    MalformedCertificate,
    /// The certificate is for another node key than the peer's.
    #[error("certificate is not the peer's")]
    NotThePeers,
    /// The certificate is not signed by this cluster's key.
    #[error("certificate signed by another cluster")]
    ForeignCluster,
    /// The certificate is not yet or no longer valid.
    #[error("certificate not valid now")]
    NotValidNow,
    /// The peer's node key is revoked.
    #[error("revoked")]
    Revoked,
    /// The cluster constants differ (here versus there).
    #[error("cluster constants differ: {}", Differences(.0, false))]
    ConstantsDiffer(Vec<Difference>),
}

impl Refusal {
    /// The reason under which a refusal is counted in `banmesh status`.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Version => "hello version",
            Refusal::NotEnrolled => "not enrolled",
            Refusal::MalformedCertificate => "malformed certificate",
            Refusal::NotThePeers => "certificate is not the peer's",
            Refusal::ForeignCluster => "certificate not from this cluster",
            Refusal::NotValidNow => "certificate not valid now",
            Refusal::Revoked => "revoked",
            Refusal::ConstantsDiffer(_) => "cluster constants differ",
        }
    }

    /// The refusal as the refused peer is told it, in its own terms (its
    /// values "here", ours "there").
    pub fn told(&self) -> String {
        match self {
            Refusal::ConstantsDiffer(d) => {
                format!("cluster constants differ: {}", Differences(d, true))
            }
            other => other.to_string(),
        }
    }
}

/// Writes differences as `max_ttl 5w here, 2w there; ...`, swapped when
/// told to the peer.
struct Differences<'a>(&'a [Difference], bool);

impl fmt::Display for Differences<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            let (here, there) =
                if self.1 { (d.there_ms, d.here_ms) } else { (d.here_ms, d.there_ms) };
            let (here, there) = (Duration::from_millis(here), Duration::from_millis(there));
            let sep = if i == 0 { "" } else { "; " };
            write!(
                f,
                "{sep}{} {} here, {} there",
                d.name,
                FormatDuration(here),
                FormatDuration(there)
            )?;
        }
        Ok(())
    }
}

/// A refusal a peer told, made safe to log and show: at most
/// [`MAX_REASON`] characters, control characters replaced.
pub fn heard(reason: &str) -> String {
    let mut kept: String =
        reason.chars().take(MAX_REASON).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if reason.chars().nth(MAX_REASON).is_some() {
        kept.push('…');
    }
    kept
}

/// The `status` warning when peers refuse this node's hello: `refused_by`
/// holds what each refusing peer told (until it accepts a hello), `ready`
/// how many peers accepted it.
pub fn refused_warning(refused_by: &BTreeMap<PeerId, String>, ready: usize) -> Option<String> {
    if refused_by.is_empty() {
        return None;
    }
    let mut reasons: Vec<String> =
        refused_by.iter().take(NAMED_REFUSERS).map(|(p, r)| format!("{p}: {r}")).collect();
    if refused_by.len() > NAMED_REFUSERS {
        reasons.push(format!("and {} more", refused_by.len() - NAMED_REFUSERS));
    }
    let reasons = reasons.join("; ");
    Some(if ready == 0 {
        format!(
            "every peer refuses this node's hello, so it is cut off from the mesh (what they told: {reasons})"
        )
    } else {
        format!("{} peer(s) refuse this node's hello: {reasons}", refused_by.len())
    })
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
/// exactly this PeerId, signed by our cluster, valid now, not revoked, and
/// the same cluster constants as `own` (when the hello states them).
pub fn judge(
    hello: &Hello,
    peer: &PeerId,
    trust: &Trust,
    own: &Constants,
    now_ms: u64,
) -> Result<Welcome, Refusal> {
    if hello.version != HELLO_VERSION {
        return Err(Refusal::Version);
    }
    if hello.cert.is_empty() {
        return Err(Refusal::NotEnrolled);
    }
    let cert = Certificate::from_bytes(&hello.cert).map_err(|_| Refusal::MalformedCertificate)?;
    if peer_id_of(cert.node()).as_ref() != Some(peer) {
        return Err(Refusal::NotThePeers);
    }
    if cert.cluster() != &trust.cluster || cert.verify_signature(&trust.cluster).is_err() {
        return Err(Refusal::ForeignCluster);
    }
    if cert.check_time(now_ms).is_err() {
        return Err(Refusal::NotValidNow);
    }
    let revocations: Vec<Revocation> = hello
        .revocations
        .iter()
        .take(MAX_REVOCATIONS)
        .filter_map(|b| Revocation::from_bytes(b).ok())
        .filter(|r| r.verify(&trust.cluster).is_ok())
        .collect();
    if trust.is_revoked(cert.node()) || revocations.iter().any(|r| r.node() == cert.node()) {
        return Err(Refusal::Revoked);
    }
    let differences = hello.constants.map(|c| own.differences(&c)).unwrap_or_default();
    if !differences.is_empty() {
        return Err(Refusal::ConstantsDiffer(differences));
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

#[cfg(test)]
mod tests;
