//! The upstream client: pooled keep-alive HTTP/1.1, one timeout per request
//! covering connect and response head, errors mapped to 502 and 504.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// How long an idle pooled upstream connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per upstream; enough for the concurrency a gateway sees.
const POOL_MAX_IDLE_PER_HOST: usize = 256;

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No response head within the route's upstream timeout → 504.
    #[error("upstream did not answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// Refused, reset, or not HTTP → 502.
    #[error("upstream failed: {0}")]
    Failed(String),
}

/// A shared, pooled client for every route's upstream.
#[derive(Clone)]
pub struct Forwarder {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Forwarder {
    fn default() -> Self {
        Self::new()
    }
}

impl Forwarder {
    /// A client with keep-alive pooling.
    pub fn new() -> Forwarder {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .build(connector);
        Forwarder { client }
    }

    /// This thread's client. Each connection thread has its own pool, so a
    /// request and its upstream exchange never leave the thread that
    /// accepted it (no cross-thread wake-ups on the hot path).
    pub fn current() -> Forwarder {
        thread_local! {
            static FORWARDER: Forwarder = Forwarder::new();
        }
        FORWARDER.with(Forwarder::clone)
    }

    /// Send one request; the body is complete, so it is sent at most once.
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, ForwardError> {
        match tokio::time::timeout(timeout, self.client.request(req)).await {
            Err(_) => Err(ForwardError::Timeout(timeout)),
            Ok(Err(e)) => Err(ForwardError::Failed(error_chain(&e))),
            Ok(Ok(resp)) => Ok(resp),
        }
    }
}

/// "client error (Connect): tcp connect error: Connection refused": the
/// outer hyper error alone says too little to an operator.
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
