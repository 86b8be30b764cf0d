//! The admin listener (meant for 127.0.0.1): `GET /healthz`, `GET
//! /metrics`, and the console when `[admin] console` is set. It answers
//! only its own names (localhost, IP literals, `[admin] hosts`): any other
//! Host is 421, so a page that rebinds a name of its own to this address
//! reads nothing.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use crate::proxy::RequestBody;
use crate::state::Shared;

/// `ok` (200), or `unavailable` (503) when a route needs the store and it
/// cannot be reached or written; nothing more (the details are at the
/// console's `GET /api/health`).
async fn health(shared: &Shared) -> (StatusCode, &'static str) {
    if !shared.config.load().needs_store() {
        return (StatusCode::OK, "ok\n");
    }
    let ok = match shared.store() {
        Ok(store) => store.health().await.is_ok(),
        Err(_) => false,
    };
    match ok {
        true => (StatusCode::OK, "ok\n"),
        false => (StatusCode::SERVICE_UNAVAILABLE, "unavailable\n"),
    }
}

/// Whether the admin listener answers to `host` (a Host header or an h2
/// authority, port included or not): localhost, an IP literal, or one of
/// `hosts`. No Host at all (HTTP/1.0, a probe) is not a browser's.
pub(super) fn answers(host: Option<&str>, hosts: &[String]) -> bool {
    let Some(host) = host else {
        return true;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || is_port(port.strip_prefix(':')) => {
                return v6.parse::<std::net::Ipv6Addr>().is_ok();
            }
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if is_port(Some(port)) => name,
            Some(_) => return false,
            None => host,
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.parse::<IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
}

fn is_port(p: Option<&str>) -> bool {
    p.is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn host_of(req: &Request<RequestBody>) -> Option<&str> {
    match req.headers().get(header::HOST) {
        Some(h) => Some(h.to_str().unwrap_or("\u{0}")),
        None => req.uri().authority().map(|a| a.as_str()),
    }
}

/// Answer one admin request from `peer`.
pub(super) async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<RequestBody>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let known = answers(host_of(&req), &shared.config.load().admin.hosts);
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        _ if !known => (
            StatusCode::MISDIRECTED_REQUEST,
            "text/plain; charset=utf-8",
            "misdirected request: this listener does not answer to that Host (see [admin] hosts)\n"
                .to_owned(),
        ),
        (&Method::GET | &Method::HEAD, "/healthz") => {
            let (status, body) = health(&shared).await;
            (status, "text/plain; charset=utf-8", body.to_owned())
        }
        (&Method::GET | &Method::HEAD, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            {
                // Ages grow by the second: set when scraped.
                shared.ip_lists.export(&shared.metrics);
                shared.metrics.render()
            },
        ),
        (_, "/healthz" | "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "method not allowed\n".to_owned(),
        ),
        _ => match crate::console::handle(&shared, peer.ip(), req).await {
            Some(answer) => return Ok(answer),
            None => (
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "not found\n".to_owned(),
            ),
        },
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_answers_localhost_ip_literals_and_its_hosts_only() {
        let hosts = ["admin.example.com".to_owned()];
        for ok in [
            "localhost",
            "LOCALHOST:9090",
            "127.0.0.1",
            "127.0.0.1:9090",
            "[::1]",
            "[::1]:9090",
            "10.1.2.3:80",
            "admin.example.com",
            "Admin.Example.Com.:9090",
        ] {
            assert!(answers(Some(ok), &hosts), "{ok}");
        }
        for bad in [
            "rebind.test",
            "rebind.test:9090",
            "localhost.evil.test",
            "127.0.0.1.evil.test",
            "[::1]x",
            "[::1]:x",
            "localhost:",
            "localhost:99999999",
            "",
            "\u{0}",
        ] {
            assert!(!answers(Some(bad), &hosts), "{bad}");
        }
        assert!(answers(None, &[]));
    }
}
