//! `[listen]`: the listeners, the PROXY protocol, the redirect to https.

use std::net::SocketAddr;
use std::ops::Range;

use ipnet::IpNet;
use serde::Deserialize;

use super::load::Loader;
use super::raw::{Cidr, ListenAddr};
use super::ConfigError;

/// `[listen]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListen {
    pub(crate) https: Option<ListenAddr>,
    pub(crate) http: Option<ListenAddr>,
    pub(crate) admin: Option<ListenAddr>,
    pub(crate) proxy_protocol: Option<bool>,
    pub(crate) proxy_protocol_from: Option<Vec<Cidr>>,
    pub(crate) http_redirect: Option<bool>,
}

/// `[listen]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listen {
    pub(crate) https: Option<SocketAddr>,
    pub(crate) http: Option<SocketAddr>,
    /// `/healthz` and `/metrics`, plain HTTP: meant for 127.0.0.1.
    pub(crate) admin: Option<SocketAddr>,
    /// Every connection on https/http starts with a PROXY v1/v2 header naming the client.
    pub(crate) proxy_protocol: bool,
    /// The peers whose PROXY headers are believed; any other peer is refused.
    pub(crate) proxy_protocol_from: Vec<IpNet>,
    /// Plain-HTTP requests that match no route are answered 308 to https.
    pub(crate) http_redirect: bool,
}

impl Loader<'_> {
    /// `[listen]`: at least one of https and http.
    pub(super) fn listen(
        &self,
        raw: RawListen,
        span: &Range<usize>,
    ) -> Result<Listen, ConfigError> {
        let listen = Listen {
            https: raw.https.map(|a| a.0),
            http: raw.http.map(|a| a.0),
            admin: raw.admin.map(|a| a.0),
            proxy_protocol: raw.proxy_protocol.unwrap_or(false),
            proxy_protocol_from: raw
                .proxy_protocol_from
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.0)
                .collect(),
            http_redirect: raw.http_redirect.unwrap_or(false),
        };
        if listen.proxy_protocol && listen.proxy_protocol_from.is_empty() {
            return Err(self.error(Some(span.clone()), "listen.proxy_protocol = true needs listen.proxy_protocol_from = [\"10.0.0.0/8\"]: the addresses of your balancers, whose PROXY headers are believed (from any other peer, a PROXY header could name any client)"));
        }
        if let Some(all) = listen
            .proxy_protocol_from
            .iter()
            .find(|n| n.prefix_len() == 0)
        {
            return Err(self.error(Some(span.clone()), format!("listen.proxy_protocol_from = [\"{all}\"] believes every peer: list your balancers' addresses only")));
        }
        if listen.https.is_none() && listen.http.is_none() {
            return Err(self.error(Some(span.clone()), "[listen] has no listener: set https = \"0.0.0.0:443\" (with [tls]) or http = \"127.0.0.1:8080\""));
        }
        Ok(listen)
    }
}
