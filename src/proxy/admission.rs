//! Admission: what is decided from the request line and headers alone,
//! before any route's check runs: framing (absolute form, transfer codings,
//! two Hosts, CONNECT, Host syntax), the ACME http-01 answer, damping, the
//! route by path and host and its methods; with no route, the redirect to
//! https or the site behind callgate.

use std::borrow::Cow;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Version};

use crate::config::{hosts_match, Config, Passthrough, Route};

use super::conn::ConnInfo;
use super::received::RequestBody;
use super::rejection::Rejection;
use super::Call;

/// What a request is for, once admitted.
pub(super) enum Target<'c> {
    /// A callback route: verified, then delivered.
    Route(&'c Arc<Route>),
    /// The site behind callgate.
    Site(&'c Arc<Passthrough>),
    /// Plain HTTP with http_redirect: 308 here.
    Redirect(HeaderValue),
    /// An ACME server validating http-01: the key authorization.
    AcmeChallenge(String),
}

/// Why admission ended a request: the route it was for, if any, and the refusal.
pub(super) type Admitted<'c> = (Option<&'c Arc<Route>>, Rejection);

/// Admission: what is decided from the request line and headers alone,
/// in order: framing, damping, route (path and host), method; else the
/// redirect to https, else the pass-through for the host. The routes it
/// returns borrow from the config snapshot (`'c`), not from the call.
pub(super) fn admit<'c>(
    call: &Call<'c>,
    req: &Request<RequestBody>,
) -> Result<Target<'c>, Admitted<'c>> {
    let (shared, config, conn, client) = (call.shared, call.config, call.conn, call.client);
    // An origin server may accept absolute-form (RFC 9112 §3.2.2), but no
    // provider sends it and it is a classic lever for request smuggling and
    // Host confusion: refuse it, and CONNECT, before any routing.
    if req.version() <= Version::HTTP_11 && req.uri().scheme().is_some() {
        return Err((None, Rejection::AbsoluteForm));
    }
    if unsupported_transfer_coding(req.headers()) {
        return Err((None, Rejection::TransferCoding));
    }
    // Which one would the receiver take? PHP joins them.
    if req.headers().get_all(header::HOST).iter().nth(1).is_some() {
        return Err((None, Rejection::TwoHosts));
    }
    // The same over h2, where a Host beside :authority names the host a
    // second time: differing ones are malformed (RFC 9113 §8.3.1).
    if host_differs_from_authority(req) {
        return Err((None, Rejection::HostAuthority));
    }
    if req.method() == Method::CONNECT {
        return Err((None, Rejection::Connect));
    }
    // `www.example.com@evil.example` must never become a Location or a
    // Host the site trusts.
    if !valid_host(req) {
        return Err((None, Rejection::BadHost));
    }
    // Before routing and damping: the ACME server validates from anywhere,
    // and the answer is only there while an order is being validated.
    if let Some(answer) = acme_answer(call, req) {
        return Ok(Target::AcmeChallenge(answer));
    }
    let host = request_host(req);
    let route = config.routes.get(req.uri().path(), host.as_deref());
    // A client in a cool-down waits it out, except on a route whose
    // allow_ips it passes: a provider is never cut off from its own route.
    // (Asked only when damping is on.)
    let exempt = || {
        route
            .and_then(|r| r.allow_ips.as_ref())
            .is_some_and(|a| a.admits(client, &*shared.ip_lists).is_ok())
    };
    if let Some(left) = shared
        .damper
        .load()
        .as_ref()
        .filter(|_| !exempt())
        .and_then(|d| d.blocked_for(client))
    {
        return Err((None, Rejection::Damped { retry_after: left }));
    }
    let Some(route) = route else {
        return elsewhere(config, conn, host.as_deref(), req);
    };
    if !route.methods.contains(req.method()) {
        let allow: Vec<&str> = route.methods.iter().map(Method::as_str).collect();
        let allow = HeaderValue::from_str(&allow.join(", "))
            .unwrap_or_else(|_| HeaderValue::from_static("POST"));
        return Err((Some(route), Rejection::Method { allow }));
    }
    Ok(Target::Route(route))
}

/// The http-01 key authorization, when this plain-HTTP GET asks for one
/// being published.
fn acme_answer(call: &Call<'_>, req: &Request<RequestBody>) -> Option<String> {
    if call.conn.proto != "http" || req.method() != Method::GET {
        return None;
    }
    call.shared.acme.http_answer(req.uri().path())
}

/// No route: the redirect to https (plain HTTP with http_redirect), else
/// the first pass-through for the host, else 404.
fn elsewhere<'c>(
    config: &'c Config,
    conn: &ConnInfo,
    host: Option<&str>,
    req: &Request<RequestBody>,
) -> Result<Target<'c>, Admitted<'c>> {
    if conn.proto == "http" && config.listen.http_redirect {
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let port = match conn.https_port {
            0 | 443 => String::new(),
            p => format!(":{p}"),
        };
        let location =
            host.and_then(|h| HeaderValue::from_str(&format!("https://{h}{port}{target}")).ok());
        return match location {
            Some(l) => Ok(Target::Redirect(l)),
            None => Err((None, Rejection::NoRoute)),
        };
    }
    config
        .passthroughs
        .iter()
        .find(|p| hosts_match(p.hosts.as_deref(), host))
        .map(Target::Site)
        .ok_or((None, Rejection::NoRoute))
}

/// Whether the Host (or h2's :authority) is a name or an address with an
/// optional port, as RFC 9110 allows; a request may also carry none (HTTP/1.0).
fn valid_host(req: &Request<RequestBody>) -> bool {
    let raw = match req.headers().get(header::HOST) {
        Some(h) => match h.to_str() {
            Ok(h) => h,
            Err(_) => return false,
        },
        None => match req.uri().authority() {
            Some(a) => a.as_str(),
            None => return true,
        },
    };
    host_syntax_ok(raw)
}

/// Whether the request names its host twice, differently: a Host header
/// and an authority in the target (h2's :authority; HTTP/1.1's absolute
/// form is refused before this), other than in ASCII case.
fn host_differs_from_authority(req: &Request<RequestBody>) -> bool {
    match (req.headers().get(header::HOST), req.uri().authority()) {
        (Some(host), Some(authority)) => !host
            .as_bytes()
            .eq_ignore_ascii_case(authority.as_str().as_bytes()),
        _ => false,
    }
}

/// `name[:port]`, `a.b.c.d[:port]` or `[v6][:port]`.
fn host_syntax_ok(raw: &str) -> bool {
    let (host, port) = match raw.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) if v6.parse::<std::net::Ipv6Addr>().is_ok() => ("v6", port),
            _ => return false,
        },
        None => raw.split_at(raw.find(':').unwrap_or(raw.len())),
    };
    let port = match port.strip_prefix(':') {
        Some(p) => p,
        None if port.is_empty() => "0",
        None => return false,
    };
    let port_ok = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    let name = host.strip_suffix('.').unwrap_or(host);
    let labels_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    port_ok && labels_ok
}

/// The host a request names (Host, or h2's :authority): lower case,
/// without port or trailing dot.
fn request_host(req: &Request<RequestBody>) -> Option<Cow<'_, str>> {
    let raw = match req.headers().get(header::HOST) {
        Some(h) => h.to_str().ok()?,
        None => req.uri().authority()?.as_str(),
    };
    let name = match raw.strip_prefix('[') {
        Some(v6) => &raw[..v6.find(']')? + 2],
        None => raw
            .rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
            .map_or(raw, |(h, _)| h),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(name.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(name))
    }
}

/// hyper already refuses differing Content-Lengths, and reads a message that
/// has both Content-Length and Transfer-Encoding by the latter, then closes
/// the connection (RFC 9112 §6.1). What it lets through is a coding chain
/// such as `gzip, chunked`: callgate cannot decode it, and must not pass the
/// coded bytes on as if they were the body the signature covers.
fn unsupported_transfer_coding(headers: &HeaderMap) -> bool {
    let mut codings = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty());
    match (codings.next(), codings.next()) {
        (None, _) => false,
        (Some(only), None) => !only.eq_ignore_ascii_case("chunked"),
        (Some(_), Some(_)) => true,
    }
}

#[cfg(test)]
#[test]
fn host_syntax() {
    for ok in [
        "www.example.com",
        "www.example.com.",
        "localhost:8443",
        "127.0.0.1",
        "[::1]:443",
        "a_b.c",
    ] {
        assert!(host_syntax_ok(ok), "{ok}");
    }
    for bad in [
        "www.example.com@evil.example",
        "a b",
        "",
        ":443",
        "x:",
        "x:99999999",
        "[::1",
        "a..b",
        "a/b",
        "x:1:2",
        "[zz]:1",
        "evil.example\\@x",
    ] {
        assert!(!host_syntax_ok(bad), "{bad}");
    }
}
