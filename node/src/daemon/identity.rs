//! Who this node is at start: its key (made on first run), the cluster it
//! trusts, and its certificate. Without a configured cluster the node makes a
//! development cluster in its data dir and enrolls itself, and says so.

use std::fs;
use std::path::{Path, PathBuf};

use banmesh_keys::files::{self, FileError};
use banmesh_keys::{CertError, Certificate, PublicKey, Roles, SecretKey};

use super::own_cert;

/// How long a self-enrolled development certificate lasts.
const DEV_CERT_MS: u64 = 365 * 86_400_000;

/// The node's keys and standing in its cluster.
pub struct Identity {
    /// The node key; its public half is the libp2p PeerId and the origin of
    /// every record this node issues.
    pub secret: SecretKey,
    /// The cluster key every certificate and revocation must be signed by.
    pub cluster: PublicKey,
    /// This node's certificate, when it is enrolled and the certificate is
    /// for this key and this cluster.
    pub cert: Option<Certificate>,
    /// What the operator should know (first run, not enrolled, ...).
    pub notices: Vec<String>,
}

/// Why the node's identity could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A key or certificate file could not be read or written.
    #[error(transparent)]
    File(#[from] FileError),
    /// A key could not be made.
    #[error(transparent)]
    Key(#[from] banmesh_keys::KeyError),
    /// The development certificate could not be signed.
    #[error("cannot sign the development certificate: {0}")]
    Cert(#[from] CertError),
    /// The configured cluster key is not there.
    #[error(
        "the cluster key {} ([cluster] public_key) is missing: enroll this host (`banmesh keys \
         install-cert` writes it: {}), or copy the cluster's cluster.pub there",
        .0.display(),
        own_cert::ENROLL
    )]
    NoClusterKey(PathBuf),
    /// The data dir could not be created.
    #[error("cannot create the data dir {}: {error}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
}

/// Where the identity files are.
pub struct IdentityPaths<'a> {
    /// The data dir (the development cluster lives in `dev-cluster/` there).
    pub data_dir: &'a Path,
    /// The node's secret key file.
    pub node_key: &'a Path,
    /// The node's certificate file.
    pub node_cert: &'a Path,
    /// The configured cluster public key, if any.
    pub cluster_pub: Option<&'a Path>,
}

/// Loads (or on first run makes) the node key, the cluster key and the
/// certificate, as of `now_ms`.
pub fn load(paths: &IdentityPaths<'_>, now_ms: u64) -> Result<Identity, IdentityError> {
    let mut notices = Vec::new();
    let secret = if paths.node_key.exists() {
        files::read_secret_key(paths.node_key)?
    } else {
        create_dir(paths.node_key.parent().unwrap_or(paths.data_dir))?;
        let secret = SecretKey::generate()?;
        files::write_secret_key(paths.node_key, &secret, false)?;
        files::write_public_key(&paths.node_key.with_extension("pub"), &secret.public(), false)?;
        notices.push(format!(
            "made a new node key {} in {}",
            secret.public().short(),
            paths.node_key.display()
        ));
        secret
    };
    let cluster = match paths.cluster_pub {
        Some(path) if !path.exists() => return Err(IdentityError::NoClusterKey(path.to_owned())),
        Some(path) => files::read_public_key(path)?,
        None => dev_cluster(paths, &secret, now_ms, &mut notices)?,
    };
    let cert = if paths.node_cert.exists() {
        let cert = files::read_certificate(paths.node_cert)?;
        let files = own_cert::Files {
            key: paths.node_key,
            cert: paths.node_cert,
            cluster: paths.cluster_pub,
        };
        check_own(cert, &secret, &cluster, files, now_ms, &mut notices)
    } else {
        notices.push(format!(
            "not enrolled: {} is missing, so peers will refuse this node; enroll it (no restart \
             needed): {}",
            paths.node_cert.display(),
            own_cert::ENROLL
        ));
        None
    };
    Ok(Identity { secret, cluster, cert, notices })
}

/// Keeps a certificate only if it is this node's and this cluster's; one
/// that is only outside its validity is kept and logged at warn (peers
/// refuse it until it is renewed; `status` warns while it lasts).
fn check_own(
    cert: Certificate,
    secret: &SecretKey,
    cluster: &PublicKey,
    files: own_cert::Files<'_>,
    now_ms: u64,
    notices: &mut Vec<String>,
) -> Option<Certificate> {
    match own_cert::check(&cert, &secret.public(), cluster, now_ms) {
        Ok(()) => Some(cert),
        // `status` warns about an expired certificate itself, as the clock
        // moves: logged here, not kept as a notice.
        Err(mismatch) if mismatch.is_timing() => {
            tracing::warn!("{}", mismatch.explain(files));
            Some(cert)
        }
        Err(mismatch) => {
            notices.push(mismatch.explain(files));
            None
        }
    }
}

/// Reads the certificate again (a running node asked to reload it) and
/// checks it belongs to `secret` and `cluster` at `now_ms`: the sentence
/// naming the file and the fix when it does not.
pub fn reload_cert(
    files: own_cert::Files<'_>,
    secret: &SecretKey,
    cluster: &PublicKey,
    now_ms: u64,
) -> Result<Certificate, String> {
    let cert = files::read_certificate(files.cert).map_err(|e| e.to_string())?;
    own_cert::check(&cert, &secret.public(), cluster, now_ms).map_err(|m| m.explain(files))?;
    Ok(cert)
}

/// The development cluster: `dev-cluster/cluster.key` and `.pub` in the data
/// dir, made on first run, and a certificate for this node signed with it.
fn dev_cluster(
    paths: &IdentityPaths<'_>,
    secret: &SecretKey,
    now_ms: u64,
    notices: &mut Vec<String>,
) -> Result<PublicKey, IdentityError> {
    let dir = paths.data_dir.join("dev-cluster");
    let key_path = dir.join("cluster.key");
    let cluster_secret = if key_path.exists() {
        files::read_secret_key(&key_path)?
    } else {
        create_dir(&dir)?;
        let cluster = SecretKey::generate()?;
        files::write_secret_key(&key_path, &cluster, false)?;
        files::write_public_key(&dir.join("cluster.pub"), &cluster.public(), false)?;
        notices.push(format!(
            "no cluster configured: made a development cluster in {}; it is for trying banmesh on \
             one machine — for a real mesh make a cluster with `banmesh keys init-cluster`, keep \
             its key offline and set [cluster] public_key",
            dir.display()
        ));
        cluster
    };
    if !paths.node_cert.exists() {
        let roles: Roles = "ban,allow".parse().unwrap_or(Roles::NONE);
        let cert = Certificate::issue(
            &cluster_secret,
            secret.public(),
            &format!("dev-{}", secret.public().short()),
            roles,
            now_ms,
            now_ms.saturating_add(DEV_CERT_MS),
            None,
        )?;
        let pem = cert.to_pem()?;
        files::write_public_file(paths.node_cert, pem.as_bytes(), false)?;
        notices.push(format!(
            "enrolled this node in the development cluster: {}",
            paths.node_cert.display()
        ));
    }
    Ok(cluster_secret.public())
}

fn create_dir(path: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::DirBuilderExt;
    if path.as_os_str().is_empty() || path.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|error| IdentityError::DataDir { path: path.to_owned(), error })
}
