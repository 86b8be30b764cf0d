//! What the proxy knows of the connection a request came on.

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;

use super::headers::{self, Seen};
use crate::config::Config;
use crate::verify::client_ip;

/// What the handler knows of the connection a request came on.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    pub(super) peer: SocketAddr,
    /// `https` or `http`.
    pub(super) proto: &'static str,
    /// The peer as an X-Forwarded-For value: made once, used by every request.
    pub(super) forwarded_for: HeaderValue,
    /// The https listener's port, for http_redirect's Location (0: none).
    pub(super) https_port: u16,
    /// What holds this connection's place (its max_connections permit): a
    /// WebSocket tunnel keeps it for as long as it lives.
    pub(super) place: Place,
}

/// A connection's place, type-erased: the server's permit and counters.
pub(crate) type Place = Arc<dyn std::any::Any + Send + Sync>;

impl ConnInfo {
    /// A connection from `peer` on the `proto` listener.
    pub(crate) fn new(
        peer: SocketAddr,
        proto: &'static str,
        https_port: u16,
        place: Place,
    ) -> ConnInfo {
        ConnInfo {
            peer,
            proto,
            forwarded_for: headers::forwarded_for(peer.ip()),
            https_port,
            place,
        }
    }

    /// The client as the connection names it (after a PROXY header).
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Rewrite the headers with what callgate saw of the caller (callbacks and
    /// pass-through alike), keeping the Host the caller asked for.
    pub(super) fn rewrite_headers(
        &self,
        config: &Config,
        parts: &mut Parts,
        rewrite: impl FnOnce(&mut HeaderMap, Seen<'_>),
    ) {
        // The Host header, or h2's :authority.
        let host = parts.headers.get(header::HOST).cloned().or_else(|| {
            let authority = parts.uri.authority()?;
            HeaderValue::from_str(authority.as_str()).ok()
        });
        let seen = Seen {
            peer_value: &self.forwarded_for,
            peer_trusted: client_ip::is_in(self.peer.ip(), &config.gateway.trusted_proxies),
            proto: self.proto,
            host: host.as_ref(),
        };
        rewrite(&mut parts.headers, seen);
        if let Some(h) = host.filter(|_| !parts.headers.contains_key(header::HOST)) {
            parts.headers.insert(header::HOST, h);
        }
    }
}
