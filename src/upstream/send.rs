//! One exchange with an upstream: a pooled connection if one is idle, else a
//! new one; bounded by the route's timeout; recorded in the route's metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;

use super::body::{Progress, Tracked, UpBody, UpstreamBody};
use super::connect::{connect, error_chain, Conn};
use super::error::{stopped_by_callgate, ForwardError};
use super::multiplex::{self, Sent};
use super::pool::{Key, Opening, Pool, Sender};
use crate::config::{Route, Upstream};
use crate::metrics::{Exchange, Metrics};

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
        match &result {
            Ok(r) => Exchange::Status(r.status().as_u16()),
            Err(ForwardError::Timeout(_)) => Exchange::TimedOut,
            Err(_) => Exchange::Failed,
        },
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

async fn exchange(key: &Key, req: Request<UpBody>) -> Result<Response<UpstreamBody>, ForwardError> {
    let progress = Arc::new(Progress::default());
    // An upgrade takes over an HTTP/1.1 connection: never h2. And only a
    // TLS upstream may choose h2 (by ALPN): a plain one is never shared.
    let h1_only = key.tls.is_none() || req.headers().contains_key(header::UPGRADE);
    let mut req = req.map(|body| Tracked {
        body,
        progress: progress.clone(),
    });
    let pool = Pool::current();
    // The shared h2 path and a new connection are boxed: the common case
    // (a pooled HTTP/1.1 connection) keeps a small state, which every
    // layer above moves once.
    if !h1_only {
        req = match Box::pin(over_shared(&pool, key, req, &progress)).await? {
            Ok(resp) => return Ok(resp),
            Err(back) => back,
        };
    }
    while let Some(mut sender) = pool.take(key) {
        if sender.ready().await.is_err() {
            continue;
        }
        match sender.try_send_request(req).await {
            Ok(resp) => return Ok(pooled(resp, (pool, key, sender), progress)),
            Err(mut e) => match e.take_message() {
                Some(back) => req = back,
                None => return Err(failed(e.into_error(), &progress)),
            },
        }
    }
    let mut opening = match h1_only {
        true => None,
        false => pool.opening(key).await,
    };
    if opening.is_some() && pool.multiplexed(key).is_some() {
        // Another request opened an h2 connection meanwhile: the gate is
        // for the next to open one, not held through this exchange.
        opening = None;
        req = match Box::pin(over_shared(&pool, key, req, &progress)).await? {
            Ok(resp) => return Ok(resp),
            Err(back) => back,
        };
    }
    Box::pin(new_connection(&pool, key, req, progress, opening)).await
}

/// Over `key`'s shared h2 connection, if it has one: the answer, or the
/// request back (never sent) for another connection.
async fn over_shared(
    pool: &Pool,
    key: &Key,
    req: Request<Tracked>,
    progress: &Arc<Progress>,
) -> Result<Result<Response<UpstreamBody>, Request<Tracked>>, ForwardError> {
    let Some(mut sender) = pool.multiplexed(key) else {
        return Ok(Err(req));
    };
    // A shared connection may go away under this request: a callback's
    // whole body is kept to send it again.
    let mut req = req;
    let again = Again::of(&mut req);
    match multiplex::send(&mut sender, req, key).await? {
        Sent::Back(back) => Ok(Err(back)),
        Sent::Answered(resp) => Ok(Ok(shared(resp, progress.clone()))),
        Sent::Failed(e) => match again.filter(|_| never_processed(&e)) {
            Some(again) => {
                progress.restart();
                Ok(Err(again.request(progress.clone())))
            }
            None => Err(failed(e, progress)),
        },
    }
}

/// A callback as it was before it went over an h2 connection: its head
/// and whole body (a streamed pass-through body cannot be sent twice).
struct Again {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Again {
    fn of(req: &mut Request<Tracked>) -> Option<Again> {
        let body = req.body_mut().body.whole()?;
        Some(Again {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
            body,
        })
    }

    fn request(self, progress: Arc<Progress>) -> Request<Tracked> {
        let mut req = Request::new(Tracked {
            body: UpBody::Full(Full::new(self.body)),
            progress,
        });
        *req.method_mut() = self.method;
        *req.uri_mut() = self.uri;
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers;
        req
    }
}

/// The receiver never processed this stream: it went away before it (a
/// GOAWAY whose last stream is below it: RFC 9113 §6.8) or refused it. Sent
/// again on another connection, it is still sent once.
fn never_processed(e: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            return (h2.is_go_away() && h2.is_remote())
                || h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = s.source();
    }
    false
}

/// Over a new connection, h2 or HTTP/1.1 as the receiver chose (`opening`,
/// when held, lets the requests waiting for it go once the choice is known).
async fn new_connection(
    pool: &Arc<Pool>,
    key: &Key,
    req: Request<Tracked>,
    progress: Arc<Progress>,
    opening: Option<Opening>,
) -> Result<Response<UpstreamBody>, ForwardError> {
    // Boxed: a new connection is the rare case, and its future (DNS,
    // connect, handshake) would otherwise size, and be copied with, every
    // request's future.
    let h1_only = req.headers().contains_key(header::UPGRADE);
    match Box::pin(connect(key, h1_only)).await? {
        Conn::Http1(mut sender) => {
            if !h1_only {
                pool.chose(key, true);
            }
            drop(opening);
            match sender.send_request(req).await {
                Ok(resp) => Ok(pooled(resp, (pool.clone(), key, sender), progress)),
                Err(e) => Err(failed(e, &progress)),
            }
        }
        Conn::Http2(mut sender) => {
            pool.share(key, sender.clone());
            pool.chose(key, false);
            drop(opening);
            match multiplex::send(&mut sender, req, key).await? {
                Sent::Answered(resp) => Ok(shared(resp, progress)),
                Sent::Failed(e) => Err(failed(e, &progress)),
                Sent::Back(_) => Err(ForwardError::Failed(
                    "the new h2 connection closed before the request was sent".into(),
                )),
            }
        }
    }
}

/// A failed exchange: the client's body over its bound or cut by callgate
/// (as its body told, or as the error says), or the upstream's fault.
fn failed(e: hyper::Error, progress: &Progress) -> ForwardError {
    progress
        .stopped()
        .or_else(|| stopped_by_callgate(&e))
        .unwrap_or_else(|| ForwardError::Failed(error_chain(&e)))
}

/// An h2 answer: its connection stays shared, nothing to check in.
fn shared(resp: Response<Incoming>, progress: Arc<Progress>) -> Response<UpstreamBody> {
    resp.map(|inner| UpstreamBody {
        inner,
        checkin: None,
        sent: progress,
        ended: false,
    })
}

fn pooled(
    resp: Response<Incoming>,
    (pool, upstream, sender): (Arc<Pool>, &Key, Sender),
    sent: Arc<Progress>,
) -> Response<UpstreamBody> {
    resp.map(|inner| UpstreamBody {
        inner,
        checkin: Some((pool, upstream.clone(), sender)),
        sent,
        ended: false,
    })
}
