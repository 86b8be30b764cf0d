//! Delivery workers: one per queue route, delivering the route's callbacks
//! in arrival order (at most `max_in_flight` at once) with exponential
//! backoff and jitter. Nothing is removed before the upstream answered 2xx.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use super::store::{now_ms, Store, StoreError, Stored};
use crate::config::{Delivery, Retry, Route};
use crate::forward::{self, ForwardError};
use crate::headers;
use crate::service::{self, Shared};

/// Longest a worker sleeps before looking at the store again (a `callgate
/// queue retry` from another process is noticed within this time).
const POLL: Duration = Duration::from_millis(500);

/// What one delivery attempt came to.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Delivered,
    /// Worth trying again: the receiver is down, slow, overloaded or failing.
    Retry(String),
    /// The receiver refused it for good (4xx other than 408/429).
    Dead(String),
}

fn verdict(result: &Result<StatusCode, ForwardError>) -> Verdict {
    match result {
        Ok(s) if s.is_success() => Verdict::Delivered,
        Ok(s)
            if s.is_server_error()
                || *s == StatusCode::REQUEST_TIMEOUT
                || *s == StatusCode::TOO_MANY_REQUESTS =>
        {
            Verdict::Retry(format!("HTTP {}", s.as_u16()))
        }
        Ok(s) => Verdict::Dead(format!("HTTP {}", s.as_u16())),
        Err(e) => Verdict::Retry(e.to_string()),
    }
}

/// The wait before attempt `attempts + 1`: base × 2^(attempts−1), capped,
/// then jittered to between half and all of it so retries do not march in step.
pub fn backoff(retry: &Retry, attempts: u32, jitter: f64) -> Duration {
    let exp = retry
        .base
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let d = exp.min(retry.cap);
    d.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// Start a worker for every queue route that has none yet.
pub fn ensure_workers(shared: &Arc<Shared>) {
    let config = shared.config.load();
    let mut running = shared
        .queue_workers
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    for route in config
        .routes
        .iter()
        .filter(|r| r.delivery == Delivery::Queue)
    {
        if running.insert(route.name.clone()) {
            tokio::spawn(run(shared.clone(), route.name.clone()));
        }
    }
}

async fn run(shared: Arc<Shared>, name: String) {
    let wake = shared.queue_wake(&name);
    loop {
        let wait = match deliver_due(&shared, &name).await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::warn!(route = %name, "queue: {e}");
                POLL
            }
        };
        if !wait.is_zero() {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Run a store call off the async threads (SQLite syncs to disk).
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("store task panicked")
}

/// Deliver the due head of the route's queue; how long to wait before looking again.
async fn deliver_due(shared: &Arc<Shared>, name: &str) -> Result<Duration, StoreError> {
    let config = shared.config.load_full();
    let Some(route) = config
        .routes
        .iter()
        .find(|r| r.name == name && r.delivery == Delivery::Queue)
        .cloned()
    else {
        return Ok(POLL);
    };
    let store = shared.store()?;
    let (s, n, limit) = (store.clone(), name.to_owned(), route.max_in_flight);
    let head = blocking(move || s.head(&n, limit)).await?;
    let (s, n) = (store.clone(), name.to_owned());
    if let Ok(depth) = blocking(move || s.depth(&n)).await {
        shared.metrics.queue_depth(name, depth);
    }
    let now = now_ms();
    // Only the due prefix: a callback never overtakes an earlier one of its route.
    let due: Vec<Stored> = head
        .iter()
        .take_while(|c| c.next_attempt_ms <= now)
        .cloned()
        .collect();
    if due.is_empty() {
        let next = head
            .first()
            .map(|c| Duration::from_millis((c.next_attempt_ms - now).max(1) as u64));
        return Ok(next.unwrap_or(POLL).min(POLL));
    }
    let mut attempts = JoinSet::new();
    for c in due {
        attempts.spawn(attempt(shared.clone(), route.clone(), store.clone(), c));
    }
    while attempts.join_next().await.is_some() {}
    Ok(Duration::ZERO)
}

async fn attempt(shared: Arc<Shared>, route: Arc<Route>, store: Arc<Store>, c: Stored) {
    let start = std::time::Instant::now();
    let result = match request(&route, &c) {
        Ok(req) => {
            match forward::send(&route.upstream.authority, req, route.upstream_timeout).await {
                Ok(resp) => {
                    let status = resp.status();
                    // Read the answer so the pooled connection can be reused.
                    let _ = resp.into_body().collect().await;
                    Ok(status)
                }
                Err(e) => Err(e),
            }
        }
        Err(why) => Err(ForwardError::Failed(why)),
    };
    shared.metrics.upstream(
        &route.name,
        &route.metrics,
        result.as_ref().ok().map(|s| s.as_u16()),
        matches!(result, Err(ForwardError::Timeout(_))),
        start.elapsed(),
    );
    let now = now_ms();
    let attempts = c.attempts + 1;
    let (id, name) = (c.id, route.name.clone());
    // Record first, then log: a log line must never run ahead of the store.
    let (result, message) = match verdict(&result) {
        Verdict::Delivered => {
            let digest = route
                .dedupe_window
                .map(|_| Sha256::digest(&c.callback.body).to_vec());
            let r = name.clone();
            let stored = blocking(move || {
                store.delivered(id, digest.as_deref().map(|d| (r.as_str(), d, now)))
            })
            .await;
            (stored.map(|_| "delivered"), "queue: delivered".to_owned())
        }
        Verdict::Retry(why) => {
            let too_old = now - c.callback.arrived_ms > route.retry.max_age.as_millis() as i64;
            if attempts >= route.retry.max_attempts || too_old {
                let msg = format!(
                    "queue: giving up ({why}); dead letter, see `callgate queue list --state dead`"
                );
                (
                    blocking(move || store.failed(id, None, &why))
                        .await
                        .map(|_| "dead"),
                    msg,
                )
            } else {
                let wait = backoff(&route.retry, attempts, rand::rng().random());
                let msg = format!(
                    "queue: delivery failed ({why}); next attempt in {}",
                    humantime::format_duration(wait)
                );
                let next = now + wait.as_millis() as i64;
                (
                    blocking(move || store.failed(id, Some(next), &why))
                        .await
                        .map(|_| "retry"),
                    msg,
                )
            }
        }
        Verdict::Dead(why) => {
            let msg = format!("queue: upstream refused it ({why}); dead letter, see `callgate queue list --state dead`");
            (
                blocking(move || store.failed(id, None, &why))
                    .await
                    .map(|_| "dead"),
                msg,
            )
        }
    };
    match result {
        Ok(kind) => {
            shared.metrics.delivery_attempt(&name, kind);
            match kind {
                "dead" => tracing::warn!(route = %name, id, attempts, "{message}"),
                _ => tracing::info!(route = %name, id, attempts, "{message}"),
            }
        }
        Err(e) => tracing::error!(route = %name, id, "queue: could not record the attempt: {e}"),
    }
}

/// The upstream request for a stored callback, under the route's current config.
fn request(route: &Route, c: &Stored) -> Result<Request<Full<Bytes>>, String> {
    let cb = &c.callback;
    // Put the token back (it is never stored), unless the route strips it anyway.
    let query = match (&cb.query, &route.token, cb.token_secret) {
        (Some(q), Some(token), Some(i)) if !route.strip_token => {
            let secret = token
                .secrets
                .get(i)
                .or_else(|| token.secrets.first())
                .ok_or("route has no token secret")?;
            Some(crate::query::restore(q, &token.param, secret.expose()))
        }
        (q, _, _) => q.clone(),
    };
    let mut req = Request::new(Full::new(Bytes::from(cb.body.clone())));
    *req.method_mut() = Method::from_bytes(cb.method.as_bytes()).map_err(|e| e.to_string())?;
    *req.uri_mut() = service::upstream_uri(route, query.as_deref());
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = headers::from_lines(&cb.headers)?;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry() -> Retry {
        Retry {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            max_attempts: 10,
            max_age: Duration::from_secs(3600),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_below_it() {
        let r = retry();
        assert_eq!(backoff(&r, 1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(&r, 2, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(&r, 4, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(&r, 30, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(&r, 4, 0.0), Duration::from_secs(4));
    }

    #[test]
    fn verdicts_follow_the_status() {
        let s = |n| Ok(StatusCode::from_u16(n).unwrap());
        assert_eq!(verdict(&s(200)), Verdict::Delivered);
        assert_eq!(verdict(&s(204)), Verdict::Delivered);
        for n in [500, 502, 503, 408, 429] {
            assert!(matches!(verdict(&s(n)), Verdict::Retry(_)), "{n}");
        }
        for n in [400, 401, 403, 404, 410, 301] {
            assert!(matches!(verdict(&s(n)), Verdict::Dead(_)), "{n}");
        }
        assert!(matches!(
            verdict(&Err(ForwardError::Timeout(Duration::from_secs(1)))),
            Verdict::Retry(_)
        ));
    }
}
