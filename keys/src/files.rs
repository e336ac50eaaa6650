//! Key, certificate and revocation files: secrets written 0600 and refused
//! when group or others may open them, public files 0644, nothing overwritten
//! without `force`, and every error naming its file.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::cert::{CERTIFICATE_PEM_LABEL, CertError, Certificate};
use crate::key::{KeyError, PublicKey, SecretKey};
use crate::revocation::{REVOCATION_PEM_LABEL, Revocation, RevocationError, Revocations};
use crate::wire::pem_label;

/// Mode of files holding a secret key.
pub const SECRET_MODE: u32 = 0o600;
/// Mode of files holding public material.
pub const PUBLIC_MODE: u32 = 0o644;
/// PEM label of a PKCS#8 secret key.
const SECRET_LABEL: &str = "PRIVATE KEY";
/// PEM label of an SPKI public key.
const PUBLIC_LABEL: &str = "PUBLIC KEY";

/// Why a file could not be read or written. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Opening or reading failed.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said (shown in the message, so not a `source`).
        error: io::Error,
    },
    /// Creating, writing or renaming failed.
    #[error("cannot write {}: {error}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the system said (shown in the message, so not a `source`).
        error: io::Error,
    },
    /// The file exists and `force` was not given.
    #[error("{} already exists: pass --force to overwrite", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A secret key file may be read or written by group or others.
    #[error(
        "{} holds a secret key but group or others may open it (mode {mode:04o}): \
         run `chmod 600 {}`",
        path.display(), path.display()
    )]
    LoosePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file does not hold a valid key.
    #[error("{}: {error}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// Why the key was refused.
        error: KeyError,
    },
    /// The file does not hold a well-formed certificate.
    #[error("{}: {error}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why the certificate was refused.
        error: CertError,
    },
    /// The file does not hold a well-formed, trusted revocation.
    #[error("{}: {error}", path.display())]
    Revocation {
        /// The file.
        path: PathBuf,
        /// Why the revocation was refused.
        error: RevocationError,
    },
    /// The file is not PEM with a label banmesh reads.
    #[error(
        "{} is not a banmesh key, certificate or revocation (PEM label {}): pass a file \
         written by `banmesh keys`",
        path.display(), label.as_deref().unwrap_or("missing")
    )]
    UnknownKind {
        /// The file.
        path: PathBuf,
        /// The PEM label found, if any.
        label: Option<String>,
    },
}

/// The contents of any file `banmesh keys` writes, told apart by PEM label.
#[derive(Debug)]
pub enum KeyFile {
    /// A secret key (`PRIVATE KEY`), from a file only its owner may open.
    Secret(SecretKey),
    /// A public key (`PUBLIC KEY`).
    Public(PublicKey),
    /// A certificate (`BANMESH CERTIFICATE`), decoded but not verified.
    Certificate(Certificate),
    /// A revocation (`BANMESH REVOCATION`), decoded but not verified.
    Revocation(Revocation),
}

/// Writes `contents` to a new file only its owner may read and write (0600).
/// An existing file is replaced only with `force`, atomically, still 0600.
pub fn write_secret_file(path: &Path, contents: &[u8], force: bool) -> Result<(), FileError> {
    write_file(path, contents, SECRET_MODE, force)
}

/// Writes `contents` to a new file anyone may read (0644).
/// An existing file is replaced only with `force`, atomically.
pub fn write_public_file(path: &Path, contents: &[u8], force: bool) -> Result<(), FileError> {
    write_file(path, contents, PUBLIC_MODE, force)
}

/// Writes a secret key as PKCS#8 PEM with mode 0600.
pub fn write_secret_key(path: &Path, key: &SecretKey, force: bool) -> Result<(), FileError> {
    let pem = key.to_pem().map_err(|error| FileError::Key { path: path.to_owned(), error })?;
    write_secret_file(path, pem.as_bytes(), force)
}

/// Writes a public key as SPKI PEM with mode 0644.
pub fn write_public_key(path: &Path, key: &PublicKey, force: bool) -> Result<(), FileError> {
    let pem = key.to_pem().map_err(|error| FileError::Key { path: path.to_owned(), error })?;
    write_public_file(path, pem.as_bytes(), force)
}

/// Reads a secret key, refusing a file group or others may open.
pub fn read_secret_key(path: &Path) -> Result<SecretKey, FileError> {
    let (text, mode) = read_text(path)?;
    check_secret_mode(path, mode)?;
    SecretKey::from_pem(&text).map_err(|error| FileError::Key { path: path.to_owned(), error })
}

/// Reads a public key from SPKI PEM.
pub fn read_public_key(path: &Path) -> Result<PublicKey, FileError> {
    let (text, _) = read_text(path)?;
    PublicKey::from_pem(&text).map_err(|error| FileError::Key { path: path.to_owned(), error })
}

/// Reads a certificate, strictly decoded but not yet verified.
pub fn read_certificate(path: &Path) -> Result<Certificate, FileError> {
    let (text, _) = read_text(path)?;
    Certificate::from_pem(&text)
        .map_err(|error| FileError::Certificate { path: path.to_owned(), error })
}

/// Reads a revocation, strictly decoded but not yet verified.
pub fn read_revocation(path: &Path) -> Result<Revocation, FileError> {
    let (text, _) = read_text(path)?;
    Revocation::from_pem(strip_bom(&text))
        .map_err(|error| FileError::Revocation { path: path.to_owned(), error })
}

/// Reads any file `banmesh keys` writes, telling the kind by its PEM label.
/// A secret key is refused, as everywhere, when group or others may open it.
pub fn read_any(path: &Path) -> Result<KeyFile, FileError> {
    let (text, mode) = read_text(path)?;
    let key_error = |error| FileError::Key { path: path.to_owned(), error };
    match pem_label(&text) {
        Some(SECRET_LABEL) => {
            check_secret_mode(path, mode)?;
            SecretKey::from_pem(&text).map(KeyFile::Secret).map_err(key_error)
        }
        Some(PUBLIC_LABEL) => PublicKey::from_pem(&text).map(KeyFile::Public).map_err(key_error),
        Some(CERTIFICATE_PEM_LABEL) => Certificate::from_pem(&text)
            .map(KeyFile::Certificate)
            .map_err(|error| FileError::Certificate { path: path.to_owned(), error }),
        Some(REVOCATION_PEM_LABEL) => Revocation::from_pem(&text)
            .map(KeyFile::Revocation)
            .map_err(|error| FileError::Revocation { path: path.to_owned(), error }),
        label => {
            Err(FileError::UnknownKind { path: path.to_owned(), label: label.map(str::to_owned) })
        }
    }
}

/// What a revocations directory holds.
#[derive(Debug)]
pub struct RevocationDir {
    /// The revocations of the cluster, verified.
    pub revocations: Revocations,
    /// The files that are not one (damaged, junk, another kind of file,
    /// another cluster's), each error naming its file.
    pub skipped: Vec<FileError>,
}

/// Reads every revocation in `dir` into a set for `cluster`. Every regular
/// file but hidden ones is read; a file that is not a well-formed
/// revocation signed by `cluster` is skipped and returned in
/// [`RevocationDir::skipped`], so the caller can say so. A UTF-8
/// byte-order mark (as some editors write) is accepted.
pub fn read_revocations(dir: &Path, cluster: &PublicKey) -> Result<RevocationDir, FileError> {
    let read_error = |error| FileError::Read { path: dir.to_owned(), error };
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.file_type().map_err(read_error)?.is_file() {
            paths.push(entry.path());
        }
    }
    paths.sort();
    let mut out = RevocationDir { revocations: Revocations::new(*cluster), skipped: Vec::new() };
    for path in paths {
        let bytes =
            fs::read(&path).map_err(|error| FileError::Read { path: path.clone(), error })?;
        let Ok(text) = std::str::from_utf8(&bytes) else {
            let error = io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text");
            out.skipped.push(FileError::Read { path, error });
            continue;
        };
        let read = Revocation::from_pem(strip_bom(text))
            .and_then(|revocation| out.revocations.insert(revocation));
        if let Err(error) = read {
            out.skipped.push(FileError::Revocation { path, error });
        }
    }
    Ok(out)
}

/// `text` without a leading UTF-8 byte-order mark.
fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Reads a whole file as UTF-8 into memory zeroized on drop, with its mode.
fn read_text(path: &Path) -> Result<(Zeroizing<String>, u32), FileError> {
    let read_error = |error| FileError::Read { path: path.to_owned(), error };
    let mut file = File::open(path).map_err(read_error)?;
    let metadata = file.metadata().map_err(read_error)?;
    if !metadata.is_file() {
        return Err(read_error(io::Error::other("not a regular file")));
    }
    // Reserve room up front so the text is never reallocated, leaving copies behind.
    let capacity = usize::try_from(metadata.len()).unwrap_or(0).saturating_add(1);
    let mut text = Zeroizing::new(String::with_capacity(capacity));
    file.read_to_string(&mut text).map_err(read_error)?;
    Ok((text, metadata.permissions().mode()))
}

fn check_secret_mode(path: &Path, mode: u32) -> Result<(), FileError> {
    if mode & 0o077 != 0 {
        return Err(FileError::LoosePermissions { path: path.to_owned(), mode: mode & 0o7777 });
    }
    Ok(())
}

fn write_file(path: &Path, contents: &[u8], mode: u32, force: bool) -> Result<(), FileError> {
    let write_error = |error| FileError::Write { path: path.to_owned(), error };
    if !force {
        let file = match create_new(path, mode) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(FileError::Exists { path: path.to_owned() });
            }
            other => other.map_err(write_error)?,
        };
        return fill(file, contents, mode).map_err(|e| {
            let _ = fs::remove_file(path);
            write_error(e)
        });
    }
    // Replace atomically: a temporary file beside the target, made with the
    // final mode from the start, then renamed over it.
    let temp = temp_path(path).map_err(write_error)?;
    let result = create_new(&temp, mode)
        .and_then(|file| fill(file, contents, mode))
        .and_then(|()| fs::rename(&temp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(write_error(e));
    }
    Ok(())
}

fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).mode(mode).open(path)
}

/// Sets the exact mode (the umask may have narrowed it), writes and syncs.
fn fill(mut file: File, contents: &[u8], mode: u32) -> io::Result<()> {
    file.set_permissions(Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()
}

fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let nonce = getrandom::u64().map_err(|e| io::Error::other(e.to_string()))?;
    let temp_name = format!(".{}.{nonce:016x}.tmp", name.to_string_lossy());
    Ok(path.with_file_name(temp_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn secret_and_public_files_get_their_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = SecretKey::from_bytes(&[4; 32]);
        let (key_path, pub_path) = (dir.path().join("node.key"), dir.path().join("node.pub"));
        write_secret_key(&key_path, &secret, false).expect("write secret");
        write_public_key(&pub_path, &secret.public(), false).expect("write public");
        assert_eq!(mode_of(&key_path), 0o600);
        assert_eq!(mode_of(&pub_path), 0o644);
        assert_eq!(read_secret_key(&key_path).expect("read").public(), secret.public());
        assert_eq!(read_public_key(&pub_path).expect("read"), secret.public());
        assert!(matches!(read_any(&key_path), Ok(KeyFile::Secret(_))));
        assert!(matches!(read_any(&pub_path), Ok(KeyFile::Public(_))));
    }

    #[test]
    fn existing_files_need_force_and_keep_the_secret_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cluster.key");
        write_secret_file(&path, b"one", false).expect("first write");
        let error = write_secret_file(&path, b"two", false).expect_err("exists");
        let text = error.to_string();
        assert!(text.contains("cluster.key") && text.contains("pass --force"), "{text}");
        fs::set_permissions(&path, Permissions::from_mode(0o644)).expect("chmod");
        write_secret_file(&path, b"two", true).expect("forced write");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        assert_eq!(mode_of(&path), 0o600);
        let leftovers = fs::read_dir(dir.path()).expect("list").count();
        assert_eq!(leftovers, 1, "temporary file left behind");
    }

    #[test]
    fn loose_secret_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.key");
        write_secret_key(&path, &SecretKey::from_bytes(&[5; 32]), false).expect("write");
        for mode in [0o640, 0o604, 0o660, 0o644] {
            fs::set_permissions(&path, Permissions::from_mode(mode)).expect("chmod");
            let error = read_secret_key(&path).expect_err("loose");
            let text = error.to_string();
            assert!(text.contains(&format!("chmod 600 {}", path.display())), "{text}");
            assert!(matches!(read_any(&path), Err(FileError::LoosePermissions { .. })));
        }
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.pub");
        let text = read_public_key(&missing).expect_err("missing").to_string();
        assert!(text.contains("missing.pub"), "{text}");
        let junk = dir.path().join("junk.pem");
        write_public_file(&junk, b"junk", false).expect("write");
        let text = read_any(&junk).expect_err("junk").to_string();
        assert!(text.contains("junk.pem"), "{text}");
        let text = read_certificate(&junk).expect_err("junk").to_string();
        assert!(text.contains("junk.pem") && text.contains("malformed"), "{text}");
        let nowhere = dir.path().join("no-such-dir").join("x.pub");
        let text = write_public_file(&nowhere, b"x", false).expect_err("no dir").to_string();
        assert!(text.contains("x.pub"), "{text}");
    }

    #[test]
    fn revocations_directory_is_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cluster = SecretKey::from_bytes(&[1; 32]);
        let node = SecretKey::from_bytes(&[2; 32]).public();
        let revocation = Revocation::issue(&cluster, node, 7, "gone").expect("issue");
        write_public_file(
            &dir.path().join("a.rev"),
            revocation.to_pem().expect("encode").as_bytes(),
            false,
        )
        .expect("write");
        let pem = revocation.to_pem().expect("encode");
        let bom = format!("\u{feff}{pem}");
        write_public_file(&dir.path().join("b.rev"), bom.as_bytes(), false).expect("write");
        let cut = &pem[..pem.len() / 2];
        write_public_file(&dir.path().join("c.rev"), cut.as_bytes(), false).expect("write");
        write_public_file(&dir.path().join("d.rev"), b"\xff\xfejunk", false).expect("write");
        write_public_file(&dir.path().join("README"), b"notes", false).expect("write");
        write_public_file(&dir.path().join(".hidden"), b"notes", false).expect("write");
        let read = read_revocations(dir.path(), &cluster.public()).expect("read");
        assert!(read.revocations.is_revoked(&node));
        assert_eq!(read.revocations.len(), 1);
        let skipped: Vec<String> = read.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(skipped[0].contains("README") && skipped[0].contains("malformed"), "{skipped:?}");
        assert!(skipped[1].contains("c.rev") && skipped[1].contains("malformed"), "{skipped:?}");
        assert!(skipped[2].contains("d.rev") && skipped[2].contains("not UTF-8"), "{skipped:?}");
        assert_eq!(read_revocation(&dir.path().join("b.rev")).expect("a BOM is fine"), revocation);
        let other = SecretKey::from_bytes(&[3; 32]).public();
        let read = read_revocations(dir.path(), &other).expect("read");
        assert_eq!(read.revocations.len(), 0);
        let text = read.skipped[1].to_string();
        assert!(text.contains("a.rev") && text.contains("wrong cluster"), "{text}");
    }
}
