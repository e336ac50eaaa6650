//! What `banmesh status --check` reports (Nagios: 0 healthy, 1 warning, 2
//! critical): the problems a monitoring system should page about, each with
//! its level and one line saying why. Critical: the clock skewed, the own
//! certificate missing, expired, not yet valid or revoked, the store not
//! writable. Warning: no ready peer while peers are configured or known,
//! the certificate expiring within [`EXPIRY_WARNING_MS`], an enforcement
//! backend failing.

use std::sync::PoisonError;

use banmesh_keys::time::format_rfc3339;

use super::Queries;
use crate::api::NodeError;
use crate::control::views::{CheckLevel, CheckView, PeerState, PeerView};
use crate::fail2ban::ApplierStatus;

/// How long before its certificate expires a node warns: 30 days.
pub const EXPIRY_WARNING_MS: u64 = 30 * 86_400_000;

fn check(level: CheckLevel, message: String) -> CheckView {
    CheckView { level, message }
}

impl Queries {
    /// The problems, worst first.
    pub(super) fn checks(
        &self,
        now_ms: u64,
        peers: &[PeerView],
        skew: Option<&NodeError>,
        applier: &ApplierStatus,
    ) -> Vec<CheckView> {
        let mut out = Vec::new();
        if let Some(failure) = self.store.write_failure() {
            let message = format!("the store is not writable: {}", failure.error);
            out.push(check(CheckLevel::Critical, message));
        }
        if let Some(error) = skew {
            out.push(check(CheckLevel::Critical, error.to_string()));
        }
        out.extend(self.certificate_check(now_ms));
        out.extend(self.peer_check(peers));
        if let Some(error) = &applier.last_error {
            out.push(check(CheckLevel::Warning, format!("fail2ban backend failing: {error}")));
        } else if let Some(problem) = applier.problems.first() {
            out.push(check(CheckLevel::Warning, format!("fail2ban backend failing: {problem}")));
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.level));
        out
    }

    /// The own certificate: missing, revoked, not valid now, or expiring.
    fn certificate_check(&self, now_ms: u64) -> Option<CheckView> {
        let enroll = "renew it (`banmesh keys enroll --help` shows the one-line pipeline)";
        let Some(cert) = self.standing().cert else {
            let message = "no certificate for this node's key: peers refuse it; enroll it \
                           (`banmesh keys enroll --help` shows how)";
            return Some(check(CheckLevel::Critical, message.to_owned()));
        };
        let trust = self.trust.read().unwrap_or_else(PoisonError::into_inner);
        if trust.revocations().get(&self.standing().node_key).is_some() {
            let message = "this node's certificate is revoked: make a new node key and enroll it";
            return Some(check(CheckLevel::Critical, message.to_owned()));
        }
        let after = cert.not_after_ms();
        let at = format_rfc3339(after);
        if now_ms >= after {
            let message = format!("this node's certificate expired at {at}: {enroll}");
            return Some(check(CheckLevel::Critical, message));
        }
        if now_ms < cert.not_before_ms() {
            let from = format_rfc3339(cert.not_before_ms());
            let message = format!("this node's certificate is not valid before {from}");
            return Some(check(CheckLevel::Critical, message));
        }
        if after - now_ms <= EXPIRY_WARNING_MS {
            let days = (after - now_ms) / 86_400_000;
            let message =
                format!("this node's certificate expires at {at} (in {days} d): {enroll}");
            return Some(check(CheckLevel::Warning, message));
        }
        None
    }

    /// No ready peer while peers are configured or known.
    fn peer_check(&self, peers: &[PeerView]) -> Option<CheckView> {
        let configured = self.config.node.peers.len();
        if peers.iter().any(|p| p.state == PeerState::Connected)
            || (configured == 0 && peers.is_empty())
        {
            return None;
        }
        let message = format!(
            "no ready peer ({configured} configured, {} known): this node neither sends nor \
             receives bans; see `banmesh peers`",
            peers.len()
        );
        Some(check(CheckLevel::Warning, message))
    }
}
