//! `[tls.acme]` → [`Acme`]: names checked, the challenge matched to a
//! listener, the extra roots read, defaults filled in.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use toml::Spanned;

use super::load::Loader;
use super::raw::Dur;
use super::{secret, ConfigError, Listen, QueueBackend};
use super::{DEFAULT_ACME_DIRECTORY, DEFAULT_ACME_RENEW_BEFORE, DEFAULT_ACME_STATE};

/// `[tls.acme]`: certificates obtained and renewed by callgate itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAcme {
    pub(crate) domains: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) contact: Vec<Spanned<String>>,
    pub(crate) directory: Option<Spanned<String>>,
    pub(crate) challenge: Option<Spanned<String>>,
    pub(crate) ca_roots: Option<Spanned<String>>,
    pub(crate) state: Option<String>,
    pub(crate) renew_before: Option<Dur>,
    pub(crate) store: Option<Spanned<String>>,
    pub(crate) store_key: Option<Spanned<String>>,
}

/// `[tls.acme]`, resolved: one certificate for all `domains`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Acme {
    /// Lower case, no wildcards (those need dns-01).
    pub(crate) domains: Vec<String>,
    /// `mailto:` URLs.
    pub(crate) contact: Vec<String>,
    pub(crate) directory: String,
    pub(crate) challenge: AcmeChallenge,
    /// Roots trusted, besides the system's, for reaching the directory.
    pub(crate) ca_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    pub(crate) state: PathBuf,
    pub(crate) renew_before: Duration,
    /// Where the account, the certificate and the challenge answers live.
    pub(crate) store: AcmeStore,
}

/// `[tls.acme] store`: this instance's state directory, or the queue's
/// PostgreSQL database shared by every instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AcmeStore {
    Files,
    /// Keys sealed with `store_key` (`acme/seal.rs`); the state directory
    /// keeps a copy of the certificate for starts without the database.
    Postgres {
        key: secret::Secret,
    },
}

/// How the ACME server is shown that callgate serves the domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcmeChallenge {
    /// RFC 8737: a special certificate on the https listener, ALPN `acme-tls/1`.
    TlsAlpn01,
    /// A token under `/.well-known/acme-challenge/` on the http listener.
    Http01,
}

impl Loader<'_> {
    pub(super) fn acme(
        &self,
        raw: Spanned<RawAcme>,
        listen: &Listen,
        queue: &QueueBackend,
    ) -> Result<Acme, ConfigError> {
        let span = raw.span();
        let raw = raw.into_inner();
        let domains = self.hosts("tls.acme.domains", raw.domains)?;
        if domains.iter().any(|d| d.starts_with("*.")) {
            return Err(self.error(Some(span), "tls.acme.domains: a wildcard name needs the dns-01 challenge, which callgate does not do; list each name, or give a wildcard certificate in [[tls.certificate]]"));
        }
        let challenge = match raw.challenge.as_ref().map(|c| c.get_ref().as_str()) {
            None | Some("tls-alpn-01") => AcmeChallenge::TlsAlpn01,
            Some("http-01") => AcmeChallenge::Http01,
            Some(other) => {
                let at = raw.challenge.as_ref().expect("matched Some");
                return Err(self.at(at, format!("tls.acme.challenge = {other:?}: write \"tls-alpn-01\" (on the https listener) or \"http-01\" (on the http listener)")));
            }
        };
        match challenge {
            AcmeChallenge::TlsAlpn01 if listen.https.is_none() => {
                return Err(self.error(Some(span), "tls.acme: the tls-alpn-01 challenge is answered on the https listener: set [listen] https, or challenge = \"http-01\" with [listen] http"));
            }
            AcmeChallenge::Http01 if listen.http.is_none() => {
                return Err(self.error(Some(span), "tls.acme: the http-01 challenge is answered on the http listener (port 80 for public ACME servers): set [listen] http"));
            }
            _ => {}
        }
        let mut contact = Vec::new();
        for c in raw.contact {
            if !c.get_ref().starts_with("mailto:") {
                return Err(self.at(&c, format!("tls.acme.contact: {:?} is not a mailto: URL (write \"mailto:ops@example.com\")", c.get_ref())));
            }
            contact.push(c.into_inner());
        }
        let directory = match raw.directory {
            Some(d) if !d.get_ref().starts_with("https://") => {
                return Err(self.at(
                    &d,
                    "tls.acme.directory must be an https:// URL (RFC 8555 §6.1)",
                ));
            }
            Some(d) => d.into_inner(),
            None => DEFAULT_ACME_DIRECTORY.to_owned(),
        };
        let ca_roots = match raw.ca_roots {
            Some(_) if self.offline => Vec::new(),
            Some(path) => self.or_defer(self.roots(&path), Vec::new),
            None => Vec::new(),
        };
        Ok(Acme {
            domains,
            contact,
            directory,
            challenge,
            ca_roots,
            state: raw
                .state
                .map_or_else(|| PathBuf::from(DEFAULT_ACME_STATE), PathBuf::from),
            renew_before: raw.renew_before.map_or(DEFAULT_ACME_RENEW_BEFORE, |d| d.0),
            store: self.acme_store(span, raw.store, raw.store_key, queue)?,
        })
    }

    /// `store` and `store_key`: the shared database when the queue is on
    /// PostgreSQL (instances behind one balancer must answer each other's
    /// challenges and serve one certificate), else the state directory.
    fn acme_store(
        &self,
        span: std::ops::Range<usize>,
        store: Option<Spanned<String>>,
        key: Option<Spanned<String>>,
        queue: &QueueBackend,
    ) -> Result<AcmeStore, ConfigError> {
        let shared_queue = matches!(queue, QueueBackend::Postgres { .. });
        let postgres = match store.as_ref().map(|s| s.get_ref().as_str()) {
            None => shared_queue,
            Some("files") => false,
            Some("postgres") if shared_queue => true,
            Some("postgres") => {
                let at = store.as_ref().expect("matched Some");
                return Err(self.at(at, "tls.acme.store = \"postgres\" keeps the ACME state in the queue's database: set [queue] backend = \"postgres\" with its url"));
            }
            Some(other) => {
                let at = store.as_ref().expect("matched Some");
                return Err(self.at(at, format!("tls.acme.store = {other:?}: write \"files\" (this instance's state directory) or \"postgres\" (the queue's database, shared by every instance)")));
            }
        };
        match (postgres, key) {
            (false, Some(k)) => Err(self.at(&k, "tls.acme.store_key seals keys in the shared database; with the files store it is unused: remove it")),
            (false, None) => Ok(AcmeStore::Files),
            (true, None) => Err(self.error(Some(span), "tls.acme: with [queue] on PostgreSQL the ACME account and certificate are shared through it, their private keys sealed: add store_key = \"cred:callgate-acme-key\" (the same secret on every instance, 16 bytes or more), or store = \"files\" to keep per-instance state")),
            (true, Some(spec)) => Ok(AcmeStore::Postgres {
                key: self.secret(&spec, "tls.acme.store_key"),
            }),
        }
    }

    fn roots(&self, path: &Spanned<String>) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
        let roots = crate::trusted::pem_certs(Path::new(path.get_ref())).map_err(|e| {
            self.at(
                path,
                format!(
                    "tls.acme.ca_roots: cannot read {}: {e} (give a PEM file of CA certificates)",
                    path.get_ref()
                ),
            )
        })?;
        if roots.is_empty() {
            return Err(self.at(
                path,
                format!(
                    "tls.acme.ca_roots: {} holds no PEM certificate",
                    path.get_ref()
                ),
            ));
        }
        Ok(roots)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::path::Path;

    fn load(listen: &str, acme: &str) -> Result<Config, String> {
        let text = format!(
            "[listen]\n{listen}\n[tls]\n[tls.acme]\n{acme}\n[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:9/\"\ntoken = {{ secrets = [\"t-0123456789abcdef\"] }}\n"
        );
        Config::from_str(&text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn acme_alone_is_a_tls_table_and_fills_in_defaults() {
        let c = load(
            "https = \"127.0.0.1:0\"",
            "domains = [\"Hooks.Example.com.\"]",
        )
        .unwrap();
        let acme = c.tls.unwrap().acme.unwrap();
        assert_eq!(acme.domains, ["hooks.example.com"]);
        assert_eq!(acme.challenge, super::AcmeChallenge::TlsAlpn01);
        assert_eq!(acme.directory, super::DEFAULT_ACME_DIRECTORY);
        assert_eq!(acme.state, Path::new(super::DEFAULT_ACME_STATE));
        assert_eq!(acme.renew_before, super::DEFAULT_ACME_RENEW_BEFORE);
    }

    #[test]
    fn the_store_follows_the_queue_and_a_shared_one_needs_its_key() {
        let https = "https = \"127.0.0.1:0\"";
        let pg = "[queue]\nbackend = \"postgres\"\nurl = \"postgres://cg@127.0.0.1/cg?sslmode=disable\"\n";
        let load_with = |acme: &str, queue: &str| {
            let text = format!(
                "[listen]\n{https}\n{queue}[tls]\n[tls.acme]\ndomains = [\"a.example\"]\n{acme}\n[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:9/\"\ntoken = {{ secrets = [\"t-0123456789abcdef\"] }}\n"
            );
            Config::from_str(&text, Path::new("t.toml")).map_err(|e| e.to_string())
        };
        let store = |c: Config| c.tls.unwrap().acme.unwrap().store;
        assert_eq!(store(load_with("", "").unwrap()), super::AcmeStore::Files);
        let key = "store_key = \"acme-store-key-0123456789\"";
        assert!(matches!(
            store(load_with(key, pg).unwrap()),
            super::AcmeStore::Postgres { .. }
        ));
        assert_eq!(
            store(load_with("store = \"files\"", pg).unwrap()),
            super::AcmeStore::Files
        );
        for (acme, queue, says) in [
            ("", pg, "add store_key = "),
            (
                "store = \"postgres\"",
                "",
                "set [queue] backend = \"postgres\"",
            ),
            (key, "", "with the files store it is unused"),
            ("store = \"redis\"", pg, "write \"files\""),
            ("store_key = \"short\"", pg, "tls.acme.store_key"),
        ] {
            let err = load_with(acme, queue).err().unwrap();
            assert!(err.contains(says), "{acme}: {err}");
        }
    }

    #[test]
    fn acme_mistakes_are_named_with_the_fix() {
        let https = "https = \"127.0.0.1:0\"";
        for (listen, acme, says) in [
            (
                https,
                "domains = [\"*.example.com\"]",
                "needs the dns-01 challenge",
            ),
            (
                https,
                "domains = [\"a.example\"]\nchallenge = \"dns-01\"",
                "write \"tls-alpn-01\"",
            ),
            (
                https,
                "domains = [\"a.example\"]\nchallenge = \"http-01\"",
                "set [listen] http",
            ),
            (
                "http = \"127.0.0.1:0\"",
                "domains = [\"a.example\"]",
                "set [listen] https",
            ),
            (
                https,
                "domains = [\"a.example\"]\ncontact = [\"ops@example.com\"]",
                "not a mailto: URL",
            ),
            (
                https,
                "domains = [\"a.example\"]\ndirectory = \"http://x/dir\"",
                "must be an https:// URL",
            ),
            (
                https,
                "domains = [\"a.example\"]\nca_roots = \"/nonexistent.pem\"",
                "tls.acme.ca_roots: cannot read",
            ),
            (https, "domains = []", "empty host list"),
        ] {
            let err = load(listen, acme).err().unwrap();
            assert!(err.contains(says), "{acme}: {err}");
        }
    }
}
