//! The request handler: route by path → method → cheap checks → bounded
//! body read → `verify::check` → forward. Logs one line per request.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::client_ip;
use crate::config::Delivery;
use crate::config::{Config, Route};
use crate::damping::Damper;
use crate::forward::{self, ForwardError};
use crate::headers::{self, Seen};
use crate::metrics::Metrics;
use crate::query;
use crate::queue::{self, worker::blocking, NewCallback, Store, StoreError};
use crate::verify::{self, Passed, Refusal};
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use tokio::sync::Notify;

/// Response body type: the upstream's streamed body, or a short text of ours.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// State every request shares: the swappable config and the upstream pool.
pub struct Shared {
    /// Each request takes one snapshot at its start and keeps it to its end,
    /// so a reload never changes a request halfway.
    pub config: ArcSwap<Config>,
    pub metrics: Metrics,
    /// Brute-force damping, when configured; survives reloads that keep its settings.
    pub damper: ArcSwapOption<Damper>,
    /// The callback store, opened on first use (and again if [queue] dir changes).
    store: Mutex<Option<Arc<Store>>>,
    /// Routes whose delivery worker is running.
    pub queue_workers: Mutex<HashSet<String>>,
    /// Wakes a route's worker when a callback is stored.
    wakes: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Shared {
    /// Wrap a loaded config.
    pub fn new(config: Config) -> Shared {
        Shared {
            damper: ArcSwapOption::new(damper_for(&config)),
            config: ArcSwap::from_pointee(config),
            metrics: Metrics::new(),
            store: Mutex::new(None),
            queue_workers: Mutex::new(HashSet::new()),
            wakes: Mutex::new(HashMap::new()),
        }
    }

    /// The callback store in the current `[queue] dir`, opening it if needed.
    /// An error (unwritable directory, full disk) is retried on the next call.
    pub fn store(&self) -> Result<Arc<Store>, StoreError> {
        let dir = self.config.load().queue_dir.clone();
        let mut slot = self.store.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(store) = slot
            .as_ref()
            .filter(|s| s.path().parent() == Some(dir.as_path()))
        {
            return Ok(store.clone());
        }
        let store = Arc::new(Store::open(&dir)?);
        *slot = Some(store.clone());
        Ok(store)
    }

    /// The notifier that wakes a route's delivery worker.
    pub fn queue_wake(&self, route: &str) -> Arc<Notify> {
        let mut wakes = self.wakes.lock().unwrap_or_else(|e| e.into_inner());
        wakes.entry(route.to_owned()).or_default().clone()
    }

    /// Make `config` the running config. Failure counts are kept unless the
    /// damping settings or the set of provider addresses changed.
    pub fn install(&self, config: Config) {
        let keep = match (self.damper.load().as_deref(), &config.gateway.damping) {
            (Some(d), Some(s)) => {
                d.settings() == s && d.providers() == providers(&config).as_slice()
            }
            (None, None) => true,
            _ => false,
        };
        if !keep {
            self.damper.store(damper_for(&config));
        }
        self.config.store(Arc::new(config));
    }
}

/// Every address some route allowlists: the providers.
fn providers(config: &Config) -> Vec<IpNet> {
    config
        .routes
        .iter()
        .filter_map(|r| r.allow_ips.as_ref())
        .flat_map(|a| a.nets.iter().copied())
        .collect()
}

fn damper_for(config: &Config) -> Option<Arc<Damper>> {
    let settings = config.gateway.damping.clone()?;
    Some(Arc::new(Damper::new(settings, providers(config))))
}

/// What the handler knows of the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// `https` or `http`.
    pub proto: &'static str,
    /// The peer as an X-Forwarded-For value: made once, used by every request.
    pub forwarded_for: HeaderValue,
}

impl ConnInfo {
    /// A connection from `peer` on the `proto` listener.
    pub fn new(peer: SocketAddr, proto: &'static str) -> ConnInfo {
        ConnInfo {
            peer,
            proto,
            forwarded_for: headers::forwarded_for(peer.ip()),
        }
    }
}

/// How a request ended, for the access log.
struct Outcome {
    response: Response<Body>,
    route: Option<Arc<Route>>,
    /// `forwarded`, `refused` or `failed`.
    result: &'static str,
    /// The refusal's class for metrics: ip, token, hmac, payload, size, method, no_route, slow, body.
    refusal: Option<&'static str>,
    reason: String,
}

impl Outcome {
    fn refused(
        route: Option<&Arc<Route>>,
        status: StatusCode,
        class: &'static str,
        reason: impl Into<String>,
    ) -> Outcome {
        Outcome {
            response: plain(status),
            route: route.cloned(),
            result: "refused",
            refusal: Some(class),
            reason: reason.into(),
        }
    }
}

/// Serve one request. Never fails: every problem becomes a deliberate answer.
pub async fn handle(
    shared: Arc<Shared>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let config = shared.config.load_full();
    let client = client_ip::resolve(
        conn.peer.ip(),
        req.headers(),
        &config.gateway.trusted_proxies,
    );
    let method = req.method().clone();
    // Built only when the request log line is on (it is the hot path's only string work).
    let target = tracing::enabled!(tracing::Level::INFO)
        .then(|| redacted_target(req.uri(), &config.redact_params))
        .unwrap_or_default();

    let outcome = respond(&shared, &config, conn, client, req).await;

    let status = outcome.response.status();
    let route = outcome.route.as_ref().map_or("-", |r| r.name.as_str());
    let cache = outcome.route.as_ref().map(|r| &r.metrics);
    shared
        .metrics
        .request(route, cache, outcome.result, outcome.refusal);
    tracing::info!(
        route,
        client = %client,
        method = %method,
        uri = %target,
        outcome = outcome.result,
        reason = outcome.reason.as_str(),
        status = status.as_u16(),
        duration_ms = format_args!("{:.1}", start.elapsed().as_secs_f64() * 1000.0),
        "request"
    );
    Ok(outcome.response)
}

async fn respond(
    shared: &Shared,
    config: &Config,
    conn: ConnInfo,
    client: IpAddr,
    req: Request<Incoming>,
) -> Outcome {
    // An origin server may accept absolute-form (RFC 9112 §3.2.2), but no
    // provider sends it and it is a classic lever for request smuggling and
    // Host confusion: refuse it, and CONNECT, before any routing.
    if req.version() <= Version::HTTP_11 && req.uri().scheme().is_some() {
        return Outcome::refused(
            None,
            StatusCode::BAD_REQUEST,
            "request",
            "request: absolute-form target",
        );
    }
    if unsupported_transfer_coding(req.headers()) {
        let mut o = Outcome::refused(
            None,
            StatusCode::NOT_IMPLEMENTED,
            "request",
            "request: transfer-coding other than chunked",
        );
        // The rest of the stream cannot be framed reliably: do not reuse it.
        if req.version() <= Version::HTTP_11 {
            o.response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        return o;
    }
    if req.method() == Method::CONNECT {
        return Outcome::refused(
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method",
            "method: CONNECT",
        );
    }
    if let Some(left) = shared
        .damper
        .load()
        .as_ref()
        .and_then(|d| d.blocked_for(client))
    {
        let mut o = Outcome::refused(
            None,
            StatusCode::TOO_MANY_REQUESTS,
            "damped",
            "damped: too many failed verifications from this address",
        );
        o.response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(left.as_secs() + 1));
        return o;
    }
    let Some(route) = config.routes.get(req.uri().path()) else {
        return Outcome::refused(
            None,
            StatusCode::NOT_FOUND,
            "no_route",
            "no_route: no route for this path",
        );
    };
    if !route.methods.contains(req.method()) {
        let mut o = Outcome::refused(
            Some(route),
            StatusCode::METHOD_NOT_ALLOWED,
            "method",
            "method: not in the route's methods",
        );
        let allow: Vec<&str> = route.methods.iter().map(Method::as_str).collect();
        if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
            o.response.headers_mut().insert(header::ALLOW, v);
        }
        return o;
    }
    if let Err(refusal) = verify::precheck(route, client, req.uri()) {
        return forbidden(shared, route, client, refusal);
    }

    let (mut parts, body) = req.into_parts();
    let body = match read_body(config, &parts.headers, body).await {
        Ok(b) => b,
        Err((status, class, why)) => return Outcome::refused(Some(route), status, class, why),
    };
    let passed = match verify::check(route, client, &parts.uri, &parts.headers, &body) {
        Ok(p) => p,
        Err(refusal) => return forbidden(shared, route, client, refusal),
    };

    // The Host header, or h2's :authority.
    let host = parts.headers.get(header::HOST).cloned().or_else(|| {
        let authority = parts.uri.authority()?;
        HeaderValue::from_str(authority.as_str()).ok()
    });
    let peer = conn.peer.ip();
    let seen = Seen {
        peer_value: &conn.forwarded_for,
        peer_trusted: client_ip::is_in(peer, &config.gateway.trusted_proxies),
        proto: conn.proto,
        host: host.as_ref(),
    };
    headers::for_upstream(
        &mut parts.headers,
        seen,
        &config.gateway.verified_header,
        passed,
        body.len(),
    );
    if !parts.headers.contains_key(header::HOST) {
        if let Some(h) = host {
            parts.headers.insert(header::HOST, h);
        }
    }

    // Provider retries of a callback the receiver already accepted stop here.
    let digest = route.dedupe_window.map(|_| Sha256::digest(&body).to_vec());
    if let (Some(window), Some(d)) = (route.dedupe_window, &digest) {
        match already_delivered(shared, route, d, window).await {
            Ok(true) => {
                return Outcome {
                    response: text(StatusCode::OK, "duplicate: already delivered\n"),
                    route: Some(route.clone()),
                    result: "duplicate",
                    refusal: None,
                    reason: "duplicate: delivered within dedupe_window".into(),
                };
            }
            Ok(false) => {}
            // Forwarding a possible duplicate beats losing a callback.
            Err(e) => tracing::warn!(route = %route.name, "dedupe check skipped: {e}"),
        }
    }

    if route.delivery == Delivery::Queue {
        let token_secret = verify::matched_token_secret(route, &parts.uri);
        let callback = NewCallback {
            route: route.name.clone(),
            method: parts.method.as_str().to_owned(),
            // The token's value never reaches the disk; its index is put back at delivery.
            query: parts
                .uri
                .query()
                .map(|q| query::redact(q, &config.redact_params).into_owned()),
            token_secret,
            headers: headers::to_lines(&parts.headers),
            body: body.to_vec(),
            verified: passed.header_value().to_owned(),
            arrived_ms: queue::store::now_ms(),
        };
        return enqueue(shared, route, callback).await;
    }

    parts.uri = upstream_uri(route, parts.uri.query());
    parts.version = Version::HTTP_11;
    let upstream_req = Request::from_parts(parts, Full::new(body));

    let outcome = forward(shared, route, upstream_req, passed).await;
    if let Some(d) =
        digest.filter(|_| outcome.response.status().is_success() && outcome.result == "forwarded")
    {
        remember_delivery(shared, route, d).await;
    }
    outcome
}

async fn already_delivered(
    shared: &Shared,
    route: &Route,
    digest: &[u8],
    window: std::time::Duration,
) -> Result<bool, StoreError> {
    let store = shared.store()?;
    let (name, digest) = (route.name.clone(), digest.to_vec());
    let since = queue::store::now_ms() - window.as_millis() as i64;
    blocking(move || store.delivered_since(&name, &digest, since)).await
}

async fn remember_delivery(shared: &Shared, route: &Route, digest: Vec<u8>) {
    let name = route.name.clone();
    let result = match shared.store() {
        Ok(store) => {
            blocking(move || store.remember_delivery(&name, &digest, queue::store::now_ms())).await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::warn!(route = %route.name, "could not record the delivery for dedupe: {e}");
    }
}

/// Store the callback durably, then acknowledge; never acknowledge what was not stored.
async fn enqueue(shared: &Shared, route: &Arc<Route>, callback: NewCallback) -> Outcome {
    let stored = match shared.store() {
        Ok(store) => blocking(move || store.enqueue(&callback)).await,
        Err(e) => Err(e),
    };
    match stored {
        Ok(id) => {
            shared.queue_wake(&route.name).notify_one();
            Outcome {
                response: text(route.ack_status, "accepted\n"),
                route: Some(route.clone()),
                result: "queued",
                refusal: None,
                reason: format!("stored as {id}"),
            }
        }
        Err(e) => Outcome {
            // The provider will retry; 202 without storing would lose the callback.
            response: plain(StatusCode::SERVICE_UNAVAILABLE),
            route: Some(route.clone()),
            result: "failed",
            refusal: None,
            reason: format!("not stored: {e}"),
        },
    }
}

/// A failed check: 403, and one more failure for damping unless the client
/// had passed the route's IP allowlist (a provider's own mistake must not
/// cut it off).
fn forbidden(shared: &Shared, route: &Arc<Route>, client: IpAddr, refusal: Refusal) -> Outcome {
    if matches!(refusal, Refusal::Ip(_)) || route.allow_ips.is_none() {
        if let Some(d) = shared.damper.load().as_ref() {
            d.failure(client);
        }
    }
    Outcome::refused(
        Some(route),
        StatusCode::FORBIDDEN,
        refusal.kind(),
        refusal.to_string(),
    )
}

async fn forward(
    shared: &Shared,
    route: &Arc<Route>,
    req: Request<Full<Bytes>>,
    passed: Passed,
) -> Outcome {
    let start = Instant::now();
    let result = forward::send(&route.upstream.authority, req, route.upstream_timeout).await;
    shared.metrics.upstream(
        &route.name,
        &route.metrics,
        result.as_ref().ok().map(|r| r.status().as_u16()),
        matches!(result, Err(ForwardError::Timeout(_))),
        start.elapsed(),
    );
    match result {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            headers::remove_hop_by_hop(&mut parts.headers);
            Outcome {
                response: Response::from_parts(parts, body.boxed()),
                route: Some(route.clone()),
                result: "forwarded",
                refusal: None,
                reason: format!("verified {}", passed.header_value()),
            }
        }
        Err(e) => {
            let status = match e {
                ForwardError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
                ForwardError::Failed(_) => StatusCode::BAD_GATEWAY,
            };
            Outcome {
                response: plain(status),
                route: Some(route.clone()),
                result: "failed",
                refusal: None,
                reason: e.to_string(),
            }
        }
    }
}

/// Read the whole body, bounded by `max_body_bytes` before anything is
/// buffered and by `body_read_timeout` against slow senders.
async fn read_body(
    config: &Config,
    headers: &http::HeaderMap,
    body: Incoming,
) -> Result<Bytes, (StatusCode, &'static str, &'static str)> {
    let max = config.gateway.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            "size",
            "size: Content-Length over max_body_bytes",
        ));
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    match tokio::time::timeout(
        config.gateway.body_read_timeout,
        Limited::new(body, limit).collect(),
    )
    .await
    {
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            "slow",
            "slow: body not received within body_read_timeout",
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            "size",
            "size: body over max_body_bytes",
        )),
        Ok(Err(_)) => Err((
            StatusCode::BAD_REQUEST,
            "body",
            "body: client sent a broken or incomplete body",
        )),
    }
}

/// hyper already refuses differing Content-Lengths, and reads a message that
/// has both Content-Length and Transfer-Encoding by the latter, then closes
/// the connection (RFC 9112 §6.1). What it lets through is a coding chain
/// such as `gzip, chunked`: callgate cannot decode it, and must not pass the
/// coded bytes on as if they were the body the signature covers.
fn unsupported_transfer_coding(headers: &http::HeaderMap) -> bool {
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

/// The request target sent upstream (origin-form: the route's upstream path
/// and query, then the caller's query, token stripped if asked). Where it is
/// sent is the route's upstream authority.
pub fn upstream_uri(route: &Route, incoming_query: Option<&str>) -> Uri {
    let stripped;
    let mut query = incoming_query;
    if let (true, Some(token), Some(q)) = (route.strip_token, &route.token, query) {
        stripped = query::strip(q, &token.param);
        query = Some(stripped.as_str());
    }
    let up = &route.upstream;
    let queries = [up.query.as_deref(), query.filter(|q| !q.is_empty())];
    let mut target = String::with_capacity(
        up.path.len() + queries.iter().flatten().map(|q| q.len() + 1).sum::<usize>(),
    );
    target.push_str(&up.path);
    for (i, q) in queries.iter().flatten().enumerate() {
        target.push(if i == 0 { '?' } else { '&' });
        target.push_str(q);
    }
    PathAndQuery::from_maybe_shared(Bytes::from(target))
        // Every part came from a parsed URI, so the join is a valid target.
        .expect("upstream target from valid parts")
        .into()
}

/// Path and query for the log, token values replaced by REDACTED.
fn redacted_target(uri: &Uri, redact: &[String]) -> String {
    match uri.query() {
        Some(q) => format!("{}?{}", uri.path(), query::redact(q, redact)),
        None => uri.path().to_owned(),
    }
}

/// A short text answer of ours: the caller learns the status, never the reason.
fn plain(status: StatusCode) -> Response<Body> {
    let text_for_status = match status {
        StatusCode::FORBIDDEN => "forbidden\n",
        StatusCode::NOT_FOUND => "not found\n",
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed\n",
        StatusCode::PAYLOAD_TOO_LARGE => "payload too large\n",
        StatusCode::REQUEST_TIMEOUT => "request timeout\n",
        StatusCode::BAD_GATEWAY => "bad gateway\n",
        StatusCode::GATEWAY_TIMEOUT => "gateway timeout\n",
        StatusCode::NOT_IMPLEMENTED => "not implemented\n",
        StatusCode::TOO_MANY_REQUESTS => "too many requests\n",
        StatusCode::SERVICE_UNAVAILABLE => "service unavailable\n",
        _ => "bad request\n",
    };
    text(status, text_for_status)
}

/// A short text answer with this status and body.
fn text(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
