//! Certificates: the cluster key's signed statement that a node key may act,
//! under a name, with roles, within a validity window and a widest prefix.
//! Canonical bytes, strict decoding (decode, re-encode, compare) and checks.

use banmesh_crdt::wire::{Reader, put_text};

use crate::key::{PublicKey, SIGNATURE_LEN, SecretKey};
use crate::revocation::Revocations;
use crate::roles::{MaxPrefix, Role, Roles};
use crate::signed::{Signed, SignedBody, SignedError};
use crate::time::format_rfc3339;
use crate::wire::{DecodeError, read_key};

/// The PEM label of a certificate.
pub const CERTIFICATE_PEM_LABEL: &str = "BANMESH CERTIFICATE";
/// Longest node name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Prefixed to the canonical bytes before signing, never sent.
const DOMAIN: &[u8] = b"banmesh/certificate\0";
/// The format version written and read.
const VERSION: u8 = 1;

/// Why a certificate could not be issued, read or trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The certificate names another cluster key than the one trusted here.
    #[error(
        "wrong cluster: the certificate is signed for cluster key {}, but this cluster's key \
         is {}; enroll the node with this cluster's key",
        found.short(), expected.short()
    )]
    WrongCluster {
        /// The cluster key trusted here.
        expected: PublicKey,
        /// The cluster key the certificate names.
        found: PublicKey,
    },
    /// The signature does not cover these bytes: altered or damaged.
    #[error(
        "certificate signature does not verify: it was altered or damaged, copy it again from its issuer"
    )]
    Tampered,
    /// The bytes or PEM text are not a well-formed certificate.
    #[error("malformed certificate: {0}")]
    Malformed(DecodeError),
    /// The certificate could not be put in PEM armour (never for a valid one).
    #[error("cannot write the certificate as PEM: {reason}")]
    Pem {
        /// What the PEM encoder said.
        reason: String,
    },
    /// The validity window ended at or before `at_ms`.
    #[error(
        "certificate expired at {} (checked at {}): enroll the node again",
        format_rfc3339(*not_after_ms), format_rfc3339(*at_ms)
    )]
    Expired {
        /// End of the validity window (exclusive).
        not_after_ms: u64,
        /// The instant checked.
        at_ms: u64,
    },
    /// The validity window starts after `at_ms`.
    #[error(
        "certificate is not valid before {} (checked at {}): wait, or check this host's clock",
        format_rfc3339(*not_before_ms), format_rfc3339(*at_ms)
    )]
    NotYetValid {
        /// Start of the validity window (inclusive).
        not_before_ms: u64,
        /// The instant checked.
        at_ms: u64,
    },
    /// The cluster has revoked the node key.
    #[error("node key {} is revoked by the cluster: enroll a new node key", node.short())]
    Revoked {
        /// The revoked node key.
        node: PublicKey,
    },
    /// The certificate lacks a role the action needs.
    #[error(
        "certificate lacks the {role} role: enroll the node again with --roles including {role}"
    )]
    MissingRole {
        /// The role needed.
        role: Role,
    },
    /// The name is empty, too long or has characters outside `[A-Za-z0-9._-]`.
    #[error("invalid node name {name:?}: use 1 to 64 characters from A-Z a-z 0-9 . _ -")]
    InvalidName {
        /// The name as given.
        name: String,
    },
    /// `not_before_ms` is not before `not_after_ms`.
    #[error(
        "empty validity window: not_before_ms {not_before_ms} must be before not_after_ms {not_after_ms}"
    )]
    EmptyWindow {
        /// Start of the window.
        not_before_ms: u64,
        /// End of the window.
        not_after_ms: u64,
    },
    /// A prefix length is longer than the address.
    #[error("invalid widest prefix {prefix}: IPv4 lengths go up to 32 and IPv6 up to 128")]
    PrefixOutOfRange {
        /// The prefix pair given.
        prefix: MaxPrefix,
    },
    /// A cap wider than /16 or /48 was asked for a node without `wide-prefix`.
    #[error(
        "widest prefix {prefix} is wider than /16 (IPv4) or /48 (IPv6): add the wide-prefix role \
         to allow it"
    )]
    WidePrefixWithoutRole {
        /// The prefix pair given.
        prefix: MaxPrefix,
    },
}

impl From<DecodeError> for CertError {
    fn from(error: DecodeError) -> Self {
        // Not `#[from]`: the message already includes the cause, so it is not a `source`.
        CertError::Malformed(error)
    }
}

impl SignedError for CertError {
    fn wrong_cluster(expected: PublicKey, found: PublicKey) -> Self {
        CertError::WrongCluster { expected, found }
    }

    fn tampered() -> Self {
        CertError::Tampered
    }

    fn pem(reason: String) -> Self {
        CertError::Pem { reason }
    }
}

/// The signed fields of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Body {
    cluster: PublicKey,
    node: PublicKey,
    name: String,
    roles: Roles,
    not_before_ms: u64,
    not_after_ms: u64,
    max_prefix: Option<MaxPrefix>,
}

impl SignedBody for Body {
    const DOMAIN: &'static [u8] = DOMAIN;
    const PEM_LABEL: &'static str = CERTIFICATE_PEM_LABEL;
    type Error = CertError;

    fn write(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.extend_from_slice(self.cluster.as_bytes());
        out.extend_from_slice(self.node.as_bytes());
        put_text(out, &self.name);
        out.push(self.roles.bits());
        out.extend_from_slice(&self.not_before_ms.to_be_bytes());
        out.extend_from_slice(&self.not_after_ms.to_be_bytes());
        match self.max_prefix {
            None => out.push(0),
            Some(prefix) => out.extend_from_slice(&[1, prefix.v4, prefix.v6]),
        }
    }

    fn read(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = input.u8()?;
        if version != VERSION {
            return Err(banmesh_crdt::DecodeError::UnknownVersion(version).into());
        }
        let cluster = read_key(input, "cluster key")?;
        let node = read_key(input, "node key")?;
        let name = input.text("name", MAX_NAME_LEN)?;
        if !is_valid_name(&name) {
            let reason = "use 1 to 64 characters from A-Z a-z 0-9 . _ -".to_owned();
            return Err(DecodeError::Field { field: "name", reason });
        }
        let bits = input.u8()?;
        let roles = Roles::from_bits(bits).ok_or_else(|| DecodeError::Field {
            field: "roles",
            reason: format!("undefined role bits {bits:#04x}"),
        })?;
        let not_before_ms = input.u64()?;
        let not_after_ms = input.u64()?;
        if not_before_ms >= not_after_ms {
            let reason = "not_before is not before not_after".to_owned();
            return Err(DecodeError::Field { field: "validity window", reason });
        }
        let max_prefix = read_max_prefix(input)?;
        Ok(Body { cluster, node, name, roles, not_before_ms, not_after_ms, max_prefix })
    }

    fn cluster(&self) -> &PublicKey {
        &self.cluster
    }
}

fn read_max_prefix(input: &mut Reader<'_>) -> Result<Option<MaxPrefix>, DecodeError> {
    match input.u8()? {
        0 => Ok(None),
        1 => {
            let prefix = MaxPrefix { v4: input.u8()?, v6: input.u8()? };
            if !prefix.is_in_range() {
                let reason = format!("{prefix} is out of range");
                return Err(DecodeError::Field { field: "widest prefix", reason });
            }
            Ok(Some(prefix))
        }
        flag => {
            let reason = format!("flag {flag} is neither 0 nor 1");
            Err(DecodeError::Field { field: "widest prefix", reason })
        }
    }
}

/// Whether `name` is 1–64 bytes of `[A-Za-z0-9._-]`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A node key's certificate, signed by the cluster key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate(Signed<Body>);

impl Certificate {
    /// Signs a certificate for `node` with the cluster's secret key.
    ///
    /// Refuses an invalid name, an empty window, out-of-range prefixes and an
    /// explicit cap wider than /16 or /48 without the `wide-prefix` role.
    pub fn issue(
        cluster_secret: &SecretKey,
        node: PublicKey,
        name: &str,
        roles: Roles,
        not_before_ms: u64,
        not_after_ms: u64,
        max_prefix: Option<MaxPrefix>,
    ) -> Result<Self, CertError> {
        if !is_valid_name(name) {
            return Err(CertError::InvalidName { name: name.to_owned() });
        }
        if not_before_ms >= not_after_ms {
            return Err(CertError::EmptyWindow { not_before_ms, not_after_ms });
        }
        if let Some(prefix) = max_prefix {
            if !prefix.is_in_range() {
                return Err(CertError::PrefixOutOfRange { prefix });
            }
            if prefix.is_wider_than_default() && !roles.contains(Role::WidePrefix) {
                return Err(CertError::WidePrefixWithoutRole { prefix });
            }
        }
        let body = Body {
            cluster: cluster_secret.public(),
            node,
            name: name.to_owned(),
            roles,
            not_before_ms,
            not_after_ms,
            max_prefix,
        };
        Ok(Certificate(Signed::issue(cluster_secret, body)))
    }

    /// The bytes as sent: the signed body without the domain prefix, then the signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes()
    }

    /// Reads a certificate strictly: every field checked, no trailing bytes,
    /// and the input must be exactly the re-encoding of what was read.
    /// The signature is not checked here; call [`Certificate::verify`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CertError> {
        Signed::from_bytes(bytes).map(Certificate)
    }

    /// The certificate in PEM armour (`-----BEGIN BANMESH CERTIFICATE-----`).
    pub fn to_pem(&self) -> Result<String, CertError> {
        self.0.to_pem()
    }

    /// Reads a certificate from PEM armour, as strictly as [`Certificate::from_bytes`].
    pub fn from_pem(text: &str) -> Result<Self, CertError> {
        Signed::from_pem(text).map(Certificate)
    }

    /// SHA-256 of the signed bytes (domain prefix included).
    pub fn id(&self) -> [u8; 32] {
        self.0.id()
    }

    /// Checks that `cluster` signed this certificate, ignoring time and revocation.
    pub fn verify_signature(&self, cluster: &PublicKey) -> Result<(), CertError> {
        self.0.verify(cluster)
    }

    /// Checks the certificate fully: signed by `cluster`, node not revoked in
    /// `revocations` (the set of the same cluster), and `at_ms` inside
    /// `not_before_ms..not_after_ms` (start inclusive, end exclusive).
    pub fn verify(
        &self,
        cluster: &PublicKey,
        at_ms: u64,
        revocations: &Revocations,
    ) -> Result<(), CertError> {
        self.verify_signature(cluster)?;
        if revocations.is_revoked(&self.0.body.node) {
            return Err(CertError::Revoked { node: self.0.body.node });
        }
        self.check_time(at_ms)
    }

    /// Checks that `at_ms` lies inside the validity window.
    pub fn check_time(&self, at_ms: u64) -> Result<(), CertError> {
        let Body { not_before_ms, not_after_ms, .. } = self.0.body;
        if at_ms < not_before_ms {
            return Err(CertError::NotYetValid { not_before_ms, at_ms });
        }
        if at_ms >= not_after_ms {
            return Err(CertError::Expired { not_after_ms, at_ms });
        }
        Ok(())
    }

    /// Checks that the certificate grants `role`.
    pub fn require_role(&self, role: Role) -> Result<(), CertError> {
        if self.0.body.roles.contains(role) { Ok(()) } else { Err(CertError::MissingRole { role }) }
    }

    /// The widest prefix length the node may act on for one address family:
    /// the explicit cap if any (never wider than /16 or /48 without the
    /// `wide-prefix` role), else 0 with `wide-prefix`, else 16 (IPv4) or 48 (IPv6).
    pub fn widest_prefix(&self, is_v4: bool) -> u8 {
        let default = MaxPrefix::DEFAULT.get(is_v4);
        let wide = self.0.body.roles.contains(Role::WidePrefix);
        match (self.0.body.max_prefix, wide) {
            (Some(cap), true) => cap.get(is_v4),
            (Some(cap), false) => cap.get(is_v4).max(default),
            (None, true) => 0,
            (None, false) => default,
        }
    }

    /// Whether the node may act on a network of `prefix_len` bits.
    pub fn allows_prefix(&self, is_v4: bool, prefix_len: u8) -> bool {
        let bits = if is_v4 { 32 } else { 128 };
        prefix_len <= bits && prefix_len >= self.widest_prefix(is_v4)
    }

    /// The certified node key.
    pub fn node(&self) -> &PublicKey {
        &self.0.body.node
    }

    /// The cluster key that signed the certificate.
    pub fn cluster(&self) -> &PublicKey {
        &self.0.body.cluster
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.0.body.name
    }

    /// The granted roles.
    pub fn roles(&self) -> Roles {
        self.0.body.roles
    }

    /// Start of the validity window, Unix milliseconds, inclusive.
    pub fn not_before_ms(&self) -> u64 {
        self.0.body.not_before_ms
    }

    /// End of the validity window, Unix milliseconds, exclusive.
    pub fn not_after_ms(&self) -> u64 {
        self.0.body.not_after_ms
    }

    /// The explicit widest prefix, if one was given.
    pub fn max_prefix(&self) -> Option<MaxPrefix> {
        self.0.body.max_prefix
    }

    /// The cluster's signature.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0.signature
    }
}

#[cfg(test)]
mod tests;
