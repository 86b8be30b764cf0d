//! State callgate trusts because only it could have written it: the queue
//! directory and the ACME state directory. A directory is used only when it
//! is a real directory (no symlink) owned by the service user and writable
//! by nobody else; a file in it only when it is a regular file (opened with
//! `O_NOFOLLOW`) owned by the service user and writable by nobody else.
//! Files are written through a fresh temporary file (`O_EXCL`, random name)
//! renamed into place, so a link planted at any name is never followed.
//! Every file is opened `O_NONBLOCK` and used only when `fstat` says it is a
//! regular file: a FIFO or device planted at a name never hangs or floods a
//! read. Files the config names (PEM) are read the same way, bounded.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::RngExt;
use rustix::fs::OFlags;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a state path is not trusted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TrustError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot create the directory {path}: {source} (check its parent and permissions, or StateDirectory= in the unit)")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0} is a symbolic link: state must be a real directory or file (remove the link)")]
    Symlink(PathBuf),
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("{0} is not a regular file")]
    NotAFile(PathBuf),
    #[error("{path} is owned by uid {owner}, not by callgate's user (uid {me}): a file someone else planted is never used (chown it, or remove it)")]
    Foreign { path: PathBuf, owner: u32, me: u32 },
    #[error("{path} has mode {mode:04o}: group or others may write it, so its contents cannot be trusted (chmod go-w, after checking them)")]
    Writable { path: PathBuf, mode: u32 },
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> TrustError + '_ {
    move |source| TrustError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The effective user id callgate runs as.
fn me() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Owned by us and not writable by group or others.
fn ours(path: &Path, meta: &fs::Metadata) -> Result<(), TrustError> {
    let me = me();
    if meta.uid() != me {
        return Err(TrustError::Foreign {
            path: path.to_owned(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(TrustError::Writable {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// A real directory (no link), ours, writable by us alone.
fn ours_dir(dir: &Path, meta: &fs::Metadata) -> Result<(), TrustError> {
    if meta.file_type().is_symlink() {
        return Err(TrustError::Symlink(dir.to_owned()));
    }
    if !meta.is_dir() {
        return Err(TrustError::NotADirectory(dir.to_owned()));
    }
    ours(dir, meta)
}

/// The directory, created 0700 if missing, else checked: a real directory,
/// ours, writable by us alone. Group and other read bits are taken away.
pub(crate) fn private_dir(dir: &Path) -> Result<(), TrustError> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        // Absent (or a path through a file): create it, or say why not.
        Err(_) => {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| TrustError::Create {
                    path: dir.to_owned(),
                    source,
                })?;
            fs::symlink_metadata(dir).map_err(io_err(dir))?
        }
    };
    ours_dir(dir, &meta)?;
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
    }
    Ok(())
}

/// A file of ours, opened without following a link; `None` if it is absent.
pub(crate) fn open_private(path: &Path) -> Result<Option<File>, TrustError> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // ELOOP: the last component is a symbolic link.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(TrustError::Symlink(path.to_owned()))
        }
        Err(e) => return Err(io_err(path)(e)),
    };
    let meta = file.metadata().map_err(io_err(path))?;
    if !meta.is_file() {
        return Err(TrustError::NotAFile(path.to_owned()));
    }
    ours(path, &meta)?;
    Ok(Some(file))
}

/// A file of ours, read whole (bounded); `None` if it is absent.
pub(crate) fn read_private(path: &Path, max: u64) -> Result<Option<Vec<u8>>, TrustError> {
    let Some(file) = open_private(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.take(max)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    Ok(Some(bytes))
}

/// Most bytes a PEM file the config names (CA bundle, certificate chain,
/// private key) may hold.
pub(crate) const MAX_PEM_BYTES: u64 = 1 << 20;

/// A file the config names, read whole: opened `O_NONBLOCK` (a FIFO does
/// not hang the open), used only if it is a regular file (not a FIFO, a
/// device such as /dev/zero, a directory), of at most `max` bytes. Links
/// are followed: the operator named the file.
pub(crate) fn read_named(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(
            "not a regular file (a FIFO, device or directory is never read)",
        ));
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::other(format!("over {max} bytes")));
    }
    Ok(bytes)
}

/// The certificates of a PEM file the config names (see [`read_named`]).
pub(crate) fn pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_named(path, MAX_PEM_BYTES).map_err(|e| e.to_string())?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

/// The private key of a PEM file the config names (see [`read_named`]).
pub(crate) fn pem_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read_named(path, MAX_PEM_BYTES).map_err(|e| e.to_string())?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| e.to_string())
}

/// Replace `path` (in `dir`) with `bytes`, whole or not at all: a fresh
/// temporary file (`O_EXCL | O_NOFOLLOW`, 0600, random name), synced,
/// renamed over the old one, the directory synced.
pub(crate) fn write_private(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), TrustError> {
    private_dir(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::rng().random::<u64>()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(OFlags::NOFOLLOW.bits() as i32)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err(path))
}

/// A state directory as it stands, changing nothing (for `check` and the
/// start): its owner and mode when it is trusted, the reason when not.
pub(crate) fn inspect_dir(dir: &Path) -> Result<String, TrustError> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok("absent: created 0700 at first use".into())
        }
        // Unusable is not untrusted: the store answers 503 until it is usable.
        Err(e) => {
            return Ok(format!(
                "not usable now ({e}): its routes answer 503 until it is"
            ))
        }
    };
    ours_dir(dir, &meta)?;
    Ok(format!(
        "owner uid {} (callgate's), mode {:04o}",
        meta.uid(),
        meta.mode() & 0o7777
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_others_may_write_or_a_link_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        private_dir(&dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            private_dir(&dir),
            Err(TrustError::Writable { .. })
        ));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().mode() & 0o777,
            0o700,
            "read bits taken away"
        );
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(matches!(private_dir(&link), Err(TrustError::Symlink(_))));
    }

    #[test]
    fn files_are_written_through_a_fresh_temporary_and_read_without_following_links() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        let path = dir.join("cert.pem");
        write_private(&dir, &path, b"one").unwrap();
        assert_eq!(read_private(&path, 100).unwrap().unwrap(), b"one");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        // A link planted where the file is read is refused, its target untouched.
        let victim = root.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let planted = dir.join("planted.pem");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        assert!(matches!(
            read_private(&planted, 100),
            Err(TrustError::Symlink(_))
        ));
        // Writing over a planted link replaces the link, never its target.
        write_private(&dir, &planted, b"new").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert!(!fs::symlink_metadata(&planted)
            .unwrap()
            .file_type()
            .is_symlink());
        // A file others may write is not trusted.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            read_private(&path, 100),
            Err(TrustError::Writable { .. })
        ));
        assert_eq!(read_private(&dir.join("absent"), 100).unwrap(), None);
    }
}
