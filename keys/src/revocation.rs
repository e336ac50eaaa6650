//! Revocations: the cluster key's signed statement that a node key is void,
//! with its canonical bytes and strict decoding, and [`Revocations`], the set
//! of verified revocations of one cluster keyed by revoked node.

use std::collections::BTreeMap;

use banmesh_crdt::wire::{Reader, check_text, put_text};

use crate::key::{PublicKey, SIGNATURE_LEN, SecretKey};
use crate::signed::{Signed, SignedBody, SignedError};
use crate::wire::{DecodeError, read_key};

/// The PEM label of a revocation.
pub const REVOCATION_PEM_LABEL: &str = "BANMESH REVOCATION";
/// Longest reason, in bytes of UTF-8.
pub const MAX_REASON_LEN: usize = 256;
/// Prefixed to the canonical bytes before signing, never sent.
const DOMAIN: &[u8] = b"banmesh/revocation\0";
/// The format version written and read.
const VERSION: u8 = 1;

/// Why a revocation could not be issued, read or trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevocationError {
    /// The revocation names another cluster key than the one trusted here.
    #[error(
        "wrong cluster: the revocation is signed for cluster key {}, but this cluster's key \
         is {}; use a revocation issued with this cluster's key",
        found.short(), expected.short()
    )]
    WrongCluster {
        /// The cluster key trusted here.
        expected: PublicKey,
        /// The cluster key the revocation names.
        found: PublicKey,
    },
    /// The signature does not cover these bytes: altered or damaged.
    #[error(
        "revocation signature does not verify: it was altered or damaged, copy it again from its issuer"
    )]
    Tampered,
    /// The bytes or PEM text are not a well-formed revocation.
    #[error("malformed revocation: {0}")]
    Malformed(DecodeError),
    /// The revocation could not be put in PEM armour (never for a valid one).
    #[error("cannot write the revocation as PEM: {reason}")]
    Pem {
        /// What the PEM encoder said.
        reason: String,
    },
    /// The reason is longer than [`MAX_REASON_LEN`] bytes.
    #[error("revocation reason is {len} bytes long: shorten it to at most 256 bytes")]
    ReasonTooLong {
        /// The reason's length in bytes.
        len: usize,
    },
    /// The reason holds control characters (such as a line break), which
    /// readers refuse.
    #[error("revocation reason holds control characters: write it on one line, without tabs")]
    ReasonNotPrintable,
}

impl From<DecodeError> for RevocationError {
    fn from(error: DecodeError) -> Self {
        // Not `#[from]`: the message already includes the cause, so it is not a `source`.
        RevocationError::Malformed(error)
    }
}

impl SignedError for RevocationError {
    fn wrong_cluster(expected: PublicKey, found: PublicKey) -> Self {
        RevocationError::WrongCluster { expected, found }
    }

    fn tampered() -> Self {
        RevocationError::Tampered
    }

    fn pem(reason: String) -> Self {
        RevocationError::Pem { reason }
    }
}

/// The signed fields of a revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Body {
    cluster: PublicKey,
    node: PublicKey,
    issued_at_ms: u64,
    reason: String,
}

impl SignedBody for Body {
    const DOMAIN: &'static [u8] = DOMAIN;
    const PEM_LABEL: &'static str = REVOCATION_PEM_LABEL;
    type Error = RevocationError;

    fn write(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.extend_from_slice(self.cluster.as_bytes());
        out.extend_from_slice(self.node.as_bytes());
        out.extend_from_slice(&self.issued_at_ms.to_be_bytes());
        put_text(out, &self.reason);
    }

    fn read(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = input.u8()?;
        if version != VERSION {
            return Err(banmesh_crdt::DecodeError::UnknownVersion(version).into());
        }
        Ok(Body {
            cluster: read_key(input, "cluster key")?,
            node: read_key(input, "node key")?,
            issued_at_ms: input.u64()?,
            reason: input.text("reason", MAX_REASON_LEN)?,
        })
    }

    fn cluster(&self) -> &PublicKey {
        &self.cluster
    }
}

/// A cluster-signed statement that a node key is no longer trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation(Signed<Body>);

impl Revocation {
    /// Signs a revocation of `node` with the cluster's secret key.
    pub fn issue(
        cluster_secret: &SecretKey,
        node: PublicKey,
        issued_at_ms: u64,
        reason: &str,
    ) -> Result<Self, RevocationError> {
        if reason.len() > MAX_REASON_LEN {
            return Err(RevocationError::ReasonTooLong { len: reason.len() });
        }
        check_text("reason", reason, MAX_REASON_LEN)
            .map_err(|_| RevocationError::ReasonNotPrintable)?;
        let body = Body {
            cluster: cluster_secret.public(),
            node,
            issued_at_ms,
            reason: reason.to_owned(),
        };
        Ok(Revocation(Signed::issue(cluster_secret, body)))
    }

    /// The bytes as sent: the signed body without the domain prefix, then the signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes()
    }

    /// Reads a revocation strictly (decode, re-encode, compare).
    /// The signature is not checked here; call [`Revocation::verify`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RevocationError> {
        Signed::from_bytes(bytes).map(Revocation)
    }

    /// The revocation in PEM armour (`-----BEGIN BANMESH REVOCATION-----`).
    pub fn to_pem(&self) -> Result<String, RevocationError> {
        self.0.to_pem()
    }

    /// Reads a revocation from PEM armour, as strictly as [`Revocation::from_bytes`].
    pub fn from_pem(text: &str) -> Result<Self, RevocationError> {
        Signed::from_pem(text).map(Revocation)
    }

    /// SHA-256 of the signed bytes (domain prefix included).
    pub fn id(&self) -> [u8; 32] {
        self.0.id()
    }

    /// Checks that `cluster` signed this revocation.
    pub fn verify(&self, cluster: &PublicKey) -> Result<(), RevocationError> {
        self.0.verify(cluster)
    }

    /// The cluster key that signed the revocation.
    pub fn cluster(&self) -> &PublicKey {
        &self.0.body.cluster
    }

    /// The revoked node key.
    pub fn node(&self) -> &PublicKey {
        &self.0.body.node
    }

    /// When the revocation was signed, Unix milliseconds.
    pub fn issued_at_ms(&self) -> u64 {
        self.0.body.issued_at_ms
    }

    /// Why the node was revoked (may be empty).
    pub fn reason(&self) -> &str {
        &self.0.body.reason
    }

    /// The cluster's signature.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0.signature
    }

    /// The order that decides which of two revocations of one node is kept:
    /// earliest first, then by id, so every node keeps the same one.
    pub fn precedes(&self, other: &Revocation) -> bool {
        (self.0.body.issued_at_ms, self.id()) < (other.0.body.issued_at_ms, other.id())
    }
}

/// The verified revocations of one cluster, keyed by revoked node key.
///
/// Only revocations signed by the set's cluster key get in. When a node is
/// revoked twice the earliest revocation (then the smallest id) is kept, so
/// every node holds the same set whatever the arrival order.
#[derive(Debug, Clone)]
pub struct Revocations {
    cluster: PublicKey,
    by_node: BTreeMap<PublicKey, Revocation>,
}

impl Revocations {
    /// An empty set for the cluster whose key is `cluster`.
    pub fn new(cluster: PublicKey) -> Self {
        Self { cluster, by_node: BTreeMap::new() }
    }

    /// The cluster key revocations are checked against.
    pub fn cluster(&self) -> &PublicKey {
        &self.cluster
    }

    /// Verifies `revocation` and adds it; `Ok(true)` if the set changed.
    pub fn insert(&mut self, revocation: Revocation) -> Result<bool, RevocationError> {
        revocation.verify(&self.cluster)?;
        let node = *revocation.node();
        match self.by_node.get(&node) {
            Some(kept) if !revocation.precedes(kept) => Ok(false),
            _ => {
                self.by_node.insert(node, revocation);
                Ok(true)
            }
        }
    }

    /// Whether `node` is revoked: given as a key, or as its bytes (a
    /// record's origin, without reading the point).
    pub fn is_revoked<Q>(&self, node: &Q) -> bool
    where
        PublicKey: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.by_node.contains_key(node)
    }

    /// The revocation kept for `node`, if any.
    pub fn get(&self, node: &PublicKey) -> Option<&Revocation> {
        self.by_node.get(node)
    }

    /// The ids of the revocations kept, ordered by revoked node key.
    pub fn ids(&self) -> Vec<[u8; 32]> {
        self.by_node.values().map(Revocation::id).collect()
    }

    /// The revocations kept, ordered by revoked node key.
    pub fn iter(&self) -> impl Iterator<Item = &Revocation> {
        self.by_node.values()
    }

    /// How many nodes are revoked.
    pub fn len(&self) -> usize {
        self.by_node.len()
    }

    /// Whether no node is revoked.
    pub fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SecretKey {
        SecretKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn round_trips_and_verifies() {
        let cluster = key(1);
        let revocation =
            Revocation::issue(&cluster, key(2).public(), 1_000, "stolen laptop").expect("issue");
        let pem = revocation.to_pem().expect("encode");
        assert!(pem.starts_with("-----BEGIN BANMESH REVOCATION-----\n"));
        let back = Revocation::from_pem(&pem).expect("decode");
        assert_eq!(back, revocation);
        assert_eq!(back.id(), revocation.id());
        assert_eq!(back.verify(&cluster.public()), Ok(()));
        assert_eq!(back.reason(), "stolen laptop");
        assert_eq!(back.issued_at_ms(), 1_000);
    }

    #[test]
    fn every_error_is_reachable() {
        let cluster = key(1);
        let revocation = Revocation::issue(&cluster, key(2).public(), 5, "").expect("issue");
        let other = key(3).public();
        assert!(matches!(
            revocation.verify(&other),
            Err(RevocationError::WrongCluster { expected, .. }) if expected == other
        ));
        let mut bytes = revocation.to_bytes();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = Revocation::from_bytes(&bytes).expect("decodes");
        assert_eq!(tampered.verify(&cluster.public()), Err(RevocationError::Tampered));
        let mut bytes = revocation.to_bytes();
        bytes.push(0);
        assert!(matches!(
            Revocation::from_bytes(&bytes),
            Err(RevocationError::Malformed(DecodeError::Bytes(
                banmesh_crdt::DecodeError::TrailingBytes
            )))
        ));
        bytes.truncate(40);
        assert!(matches!(
            Revocation::from_bytes(&bytes),
            Err(RevocationError::Malformed(DecodeError::Bytes(
                banmesh_crdt::DecodeError::Truncated
            )))
        ));
        let long = "x".repeat(257);
        assert_eq!(
            Revocation::issue(&cluster, other, 5, &long),
            Err(RevocationError::ReasonTooLong { len: 257 })
        );
        assert_eq!(
            Revocation::issue(&cluster, other, 5, "lost\nlaptop"),
            Err(RevocationError::ReasonNotPrintable)
        );
    }

    #[test]
    fn set_keeps_only_verified_and_the_earliest() {
        let cluster = key(1);
        let node = key(2).public();
        let mut set = Revocations::new(cluster.public());
        assert!(set.is_empty());
        let late = Revocation::issue(&cluster, node, 20, "late").expect("issue");
        let early = Revocation::issue(&cluster, node, 10, "early").expect("issue");
        assert_eq!(set.insert(late.clone()), Ok(true));
        assert_eq!(set.insert(early.clone()), Ok(true));
        assert_eq!(set.insert(late), Ok(false));
        assert_eq!(set.get(&node), Some(&early));
        assert_eq!(set.ids(), vec![early.id()]);
        assert!(set.is_revoked(&node));
        assert!(!set.is_revoked(&key(3).public()));
        let foreign = Revocation::issue(&key(9), key(3).public(), 1, "").expect("issue");
        assert!(matches!(set.insert(foreign), Err(RevocationError::WrongCluster { .. })));
        assert_eq!(set.len(), 1);
    }
}
