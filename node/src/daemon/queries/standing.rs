//! This node's own standing, for `banmesh status`: a certificate that has
//! expired or is not yet valid, and a revocation of its own key, each of
//! which makes every peer refuse it while it goes on running.

use std::sync::PoisonError;

use banmesh_keys::time::format_rfc3339;

use super::Queries;

impl Queries {
    /// What `banmesh status` should warn about this node's own standing at
    /// `now_ms`.
    pub(super) fn standing_warnings(&self, now_ms: u64) -> Vec<String> {
        let mut out = Vec::new();
        let enroll = format!("renew it, no restart needed: {}", crate::daemon::own_cert::ENROLL);
        if let Some(cert) = self.standing().cert {
            if now_ms >= cert.not_after_ms() {
                out.push(format!(
                    "this node's certificate expired at {}: its peers refuse it and its new records do not count; {enroll}",
                    format_rfc3339(cert.not_after_ms())
                ));
            } else if now_ms < cert.not_before_ms() {
                out.push(format!(
                    "this node's certificate is not valid before {}: its peers refuse it until then; check this host's clock, or {enroll}",
                    format_rfc3339(cert.not_before_ms())
                ));
            }
        }
        let own = self.standing().node_key;
        let trust = self.trust.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(revocation) = trust.revocations().get(&own) {
            out.push(format!(
                "this node's key is revoked by the cluster key {} (since {}, reason {:?}): its peers refuse it, its records do not count and it dials no peer; make a new node key (`banmesh keys init`), enroll it and restart",
                revocation.cluster(),
                format_rfc3339(revocation.issued_at_ms()),
                revocation.reason()
            ));
        }
        out
    }
}
