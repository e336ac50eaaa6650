//! Reloading this node's certificate while it runs (`banmesh keys
//! install-cert` asks over the control socket): the file is read again and
//! checked against the node's key and cluster; a good one is stored (so
//! gossip carries it), presented in every later hello and shown by
//! `status`. A bad one is refused and the node keeps the one it had.

use std::sync::PoisonError;

use super::Node;
use crate::api::{CertReloaded, NodeError};
use crate::clock::now_ms;
use crate::daemon::identity;
use crate::daemon::own_cert::Files;
use crate::daemon::queries::SharedStanding;

impl Node {
    /// Shares `standing` with `status`, to update it on a reload.
    pub fn with_standing(mut self, standing: SharedStanding) -> Node {
        self.standing = Some(standing);
        self
    }

    /// Reads the certificate file again and presents it from now on.
    pub(super) async fn reload_cert(&mut self) -> Result<CertReloaded, NodeError> {
        let node = &self.config.node;
        let files = Files {
            key: &node.node_key,
            cert: &node.node_cert,
            cluster: self.config.cluster.public_key.as_deref(),
        };
        let cert =
            identity::reload_cert(files, &self.identity.secret, &self.identity.cluster, now_ms())
                .map_err(NodeError::CertRefused)?;
        self.store.add_certificate(cert.clone()).await?;
        self.mesh.set_own_cert(cert.to_bytes()).await;
        if let Some(standing) = &self.standing {
            let mut standing = standing.write().unwrap_or_else(PoisonError::into_inner);
            // The notices about the old certificate (missing, another key or
            // cluster) name its file; the others stay.
            let path = node.node_cert.display().to_string();
            standing.notices.retain(|notice| !notice.contains(&path));
            standing.cert = Some(cert.clone());
        }
        tracing::info!(
            name = cert.name(),
            not_after_ms = cert.not_after_ms(),
            "reloaded this node's certificate from {}",
            node.node_cert.display()
        );
        let reloaded =
            CertReloaded { name: cert.name().to_owned(), not_after_ms: cert.not_after_ms() };
        self.identity.cert = Some(cert);
        Ok(reloaded)
    }
}
