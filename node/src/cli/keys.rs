//! `banmesh keys ...`: make the cluster key and node keys, enroll nodes with
//! certificates, revoke them, and verify a certificate the way a node would.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use banmesh_crdt::duration::parse_duration;
use banmesh_keys::files::{self, FileError};
use banmesh_keys::time::format_rfc3339;
use banmesh_keys::{Certificate, MaxPrefix, PublicKey, Revocation, Revocations, Roles, SecretKey};
use clap::{Args, Subcommand};

use super::{enroll, show};

/// The `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make the cluster key: DIR/cluster.key (0600, keep it offline) and DIR/cluster.pub.
    InitCluster(InitArgs),
    /// Make a node key: DIR/node.key (0600) and DIR/node.pub.
    Init(InitArgs),
    /// Sign a certificate for a node key with the cluster key.
    #[command(after_help = "Examples:
  ssh web1 banmesh keys pub | banmesh keys enroll --cluster-key cluster.key --node-pub - --name web1 | ssh web1 banmesh keys install-cert -
  banmesh keys enroll --cluster-key cluster.key --node-pub node.pub --name web1 --roles ban --out web1.cert")]
    Enroll(EnrollArgs),
    /// Print this host's node public key (PEM), for `keys enroll --node-pub -`.
    Pub(enroll::PubArgs),
    /// Check a certificate belongs to this host's key and cluster, install
    /// it, and have a running node present it without a restart.
    InstallCert(enroll::InstallCertArgs),
    /// Describe a key, certificate or revocation file.
    Show(ShowArgs),
    /// Sign a revocation of a node's certificate with the cluster key.
    Revoke(RevokeArgs),
    /// Check a certificate against the cluster key, the clock and revocations.
    Verify(VerifyArgs),
}

/// Arguments of `init-cluster` and `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to write the key pair into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Overwrite existing key files.
    #[arg(long)]
    force: bool,
}

/// Arguments of `enroll`.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The cluster's secret key (cluster.key).
    #[arg(long, value_name = "FILE")]
    cluster_key: PathBuf,
    /// The node's public key (node.pub), or - to read it from stdin
    /// (`ssh HOST banmesh keys pub |`).
    #[arg(long, value_name = "FILE")]
    node_pub: PathBuf,
    /// The node's name: 1 to 64 characters from A-Z a-z 0-9 . _ -
    #[arg(long)]
    name: String,
    /// Roles, comma-separated: ban, allow, wide-prefix (or none).
    #[arg(long, default_value = "ban,allow")]
    roles: Roles,
    /// How long the certificate is valid from now, e.g. 30d, 1w, 365d.
    #[arg(long, value_name = "DURATION", default_value = "365d", value_parser = parse_duration)]
    valid_for: Duration,
    /// Widest prefixes the node may ban or allow, IPv4 then IPv6, e.g. 24,64.
    /// Wider than 16,48 needs the wide-prefix role.
    #[arg(long, value_name = "V4,V6")]
    max_prefix: Option<MaxPrefix>,
    /// Where to write the certificate (default: stdout, for
    /// `| ssh HOST banmesh keys install-cert -`).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
}

/// Arguments of `show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A key, certificate or revocation file.
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The cluster's secret key (cluster.key).
    #[arg(long, value_name = "FILE")]
    cluster_key: PathBuf,
    /// The certificate of the node to revoke.
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,
    /// Why the node is revoked (at most 256 bytes).
    #[arg(long, value_name = "TEXT", default_value = "")]
    reason: String,
    /// Where to write the revocation.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
}

/// Arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The cluster's public key (cluster.pub).
    #[arg(long, value_name = "FILE")]
    cluster_pub: PathBuf,
    /// The certificate to check.
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,
    /// A directory of revocation files to check against.
    #[arg(long, value_name = "DIR")]
    revocations: Option<PathBuf>,
}

/// Runs one `keys` subcommand.
pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::InitCluster(args) => init(&args, "cluster"),
        KeysCommand::Init(args) => init(&args, "node"),
        KeysCommand::Enroll(args) => enroll(&args),
        KeysCommand::Pub(args) => enroll::public(&args),
        KeysCommand::InstallCert(args) => enroll::install_cert(&args),
        KeysCommand::Show(args) => show::show(&args.file, args.json, now_ms()?),
        KeysCommand::Revoke(args) => revoke(&args),
        KeysCommand::Verify(args) => verify(&args),
    }
}

/// Writes `<stem>.key` and `<stem>.pub` into the output directory.
fn init(args: &InitArgs, stem: &str) -> anyhow::Result<()> {
    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create directory {}", args.out.display()))?;
    let key_path = args.out.join(format!("{stem}.key"));
    let pub_path = args.out.join(format!("{stem}.pub"));
    if !args.force {
        // Check both first so a refusal never leaves a new key beside an old public half.
        for path in [&key_path, &pub_path] {
            if fs::symlink_metadata(path).is_ok() {
                return Err(FileError::Exists { path: path.clone() }.into());
            }
        }
    }
    let secret = SecretKey::generate()?;
    files::write_secret_key(&key_path, &secret, args.force)?;
    files::write_public_key(&pub_path, &secret.public(), args.force)?;
    println!("{stem} key {}", secret.public());
    println!("wrote {} (secret, 0600)", key_path.display());
    println!("wrote {} (public, 0644)", pub_path.display());
    if stem == "cluster" {
        println!("keep {} offline; give {} to every node", key_path.display(), pub_path.display());
    }
    Ok(())
}

fn enroll(args: &EnrollArgs) -> anyhow::Result<()> {
    let cluster = files::read_secret_key(&args.cluster_key)?;
    let node = if args.node_pub == Path::new("-") {
        enroll::read_public(&args.node_pub)?
    } else {
        files::read_public_key(&args.node_pub)?
    };
    if node == cluster.public() {
        bail!("the node key is the cluster key: pass the node's node.pub as --node-pub");
    }
    let not_before_ms = now_ms()?;
    let valid_ms = u64::try_from(args.valid_for.as_millis()).unwrap_or(u64::MAX);
    let not_after_ms = not_before_ms
        .checked_add(valid_ms)
        .context("--valid-for reaches past the year 584 million: choose a shorter duration")?;
    let cert = Certificate::issue(
        &cluster,
        node,
        &args.name,
        args.roles,
        not_before_ms,
        not_after_ms,
        args.max_prefix,
    )?;
    let summary = format!(
        "enrolled {} (node {}) with roles {}, valid until {}",
        cert.name(),
        node.short(),
        cert.roles(),
        format_rfc3339(cert.not_after_ms())
    );
    let Some(out) = &args.out else {
        // The certificate is the output: the summary goes to stderr.
        print!("{}", cert.to_pem()?);
        eprintln!("{summary}");
        return Ok(());
    };
    files::write_public_file(out, cert.to_pem()?.as_bytes(), args.force)?;
    println!("{summary}");
    println!("wrote {}", out.display());
    Ok(())
}

fn revoke(args: &RevokeArgs) -> anyhow::Result<()> {
    let cluster = files::read_secret_key(&args.cluster_key)?;
    let cert = files::read_certificate(&args.cert)?;
    cert.verify_signature(&cluster.public()).with_context(|| format!("{}", args.cert.display()))?;
    let revocation = Revocation::issue(&cluster, *cert.node(), now_ms()?, &args.reason)?;
    files::write_public_file(&args.out, revocation.to_pem()?.as_bytes(), args.force)?;
    println!("revoked {} (node {})", cert.name(), cert.node().short());
    println!("wrote {}; give it to every node", args.out.display());
    Ok(())
}

/// The cluster key, a certificate and the revocations in a directory (none
/// without one): what checking a certificate or a record against a cluster needs.
pub fn trust_files(
    cluster_pub: &Path,
    cert: &Path,
    revocations: Option<&Path>,
) -> anyhow::Result<(PublicKey, Certificate, Revocations)> {
    let cluster = files::read_public_key(cluster_pub)?;
    let cert = files::read_certificate(cert)?;
    let revocations = match revocations {
        Some(dir) => {
            let read = files::read_revocations(dir, &cluster)?;
            for skipped in &read.skipped {
                eprintln!("banmesh: warning: skipped {skipped}");
            }
            read.revocations
        }
        None => Revocations::new(cluster),
    };
    Ok((cluster, cert, revocations))
}

fn verify(args: &VerifyArgs) -> anyhow::Result<()> {
    let (cluster, cert, revocations) =
        trust_files(&args.cluster_pub, &args.cert, args.revocations.as_deref())?;
    let now = now_ms()?;
    cert.verify(&cluster, now, &revocations).with_context(|| format!("{}", args.cert.display()))?;
    println!(
        "valid: {} (node {}), roles {}, expires {} ({})",
        cert.name(),
        cert.node().short(),
        cert.roles(),
        format_rfc3339(cert.not_after_ms()),
        show::relative(now, cert.not_after_ms())
    );
    Ok(())
}

/// The wall clock as Unix milliseconds.
pub fn now_ms() -> anyhow::Result<u64> {
    Ok(crate::clock::try_now_ms()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_refuses_before_writing_anything() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("node.pub"), "old").expect("write");
        let args = InitArgs { out: dir.path().to_owned(), force: false };
        let error = init(&args, "node").expect_err("exists");
        assert!(error.to_string().contains("pass --force"), "{error}");
        assert!(fs::symlink_metadata(dir.path().join("node.key")).is_err());
    }
}
