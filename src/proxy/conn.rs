//! What the proxy knows of the connection a request came on.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderValue;

use super::headers;

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
}
