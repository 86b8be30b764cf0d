//! Signing secrets a provider hands over in its handshake instead of the
//! operator writing them in the config (Asana's `X-Hook-Secret`): kept in a
//! file of callgate's own (0600, in a 0700 directory, written whole through
//! `trusted`), read when the config loads and added to while serving.
//!
//! One store per file for the whole process: a reload that reads the config
//! again gets the same store back (re-read from the file), so a handshake
//! answered on the old snapshot while a reload runs is never lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwap;

use crate::crypto::{Algorithm, Key};
use crate::trusted::{self, TrustError};

/// At most this many secrets are kept per file (one per webhook Asana made
/// for the URL); a new one beyond it replaces the oldest.
pub(crate) const MAX_SECRETS: usize = 16;
/// A secret's length, in bytes (Asana's are 64 hex digits).
const SECRET_LEN: std::ops::RangeInclusive<usize> = 16..=256;

/// Why a secret file or a handed-over secret is not used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LearnedError {
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error("{0} has no parent directory: give a path such as /var/lib/callgate/asana.secrets")]
    NoDirectory(PathBuf),
    #[error("{path}: line {line} is not a secret (16 to 256 visible ASCII characters); remove the line, or the file to start again")]
    Line { path: PathBuf, line: usize },
}

/// The secrets stored in one file, as keys ready to check signatures.
pub(crate) struct Learned {
    path: PathBuf,
    algorithm: Algorithm,
    keys: ArcSwap<Vec<Key>>,
    /// The secrets themselves, in file order: only the writer reads them.
    secrets: Mutex<Vec<Vec<u8>>>,
}

impl std::fmt::Debug for Learned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Learned")
            .field("path", &self.path)
            .field("keys", &self.keys.load().len())
            .finish()
    }
}

/// Every store open in this process, by file.
static OPEN: Mutex<BTreeMap<PathBuf, Weak<Learned>>> = Mutex::new(BTreeMap::new());

/// Whether these bytes can be a handed-over secret: visible ASCII, bounded.
pub(crate) fn plausible(secret: &[u8]) -> bool {
    SECRET_LEN.contains(&secret.len()) && secret.iter().all(|b| b.is_ascii_graphic())
}

impl Learned {
    /// The store for `path` (read from it now; absent: none yet).
    pub(crate) fn open(path: &Path, algorithm: Algorithm) -> Result<Arc<Learned>, LearnedError> {
        if path.parent().is_none_or(|p| p.as_os_str().is_empty()) {
            return Err(LearnedError::NoDirectory(path.to_owned()));
        }
        let mut open = OPEN.lock().expect("learned registry");
        open.retain(|_, weak| weak.strong_count() > 0);
        let store = match open.get(path).and_then(Weak::upgrade) {
            Some(s) if s.algorithm == algorithm => s,
            _ => {
                let s = Arc::new(Learned {
                    path: path.to_owned(),
                    algorithm,
                    keys: ArcSwap::from_pointee(Vec::new()),
                    secrets: Mutex::new(Vec::new()),
                });
                open.insert(path.to_owned(), Arc::downgrade(&s));
                s
            }
        };
        store.reread()?;
        Ok(store)
    }

    /// A store that reads and writes nothing: `check --offline`.
    pub(crate) fn detached(path: &Path, algorithm: Algorithm) -> Arc<Learned> {
        Arc::new(Learned {
            path: path.to_owned(),
            algorithm,
            keys: ArcSwap::from_pointee(Vec::new()),
            secrets: Mutex::new(Vec::new()),
        })
    }

    /// Read the file again (an operator may have removed a line).
    fn reread(&self) -> Result<(), LearnedError> {
        let mut secrets = self.secrets.lock().expect("learned secrets");
        let max = (MAX_SECRETS * (SECRET_LEN.end() + 1)) as u64;
        let text = trusted::read_private(&self.path, max)?.unwrap_or_default();
        let mut read = Vec::new();
        for (i, line) in text.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            if !plausible(line) {
                return Err(LearnedError::Line {
                    path: self.path.clone(),
                    line: i + 1,
                });
            }
            read.push(line.to_vec());
        }
        let skip = read.len().saturating_sub(MAX_SECRETS);
        read.drain(..skip);
        self.publish(&read);
        *secrets = read;
        Ok(())
    }

    fn publish(&self, secrets: &[Vec<u8>]) {
        let keys = secrets
            .iter()
            .map(|s| Key::new(self.algorithm, s))
            .collect();
        self.keys.store(Arc::new(keys));
    }

    /// The keys stored so far (none before the first handshake).
    pub(crate) fn keys(&self) -> arc_swap::Guard<Arc<Vec<Key>>> {
        self.keys.load()
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Keep a secret the provider handed over: written to the file first,
    /// checked with from then on. Known already: nothing changes.
    pub(crate) fn learn(&self, secret: &[u8]) -> Result<(), LearnedError> {
        debug_assert!(plausible(secret));
        let mut secrets = self.secrets.lock().expect("learned secrets");
        if secrets.iter().any(|s| s == secret) {
            return Ok(());
        }
        let mut next = secrets.clone();
        next.push(secret.to_vec());
        let skip = next.len().saturating_sub(MAX_SECRETS);
        next.drain(..skip);
        let mut text = Vec::new();
        for s in &next {
            text.extend_from_slice(s);
            text.push(b'\n');
        }
        let dir = self.path.parent().expect("checked at open");
        trusted::write_private(dir, &self.path, &text)?;
        self.publish(&next);
        *secrets = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const ASANA: &[u8] = b"b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81";

    #[test]
    fn a_secret_is_written_0600_and_read_back_by_a_new_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/asana.secrets");
        let store = Learned::open(&path, Algorithm::Sha256).unwrap();
        assert!(store.keys().is_empty());
        store.learn(ASANA).unwrap();
        store.learn(ASANA).unwrap();
        assert_eq!(store.keys().len(), 1);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(std::fs::read(&path).unwrap(), [ASANA, b"\n"].concat());
        // The same file: the same store, re-read.
        let again = Learned::open(&path, Algorithm::Sha256).unwrap();
        assert!(Arc::ptr_eq(&store, &again));
        drop((store, again));
        let fresh = Learned::open(&path, Algorithm::Sha256).unwrap();
        assert_eq!(fresh.keys().len(), 1);
        let sig = fresh.keys()[0].digest(b"{\"events\":[]}");
        assert_eq!(
            sig,
            Key::new(Algorithm::Sha256, ASANA).digest(b"{\"events\":[]}")
        );
    }

    #[test]
    fn at_most_max_secrets_are_kept_newest_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("many.secrets");
        let store = Learned::open(&path, Algorithm::Sha256).unwrap();
        for i in 0..MAX_SECRETS + 3 {
            store
                .learn(format!("secret-number-{i:04}").as_bytes())
                .unwrap();
        }
        assert_eq!(store.keys().len(), MAX_SECRETS);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("secret-number-0002\n"));
        assert!(text.contains("secret-number-0003\n"));
        assert!(text.ends_with(&format!("secret-number-{:04}\n", MAX_SECRETS + 2)));
    }

    #[test]
    fn planted_links_foreign_modes_and_junk_lines_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, [ASANA, b"\n"].concat()).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link.secrets");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(
            Learned::open(&link, Algorithm::Sha256),
            Err(LearnedError::Trust(TrustError::Symlink(_)))
        ));
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            Learned::open(&real, Algorithm::Sha256),
            Err(LearnedError::Trust(TrustError::Writable { .. }))
        ));
        let junk = dir.path().join("junk.secrets");
        std::fs::write(&junk, b"short\n").unwrap();
        std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = Learned::open(&junk, Algorithm::Sha256).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        assert!(!plausible(b"has a space in it, so no"));
        assert!(plausible(ASANA));
    }
}
