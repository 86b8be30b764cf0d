//! `[tls]`: the default certificate, `[[tls.certificate]]` by SNI, or a
//! self-signed one for trials; ACME beside them.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::acme::{Acme, RawAcme};
use super::load::Loader;
use super::{tls, ConfigError, Listen, QueueBackend};

/// `[tls]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) cert: Option<Spanned<String>>,
    pub(crate) key: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) self_signed: bool,
    #[serde(default, rename = "certificate")]
    pub(crate) certificates: Vec<Spanned<RawCertificate>>,
    pub(crate) acme: Option<Spanned<RawAcme>>,
}

/// `[[tls.certificate]]`: a certificate for some host names, chosen by SNI.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCertificate {
    pub(crate) hosts: Vec<Spanned<String>>,
    pub(crate) cert: Spanned<String>,
    pub(crate) key: Spanned<String>,
}

/// Loaded TLS material.
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) server_config: Arc<rustls::ServerConfig>,
    /// Where the default certificate came from, for `check` and logs.
    pub(crate) description: String,
    /// Every certificate served, for `check`: the hosts it is for
    /// (`default` for the [tls] one), its subject and its expiry.
    pub(crate) certificates: Vec<(Vec<String>, String, i64)>,
    pub(crate) self_signed: bool,
    /// `[tls.acme]`: certificates callgate obtains itself.
    pub(crate) acme: Option<Acme>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl Loader<'_> {
    pub(super) fn tls(
        &self,
        raw: Option<Spanned<RawTls>>,
        listen: &Listen,
        queue: &QueueBackend,
    ) -> Result<Option<Tls>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        let span = raw.span();
        let mut raw = raw.into_inner();
        let acme = raw
            .acme
            .take()
            .map(|a| self.acme(a, listen, queue))
            .transpose()?;
        let mut sni = tls::Sni::default();
        let mut certificates = Vec::new();
        let (description, self_signed) = match (raw.self_signed, raw.cert, raw.key) {
            (true, None, None) => {
                let loaded = tls::self_signed()
                    .map_err(|e| self.error(Some(span.clone()), format!("tls.self_signed: {e}")))?;
                certificates.push((vec!["default".to_owned()], loaded.subject, loaded.not_after));
                sni.set_default(loaded.key);
                ("self-signed certificate for localhost (TRIALS ONLY)".to_owned(), true)
            }
            (true, _, _) => {
                return Err(self.error(Some(span), "[tls]: self_signed = true cannot be combined with cert/key; remove one or the other"))
            }
            (false, Some(cert), Some(key)) => {
                let loaded = self.certificate("tls", &cert, &key)?;
                let description = match self.offline {
                    true => format!("cert {}, key {} (not read: --offline)", cert.get_ref(), key.get_ref()),
                    false => format!("cert {} ({} in chain), key {}", cert.get_ref(), loaded.chain_len, key.get_ref()),
                };
                certificates.push((vec!["default".to_owned()], loaded.subject, loaded.not_after));
                sni.set_default(loaded.key);
                (description, false)
            }
            (false, None, None) if !raw.certificates.is_empty() || acme.is_some() => {
                ("no default certificate: clients naming no listed host fail the handshake".to_owned(), false)
            }
            _ => {
                return Err(self.error(Some(span), "[tls] needs both cert and key (PEM files), [[tls.certificate]] entries, [tls.acme], or self_signed = true for a trial"))
            }
        };
        for (i, c) in raw.certificates.into_iter().enumerate() {
            let label = format!("tls.certificate[{i}]");
            let c = c.into_inner();
            let hosts = self.hosts(&label, c.hosts)?;
            let loaded = self.certificate(&label, &c.cert, &c.key)?;
            for h in &hosts {
                sni.add(h, loaded.key.clone());
            }
            certificates.push((hosts, loaded.subject, loaded.not_after));
        }
        let server_config =
            tls::server_config(sni).map_err(|e| self.error(Some(span), format!("tls: {e}")))?;
        Ok(Some(Tls {
            server_config,
            description,
            certificates,
            self_signed,
            acme,
        }))
    }

    /// One certificate and key from PEM files; errors point at the culprit.
    fn certificate(
        &self,
        label: &str,
        cert: &Spanned<String>,
        key: &Spanned<String>,
    ) -> Result<tls::Loaded, ConfigError> {
        if self.offline {
            // Not read: an in-memory stand-in keeps the rest of the config resolvable.
            return tls::self_signed()
                .map_err(|e| self.error(Some(cert.span()), format!("{label}: {e}")));
        }
        let loaded = tls::load(Path::new(cert.get_ref()), Path::new(key.get_ref())).map_err(|e| {
            let at = if e.is_about_key() {
                key.span()
            } else {
                cert.span()
            };
            self.error(Some(at), format!("{label}: {e}"))
        });
        // Noted; a stand-in lets the rest of the file be checked.
        let stand_in = || {
            tls::self_signed().map_err(|e| self.error(Some(cert.span()), format!("{label}: {e}")))
        };
        self.or_defer(loaded.map(Ok), stand_in)
    }
}
