//! Secret specs (`env:NAME`, `file:PATH`, `cred:NAME`, `literal:…` or a bare
//! literal), resolved once when the config is loaded.
//!
//! A [`Secret`] never prints its bytes: `Debug` shows `Secret(REDACTED)`, so a
//! stray `{:?}` in a log line cannot leak a key or token.

use std::fmt;
use std::path::{Path, PathBuf};

/// Resolved secret bytes. Deliberately not `Display`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(Vec<u8>);

impl Secret {
    /// The secret's bytes, for keying an HMAC or hashing a token.
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Secret {
    /// A value derived from a resolved secret (the queue URL without its TLS
    /// parameters) stays a secret.
    fn from(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(REDACTED)")
    }
}

/// Why a secret spec could not be resolved; the text tells the operator what to fix.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretError {
    #[error("environment variable {0} is not set (export it, or use file:/cred: instead)")]
    EnvMissing(String),
    #[error("environment variable {0} is not valid UTF-8")]
    EnvNotUnicode(String),
    #[error("cannot read secret file {path}: {source} (check the path, and that callgate's user may read it; under systemd prefer LoadCredential=NAME:{path} and cred:NAME)")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cred:{0} needs a systemd credential, but CREDENTIALS_DIRECTORY is not set \
         (under systemd: add LoadCredential={0}:/path/to/secret to the unit; from a shell: \
         --credentials DIR reads DIR/{0}, e.g. `sudo callgate check --credentials /etc/callgate/secrets`; \
         or use file:)"
    )]
    NoCredentialsDirectory(String),
    #[error("cred:{0}: the credential name must be a plain file name")]
    BadCredentialName(String),
    #[error("the secret is empty (an empty key or token would protect nothing)")]
    Empty,
    #[error("secret file {0} is not a regular file")]
    NotAFile(PathBuf),
    #[error("secret file {0} is over 64 KiB: a key or token is a line, not a file's worth")]
    TooLarge(PathBuf),
}

/// Largest secret file read.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// `--credentials DIR` (an admin's shell): where `cred:NAME` is read from
/// when CREDENTIALS_DIRECTORY is not set. Set once, before the config loads.
static SHELL_CREDENTIALS: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Read `cred:NAME` from `dir/NAME` when systemd passed no credentials
/// directory (`callgate check|explain --credentials DIR`).
pub(crate) fn credentials_from(dir: PathBuf) {
    let _ = SHELL_CREDENTIALS.set(dir);
}

/// Resolve one spec, reading the environment or a file once.
pub(crate) fn resolve(spec: &str) -> Result<Secret, SecretError> {
    let bytes = if let Some(name) = spec.strip_prefix("env:") {
        match std::env::var(name) {
            Ok(v) => v.into_bytes(),
            Err(std::env::VarError::NotPresent) => {
                return Err(SecretError::EnvMissing(name.to_owned()))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(SecretError::EnvNotUnicode(name.to_owned()))
            }
        }
    } else if let Some(path) = spec.strip_prefix("file:") {
        read_trimmed(Path::new(path))?
    } else if let Some(name) = spec.strip_prefix("cred:") {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(SecretError::BadCredentialName(name.to_owned()));
        }
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
            .map(PathBuf::from)
            .or_else(|| SHELL_CREDENTIALS.get().cloned())
            .ok_or_else(|| SecretError::NoCredentialsDirectory(name.to_owned()))?;
        read_trimmed(&Path::new(&dir).join(name))?
    } else if let Some(literal) = spec.strip_prefix("literal:") {
        literal.as_bytes().to_vec()
    } else {
        spec.as_bytes().to_vec()
    };
    if bytes.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(Secret(bytes))
}

/// File contents with one trailing newline removed: `echo key > file` must
/// give the same key as the provider's dashboard shows.
fn read_trimmed(path: &Path) -> Result<Vec<u8>, SecretError> {
    use std::io::Read;
    let err = |source| SecretError::File {
        path: path.to_owned(),
        source,
    };
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: a FIFO does not hang the open.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(err)?;
    // Not a device or a pipe (`file:/dev/zero` would be read until memory
    // runs out), and bounded.
    if !file.metadata().map_err(err)?.is_file() {
        return Err(SecretError::NotAFile(path.to_owned()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(SecretError::TooLarge(path.to_owned()));
    }
    if bytes.ends_with(b"\r\n") {
        bytes.truncate(bytes.len() - 2);
    } else if bytes.ends_with(b"\n") {
        bytes.truncate(bytes.len() - 1);
    }
    Ok(bytes)
}

/// A short description of where a secret comes from, safe to print.
pub(crate) fn describe(spec: &str) -> String {
    for prefix in ["env:", "file:", "cred:"] {
        if spec.starts_with(prefix) {
            return spec.to_owned();
        }
    }
    "literal".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_is_taken_as_is() {
        assert_eq!(resolve("s3cret").unwrap().expose(), b"s3cret");
        assert_eq!(resolve("literal:env:X").unwrap().expose(), b"env:X");
    }

    #[test]
    fn file_loses_exactly_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, "key\n\n").unwrap();
        let spec = format!("file:{}", p.display());
        assert_eq!(resolve(&spec).unwrap().expose(), b"key\n");
        std::fs::write(&p, "key\r\n").unwrap();
        assert_eq!(resolve(&spec).unwrap().expose(), b"key");
    }

    #[test]
    fn devices_and_huge_files_are_refused_before_reading_them_whole() {
        let err = resolve("file:/dev/zero").unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        std::fs::write(&p, vec![b'a'; 70 * 1024]).unwrap();
        let err = resolve(&format!("file:{}", p.display())).unwrap_err();
        assert!(err.to_string().contains("over 64 KiB"), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = resolve("file:/nonexistent/callgate-key").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/callgate-key"));
    }

    #[test]
    fn empty_secret_is_refused() {
        assert!(matches!(resolve("literal:"), Err(SecretError::Empty)));
        assert!(matches!(resolve(""), Err(SecretError::Empty)));
    }

    #[test]
    fn credential_names_cannot_escape_the_directory() {
        assert!(matches!(
            resolve("cred:../etc/shadow"),
            Err(SecretError::BadCredentialName(_))
        ));
    }

    #[test]
    fn debug_never_shows_the_bytes() {
        let s = resolve("hunter2").unwrap();
        assert_eq!(format!("{s:?}"), "Secret(REDACTED)");
    }

    #[test]
    fn describe_hides_literals() {
        assert_eq!(describe("env:TOKEN"), "env:TOKEN");
        assert_eq!(describe("hunter2"), "literal");
    }
}
