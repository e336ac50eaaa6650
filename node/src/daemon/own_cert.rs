//! Whether this node's certificate belongs with its key and its cluster:
//! checked by `banmesh config check` and `banmesh keys install-cert` (an
//! error), at start (a warning) and when a running node reloads its
//! certificate (refused). Every message names the files and the fix.

use std::path::Path;

use banmesh_keys::time::format_rfc3339;
use banmesh_keys::{Certificate, PublicKey};

/// The pipeline that enrolls (or renews) a host, run from the machine that
/// holds the cluster key.
pub const ENROLL: &str = "ssh HOST banmesh keys pub | banmesh keys enroll --cluster-key cluster.key \
                          --node-pub - --name HOST | ssh HOST banmesh keys install-cert -";

/// Where the three files are, to name them in messages.
#[derive(Debug, Clone, Copy)]
pub struct Files<'a> {
    /// The node's secret key.
    pub key: &'a Path,
    /// The node's certificate.
    pub cert: &'a Path,
    /// The cluster's public key (`None`: the development cluster).
    pub cluster: Option<&'a Path>,
}

/// Why a certificate does not belong with this node's key and cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// It certifies another key.
    OtherKey {
        /// The key the certificate names.
        cert_node: PublicKey,
        /// This node's key.
        key: PublicKey,
    },
    /// Another cluster signed it.
    OtherCluster {
        /// The cluster the certificate names.
        cert_cluster: PublicKey,
        /// The configured cluster.
        cluster: PublicKey,
    },
    /// It names this cluster but its signature does not verify.
    BadSignature(String),
    /// Its validity ended.
    Expired {
        /// When.
        not_after_ms: u64,
    },
    /// Its validity has not begun.
    NotYetValid {
        /// When it begins.
        not_before_ms: u64,
    },
}

impl Mismatch {
    /// Whether the node may still present the certificate (it is this
    /// node's, from this cluster, only outside its validity: peers refuse
    /// it until it is renewed or the clock is right).
    pub fn is_timing(&self) -> bool {
        matches!(self, Mismatch::Expired { .. } | Mismatch::NotYetValid { .. })
    }

    /// One sentence naming the files and the fix.
    pub fn explain(&self, files: Files<'_>) -> String {
        let cert = files.cert.display();
        let cluster = files
            .cluster
            .map_or_else(|| "the development cluster".to_owned(), |p| p.display().to_string());
        match self {
            Mismatch::OtherKey { cert_node, key } => format!(
                "{cert} certifies node {}, not this node's key {} ({}): enroll this key: {ENROLL}",
                cert_node.short(),
                key.short(),
                files.key.display()
            ),
            Mismatch::OtherCluster { cert_cluster, cluster: ours } => format!(
                "{cert} is signed by another cluster ({}) than {cluster} ({}): enroll this node again \
                 with the key of the cluster {cluster} holds ({ENROLL}), or set [cluster] \
                 public_key to the cluster.pub that signed it",
                cert_cluster.short(),
                ours.short()
            ),
            Mismatch::BadSignature(error) => {
                format!("{cert}: {error}: it was not signed by {cluster}; enroll again: {ENROLL}")
            }
            Mismatch::Expired { not_after_ms } => format!(
                "{cert} expired at {}: peers refuse this node; renew it: {ENROLL}",
                format_rfc3339(*not_after_ms)
            ),
            Mismatch::NotYetValid { not_before_ms } => format!(
                "{cert} is not valid before {}: peers refuse this node until then; check this host's clock",
                format_rfc3339(*not_before_ms)
            ),
        }
    }
}

/// Checks that `cert` certifies `key`, was signed by `cluster` and is valid
/// at `now_ms`.
pub fn check(
    cert: &Certificate,
    key: &PublicKey,
    cluster: &PublicKey,
    now_ms: u64,
) -> Result<(), Mismatch> {
    if cert.node() != key {
        return Err(Mismatch::OtherKey { cert_node: *cert.node(), key: *key });
    }
    if cert.cluster() != cluster {
        return Err(Mismatch::OtherCluster { cert_cluster: *cert.cluster(), cluster: *cluster });
    }
    cert.verify_signature(cluster).map_err(|e| Mismatch::BadSignature(e.to_string()))?;
    if now_ms < cert.not_before_ms() {
        return Err(Mismatch::NotYetValid { not_before_ms: cert.not_before_ms() });
    }
    if now_ms >= cert.not_after_ms() {
        return Err(Mismatch::Expired { not_after_ms: cert.not_after_ms() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use banmesh_keys::{Roles, SecretKey};

    use super::*;

    fn cert(cluster: &SecretKey, node: &SecretKey, from: u64, to: u64) -> Certificate {
        Certificate::issue(cluster, node.public(), "web1", Roles::NONE, from, to, None)
            .expect("issue")
    }

    #[test]
    fn check_names_each_mismatch() {
        let (cluster, other, node) = (
            SecretKey::from_bytes(&[1; 32]),
            SecretKey::from_bytes(&[2; 32]),
            SecretKey::from_bytes(&[3; 32]),
        );
        let good = cert(&cluster, &node, 1_000, 2_000);
        assert_eq!(check(&good, &node.public(), &cluster.public(), 1_500), Ok(()));
        let wrong_key = check(&good, &other.public(), &cluster.public(), 1_500);
        assert!(matches!(wrong_key, Err(Mismatch::OtherKey { .. })), "{wrong_key:?}");
        let wrong_cluster = check(&good, &node.public(), &other.public(), 1_500);
        assert!(matches!(wrong_cluster, Err(Mismatch::OtherCluster { .. })), "{wrong_cluster:?}");
        let expired = check(&good, &node.public(), &cluster.public(), 2_000);
        assert_eq!(expired, Err(Mismatch::Expired { not_after_ms: 2_000 }));
        assert!(expired.expect_err("expired").is_timing());
        let early = check(&good, &node.public(), &cluster.public(), 999);
        assert_eq!(early, Err(Mismatch::NotYetValid { not_before_ms: 1_000 }));
    }

    #[test]
    fn explain_names_the_certificate_and_the_fix() {
        let (cert_path, key_path, cluster_path) = (
            PathBuf::from("/x/node.cert"),
            PathBuf::from("/x/node.key"),
            PathBuf::from("/e/c.pub"),
        );
        let files = Files { key: &key_path, cert: &cert_path, cluster: Some(&cluster_path) };
        let other = Mismatch::OtherCluster {
            cert_cluster: SecretKey::from_bytes(&[1; 32]).public(),
            cluster: SecretKey::from_bytes(&[2; 32]).public(),
        };
        let text = other.explain(files);
        assert!(text.contains("/x/node.cert is signed by another cluster"), "{text}");
        assert!(text.contains("/e/c.pub") && text.contains("install-cert"), "{text}");
    }
}
