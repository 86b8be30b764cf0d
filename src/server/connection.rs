//! One connection: the PROXY header (when configured), the TLS handshake
//! under a timeout, then HTTP/1.1 or h2 until it closes, goes silent, or
//! callgate drains.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::server::conn::http2;
use hyper::service::{service_fn, Service};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::server::Acceptor;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use super::listeners::Kind;
use super::parking::{self, Limits};
use super::watchdog::{Activity, InFlightBody};
use super::{admin, proxy_protocol, BoxError};
use crate::config::{Config, Gateway};
use crate::proxy::{self, ConnInfo, OpenBodies, Place, RequestBody};
use crate::state::Shared;

/// h2 streams one client may have open at once.
const H2_MAX_CONCURRENT_STREAMS: u32 = 100;

/// A connection just accepted: the socket, its peer, and the listener's kind.
pub(super) struct Accepted {
    pub(super) tcp: TcpStream,
    pub(super) peer: SocketAddr,
    pub(super) kind: Kind,
}

/// Serve one connection to its end.
pub(super) async fn serve_connection(
    accepted: Accepted,
    shared: &Arc<Shared>,
    stop: watch::Receiver<bool>,
    place: Place,
) {
    let Accepted {
        mut tcp,
        peer,
        kind,
    } = accepted;
    let config = shared.config.load_full();
    let Some(peer) = proxy_header(&config, kind, &mut tcp, peer).await else {
        return;
    };
    // The task is as large as its largest phase, for as long as the
    // connection lives: each branch but the most common one (HTTP/1.1 over
    // TLS, which parks) is boxed, and so is the TLS stream.
    let result = match kind {
        Kind::Admin => {
            let settings = Settings::of(&config.gateway);
            drop(config);
            Box::pin(serve_admin(tcp, shared, &settings, stop, peer)).await
        }
        Kind::Http => {
            let https_port = shared.https_port.load(std::sync::atomic::Ordering::Relaxed);
            let info = ConnInfo::new(peer, "http", https_port, place);
            let settings = Settings::of(&config.gateway);
            drop(config);
            Box::pin(serve_http(tcp, shared, info, &settings, stop)).await
        }
        Kind::Https => {
            let Some(stream) = handshake(shared, &config, tcp, peer).await else {
                return;
            };
            // A reload swaps certificates for the connections that come after it.
            let settings = Settings::of(&config.gateway);
            drop(config);
            let info = ConnInfo::new(peer, "https", 0, place);
            serve_https(Box::new(stream), shared, info, &settings, stop).await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "connection ended with an error: {e}");
    }
}

/// Behind an L4 balancer the TCP peer is the balancer; the PROXY header
/// names the client. None: the connection must be closed.
async fn proxy_header(
    config: &Config,
    kind: Kind,
    tcp: &mut TcpStream,
    peer: SocketAddr,
) -> Option<SocketAddr> {
    if !config.listen.proxy_protocol || kind == Kind::Admin {
        return Some(peer);
    }
    let ip = peer.ip().to_canonical();
    if !config
        .listen
        .proxy_protocol_from
        .iter()
        .any(|n| n.contains(&ip))
    {
        tracing::debug!(%peer, "closing: a peer outside proxy_protocol_from");
        return None;
    }
    match proxy_protocol::read_header(tcp, config.gateway.header_read_timeout).await {
        Ok(Some(client)) => Some(client),
        Ok(None) => Some(peer),
        Err(why) => {
            tracing::debug!(%peer, "closing: {why}");
            None
        }
    }
}

/// The TLS handshake, bounded by tls_handshake_timeout; failures are counted.
async fn handshake(
    shared: &Shared,
    config: &Config,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    let tls = config.tls.as_ref()?;
    let timeout = config.gateway.tls_handshake_timeout;
    let accept = async {
        let start = LazyConfigAcceptor::new(Acceptor::default(), tcp).await?;
        // ACME's certificates (and its tls-alpn-01 answers) are chosen
        // here, before the configured ones: they change without a reload.
        let server = shared
            .acme
            .config_for(&start.client_hello())
            .unwrap_or_else(|| tls.server_config.clone());
        start.into_stream(server).await
    };
    // Boxed: the connection's task then holds only what each phase needs,
    // not the largest of them all.
    match Box::pin(tokio::time::timeout(timeout, accept)).await {
        // RFC 8737 §3: the validation handshake is all; no HTTP follows.
        Ok(Ok(s)) if s.get_ref().1.alpn_protocol() == Some(crate::acme::ACME_TLS_ALPN) => {
            tracing::info!(%peer, "acme: tls-alpn-01 challenge answered");
            None
        }
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            shared.metrics.tls_handshake_failed();
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            shared.metrics.tls_handshake_failed();
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

// Serve one connection, dropping it once it has had no request in flight
// (head read to last body byte written) for header_read_timeout before its
// first request, idle_timeout after.
macro_rules! serve {
    ($conn:expr, $io:expr, $settings:expr, $stop:expr, $peer:expr, $handle:expr) => {{
        let activity = Activity::new();
        let svc = service(&activity, None, $handle);
        // Boxed, as is the handshake: the connection's task then holds only
        // what each phase needs, not the largest of them all.
        let mut conn = Box::pin($conn(TokioIo::new($io), svc));
        let (peer, mut stop) = ($peer, $stop);
        let stopping = async move {
            // A dropped sender is a stop too.
            let _ = stop.wait_for(|stopping| *stopping).await.map(|_| ());
        };
        tokio::select! {
            result = conn.as_mut() => result.map_err(BoxError::from),
            _ = activity.idle($settings.header_read_timeout, $settings.idle_timeout) => {
                tracing::debug!(%peer, "closing a silent connection");
                Ok(())
            }
            // Stopping: requests in flight finish (the thread's drain_timeout
            // bounds them), then the connection closes.
            _ = stopping => {
                conn.as_mut().graceful_shutdown();
                conn.await.map_err(BoxError::from)
            }
        }
    }};
}

async fn serve_admin(
    tcp: TcpStream,
    shared: &Arc<Shared>,
    settings: &Settings,
    stop: watch::Receiver<bool>,
    peer: SocketAddr,
) -> Result<(), BoxError> {
    let shared = shared.clone();
    let handle = move |req| admin::handle(shared.clone(), peer, req);
    let builder = auto_builder(settings);
    let serve = |io, svc| builder.serve_connection(io, svc);
    serve!(serve, tcp, settings, stop, peer, handle)
}

/// Plain HTTP: HTTP/1.1 and h2 told apart by the first bytes.
async fn serve_http(
    tcp: TcpStream,
    shared: &Arc<Shared>,
    info: ConnInfo,
    settings: &Settings,
    stop: watch::Receiver<bool>,
) -> Result<(), BoxError> {
    let peer = info.peer();
    let shared = shared.clone();
    let handle = move |req| proxy::handle(shared.clone(), info.clone(), req);
    // With upgrades: the pass-through tunnels WebSockets.
    let builder = auto_builder(settings);
    let serve = |io, svc| builder.serve_connection_with_upgrades(io, svc);
    serve!(serve, tcp, settings, stop, peer, handle)
}

/// TLS: the protocol ALPN chose.
async fn serve_https(
    stream: Box<TlsStream<TcpStream>>,
    shared: &Arc<Shared>,
    info: ConnInfo,
    settings: &Settings,
    stop: watch::Receiver<bool>,
) -> Result<(), BoxError> {
    let peer = info.peer();
    let shared = shared.clone();
    let handle = move |req| proxy::handle(shared.clone(), info.clone(), req);
    // ALPN has already named the protocol: serving it directly skips
    // sniffing the first bytes, whose replay buffer costs every
    // connection another 8 KiB for as long as it stays open.
    // Without ALPN a TLS client speaks HTTP/1.1 (RFC 9113 §3.2).
    // (hyper-util's auto builder sniffs whenever it may upgrade, even when
    // told the protocol: hyper's own builder it is, with upgrades for the
    // pass-through's WebSockets.)
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        Box::pin(serve_h2(stream, settings, stop, peer, handle)).await
    } else {
        let activity = Activity::new();
        let bodies = Arc::new(OpenBodies::default());
        let svc = service(&activity, Some(&bodies), handle);
        let limits = Limits {
            first: settings.header_read_timeout,
            idle: settings.idle_timeout,
        };
        let builder = h1_builder(settings);
        let h1 = parking::H1 {
            builder: &builder,
            activity: &activity,
            bodies: &bodies,
            limits,
            stop,
            peer,
        };
        parking::serve_h1(stream, svc, h1).await
    }
}

/// h2 over TLS.
async fn serve_h2<H, F, B>(
    stream: Box<TlsStream<TcpStream>>,
    settings: &Settings,
    stop: watch::Receiver<bool>,
    peer: SocketAddr,
    handle: H,
) -> Result<(), BoxError>
where
    H: Fn(Request<RequestBody>) -> F + Send + 'static,
    F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: hyper::body::Body<Data = bytes::Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    let builder = h2_builder(settings);
    let serve = |io, svc| builder.serve_connection(io, svc);
    serve!(serve, stream, settings, stop, peer, handle)
}

/// The `[gateway]` settings a connection serves by, copied out of the
/// config: a connection that outlives a reload keeps the settings it
/// started with, not the whole replaced config.
#[derive(Clone, Copy)]
struct Settings {
    header_read_timeout: std::time::Duration,
    idle_timeout: std::time::Duration,
    max_header_bytes: usize,
    max_headers: usize,
}

impl Settings {
    fn of(gateway: &Gateway) -> Settings {
        Settings {
            header_read_timeout: gateway.header_read_timeout,
            idle_timeout: gateway.idle_timeout,
            max_header_bytes: gateway.max_header_bytes,
            max_headers: gateway.max_headers,
        }
    }
}

/// What a request's handling returns, boxed (see [`service`]).
type Handling<B> =
    Pin<Box<dyn Future<Output = Result<Response<InFlightBody<B>>, Infallible>> + Send>>;

/// The service hyper calls for each request of one connection: the request
/// counts as in flight until its answer's last byte, and its body, when
/// `bodies` is given, as open until read to its end.
fn service<H, F, B>(
    activity: &Arc<Activity>,
    bodies: Option<&Arc<OpenBodies>>,
    handle: H,
) -> impl Service<
    Request<Incoming>,
    Response = Response<InFlightBody<B>>,
    Error = Infallible,
    Future = Handling<B>,
>
where
    H: Fn(Request<RequestBody>) -> F,
    F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: hyper::body::Body + Unpin + 'static,
{
    let (activity, bodies) = (activity.clone(), bodies.cloned());
    service_fn(move |req: Request<Incoming>| -> Handling<B> {
        let in_flight = activity.request();
        let req = match &bodies {
            Some(bodies) => req.map(|body| RequestBody::counted(body, bodies)),
            None => req.map(RequestBody::uncounted),
        };
        let response = handle(req);
        // hyper's HTTP/1.1 dispatcher keeps room for this future in every
        // connection for its whole life: boxed, the room is a pointer, not
        // the 7 KiB the work needs while a request runs, for one
        // allocation per request.
        Box::pin(async move {
            let response = response.await;
            response.map(|r| r.map(|body| InFlightBody::new(body, in_flight)))
        })
    })
}

// One set of HTTP settings, applied to hyper's builders and to the auto
// builder's views of them (distinct types with the same methods).
macro_rules! h1_settings {
    ($builder:expr, $settings:expr) => {
        $builder
            .timer(TokioTimer::new())
            // hyper runs this timer while a keep-alive connection waits for its
            // next request too, so it also bounds the idle HTTP/1.1
            // connections it keeps (the plain-HTTP listener's). Over TLS an
            // idle one is parked first, and closes after idle_timeout.
            .header_read_timeout($settings.header_read_timeout)
            .max_buf_size($settings.max_header_bytes)
            .max_headers($settings.max_headers)
            .keep_alive(true)
    };
}
macro_rules! h2_settings {
    ($builder:expr, $settings:expr) => {
        $builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
            .max_header_list_size(u32::try_from($settings.max_header_bytes).unwrap_or(u32::MAX))
    };
}

/// HTTP/1.1 and h2 on a plain listener, told apart by the first bytes.
fn auto_builder(settings: &Settings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    h1_settings!(builder.http1(), settings);
    h2_settings!(builder.http2(), settings);
    builder
}

fn h1_builder(settings: &Settings) -> http1::Builder {
    let mut builder = http1::Builder::new();
    h1_settings!(builder, settings);
    builder
}

fn h2_builder(settings: &Settings) -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    h2_settings!(builder, settings);
    builder
}
