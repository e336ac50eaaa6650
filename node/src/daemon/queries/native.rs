//! The reads the gateway's native API (`/v1/`) needs beyond status, peers
//! and trace: the trust its view judges records by, and what this node's
//! enforcement holds for one address.

use std::net::IpAddr;
use std::sync::PoisonError;

use banmesh_crdt::Key;
use serde::Serialize;

use super::Queries;
use crate::enforce::Why;

/// What this node's enforcement holds for one address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Enforcement {
    /// `[safety] enforce`: false observes only and holds nothing.
    pub enforce: bool,
    /// Entries the backends are told to hold that cover the address.
    pub held: Vec<String>,
    /// Banned keys covering the address that are not enforced, and why.
    pub left_out: Vec<LeftOut>,
    /// Each enabled backend and what it says about the address.
    pub backends: Vec<BackendHold>,
}

/// A banned key left out of enforcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LeftOut {
    /// The banned key.
    pub key: String,
    /// Why it is not enforced.
    pub why: String,
}

/// One enforcement backend's view of an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BackendHold {
    /// `fail2ban` or `nftables`.
    pub name: &'static str,
    /// The entries covering the address it holds (the target's, less what
    /// it reports it could not hold).
    pub holds: Vec<String>,
    /// What it reports about those entries (not held, not taken, errors).
    pub problems: Vec<String>,
}

impl Queries {
    /// The node's trust (certificates and revocations), for the gateway's
    /// view to judge the records it holds.
    pub fn trust(&self) -> std::sync::Arc<std::sync::RwLock<crate::mesh::Trust>> {
        self.trust.clone()
    }

    /// The enforcement target now, when the node enforces (for `/metrics`).
    pub fn target(&self) -> Option<std::sync::Arc<crate::enforce::Target>> {
        self.backends.target.as_ref().map(|t| t.borrow().clone())
    }

    /// What the enforcement target and each backend hold for `addr`.
    pub fn enforcement(&self, addr: IpAddr) -> Enforcement {
        let Some(target) = &self.backends.target else { return Enforcement::default() };
        let target = target.borrow().clone();
        let covers = |k: &Key| k.net().contains(&addr);
        let held: Vec<String> =
            target.entries.iter().filter(|k| covers(k)).map(ToString::to_string).collect();
        let left_out = target
            .left_out
            .iter()
            .filter(|(k, _)| covers(k))
            .map(|(key, why)| LeftOut { key: key.to_string(), why: why_text(why) })
            .collect();
        let mut backends = Vec::new();
        for backend in &self.config.enforce.backends {
            let (name, problems) = match backend {
                crate::config::Backend::Fail2Ban => {
                    let status =
                        self.backends.fail2ban.lock().unwrap_or_else(PoisonError::into_inner);
                    let mut problems: Vec<String> =
                        [&status.unheld, &status.not_taken, &status.too_wide]
                            .into_iter()
                            .flatten()
                            .filter(|e| held.iter().any(|h| e.contains(h.as_str())))
                            .map(|e| format!("not held: {e}"))
                            .collect();
                    problems.extend(status.last_error.clone());
                    ("fail2ban", problems)
                }
                crate::config::Backend::Nftables => {
                    let error = self.backends.nftables.as_ref().and_then(|s| {
                        s.lock().unwrap_or_else(PoisonError::into_inner).last_error.clone()
                    });
                    ("nftables", error.into_iter().collect())
                }
            };
            let holds = held
                .iter()
                .filter(|h| {
                    !problems.iter().any(|p| p.starts_with("not held") && p.contains(h.as_str()))
                })
                .cloned()
                .collect();
            backends.push(BackendHold { name, holds, problems });
        }
        Enforcement { enforce: target.enforce, held, left_out, backends }
    }
}

/// Why a banned key is left out, in words.
fn why_text(why: &Why) -> String {
    match why {
        Why::JailNotApplied => "no ban on it names a jail in [fail2ban] apply_jails".to_owned(),
        Why::Allowed(key) => format!("the allow on {key} covers it"),
        Why::NeverBan(key) => format!("the never-ban entry {key} covers it"),
        Why::TooWide(e) => e.to_string(),
    }
}
