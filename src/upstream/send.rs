//! One exchange with an upstream: a pooled connection if one is idle, else a
//! new one; bounded by the route's timeout; recorded in the route's metrics.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;

use super::body::{Tracked, UpBody, UpstreamBody};
use super::connect::{connect, error_chain};
use super::error::{BodyCut, ForwardError};
use super::pool::{Key, Pool, Sender};
use crate::config::{Route, Upstream};
use crate::metrics::Metrics;

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
