//! The host's two halves of enrolling it in one pipeline, run from the
//! machine that holds the cluster key:
//!
//! ```text
//! ssh HOST banmesh keys pub | banmesh keys enroll --cluster-key cluster.key --node-pub - --name HOST | ssh HOST banmesh keys install-cert -
//! ```
//!
//! `keys pub` prints the public half of the host's node key; `keys
//! install-cert` checks a certificate belongs to that key and to the
//! configured cluster, writes it, and asks a running node to present it
//! without a restart. Only public keys and certificates travel: the secret
//! key never leaves the host. Renewal is the same pipeline.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use banmesh_keys::files;
use banmesh_keys::time::format_rfc3339;
use banmesh_keys::{Certificate, PublicKey, SecretKey};
use clap::Args;

use super::keys::now_ms;
use crate::config::{Config, Overrides};
use crate::control::client;
use crate::control::protocol::{Command, Response};
use crate::daemon::own_cert::{self, Files};

/// The configuration the package installs, used when --config is not given
/// and it exists.
pub const DEFAULT_CONFIG: &str = "/etc/banmesh/banmesh.toml";

/// Which node's files: its configuration, and overrides of it.
#[derive(Debug, Args)]
pub struct HostArgs {
    /// The node's configuration (default: /etc/banmesh/banmesh.toml when it
    /// exists, else the built-in defaults).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The data directory (node.data_dir), where the key and certificate are
    /// unless the configuration names them.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The cluster's public key (cluster.public_key).
    #[arg(long, value_name = "FILE")]
    cluster_pub: Option<PathBuf>,
    /// The running node's control socket (node.socket).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

impl HostArgs {
    /// The configuration in effect for this host.
    pub fn load(&self) -> anyhow::Result<Config> {
        let default = Path::new(DEFAULT_CONFIG);
        let path = self.config.as_deref().or_else(|| default.exists().then_some(default));
        let overrides = Overrides {
            data_dir: self.data_dir.clone(),
            cluster_pub: self.cluster_pub.clone(),
            socket: self.socket.clone(),
            ..Overrides::default()
        };
        Ok(Config::load(path, &overrides)?)
    }
}

/// Arguments of `keys pub`.
#[derive(Debug, Args)]
pub struct PubArgs {
    /// Which node.
    #[command(flatten)]
    host: HostArgs,
    /// Make the node key first if there is none (never replaces one), as the
    /// node does at its first start.
    #[arg(long)]
    create: bool,
}

/// Arguments of `keys install-cert`.
#[derive(Debug, Args)]
pub struct InstallCertArgs {
    /// The certificate, or - to read it from stdin.
    cert: PathBuf,
    /// Which node.
    #[command(flatten)]
    host: HostArgs,
}

/// Prints the node key's public half (PEM) to stdout.
pub fn public(args: &PubArgs) -> anyhow::Result<()> {
    let config = args.host.load()?;
    let path = &config.node.node_key;
    if args.create && !path.exists() {
        make_key(path)?;
    } else if !path.exists() {
        bail!(
            "no node key at {}: install the banmesh package (its postinst makes one), start the \
             node once, or pass --create",
            path.display()
        );
    }
    let secret = files::read_secret_key(path)?;
    print!("{}", secret.public().to_pem()?);
    Ok(())
}

/// Makes the node key and its `.pub` beside it, the directory 0700.
fn make_key(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    }
    let secret = SecretKey::generate()?;
    files::write_secret_key(path, &secret, false)?;
    files::write_public_key(&path.with_extension("pub"), &secret.public(), false)?;
    eprintln!("made the node key {} in {}", secret.public().short(), path.display());
    Ok(())
}

/// Reads a file, or stdin for `-`.
pub fn read_input(path: &Path, what: &str) -> anyhow::Result<String> {
    if path != Path::new("-") {
        return std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {what} from {}", path.display()));
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {what} from stdin"))?;
    if text.trim().is_empty() {
        bail!("no {what} on stdin (did the command before the pipe fail?)");
    }
    Ok(text)
}

/// A public key from a file or stdin (`-`).
pub fn read_public(path: &Path) -> anyhow::Result<PublicKey> {
    let text = read_input(path, "the node's public key")?;
    PublicKey::from_pem(&text).with_context(|| {
        format!("{}: not a public key (PEM, as `banmesh keys pub` prints)", path.display())
    })
}

/// Checks and writes a certificate, then asks a running node to reload it.
pub fn install_cert(args: &InstallCertArgs) -> anyhow::Result<()> {
    let config = args.host.load()?;
    let text = read_input(&args.cert, "the certificate")?;
    let cert = Certificate::from_pem(&text).with_context(|| {
        format!("{}: not a certificate (PEM, as `banmesh keys enroll` prints)", args.cert.display())
    })?;
    let node = &config.node;
    let Some(cluster_path) = config.cluster.public_key.as_deref() else {
        bail!(
            "[cluster] public_key is not set (the node would use a development cluster): set it, \
             e.g. public_key = \"/etc/banmesh/cluster.pub\" as the package's {DEFAULT_CONFIG} does"
        );
    };
    let secret = files::read_secret_key(&node.node_key).with_context(|| {
        format!(
            "this host's node key (`banmesh keys pub --create` makes one at {})",
            node.node_key.display()
        )
    })?;
    let first = !cluster_path.exists();
    // On a first enrollment (no cluster key yet) the cluster is the one the
    // certificate names, and its signature must verify with it.
    let cluster = if first { *cert.cluster() } else { files::read_public_key(cluster_path)? };
    let given = if args.cert == Path::new("-") {
        Path::new("the certificate on stdin")
    } else {
        &args.cert
    };
    let names = Files { key: &node.node_key, cert: given, cluster: Some(cluster_path) };
    own_cert::check(&cert, &secret.public(), &cluster, now_ms()?)
        .map_err(|m| anyhow::anyhow!("refused, nothing written: {}", m.explain(names)))?;
    if first {
        create_parent(cluster_path)?;
        files::write_public_key(cluster_path, &cluster, false)?;
        println!(
            "wrote {} (the cluster key {} that signed the certificate)",
            cluster_path.display(),
            cluster.short()
        );
    }
    files::write_public_file(&node.node_cert, cert.to_pem()?.as_bytes(), true)?;
    println!(
        "installed {}: {} (node {}), roles {}, valid until {}",
        node.node_cert.display(),
        cert.name(),
        cert.node().short(),
        cert.roles(),
        format_rfc3339(cert.not_after_ms())
    );
    reload(&node.socket)
}

/// Creates the directory a file goes in, if missing.
fn create_parent(path: &Path) -> anyhow::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
        }
        None => Ok(()),
    }
}

/// Asks the node on `socket` to present the certificate now; without a
/// running node, says it is used at the next start.
fn reload(socket: &Path) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match runtime.block_on(client::call(socket, Command::ReloadCert)) {
        Ok(Response::CertReloaded { name, not_after_ms }) => {
            println!(
                "the node on {} now presents it ({name}, valid until {}): no restart needed",
                socket.display(),
                format_rfc3339(not_after_ms)
            );
            Ok(())
        }
        Ok(Response::Error { message }) => {
            bail!("the running node refused to reload it: {message}")
        }
        Ok(other) => bail!("unexpected answer from the node: {}", other.name()),
        Err(client::ClientError::NotListening(_)) => {
            println!(
                "no node is running on {}: it uses the certificate when it starts",
                socket.display()
            );
            Ok(())
        }
        Err(error) => Err(error).context("the certificate is installed, but the node was not told"),
    }
}
