//! Pass-through: a request that matches no route goes to the site behind
//! callgate, streamed both ways (never buffered whole), unless the site
//! would resolve it to a protected path. WebSocket and other HTTP/1.1
//! upgrades are tunnelled once the site answers 101.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::answer::Body;
use super::body::{declared_len, read_body};
use super::conn::{ConnInfo, Place};
use super::handled::Handled;
use super::headers;
use super::rejection::Rejection;
use crate::config::{Config, Passthrough};
use crate::state::Shared;
use crate::upstream::{self, ForwardError, UpBody};
use crate::verify::{form_kind, protect};

/// Serve one pass-through request.
pub(super) async fn serve(
    shared: &Shared,
    config: &Config,
    conn: &ConnInfo,
    site: &Arc<Passthrough>,
    mut req: Request<Incoming>,
) -> Handled {
    let version = req.version();
    let path = req.uri().path().to_owned();
    if let Some(rejection) = protected(site, &path, req.uri().query(), None) {
        return Handled::rejected_site(rejection, version);
    }
    if declared_len(req.headers()).is_some_and(|n| n > site.max_body_bytes) {
        return Handled::rejected_site(Rejection::TooLarge { declared: true }, version);
    }
    let upgrade = wants_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
    let (mut parts, incoming) = req.into_parts();
    prepare(config, conn, &mut parts, upgrade.is_some());
    // A script protected only with its parameters: a form body could carry them.
    let body = if protect::needs_body(&site.protect, &path) && form_kind(&parts.headers).is_some() {
        let mut held = shared.budget.load().hold(conn.peer().ip());
        let body = match read_body(
            config,
            config.gateway.max_body_bytes,
            &mut held,
            &parts.headers,
            incoming,
        )
        .await
        {
            Ok(b) => b,
            Err(rejection) => return Handled::rejected_site(rejection, version),
        };
        let query = parts.uri.query();
        if let Some(rejection) = protected(site, &path, query, Some(&body)) {
            return Handled::rejected_site(rejection, version);
        }
        UpBody::Full(Full::new(body))
    } else {
        let limit = usize::try_from(site.max_body_bytes).unwrap_or(usize::MAX);
        UpBody::Stream(Limited::new(incoming, limit).boxed())
    };
    parts.uri = origin_form(&parts.uri);
    parts.version = Version::HTTP_11;
    let req = Request::from_parts(parts, body);
    let timeout = config.gateway.upstream_timeout;
    match upstream::send(&site.upstream.authority, req, timeout).await {
        Ok(resp) => Handled::site(answer(resp, upgrade, conn.place.clone())),
        Err(e) if over_limit(&e) => {
            Handled::rejected_site(Rejection::TooLarge { declared: false }, version)
        }
        Err(e) => Handled::failed_site(e),
    }
}

/// The protection verdict as a refusal, if the target is not open.
fn protected(
    site: &Passthrough,
    path: &str,
    query: Option<&str>,
    body: Option<&[u8]>,
) -> Option<Rejection> {
    match protect::check(&site.protect, path, query, body) {
        protect::Verdict::Open => None,
        verdict => Some(Rejection::Protected(verdict)),
    }
}

/// The request's headers for the site: hop-by-hop (but an upgrade's own)
/// and reserved headers out, X-Forwarded-* in; never a verified header.
fn prepare(config: &Config, conn: &ConnInfo, parts: &mut Parts, upgrade: bool) {
    let kept_upgrade = upgrade
        .then(|| parts.headers.get(header::UPGRADE).cloned())
        .flatten();
    let reserved = &config.gateway.reserved_headers;
    conn.rewrite_headers(config, parts, |h, seen| {
        headers::for_site(h, seen, reserved)
    });
    if let Some(u) = kept_upgrade {
        parts.headers.insert(header::UPGRADE, u);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// The site's answer for the client; a 101 starts the tunnel.
fn answer(
    resp: Response<upstream::UpstreamBody>,
    client: Option<OnUpgrade>,
    place: Place,
) -> Response<Body> {
    let (mut parts, mut body) = resp.into_parts();
    match (parts.status, client) {
        (StatusCode::SWITCHING_PROTOCOLS, Some(client)) => {
            body.forget_connection();
            let mut resp = Response::from_parts(parts, body);
            let site = hyper::upgrade::on(&mut resp);
            tokio::spawn(tunnel(client, site, place));
            let (parts, body) = resp.into_parts();
            Response::from_parts(parts, body.boxed())
        }
        _ => {
            headers::remove_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed())
        }
    }
}

/// Bytes both ways between the upgraded client and site connections; the
/// connection's place (max_connections) is held until the tunnel closes.
async fn tunnel(client: OnUpgrade, site: OnUpgrade, _place: Place) {
    let (Ok(client), Ok(site)) = (client.await, site.await) else {
        return;
    };
    let (mut client, mut site) = (TokioIo::new(client), TokioIo::new(site));
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut site).await {
        tracing::debug!("upgraded connection ended: {e}");
    }
}

/// An HTTP/1.1 request asking to switch protocols (WebSocket): `Connection`
/// names `upgrade` and `Upgrade` says to what.
fn wants_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// The path and query as received (h2 requests carry their authority apart).
fn origin_form(uri: &Uri) -> Uri {
    let pq = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    Uri::from(pq)
}

/// Whether sending failed because the client's body passed max_body_bytes.
fn over_limit(e: &ForwardError) -> bool {
    matches!(e, ForwardError::BodyTooLarge)
}
