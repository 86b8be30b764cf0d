//! The upstream side, for direct delivery and the queue worker alike: the
//! request target a route sends ([`upstream_uri`]), and the client that sends
//! it ([`send_and_record`]): HTTP/1.1 keep-alive connections pooled per
//! thread and upstream, one timeout per request covering connect and
//! response head, errors that map to 502 and 504.
//!
//! hyper's low-level client does the HTTP; only the pooling is ours. Each
//! serving thread has its own pool (no lock is contended, no request leaves
//! its thread), and a connection goes back to the pool when its response body
//! has been read to the end, which needs no task of its own. hyper-util's
//! general-purpose pool cost 8 allocations and a spawned task per request.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http::{Method, Request, Response, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::upstream_tls::UpstreamTls;
use crate::config::{Assertion, Route, Upstream};
use crate::metrics::Metrics;
use crate::verify::query;

/// How long an idle pooled upstream connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per upstream and thread; enough for the concurrency a gateway sees.
const POOL_MAX_IDLE_PER_HOST: usize = 256;

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    /// No response head within the route's upstream timeout → 504.
    #[error("upstream did not answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// Refused, reset, or not HTTP → 502.
    #[error("upstream failed: {0}")]
    Failed(String),
    /// The client's streamed body passed its bound while being sent → 413.
    #[error("the request body passed max_body_bytes while streaming")]
    BodyTooLarge,
    /// callgate cut the client's streamed body on purpose (pass-through).
    #[error("{0}")]
    Cut(BodyCut),
}

/// Why a streamed pass-through body was cut before its end: carried through
/// hyper's error from the body to the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BodyCut {
    /// A front controller's protected parameter was about to be sent.
    #[error("a protected parameter in the body: {0}")]
    Protected(String),
    /// The upload fell below min_body_rate after its grace period.
    #[error("upload slower than min_body_rate")]
    TooSlow,
    /// A body callgate cannot read one way (a non-canonical multipart form).
    #[error("{0}")]
    Unreadable(&'static str),
}

/// A request body going upstream: a callback's, whole in memory, or a
/// pass-through request's, streamed as it arrives.
pub(crate) enum UpBody {
    /// Verified and complete.
    Full(Full<Bytes>),
    /// Streamed from the client, bounded by the pass-through's max_body_bytes.
    Stream(BoxBody<Bytes, BoxError>),
}

/// A streamed body's error.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Body for UpBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpBody::Full(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
            UpBody::Stream(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Full(b) => b.is_end_stream(),
            UpBody::Stream(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::Full(b) => b.size_hint(),
            UpBody::Stream(b) => b.size_hint(),
        }
    }
}

/// A request body that says when it was sent to its end: only then may
/// its connection carry another request (an upstream that answered before
/// reading a slow upload is still busy with it).
pub(crate) struct Tracked {
    body: UpBody,
    done: Arc<AtomicBool>,
}

impl Tracked {
    fn note_end(&self) {
        if self.body.is_end_stream() {
            self.done.store(true, Ordering::Release);
        }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        match &frame {
            Poll::Ready(None) => this.done.store(true, Ordering::Release),
            Poll::Ready(Some(Ok(_))) => this.note_end(),
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.note_end();
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

type Sender = SendRequest<Tracked>;

struct Idle {
    sender: Sender,
    since: Instant,
}

impl Idle {
    /// Still open at the upstream's end, and not kept past the idle timeout.
    fn usable(&self) -> bool {
        !self.sender.is_closed() && self.since.elapsed() < POOL_IDLE_TIMEOUT
    }
}

/// One thread's idle upstream connections by upstream, newest last. A
/// gateway has a handful of upstreams: a list beats hashing the key twice
/// per request.
#[derive(Default)]
struct Pool {
    idle: Mutex<Vec<(Key, VecDeque<Idle>)>>,
}

impl Pool {
    /// This thread's pool, with its sweeper started on first use.
    fn current() -> Arc<Pool> {
        thread_local! {
            static POOL: Arc<Pool> = Pool::start();
        }
        POOL.with(Arc::clone)
    }

    fn start() -> Arc<Pool> {
        let pool = Arc::new(Pool::default());
        // Without traffic nothing would take idle connections out, so a
        // sweeper closes the expired ones. It ends with the runtime.
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(sweep(Arc::downgrade(&pool)));
        }
        pool
    }

    /// The newest idle connection to `key` that is still open.
    fn take(&self, key: &Key) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let (_, queue) = idle.iter_mut().find(|(k, _)| same(k, key))?;
        std::iter::from_fn(|| queue.pop_back())
            .find(Idle::usable)
            .map(|i| i.sender)
    }

    fn put(&self, key: Key, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let queue = match idle.iter().position(|(k, _)| same(k, &key)) {
            Some(i) => &mut idle[i].1,
            None => {
                idle.push((key, VecDeque::new()));
                &mut idle.last_mut().expect("just pushed").1
            }
        };
        if queue.len() < POOL_MAX_IDLE_PER_HOST {
            queue.push_back(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Drop the connections that expired or were closed by the upstream
    /// (the oldest are at the front).
    fn sweep(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        for (_, queue) in idle.iter_mut() {
            queue.retain(Idle::usable);
        }
        idle.retain(|(_, q)| !q.is_empty());
    }
}

/// A pool's key: where, and (https) with which TLS configuration: two
/// routes to one receiver with different roots or client certificates
/// never share a connection.
#[derive(Clone)]
struct Key {
    authority: Authority,
    tls: Option<Arc<UpstreamTls>>,
}

impl Key {
    fn of(upstream: &Upstream) -> Key {
        Key {
            authority: upstream.authority.clone(),
            tls: upstream.tls.clone(),
        }
    }
}

/// Keys come from the config's parsed upstreams: equal bytes suffice (two
/// spellings of one host just get a pool each), and cost less than the
/// case-insensitive `==` of `Authority`. The TLS configuration is the same
/// one (kept alive by the key, so its address is never reused).
fn same(a: &Key, b: &Key) -> bool {
    a.authority.as_str() == b.authority.as_str()
        && match (&a.tls, &b.tls) {
            (None, None) => true,
            (Some(x), Some(y)) => Arc::ptr_eq(x, y),
            _ => false,
        }
}

async fn sweep(pool: Weak<Pool>) {
    let mut every = tokio::time::interval(POOL_IDLE_TIMEOUT / 4);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match pool.upgrade() {
            Some(pool) => pool.sweep(),
            None => return,
        }
    }
}

/// The upstream's response body. Read to its end, and with the request's
/// body sent to its end, it hands its connection back to the pool; else
/// the connection closes with it (never reused half-way).
pub(crate) struct UpstreamBody {
    inner: Incoming,
    checkin: Option<(Arc<Pool>, Key, Sender)>,
    sent: Arc<AtomicBool>,
}

impl UpstreamBody {
    /// The connection was upgraded (101): it is the tunnel's now, never
    /// the pool's.
    pub(crate) fn forget_connection(&mut self) {
        self.checkin = None;
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if let Some((pool, key, sender)) = self.checkin.take() {
            if self.inner.is_end_stream() && self.sent.load(Ordering::Acquire) {
                pool.put(key, sender);
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A verified callback on its way to the route's upstream. Direct delivery
/// and the queue worker both build the outgoing request here: the route's
/// target with the caller's query, HTTP/1.1, the headers as prepared (the
/// verified header already set), and the assertion when configured, signed
/// at this moment over exactly what is sent.
pub(crate) struct Outgoing<'a> {
    pub(crate) route: &'a Route,
    pub(crate) method: Method,
    /// The caller's query (token restored or stripped as the route says).
    pub(crate) query: Option<&'a str>,
    pub(crate) headers: http::HeaderMap,
    /// The verified header's value, for the assertion.
    pub(crate) checks: &'a str,
}

impl Outgoing<'_> {
    /// The request, with `body`, and the assertion when `assertion` is set.
    pub(crate) fn build(self, body: Bytes, assertion: Option<&Assertion>) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body.clone()));
        *req.method_mut() = self.method;
        *req.uri_mut() = upstream_uri(self.route, self.query);
        *req.version_mut() = http::Version::HTTP_11;
        *req.headers_mut() = self.headers;
        if let Some(a) = assertion {
            crate::assertion::stamp(&mut req, &body, a, &self.route.name, self.checks);
        }
        req
    }
}

/// The request target sent upstream (origin-form: the route's upstream path
/// and query, then the caller's query, token stripped if asked). Where it is
/// sent is the route's upstream authority.
pub(crate) fn upstream_uri(route: &Route, incoming_query: Option<&str>) -> Uri {
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

/// Send a route's request to its upstream and record the exchange (status
/// class and time to the response head) in the route's metrics.
pub(crate) async fn send_and_record(
    metrics: &Metrics,
    route: &Route,
    req: Request<Full<Bytes>>,
) -> Result<Response<UpstreamBody>, ForwardError> {
    let start = Instant::now();
    let req = req.map(UpBody::Full);
    let result = send(&route.upstream, req, route.upstream_timeout).await;
    metrics.upstream(
        &route.name,
        &route.metrics,
        result.as_ref().ok().map(|r| r.status().as_u16()),
        matches!(result, Err(ForwardError::Timeout(_))),
        start.elapsed(),
    );
    result
}

/// Send one request (origin-form URI, Host set) to `upstream`. The body is
/// complete, so a request is sent at most once: it is retried on a new
/// connection only when a pooled one turned out closed before it was written.
pub(crate) async fn send(
    upstream: &Upstream,
    req: Request<UpBody>,
    timeout: Duration,
) -> Result<Response<UpstreamBody>, ForwardError> {
    match tokio::time::timeout(timeout, exchange(&Key::of(upstream), req)).await {
        Err(_) => Err(ForwardError::Timeout(timeout)),
        Ok(result) => result,
    }
}

async fn exchange(
    upstream: &Key,
    req: Request<UpBody>,
) -> Result<Response<UpstreamBody>, ForwardError> {
    let sent = Arc::new(AtomicBool::new(false));
    let mut req = req.map(|body| Tracked {
        body,
        done: sent.clone(),
    });
    let pool = Pool::current();
    while let Some(mut sender) = pool.take(upstream) {
        if sender.ready().await.is_err() {
            continue;
        }
        match sender.try_send_request(req).await {
            Ok(resp) => return Ok(pooled(resp, (pool, upstream, sender), sent)),
            Err(mut e) => match e.take_message() {
                Some(back) => req = back,
                None => return Err(failed(e.into_error())),
            },
        }
    }
    // Boxed: a new connection is the rare case, and its future (DNS,
    // connect, handshake) would otherwise size, and be copied with, every
    // request's future.
    let mut sender = Box::pin(connect(upstream)).await?;
    match sender.send_request(req).await {
        Ok(resp) => Ok(pooled(resp, (pool, upstream, sender), sent)),
        Err(e) => Err(failed(e)),
    }
}

/// A failed exchange: the client's body over its bound, or the upstream's fault.
fn failed(e: hyper::Error) -> ForwardError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return ForwardError::BodyTooLarge;
        }
        if let Some(cut) = s.downcast_ref::<BodyCut>() {
            return ForwardError::Cut(cut.clone());
        }
        source = s.source();
    }
    ForwardError::Failed(error_chain(&e))
}

fn pooled(
    resp: Response<Incoming>,
    (pool, upstream, sender): (Arc<Pool>, &Key, Sender),
    sent: Arc<AtomicBool>,
) -> Response<UpstreamBody> {
    resp.map(|inner| UpstreamBody {
        inner,
        checkin: Some((pool, upstream.clone(), sender)),
        sent,
    })
}

async fn connect(upstream: &Key) -> Result<Sender, ForwardError> {
    let authority = &upstream.authority;
    let default_port = if upstream.tls.is_some() { 443 } else { 80 };
    let port = authority.port_u16().unwrap_or(default_port);
    // An IPv6 literal keeps its brackets in the authority; the resolver wants it bare.
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| ForwardError::Failed(format!("connect to {authority}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    match &upstream.tls {
        None => handshake(TokioIo::new(tcp)).await,
        Some(tls) => {
            let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
            let stream = connector
                .connect(tls.server_name.clone(), tcp)
                .await
                .map_err(|e| {
                    ForwardError::Failed(format!("TLS handshake with {authority}: {e}"))
                })?;
            handshake(TokioIo::new(stream)).await
        }
    }
}

/// HTTP/1.1 over `io` (TCP, or TLS over it), its connection driven by a task.
async fn handshake<I>(io: I) -> Result<Sender, ForwardError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(io)
        .await
        .map_err(|e| ForwardError::Failed(error_chain(&e)))?;
    // With upgrades: a pass-through WebSocket takes the connection over.
    let conn = conn.with_upgrades();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("upstream connection ended: {e}");
        }
    });
    Ok(sender)
}

/// "connection closed before message completed": the outer hyper error alone
/// says too little to an operator, so the whole chain is told.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
