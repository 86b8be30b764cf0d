//! Signing secrets a provider hands over in its handshake instead of the
//! operator writing them in the config (Asana's `X-Hook-Secret`): kept in a
//! file of callgate's own (0600, in a 0700 directory, written whole through
//! `trusted`), checked when the config loads ([`keys_in`]) and added to
//! while serving.
//!
//! The stores are runtime state, not config: the config names the file
//! (`handshake.secret_file`), the gateway owns one [`Stores`] with one store
//! per file, kept across reloads (a reload re-reads each file), so a
//! handshake answered on the old snapshot while a reload runs is never lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    #[error("{0} is no longer in the config")]
    NotOpen(PathBuf),
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

/// The gateway's stores, one per file the config names; kept across reloads.
#[derive(Debug, Default)]
pub(crate) struct Stores {
    by_file: Mutex<BTreeMap<PathBuf, Arc<Learned>>>,
}

impl Stores {
    /// The stores for these files (path, key algorithm), each re-read from
    /// its file; a store the config no longer names is dropped. A file
    /// that cannot be read now (checked when the config loaded) keeps what
    /// its store held, and the error is returned for the log.
    pub(crate) fn install(
        &self,
        files: impl IntoIterator<Item = (PathBuf, Algorithm)>,
    ) -> Vec<LearnedError> {
        let mut errors = Vec::new();
        let mut by_file = self.by_file.lock().expect("learned stores");
        let mut next = BTreeMap::new();
        for (path, algorithm) in files {
            let store = match by_file.remove(&path) {
                Some(s) if s.algorithm == algorithm => s,
                _ => Arc::new(Learned::empty(&path, algorithm)),
            };
            if let Err(e) = store.reread() {
                errors.push(e);
            }
            next.insert(path, store);
        }
        *by_file = next;
        errors
    }

    /// The store of this file, if the config names it.
    fn get(&self, path: &Path) -> Option<Arc<Learned>> {
        self.by_file
            .lock()
            .expect("learned stores")
            .get(path)
            .cloned()
    }

    /// Keep a secret handed over for this file ([`Learned::learn`]).
    pub(crate) fn learn(&self, path: &Path, secret: &[u8]) -> Result<(), LearnedError> {
        let store = self
            .get(path)
            .ok_or_else(|| LearnedError::NotOpen(path.to_owned()))?;
        store.learn(secret)
    }

    /// The keys handed over so far into this file's store, if the config
    /// names it.
    pub(crate) fn keys(&self, path: &Path) -> Option<Arc<Vec<Key>>> {
        Some(self.get(path)?.keys.load_full())
    }
}

/// The keys in `path` now, read without keeping a store (the config's
/// check of the file, `check`'s count, `explain`'s keys): it must have a
/// directory, and be absent or a file of callgate's own of plausible lines.
pub(crate) fn keys_in(path: &Path, algorithm: Algorithm) -> Result<Vec<Key>, LearnedError> {
    let store = Learned::empty(path, algorithm);
    store.reread()?;
    let keys = store.keys().to_vec();
    Ok(keys)
}

/// Whether these bytes can be a handed-over secret: visible ASCII, bounded.
pub(crate) fn plausible(secret: &[u8]) -> bool {
    SECRET_LEN.contains(&secret.len()) && secret.iter().all(|b| b.is_ascii_graphic())
}

impl Learned {
    /// The store for `path`, read from it now (absent: none yet).
    #[cfg(test)]
    fn open(path: &Path, algorithm: Algorithm) -> Result<Learned, LearnedError> {
        let store = Learned::empty(path, algorithm);
        store.reread()?;
        Ok(store)
    }

    /// A store holding nothing yet.
    fn empty(path: &Path, algorithm: Algorithm) -> Learned {
        Learned {
            path: path.to_owned(),
            algorithm,
            keys: ArcSwap::from_pointee(Vec::new()),
            secrets: Mutex::new(Vec::new()),
        }
    }

    /// Read the file again (an operator may have removed a line).
    fn reread(&self) -> Result<(), LearnedError> {
        if self.path.parent().is_none_or(|p| p.as_os_str().is_empty()) {
            return Err(LearnedError::NoDirectory(self.path.clone()));
        }
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
        let dir =
            (self.path.parent()).ok_or_else(|| LearnedError::NoDirectory(self.path.clone()))?;
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
        // The gateway's stores: the same file keeps its store across
        // installs (reloads), re-read each time.
        let stores = Stores::default();
        assert!(stores
            .install([(path.clone(), Algorithm::Sha256)])
            .is_empty());
        let kept = stores.get(&path).unwrap();
        kept.learn(b"another-secret-0123456789").unwrap();
        assert!(stores
            .install([(path.clone(), Algorithm::Sha256)])
            .is_empty());
        assert!(Arc::ptr_eq(&kept, &stores.get(&path).unwrap()));
        assert_eq!(kept.keys().len(), 2);
        assert_eq!(keys_in(&path, Algorithm::Sha256).unwrap().len(), 2);
        assert!(stores.install([]).is_empty());
        assert!(stores.get(&path).is_none());
        drop((store, kept));
        let fresh = Learned::open(&path, Algorithm::Sha256).unwrap();
        assert_eq!(fresh.keys().len(), 2);
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
