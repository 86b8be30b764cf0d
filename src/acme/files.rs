//! The ACME state directory: the account's credentials and the issued
//! certificate with its key. The directory is 0700, files 0600, each written
//! whole or not at all (write, fsync, rename, fsync the directory), so a
//! crash never leaves half a key; neither is used unless it is ours
//! (`trusted.rs`).

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::order::OrderError;
use crate::config::{self, tls};
use crate::trusted;

/// Where one `[tls.acme]` keeps its files.
pub(super) struct Files {
    dir: PathBuf,
    /// One account per directory URL: a change of ACME server starts afresh.
    account: PathBuf,
    /// Chain then key, PEM, one file: they are replaced together.
    certificate: PathBuf,
}

impl Files {
    pub(super) fn new(settings: &config::Acme) -> Files {
        let dir = settings.state.clone();
        let server = hex::encode(&Sha256::digest(settings.directory.as_bytes())[..6]);
        Files {
            account: dir.join(format!("account-{server}.json")),
            certificate: dir.join(format!("{}.pem", settings.domains[0])),
            dir,
        }
    }

    pub(super) fn account(&self) -> io::Result<Option<Vec<u8>>> {
        read(&self.account)
    }

    pub(super) fn account_path(&self) -> &Path {
        &self.account
    }

    pub(super) fn save_account(&self, json: &[u8]) -> io::Result<()> {
        self.write(&self.account, json)
    }

    /// The stored certificate, when there is one that loads and names every domain.
    pub(super) fn certificate(&self, domains: &[String]) -> Option<tls::Loaded> {
        let pem = match read(&self.certificate) {
            Ok(pem) => pem?,
            Err(e) => {
                tracing::warn!(file = %self.certificate.display(), "acme: cannot read the stored certificate: {e}");
                return None;
            }
        };
        match tls::from_pem(&pem, &pem) {
            Ok(c) if domains.iter().all(|d| c.names.contains(d)) => Some(c),
            Ok(_) => {
                tracing::info!(file = %self.certificate.display(), "acme: the stored certificate does not name every domain; ordering a new one");
                None
            }
            Err(e) => {
                tracing::warn!(file = %self.certificate.display(), "acme: the stored certificate is unusable ({e}); ordering a new one");
                None
            }
        }
    }

    pub(super) fn save_certificate(&self, chain_pem: &str, key_pem: &str) -> io::Result<()> {
        let both = format!("{}\n{}", chain_pem.trim_end(), key_pem);
        self.write(&self.certificate, both.as_bytes())
    }

    pub(super) fn certificate_path(&self) -> &Path {
        &self.certificate
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        trusted::write_private(&self.dir, path, bytes).map_err(io::Error::other)
    }
}

impl super::order::Keep for Files {
    async fn account(&self) -> Result<Option<Vec<u8>>, OrderError> {
        Ok(Files::account(self)?)
    }

    async fn save_account(&self, json: &[u8]) -> Result<(), OrderError> {
        Ok(Files::save_account(self, json)?)
    }

    async fn save_certificate(&self, chain_pem: &str, key_pem: &str) -> Result<(), OrderError> {
        Ok(Files::save_certificate(self, chain_pem, key_pem)?)
    }

    /// One instance: the answer published here is the only one needed.
    async fn publish(&self, _: &super::order::ChallengeProof) -> Result<(), OrderError> {
        Ok(())
    }

    async fn withdraw(&self) {}
}

/// A state file, only when it is ours (`trusted.rs`): a planted account or
/// certificate, or a link to one, is refused.
fn read(path: &Path) -> io::Result<Option<Vec<u8>>> {
    if let Some(dir) = path.parent() {
        trusted::private_dir(dir).map_err(io::Error::other)?;
    }
    trusted::read_private(path, MAX_STATE_FILE_BYTES).map_err(io::Error::other)
}

/// Largest account or certificate file read (a chain and a key are a few KiB).
const MAX_STATE_FILE_BYTES: u64 = 1 << 20;

/// The stored certificate for `settings`, read without contacting anyone:
/// what `callgate check` shows.
pub(crate) fn stored(settings: &config::Acme) -> (PathBuf, Option<tls::Loaded>) {
    let files = Files::new(settings);
    let loaded = files.certificate(&settings.domains);
    (files.certificate, loaded)
}
