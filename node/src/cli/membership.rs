//! `banmesh config check`'s second half: the node key, the certificate and
//! the cluster key the configuration names must exist and belong together
//! (this key, this cluster, valid now). The first that does not fails the
//! check, naming the file and the fix. Without `[cluster] public_key` the
//! node makes a development cluster, its key and its certificate on first
//! run, so missing files are fine there; existing ones are still checked.

use std::path::Path;

use anyhow::{Context as _, bail};
use banmesh_keys::files;
use banmesh_keys::time::format_rfc3339;

use crate::config::Config;
use crate::daemon::own_cert::{self, ENROLL, Files};

/// A certificate expiring sooner than this is warned about (as `status
/// --check` does).
const EXPIRY_WARNING_MS: u64 = 30 * 86_400_000;

/// Checks the identity files `config` names at `now_ms`: the lines to print
/// (comments), or the first problem.
pub fn check(config: &Config, now_ms: u64) -> anyhow::Result<Vec<String>> {
    let node = &config.node;
    let configured = config.cluster.public_key.as_deref();
    let dev_pub = node.data_dir.join("dev-cluster").join("cluster.pub");
    let cluster_path = configured.unwrap_or(&dev_pub);
    if configured.is_none() && !(node.node_key.exists() && dev_pub.exists()) {
        return Ok(vec![format!(
            "# no cluster configured: the node makes its key, a development cluster and its \
             certificate in {} on first run",
            node.data_dir.display()
        )]);
    }
    let key = node.node_key.as_path();
    if !key.exists() {
        bail!(
            "no node key at {}: run `banmesh keys pub --create` (the package's postinst does), \
             then enroll it: {ENROLL}",
            key.display()
        );
    }
    let secret = files::read_secret_key(key).context("the node key (node.node_key)")?;
    let cluster = read_cluster(cluster_path, configured.is_some())?;
    let cert_path = node.node_cert.as_path();
    if !cert_path.exists() {
        bail!("{} is missing: this node is not enrolled; enroll it: {ENROLL}", cert_path.display());
    }
    let cert = files::read_certificate(cert_path).context("the certificate (node.node_cert)")?;
    let names = Files { key, cert: cert_path, cluster: configured };
    own_cert::check(&cert, &secret.public(), &cluster, now_ms)
        .map_err(|mismatch| anyhow::anyhow!("{}", mismatch.explain(names)))?;
    let mut lines = vec![format!(
        "# {} (node {}), {} ({}, valid until {}) and {} (cluster {}) belong together",
        key.display(),
        secret.public().short(),
        cert_path.display(),
        cert.name(),
        format_rfc3339(cert.not_after_ms()),
        cluster_path.display(),
        cluster.short()
    )];
    if cert.not_after_ms().saturating_sub(now_ms) < EXPIRY_WARNING_MS {
        lines.push(format!(
            "# warning: {} expires at {}: renew it: {ENROLL}",
            cert_path.display(),
            format_rfc3339(cert.not_after_ms())
        ));
    }
    Ok(lines)
}

/// The cluster's public key; a missing configured one says who writes it.
fn read_cluster(path: &Path, configured: bool) -> anyhow::Result<banmesh_keys::PublicKey> {
    if configured && !path.exists() {
        bail!(
            "the cluster key {} ([cluster] public_key) is missing: `banmesh keys install-cert` \
             writes it on this host's first enrollment ({ENROLL}), or copy the cluster's \
             cluster.pub there",
            path.display()
        );
    }
    files::read_public_key(path).context("the cluster key ([cluster] public_key)")
}
