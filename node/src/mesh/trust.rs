//! What the node trusts: the cluster key, the verified certificates it knows
//! per node, and the revocations. Judges a received batch by DESIGN.md's
//! rules, record by record: each record's own validity decides that record
//! only; only a forgery rejects the whole batch.

use std::collections::HashMap;

use banmesh_crdt::{Origin, Params, Record};
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
    /// The batch is sound: store what it holds that is valid; the records
    /// left out are counted, never held against the batch or its sender.
    Store(Judged),
    /// What no honest sender could have received from anyone honest (a
    /// forged signature, certificate or revocation): drop the whole batch
    /// and penalise the peer that sent it.
    Reject(&'static str),
}

/// A sound batch, judged record by record.
#[derive(Debug, Default)]
pub struct Judged {
    /// The batch's certificates, all verified (the store keeps each once).
    pub certs: Vec<Certificate>,
    /// The batch's revocations, all verified.
    pub revocations: Vec<Revocation>,
    /// The valid records, to store.
    pub records: Vec<Record>,
    /// Why each other record was left out, one entry per record.
    pub skipped: Vec<Skip>,
}

/// Why one record of a sound batch is left out: its own validity, which
/// decides that record only (DESIGN.md "Judge per record").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// Issued beyond `skew_bound` in the future: valid later, not now.
    FutureDated,
    /// Its origin is revoked: void everywhere.
    RevokedOrigin,
    /// No certificate of its origin valid at its `issued_at` is known yet.
    UnknownCertificate,
    /// Its origin's certificate lacks the role its kind needs.
    MissingRole,
    /// Its key is wider than its origin's certificate allows.
    PrefixTooWide,
    /// It breaks a cluster rule (`max_ttl`, expiry, strikes, metadata size).
    ClusterRule,
    /// Its origin is not a public key.
    BadOrigin,
}

impl Skip {
    /// The reason, as counted in `status`.
    pub fn reason(self) -> &'static str {
        match self {
            Skip::FutureDated => "future-dated",
            Skip::RevokedOrigin => "revoked origin",
            Skip::UnknownCertificate => "unknown certificate",
            Skip::MissingRole => "missing role",
            Skip::PrefixTooWide => "prefix too wide",
            Skip::ClusterRule => "cluster rule",
            Skip::BadOrigin => "bad origin",
        }
    }
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
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

    /// Whether `cert` is known already.
    pub fn knows(&self, cert: &Certificate) -> bool {
        self.certs.get(cert.node()).is_some_and(|known| known.iter().any(|c| c.id() == cert.id()))
    }

    /// Whether `revocation` would change what this trust holds: its node is
    /// not revoked yet, or only by a later revocation.
    pub fn lacks(&self, revocation: &Revocation) -> bool {
        self.revocations.get(revocation.node()).is_none_or(|kept| revocation.precedes(kept))
    }

    /// The latest-ending certificate known for `node` that is valid at `at_ms`.
    pub fn cert_at(&self, node: &PublicKey, at_ms: u64) -> Option<&Certificate> {
        self.certs
            .get(node)?
            .iter()
            .filter(|c| c.check_time(at_ms).is_ok())
            .max_by_key(|c| c.not_after_ms())
    }

    /// Every certificate known for `node`.
    pub fn certs_of(&self, node: &PublicKey) -> &[Certificate] {
        self.certs.get(node).map_or(&[], Vec::as_slice)
    }

    /// Any certificate known for `node` (the latest-ending), to send along.
    pub fn cert_of(&self, node: &PublicKey) -> Option<&Certificate> {
        self.cert_of_origin(&Origin(node.to_bytes()))
    }

    /// [`Trust::cert_of`] for a record's origin, looked up by its bytes:
    /// a known origin is a valid key, and reading the point for every
    /// record (two field inversions) was most of a join's signature work.
    pub fn cert_of_origin(&self, origin: &Origin) -> Option<&Certificate> {
        self.certs.get(&origin.0)?.iter().max_by_key(|c| c.not_after_ms())
    }

    /// Whether `record` is valid by what this trust knows: the cluster rules,
    /// its origin not revoked, and some certificate of its origin valid at its
    /// `issued_at` with the role and prefix it needs. Any such certificate
    /// will do, so learning one more certificate never voids a record (nodes
    /// knowing more or fewer certificates never disagree for long). The
    /// signature is checked apart.
    pub fn check_record(&self, record: &Record, params: &Params) -> Result<(), Skip> {
        if record.statement().validate(params).is_err() {
            return Err(Skip::ClusterRule);
        }
        // Looked up by the origin's bytes: every key in the maps is a
        // valid point, so the point is read only for an unknown origin.
        let origin = record.origin().0;
        if self.revocations.is_revoked(&origin) {
            return Err(Skip::RevokedOrigin);
        }
        let Some(known) = self.certs.get(&origin) else {
            PublicKey::from_bytes(&origin).map_err(|_| Skip::BadOrigin)?;
            return Err(Skip::UnknownCertificate);
        };
        let issued_ms = record.issued_at().millis();
        let mut certs: Vec<&Certificate> =
            known.iter().filter(|c| c.check_time(issued_ms).is_ok()).collect();
        certs.sort_by_key(|c| std::cmp::Reverse(c.not_after_ms()));
        let mut why = Skip::UnknownCertificate;
        for (i, cert) in certs.into_iter().enumerate() {
            let skip = match record_valid(record, cert, self.revocations()) {
                Ok(()) => return Ok(()),
                Err(RecordCheckError::Cert(CertError::Revoked { .. })) => Skip::RevokedOrigin,
                Err(RecordCheckError::Cert(CertError::MissingRole { .. })) => Skip::MissingRole,
                Err(RecordCheckError::PrefixTooWide { .. }) => Skip::PrefixTooWide,
                Err(_) => Skip::UnknownCertificate,
            };
            // The latest-ending certificate's reason is the one told.
            if i == 0 {
                why = skip;
            }
        }
        Err(why)
    }

    /// Judges a decoded batch at `now_ms` (DESIGN.md "Judge per record").
    /// The batch is rejected whole only for a forged certificate, revocation
    /// or record signature: nothing an honest peer could have passed on.
    /// Every other fault is one record's own (future-dated, revoked or
    /// unknown origin, missing role, prefix, cluster rule) and leaves that
    /// record out, counted, while the others are stored.
    pub fn judge(&self, batch: Batch, now_ms: u64, params: &Params) -> Verdict {
        let mut view = self.clone();
        let mut judged = Judged::default();
        for cert in batch.certs {
            // Known ones too: each is checked, and storing one twice
            // changes nothing.
            match view.add_certificate(cert.clone()) {
                Ok(_) => judged.certs.push(cert),
                Err(_) => return Verdict::Reject("bad certificate"),
            }
        }
        for revocation in batch.revocations {
            match view.add_revocation(revocation.clone()) {
                Ok(_) => judged.revocations.push(revocation),
                Err(_) => return Verdict::Reject("bad revocation"),
            }
        }
        // Every signature first: no record's own fault may hide a forged
        // one beside it.
        if verify_batch(&batch.records).is_err() {
            return Verdict::Reject("bad signature");
        }
        let horizon = now_ms.saturating_add(params.skew_bound_ms);
        for record in batch.records {
            let verdict = if record.issued_at().millis() > horizon {
                Err(Skip::FutureDated)
            } else {
                view.check_record(&record, params)
            };
            match verdict {
                Ok(()) => judged.records.push(record),
                Err(skip) => judged.skipped.push(skip),
            }
        }
        Verdict::Store(judged)
    }
}
