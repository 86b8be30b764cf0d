//! Pass-through: a request that matches no route goes to the site behind
//! callgate, streamed both ways (never buffered whole), unless some reading
//! of it reaches a protected path or parameter. Per client, a bounded number
//! of requests and tunnels at once, and uploads that keep a minimum rate.
//! Upgrades are relayed only for the protocols the pass-through names and
//! under its `websocket_paths` (a script elsewhere that answers 101 proves
//! only that it read the key), and a WebSocket only with the site's valid
//! `Sec-WebSocket-Accept`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::answer::Body;
use super::body::declared_len;
use super::conn::{ConnInfo, Place};
use super::handled::Handled;
use super::headers;
use super::received::RequestBody;
use super::rejection::Rejection;
use super::site_body::{Scans, SiteBody};
use super::Call;
use crate::config::{Config, Passthrough};
use crate::slots::Slot;
use crate::upstream::{self, BodyCut, ForwardError, UpBody};
use crate::values::ValueScan;
use crate::verify::form_scan::FormScan;
use crate::verify::{client_ip, protect, strict};

/// What a WebSocket server appends to the key before hashing (RFC 6455 §4.2.2).
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// An upgrade the client asked for and the pass-through allows.
struct Upgrade {
    client: OnUpgrade,
    /// The protocol, lower case (`websocket`).
    protocol: String,
    /// For a WebSocket: the accept value the site must answer with.
    accept: Option<String>,
}

/// Serve one pass-through request.
pub(super) async fn serve(
    call: &Call<'_>,
    site: &Arc<Passthrough>,
    mut req: Request<RequestBody>,
) -> Handled {
    let (shared, config, conn) = (call.shared, call.config, call.conn);
    let version = req.version();
    let verdict = protect::check(site, req.uri().path(), req.uri().query(), req.headers());
    if verdict != protect::Verdict::Open {
        super::body::drain_h2(req).await;
        return Handled::rejected_site(Rejection::Protected(verdict), version);
    }
    if declared_len(req.headers()).is_some_and(|n| n > site.max_body_bytes) {
        super::body::drain_h2(req).await;
        return Handled::rejected_site(Rejection::TooLarge { declared: true }, version);
    }
    // Behind a trusted proxy, the client it names is counted.
    let client = client_ip::resolve(
        conn.peer().ip(),
        req.headers(),
        &config.gateway.trusted_proxies,
    );
    let Some(slot) = shared.site_slots.take(client, site.max_requests_per_client) else {
        return Handled::rejected_site(Rejection::ClientBusy, version);
    };
    let upgrade = allowed_upgrade(site, &mut req);
    let (mut parts, incoming) = req.into_parts();
    prepare(config, conn, &mut parts, upgrade.as_ref());
    let scan = Scans::new(
        ValueScan::new(site.values.clone()),
        strict::canonical(site, &parts.headers),
        FormScan::new(site.params.clone(), &parts.headers),
    );
    let body = SiteBody::new(incoming, site.max_body_bytes, scan, site.min_body_rate);
    parts.uri = origin_form(&parts.uri);
    parts.version = Version::HTTP_11;
    let req = Request::from_parts(parts, UpBody::Stream(body.boxed()));
    let timeout = config.gateway.upstream_timeout;
    match upstream::send(&site.upstream, req, timeout).await {
        Ok(resp) => {
            let held = Held {
                _place: conn.place.clone(),
                _slot: slot,
                idle: config.gateway.idle_timeout,
                tunnels: shared.tunnels.clone(),
            };
            match answer(resp, upgrade, held) {
                Ok(resp) => Handled::site(resp),
                Err(e) => Handled::failed_site(e),
            }
        }
        Err(e) => match e {
            ForwardError::BodyTooLarge => {
                Handled::rejected_site(Rejection::TooLarge { declared: false }, version)
            }
            ForwardError::Cut(BodyCut::Protected(p)) => Handled::rejected_site(
                Rejection::Protected(protect::Verdict::Protected(p)),
                version,
            ),
            ForwardError::Cut(BodyCut::Unreadable(why)) => Handled::rejected_site(
                Rejection::Protected(protect::Verdict::Doubtful(why)),
                version,
            ),
            ForwardError::Cut(BodyCut::TooSlow) => {
                Handled::rejected_site(Rejection::SlowUpload, version)
            }
            e => Handled::failed_site(e),
        },
    }
}

/// The upgrade asked for, if it is one this pass-through relays: an
/// HTTP/1.1 request whose `Connection` names `upgrade`, for a listed
/// protocol, and for a WebSocket with a well-formed key. Anything else is
/// sent on as an ordinary request (Upgrade is hop-by-hop: it goes no further).
fn allowed_upgrade(site: &Passthrough, req: &mut Request<RequestBody>) -> Option<Upgrade> {
    let h = req.headers();
    let path = req.uri().path();
    let listed = site.websocket_paths.iter().any(|p| under(path, p));
    let asks = listed
        && req.version() == Version::HTTP_11
        && h.get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !asks {
        return None;
    }
    let mut values = h.get_all(header::UPGRADE).iter();
    let (Some(only), None) = (values.next(), values.next()) else {
        return None;
    };
    let protocol = only.to_str().ok()?.trim().to_ascii_lowercase();
    let name = protocol.split('/').next().unwrap_or("");
    if protocol.contains(',') || !site.upgrades.iter().any(|u| u == name) {
        return None;
    }
    let accept = match name {
        "websocket" => Some(websocket_accept(h)?),
        _ => None,
    };
    Some(Upgrade {
        client: hyper::upgrade::on(req),
        protocol: name.to_owned(),
        accept,
    })
}

/// Whether `path` (as sent) lies under the configured `prefix`: `/ws/`
/// takes `/ws/chat`; `/ws` takes `/ws` and `/ws/chat`, not `/wsx`. A path
/// the site could resolve elsewhere (dot segments, escapes, `;`, `\`) is
/// under nothing.
fn under(path: &str, prefix: &str) -> bool {
    let plain = !path.contains(['%', ';', '\\']) && !path.split('/').any(|s| s == "." || s == "..");
    match path.strip_prefix(prefix).filter(|_| plain) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The `Sec-WebSocket-Accept` a real WebSocket server answers this
/// request's key with; None for a missing or malformed key.
fn websocket_accept(h: &HeaderMap) -> Option<String> {
    let mut keys = h.get_all("sec-websocket-key").iter();
    let (Some(key), None) = (keys.next(), keys.next()) else {
        return None;
    };
    let key = key.to_str().ok()?.trim();
    let raw = base64::engine::general_purpose::STANDARD.decode(key).ok()?;
    if raw.len() != 16 {
        return None;
    }
    let digest = Sha1::digest(format!("{key}{WEBSOCKET_GUID}").as_bytes());
    Some(base64::engine::general_purpose::STANDARD.encode(digest))
}

/// The request's headers for the site: hop-by-hop (but an allowed
/// upgrade's own) and reserved headers out, X-Forwarded-* in; never a
/// verified header.
fn prepare(config: &Config, conn: &ConnInfo, parts: &mut Parts, upgrade: Option<&Upgrade>) {
    let kept_upgrade = upgrade.and_then(|_| parts.headers.get(header::UPGRADE).cloned());
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

/// What a request, its streamed answer or its tunnel holds while it lives.
struct Held {
    /// The connection's max_connections place.
    _place: Place,
    /// The client's pass-through slot.
    _slot: Slot,
    /// A tunnel closes after this long without a byte either way.
    idle: Duration,
    /// Where a tunnel runs: stopping waits for it (up to drain_timeout).
    tunnels: tokio_util::task::TaskTracker,
}

/// The site's answer for the client; a valid 101 starts the tunnel, any
/// other 101 is the site's fault (502): a pipe nobody checks is not relayed.
fn answer(
    resp: Response<upstream::UpstreamBody>,
    upgrade: Option<Upgrade>,
    held: Held,
) -> Result<Response<Body>, ForwardError> {
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (mut parts, body) = resp.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        let body = Holding { body, _held: held };
        return Ok(Response::from_parts(parts, body.boxed()));
    }
    let Some(upgrade) = upgrade.filter(|u| switched_to(u, resp.headers())) else {
        return Err(ForwardError::Failed(
            "the site answered 101 without a valid switch to the protocol asked for".into(),
        ));
    };
    let (parts, mut body) = resp.into_parts();
    body.forget_connection();
    let mut resp = Response::from_parts(parts, body);
    let site = hyper::upgrade::on(&mut resp);
    held.tunnels
        .clone()
        .spawn(tunnel(upgrade.client, site, held));
    let (parts, body) = resp.into_parts();
    Ok(Response::from_parts(parts, body.boxed()))
}

/// Whether the site's 101 switches to what was asked: the protocol named
/// in `Upgrade`, and for a WebSocket the exact accept value.
fn switched_to(upgrade: &Upgrade, h: &HeaderMap) -> bool {
    let named = h
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with(&upgrade.protocol));
    let accepted = match &upgrade.accept {
        None => true,
        Some(want) => {
            let mut got = h.get_all("sec-websocket-accept").iter();
            match (got.next(), got.next()) {
                (Some(v), None) => v.as_bytes() == want.as_bytes(),
                _ => false,
            }
        }
    };
    named && accepted
}

/// Bytes both ways between the upgraded client and site connections until
/// both sides closed or `idle` passed without a byte; the connection's place
/// and the client's slot are held until then.
async fn tunnel(client: OnUpgrade, site: OnUpgrade, held: Held) {
    let (Ok(client), Ok(site)) = (client.await, site.await) else {
        return;
    };
    if let Err(e) = pipe(TokioIo::new(client), TokioIo::new(site), held.idle).await {
        tracing::debug!("upgraded connection ended: {e}");
    }
    drop(held);
}

/// Copy both ways; a side's end is passed on as a write shutdown.
async fn pipe<A, B>(a: A, b: B, idle: Duration) -> std::io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let (mut abuf, mut bbuf) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let (mut a_open, mut b_open) = (true, true);
    let quiet = tokio::time::sleep(idle);
    tokio::pin!(quiet);
    while a_open || b_open {
        tokio::select! {
            n = ar.read(&mut abuf), if a_open => match n? {
                0 => { a_open = false; bw.shutdown().await?; }
                n => bw.write_all(&abuf[..n]).await?,
            },
            n = br.read(&mut bbuf), if b_open => match n? {
                0 => { b_open = false; aw.shutdown().await?; }
                n => aw.write_all(&bbuf[..n]).await?,
            },
            () = &mut quiet => {
                tracing::debug!("tunnel closed after idle_timeout");
                return Ok(());
            }
        }
        quiet.as_mut().reset(tokio::time::Instant::now() + idle);
    }
    Ok(())
}

/// A streamed answer that holds the request's slot until its end.
struct Holding<B> {
    body: B,
    _held: Held,
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for Holding<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The path and query as received (h2 requests carry their authority apart).
fn origin_form(uri: &Uri) -> Uri {
    let pq = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    Uri::from(pq)
}
