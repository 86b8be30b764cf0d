//! What the listeners read and the manager writes: issued certificates by
//! name and the challenge answers being published. A leaf: the serving side
//! and the shared state depend on it, it depends on neither.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::server::ClientHello;
use rustls::ServerConfig;
use tokio_util::sync::CancellationToken;

use crate::config;

/// RFC 8737's ALPN protocol: a handshake that offers it is the ACME
/// server checking a tls-alpn-01 challenge, never a client.
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The HTTP-01 challenge path prefix (RFC 8555 §8.3).
const HTTP_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// What the listeners read; the manager writes.
#[derive(Default)]
pub(crate) struct Acme {
    /// TLS configurations serving an issued certificate, by domain.
    issued: ArcSwap<HashMap<String, Arc<ServerConfig>>>,
    /// tls-alpn-01 answers being published, by domain.
    alpn: Mutex<HashMap<String, Arc<ServerConfig>>>,
    /// http-01 answers being published: token → key authorization.
    http: Mutex<HashMap<String, String>>,
    /// The settings the manager runs with, and its stop signal.
    pub(super) running: Mutex<Option<(config::Acme, CancellationToken)>>,
}

impl Acme {
    /// The TLS configuration for a ClientHello, when ACME has one: the
    /// challenge answer for `acme-tls/1`, else the issued certificate for
    /// the name asked. None: the configured certificates serve.
    pub(crate) fn config_for(&self, hello: &ClientHello<'_>) -> Option<Arc<ServerConfig>> {
        let challenge = hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN));
        let issued = self.issued.load();
        // Every handshake passes here: without ACME certificates or a
        // challenge, no name is lowered and no lock taken.
        if !challenge && issued.is_empty() {
            return None;
        }
        let name = hello
            .server_name()?
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if challenge {
            return lock(&self.alpn).get(&name).cloned();
        }
        issued.get(&name).cloned()
    }

    /// The key authorization for an http-01 request path, while published.
    pub(crate) fn http_answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP_CHALLENGE_PREFIX)?;
        lock(&self.http).get(token).cloned()
    }

    /// Serve `config` for each of `domains` from the next handshake on;
    /// open connections keep the certificate they started with.
    pub(super) fn install(&self, domains: &[String], config: &Arc<ServerConfig>) {
        let mut issued = HashMap::clone(&self.issued.load());
        for d in domains {
            issued.insert(d.clone(), config.clone());
        }
        self.issued.store(Arc::new(issued));
    }

    /// Stop serving ACME certificates for names no longer configured.
    pub(super) fn keep_only(&self, domains: &[String]) {
        let mut issued = HashMap::clone(&self.issued.load());
        issued.retain(|d, _| domains.contains(d));
        self.issued.store(Arc::new(issued));
    }

    pub(super) fn publish_alpn(&self, domain: &str, config: Arc<ServerConfig>) {
        lock(&self.alpn).insert(domain.to_owned(), config);
    }

    pub(super) fn publish_http(&self, token: &str, key_authorization: &str) {
        lock(&self.http).insert(token.to_owned(), key_authorization.to_owned());
    }

    pub(super) fn withdraw_challenges(&self) {
        lock(&self.alpn).clear();
        lock(&self.http).clear();
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
