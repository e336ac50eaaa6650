//! banmesh's crypto vocabulary: ed25519 node and cluster keys, the
//! certificates the cluster key signs for nodes, revocations, and the files
//! (PKCS#8 / SPKI / banmesh PEM, secrets 0600) they live in.

pub mod cert;
pub mod files;
pub mod key;
pub mod record;
pub mod revocation;
pub mod roles;
mod signed;
pub mod time;
pub mod wire;

pub use cert::{CERTIFICATE_PEM_LABEL, CertError, Certificate, MAX_NAME_LEN, is_valid_name};
pub use files::{FileError, KeyFile};
pub use key::{KeyError, PublicKey, SecretKey};
pub use record::{
    RecordCheckError, origin_of, record_valid, role_for, sign_record, verify_batch, verify_record,
};
pub use revocation::{REVOCATION_PEM_LABEL, Revocation, RevocationError, Revocations};
pub use roles::{MaxPrefix, ParseError, Role, Roles};
pub use wire::DecodeError;

/// The cluster's public key: the trust anchor in every node's config.
pub type ClusterKey = PublicKey;
/// A node's public key, which is also its libp2p identity.
pub type NodeKey = PublicKey;
