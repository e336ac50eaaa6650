//! What the node trusts: the cluster key, the verified certificates it knows
//! per node, and the revocations. Judges a received batch by DESIGN.md's
//! rules: Accept-worthy records, Ignore, or Reject the whole batch.

use std::collections::HashMap;

use banmesh_crdt::{Params, Record};
use banmesh_keys::{
    CertError, Certificate, PublicKey, RecordCheckError, Revocation, Revocations, record_valid,
    verify_batch,
};

use super::batch::Batch;

/// Certificates by node, and revocations, all verified against the cluster key.
#[derive(Debug, Clone)]
pub struct Trust {
    /// The cluster key.
    pub cluster: PublicKey,
    certs: HashMap<PublicKey, Vec<Certificate>>,
    revocations: Revocations,
}

/// The verdict on one received batch, before storing.
#[derive(Debug)]
pub enum Verdict {
    /// Every record is valid: store these (and the certificates that came
    /// with them); accept the message if any is new.
    Store {
        /// The batch's certificates, all verified (the store keeps each once).
        certs: Vec<Certificate>,
        /// The batch's revocations, all verified.
        revocations: Vec<Revocation>,
        /// The records.
        records: Vec<Record>,
    },
    /// Not this node's to judge (unknown certificate, revoked origin,
    /// future-dated): do not store, do not forward, no penalty.
    Ignore(&'static str),
    /// Bad signature, bad certificate, missing role, broken rule: drop the
    /// whole batch and penalise the peer that sent it.
    Reject(&'static str),
}

impl Trust {
    /// A trust store for `cluster` with no certificate or revocation yet.
    pub fn new(cluster: PublicKey) -> Trust {
        Trust { cluster, certs: HashMap::new(), revocations: Revocations::new(cluster) }
    }

    /// Adds a certificate after checking it is signed by the cluster.
    /// Returns whether it was new.
    pub fn add_certificate(&mut self, cert: Certificate) -> Result<bool, CertError> {
        if cert.cluster() != &self.cluster {
            return Err(CertError::WrongCluster { expected: self.cluster, found: *cert.cluster() });
        }
        cert.verify_signature(&self.cluster)?;
        let known = self.certs.entry(*cert.node()).or_default();
        if known.iter().any(|c| c.id() == cert.id()) {
            return Ok(false);
        }
        known.push(cert);
        Ok(true)
    }

    /// Adds a revocation after checking it. Returns whether it was new.
    pub fn add_revocation(
        &mut self,
        revocation: Revocation,
    ) -> Result<bool, banmesh_keys::RevocationError> {
        self.revocations.insert(revocation)
    }

    /// The revocations.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// Whether `node` is revoked.
    pub fn is_revoked(&self, node: &PublicKey) -> bool {
        self.revocations.is_revoked(node)
    }

    /// The latest-ending certificate known for `node` that is valid at `at_ms`.
    pub fn cert_at(&self, node: &PublicKey, at_ms: u64) -> Option<&Certificate> {
        self.certs
            .get(node)?
            .iter()
            .filter(|c| c.check_time(at_ms).is_ok())
            .max_by_key(|c| c.not_after_ms())
    }

    /// Any certificate known for `node` (the latest-ending), to send along.
    pub fn cert_of(&self, node: &PublicKey) -> Option<&Certificate> {
        self.certs.get(node)?.iter().max_by_key(|c| c.not_after_ms())
    }

    /// Judges a decoded batch at `now_ms`. The certificates it carries are
    /// checked first (a forged or foreign one rejects the batch); every
    /// record must then have its signature, a certificate valid at its
    /// `issued_at` with the right role and prefix, and keep the cluster rules.
    pub fn judge(&self, batch: Batch, now_ms: u64, params: &Params) -> Verdict {
        let mut view = self.clone();
        let mut new_certs = Vec::new();
        for cert in batch.certs {
            // Known ones too: the store may lack a certificate that this
            // node's trust learnt from a hello.
            match view.add_certificate(cert.clone()) {
                Ok(_) => new_certs.push(cert),
                Err(_) => return Verdict::Reject("bad certificate"),
            }
        }
        let mut new_revocations = Vec::new();
        for revocation in batch.revocations {
            match view.add_revocation(revocation.clone()) {
                Ok(_) => new_revocations.push(revocation),
                Err(_) => return Verdict::Reject("bad revocation"),
            }
        }
        for record in &batch.records {
            if record.statement().validate(params).is_err() {
                return Verdict::Reject("cluster rule");
            }
        }
        if verify_batch(&batch.records).is_err() {
            return Verdict::Reject("bad signature");
        }
        // Only after the signatures: a future-dated record must not hide a
        // forged one beside it.
        let horizon = now_ms.saturating_add(params.skew_bound_ms);
        if batch.records.iter().any(|r| r.issued_at().millis() > horizon) {
            return Verdict::Ignore("future-dated");
        }
        for record in &batch.records {
            let Ok(origin) = PublicKey::from_bytes(&record.origin().0) else {
                return Verdict::Reject("bad origin");
            };
            if view.is_revoked(&origin) {
                return Verdict::Ignore("revoked origin");
            }
            let issued_ms = record.issued_at().millis();
            let Some(cert) = view.cert_at(&origin, issued_ms) else {
                return Verdict::Ignore("unknown certificate");
            };
            match record_valid(record, cert, view.revocations()) {
                Ok(()) => {}
                Err(RecordCheckError::Cert(CertError::Revoked { .. })) => {
                    return Verdict::Ignore("revoked origin");
                }
                Err(RecordCheckError::Cert(CertError::MissingRole { .. })) => {
                    return Verdict::Reject("missing role");
                }
                Err(RecordCheckError::PrefixTooWide { .. }) => {
                    return Verdict::Reject("prefix too wide");
                }
                Err(_) => return Verdict::Reject("certificate does not cover record"),
            }
        }
        Verdict::Store { certs: new_certs, revocations: new_revocations, records: batch.records }
    }
}
