//! Signing records and checking them: the record signature (one at a time
//! or as an ed25519 batch) and the trust rule `record_valid`.
//!
//! Whether a record counts must not depend on which node checks it, nor on
//! which other records share its batch, or nodes would store different sets.
//! ed25519-dalek's `verify_strict` (cofactorless) and its batch verifier can
//! disagree on signatures crafted with small-order components, which an
//! enrolled but hostile node could send. So record signatures are verified
//! with ed25519-zebra's ZIP-215 rules, under which single and batch
//! verification accept exactly the same signatures, and every honest ed25519
//! signature is accepted. Signing stays with ed25519-dalek (see `key.rs`).

use banmesh_crdt::{Kind, Origin, Record, Statement};
use ed25519_zebra::batch;
use ed25519_zebra::{Signature, VerificationKey, VerificationKeyBytes};
use getrandom::SysRng;
use getrandom::rand_core::UnwrapErr;

use crate::cert::{CertError, Certificate};
use crate::key::{PublicKey, SecretKey};
use crate::revocation::Revocations;
use crate::roles::Role;

/// Why a record does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordCheckError {
    /// The origin is not a valid ed25519 public key.
    #[error("record origin {origin} is not a valid ed25519 public key")]
    BadOrigin {
        /// The origin as given.
        origin: Origin,
    },
    /// The signature does not verify against the origin.
    #[error("record signature does not verify against its origin {}", short(origin))]
    BadSignature {
        /// The claimed origin.
        origin: Origin,
    },
    /// The certificate offered is for another node than the record's origin.
    #[error("certificate is for node {}, but the record's origin is {}", cert_node.short(), short(origin))]
    WrongOrigin {
        /// The node the certificate names.
        cert_node: PublicKey,
        /// The record's origin.
        origin: Origin,
    },
    /// The certificate does not allow the record (time, role, revocation).
    #[error("{0}")]
    Cert(#[from] CertError),
    /// The key is a wider network than the certificate allows.
    #[error("network /{prefix_len} is wider than this node's certificate allows (/{widest})")]
    PrefixTooWide {
        /// The key's prefix length.
        prefix_len: u8,
        /// The widest prefix the certificate allows.
        widest: u8,
    },
}

fn short(origin: &Origin) -> String {
    origin.to_string()[..8].to_owned()
}

/// The origin of records this key signs.
pub fn origin_of(key: &PublicKey) -> Origin {
    Origin(key.to_bytes())
}

/// Signs a statement as `secret`'s node: sets its origin, then signs its
/// [`Statement::signed_bytes`].
pub fn sign_record(secret: &SecretKey, mut statement: Statement) -> Record {
    statement.origin = origin_of(&secret.public());
    let signature = secret.sign(&statement.signed_bytes());
    Record::new(statement, signature)
}

/// Checks one record's signature (ZIP-215 ed25519 verification).
pub fn verify_record(record: &Record) -> Result<(), RecordCheckError> {
    let origin = record.origin();
    let key =
        VerificationKey::try_from(origin.0).map_err(|_| RecordCheckError::BadOrigin { origin })?;
    let signature = Signature::from_bytes(record.signature());
    key.verify(&signature, &record.statement().signed_bytes())
        .map_err(|_| RecordCheckError::BadSignature { origin })
}

/// Checks many records' signatures at once with ed25519 batch verification
/// (about twice as fast as one by one on large batches). It accepts exactly
/// what [`verify_record`] accepts. On failure, reports the first bad record
/// by its index, found by checking one by one.
pub fn verify_batch(records: &[Record]) -> Result<(), (usize, RecordCheckError)> {
    let mut verifier = batch::Verifier::new();
    for r in records {
        let key = VerificationKeyBytes::from(r.origin().0);
        let signature = Signature::from_bytes(r.signature());
        verifier.queue((key, signature, &r.statement().signed_bytes()));
    }
    if verifier.verify(UnwrapErr(SysRng)).is_ok() {
        return Ok(());
    }
    for (i, r) in records.iter().enumerate() {
        verify_record(r).map_err(|e| (i, e))?;
    }
    // Unreachable when single and batch verification agree, as ZIP-215
    // guarantees; report the batch as a whole rather than accept it.
    let origin = records.first().map(Record::origin).unwrap_or_default();
    Err((0, RecordCheckError::BadSignature { origin }))
}

/// The role a record of `kind` needs.
pub fn role_for(kind: Kind) -> Role {
    match kind {
        Kind::Ban | Kind::Unban => Role::Ban,
        Kind::Allow | Kind::Disallow => Role::Allow,
    }
}

/// The trust rule: `cert` (already verified against the cluster key) is the
/// record's origin's, valid at the record's `issued_at`, holds the role the
/// kind needs and allows the key's prefix, and the origin is not revoked.
/// The signature is checked apart, by [`verify_record`] or [`verify_batch`].
pub fn record_valid(
    record: &Record,
    cert: &Certificate,
    revocations: &Revocations,
) -> Result<(), RecordCheckError> {
    let origin = record.origin();
    if cert.node().to_bytes() != origin.0 {
        return Err(RecordCheckError::WrongOrigin { cert_node: *cert.node(), origin });
    }
    if revocations.is_revoked(cert.node()) {
        return Err(CertError::Revoked { node: *cert.node() }.into());
    }
    cert.check_time(record.issued_at().millis())?;
    cert.require_role(role_for(record.kind()))?;
    let key = record.key();
    if !cert.allows_prefix(key.is_v4(), key.prefix_len()) {
        let widest = cert.widest_prefix(key.is_v4());
        return Err(RecordCheckError::PrefixTooWide { prefix_len: key.prefix_len(), widest });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
