//! Delivery workers: one per queue route, delivering the route's callbacks
//! in arrival order (at most `max_in_flight` at once) with exponential
//! backoff and jitter. Nothing is removed before the upstream answered 2xx.
//! A worker stops when a reload takes its route away, or when callgate stops;
//! so does the housekeeping that prunes old replay rows.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use rand::RngExt;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::handle::Worker;
use super::replay::{conflict_reason, queued_owner};
use super::store::{from_lines, now_ms, Claim, ReplayClaim, Store, StoreError, Stored};
use crate::config::{Assertion, Config, Retry, Route};
use crate::upstream::{self, ForwardError};
use crate::verify::{query, replay};

/// Longest a worker sleeps before looking at the store again (a `callgate
/// queue retry` from another process is noticed within this time).
const POLL: Duration = Duration::from_millis(500);
/// The queue depth gauges are refreshed at least this often while busy.
const DEPTH_EVERY: Duration = Duration::from_secs(1);
/// Longest time between two prunes of the dedupe table.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Shortest time between two prunes of the dedupe table.
const PRUNE_AT_MOST_EVERY: Duration = Duration::from_secs(1);
/// The housekeeping task's key among the workers: no route has an empty name.
const HOUSEKEEPING: &str = "";

/// What one delivery attempt came to.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Delivered,
    /// Worth trying again: the receiver is down, slow, overloaded or failing.
    Retry(String),
    /// The receiver refused it for good: a 3xx (a callback is not
    /// redirected), or a 4xx other than 408/429.
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
fn backoff(retry: &Retry, attempts: u32, jitter: f64) -> Duration {
    let exp = retry
        .base
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let d = exp.min(retry.cap);
    d.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// The routes whose queue needs a worker under `config`.
fn queue_routes(config: &Config) -> impl Iterator<Item = &Arc<Route>> {
    config.routes.iter().filter(|r| r.stores())
}

/// Match the background work to the running config: start a worker for
/// every queue route that has none, stop the workers of routes that are
/// gone or no longer queued, and keep the dedupe table pruned.
pub(crate) fn reconcile(shared: &Worker) {
    let config = shared.config.load();
    let mut running = shared.queue.workers();
    let wanted: Vec<&str> = queue_routes(&config).map(|r| r.name.as_str()).collect();
    running.retain(|name, stop| {
        let keep = name == HOUSEKEEPING || wanted.contains(&name.as_str());
        if !keep {
            tracing::info!(route = %name, "queue: route removed; its worker stops (stored callbacks stay)");
            stop.cancel();
        }
        keep
    });
    for name in wanted {
        if !running.contains_key(name) {
            let stop = shared.stopping.child_token();
            running.insert(name.to_owned(), stop.clone());
            shared
                .deliveries
                .spawn(run(shared.clone(), name.to_owned(), stop));
        }
    }
    if config.routes.iter().any(|r| r.dedupe_window.is_some())
        && !running.contains_key(HOUSEKEEPING)
    {
        let stop = shared.stopping.child_token();
        running.insert(HOUSEKEEPING.to_owned(), stop.clone());
        tokio::spawn(housekeeping(shared.clone(), stop));
    }
}

async fn run(shared: Worker, name: String, stop: CancellationToken) {
    let wake = shared.queue.wake(&name);
    let mut depth_at = None;
    loop {
        if stop.is_cancelled() {
            return;
        }
        // Deliveries under way when callgate stops are finished (the
        // server waits up to drain_timeout): one cut off after the receiver
        // took it would be delivered again after the restart.
        let wait = deliver_due(&shared, &name, &mut depth_at)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(route = %name, "queue: {e}");
                POLL
            });
        if !wait.is_zero() {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

/// Deliver the due head of the route's queue; how long to wait before looking again.
async fn deliver_due(
    shared: &Worker,
    name: &str,
    depth_at: &mut Option<std::time::Instant>,
) -> Result<Duration, StoreError> {
    let config = shared.config.load_full();
    let Some(route) = queue_routes(&config).find(|r| r.name == name).cloned() else {
        return Ok(POLL);
    };
    let store = shared.store()?;
    let now = now_ms();
    let limit = route.max_concurrency.unwrap_or(route.max_in_flight);
    let claimed = store.claim(name, batch_size(limit), now).await?;
    // The depth gauges: at most once a second while a backlog drains (two
    // counting queries per round would cost as much as the round's write).
    let stale = depth_at.is_none_or(|t| t.elapsed() >= DEPTH_EVERY);
    if claimed.due.is_empty() || stale {
        *depth_at = Some(std::time::Instant::now());
        if let Ok((pending, dead, oldest)) = store.depth(name).await {
            let age = oldest.map_or(0, |t| (now_ms() - t).max(0) as u64);
            shared
                .metrics
                .queue_depth(name, pending, dead, Duration::from_millis(age));
        }
    }
    if claimed.due.is_empty() {
        let next = claimed
            .next_ms
            .map(|at| Duration::from_millis((at - now).max(1) as u64));
        return Ok(next.unwrap_or(POLL).min(POLL));
    }
    let in_flight: InFlight = Arc::new(Mutex::new(claimed.due.iter().map(|c| c.id).collect()));
    let heartbeat = store
        .renew_every()
        .map(|every| tokio::spawn(heartbeat(store.clone(), in_flight.clone(), every)));
    let mut attempts = JoinSet::new();
    // At most `limit` at once, started in arrival order.
    let gate = Arc::new(tokio::sync::Semaphore::new(limit));
    for c in claimed.due {
        let (id, in_flight) = (c.id, in_flight.clone());
        let Ok(permit) = gate.clone().acquire_owned().await else {
            break;
        };
        let one = attempt(shared.clone(), route.clone(), store.clone(), c);
        attempts.spawn(async move {
            let delivered = one.await;
            drop(permit);
            if delivered.is_none() {
                in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
            }
            delivered
        });
    }
    // The receiver's 2xx answers of the round, recorded in one transaction
    // (one sync instead of one per callback); until then they stay claimed.
    let mut delivered = Vec::new();
    while let Some(done) = attempts.join_next().await {
        delivered.extend(done.ok().flatten());
    }
    record_delivered(shared, &route, &store, delivered).await;
    if let Some(h) = heartbeat {
        h.abort();
    }
    Ok(Duration::ZERO)
}

/// Remove the delivered callbacks of a round, then count and log them
/// (never a log line ahead of the store).
async fn record_delivered(
    shared: &Worker,
    route: &Route,
    store: &Store,
    delivered: Vec<(i64, u32)>,
) {
    if delivered.is_empty() {
        return;
    }
    let ids = delivered.iter().map(|(id, _)| *id).collect();
    match store.delivered_many(ids, now_ms()).await {
        Ok(()) => {
            for (id, attempts) in delivered {
                shared.metrics.delivery_attempt(&route.name, "delivered");
                tracing::info!(route = %route.name, id, attempts, "queue: delivered");
            }
        }
        Err(e) => tracing::error!(
            route = %route.name,
            ids = ?delivered,
            "queue: delivered, but could not record it (it will be delivered again): {e}"
        ),
    }
}

/// Callbacks claimed in one round: a few waves of `max_in_flight`, so the
/// claim and the round's one write of deliveries are shared by many (a
/// backlog drains at the store's pace, not one transaction per callback).
/// One at a time (max_in_flight = 1) keeps strict arrival order: a round
/// is one callback, and a failing one holds the rest back.
fn batch_size(limit: usize) -> usize {
    match limit {
        0 | 1 => 1,
        n => (n * 4).min(256),
    }
}

/// The callbacks of one round still being delivered.
type InFlight = Arc<Mutex<std::collections::BTreeSet<i64>>>;

/// Renew the claims of the deliveries still running, every `every`: a
/// slow receiver never lets another instance take (and deliver again) a
/// callback this one is still delivering.
async fn heartbeat(store: Store, in_flight: InFlight, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let ids: Vec<i64> = in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        if ids.is_empty() {
            return;
        }
        if let Err(e) = store.renew(ids, now_ms()).await {
            tracing::warn!("queue: could not renew the claims of deliveries in flight: {e}");
        }
    }
}

/// One delivery attempt: check the replay keys once more, send, then
/// record what came of it; a delivery (2xx) is left to the round's one
/// write: its id (and attempt count) is returned.
async fn attempt(shared: Worker, route: Arc<Route>, store: Store, c: Stored) -> Option<(i64, u32)> {
    match recheck(&route, &store, &c).await {
        Ok(Claim::Won) => {}
        Ok(copy) => {
            settle_copy(&shared, &route, &store, &c, copy).await;
            return None;
        }
        Err(e) => {
            // Delivering now could make a duplicate: wait for the store.
            tracing::warn!(route = %route.name, id = c.id, "queue: replay check failed, delivery postponed: {e}");
            return None;
        }
    }
    // The receiver's protection, shared with the route's inline deliveries.
    let _pass = shared.shields.get(&route).pass_patiently().await;
    let assertion = shared.config.load().gateway.assertion.clone();
    let result = match request(&route, &c, assertion.as_ref()) {
        Ok(req) => match upstream::send_and_record(&shared.metrics, &route, req).await {
            Ok(resp) => {
                let status = resp.status();
                // Read the answer so the pooled connection can be reused.
                let _ = resp.into_body().collect().await;
                Ok(status)
            }
            Err(e) => Err(e),
        },
        Err(why) => Err(ForwardError::Failed(why)),
    };
    let (id, attempts) = (c.id, c.attempts + 1);
    let verdict = verdict(&result);
    if matches!(verdict, Verdict::Delivered) {
        return Some((id, attempts));
    }
    // Record first, then log: a log line must never run ahead of the store.
    match record(&route, store, &c, verdict).await {
        Ok((kind, message)) => {
            shared.metrics.delivery_attempt(&route.name, kind);
            match kind {
                "dead" => tracing::warn!(route = %route.name, id, attempts, "{message}"),
                _ => tracing::info!(route = %route.name, id, attempts, "{message}"),
            }
        }
        Err(e) => {
            tracing::error!(route = %route.name, id, "queue: could not record the attempt: {e}")
        }
    }
    None
}

/// The stored callback's replay keys, claimed again under its own name: a
/// copy delivered or stored meanwhile (by another instance, or before the
/// keys were kept) wins, and this one is not delivered.
async fn recheck(route: &Route, store: &Store, c: &Stored) -> Result<Claim, StoreError> {
    let keys = replay::decode(&c.callback.replay).unwrap_or_default();
    let Some(window) = route.dedupe_window.filter(|_| !keys.is_empty()) else {
        return Ok(Claim::Won);
    };
    let claim = ReplayClaim::now(&route.name, window, keys, queued_owner(c.id), None);
    store.claim_replay(claim).await
}

/// A stored callback that a copy beat: a copy delivered or stored drops it,
/// a copy in flight postpones it, a conflicting body kills it.
async fn settle_copy(shared: &Worker, route: &Route, store: &Store, c: &Stored, copy: Claim) {
    let id = c.id;
    let result = match copy {
        Claim::Delivered | Claim::Stored => store.drop_callback(id).await.map(|_| {
            (
                "duplicate",
                "queue: a copy was delivered or is stored; this one is dropped undelivered"
                    .to_owned(),
            )
        }),
        Claim::InFlight { until_ms } => store
            .failed(id, Some(until_ms), "a copy is in flight".into())
            .await
            .map(|_| {
                (
                    "retry",
                    "queue: a copy is in flight; trying again after it".to_owned(),
                )
            }),
        Claim::Conflict { stored, given } => {
            let why = conflict_reason(&stored, &given);
            store
                .failed(id, None, why.clone())
                .await
                .map(|_| ("dead", format!("queue: {why}; dead letter")))
        }
        Claim::Won => return,
    };
    match result {
        Ok((kind, message)) => {
            shared.metrics.delivery_attempt(&route.name, kind);
            tracing::info!(route = %route.name, id, "{message}");
        }
        Err(e) => {
            tracing::error!(route = %route.name, id, "queue: could not record the attempt: {e}")
        }
    }
}

/// Store what an attempt came to: delivered (removed), retry (rescheduled)
/// or dead. Returns the metric label and the log line.
async fn record(
    route: &Route,
    store: Store,
    c: &Stored,
    verdict: Verdict,
) -> Result<(&'static str, String), StoreError> {
    let (id, now, attempts) = (c.id, now_ms(), c.attempts + 1);
    let dead_letter = "dead letter, see `callgate queue list --state dead`";
    match verdict {
        Verdict::Delivered => {
            store.delivered_many(vec![id], now).await?;
            Ok(("delivered", "queue: delivered".to_owned()))
        }
        Verdict::Retry(why) => {
            let too_old = now - c.callback.arrived_ms > route.retry.max_age.as_millis() as i64;
            if attempts >= route.retry.max_attempts || too_old {
                let msg = format!("queue: giving up ({why}); {dead_letter}");
                store.failed(id, None, why).await?;
                return Ok(("dead", msg));
            }
            let wait = backoff(&route.retry, attempts, rand::rng().random());
            let msg = format!(
                "queue: delivery failed ({why}); next attempt in {}",
                humantime::format_duration(Duration::from_millis(wait.as_millis() as u64))
            );
            let next = now + wait.as_millis() as i64;
            store.failed(id, Some(next), why).await?;
            Ok(("retry", msg))
        }
        Verdict::Dead(why) => {
            let msg = format!("queue: upstream refused it ({why}); {dead_letter}");
            store.failed(id, None, why).await?;
            Ok(("dead", msg))
        }
    }
}

/// The upstream request for a stored callback, under the route's current
/// config (`upstream::Outgoing`, as direct delivery builds it). The
/// assertion, when configured, is signed at delivery: its time is the
/// delivery's, its target the one sent.
fn request(
    route: &Route,
    c: &Stored,
    assertion: Option<&Assertion>,
) -> Result<Request<Full<Bytes>>, String> {
    let cb = &c.callback;
    // Put the token back (it is never stored), unless the route strips it anyway.
    let query = match (&cb.query, &route.token, cb.token_secret) {
        (Some(q), Some(token), Some(i)) if !route.strip_token => {
            let secret = token
                .secrets
                .get(i)
                .or_else(|| token.secrets.first())
                .ok_or("route has no token secret")?;
            Some(query::restore(q, &token.param, secret.expose()))
        }
        (q, _, _) => q.clone(),
    };
    let outgoing = upstream::Outgoing {
        route,
        method: Method::from_bytes(cb.method.as_bytes()).map_err(|e| e.to_string())?,
        query: query.as_deref(),
        headers: from_lines(&cb.headers)?,
        checks: &cb.verified,
    };
    Ok(outgoing.build(Bytes::from(cb.body.clone()), assertion))
}

/// Prune the dedupe table while any route dedupes: each route's rows older
/// than its window, and rows older than the longest window (routes that
/// were removed, or stopped deduping).
async fn housekeeping(shared: Worker, stop: CancellationToken) {
    loop {
        let config = shared.config.load_full();
        let windows: Vec<(String, Duration)> = config
            .routes
            .iter()
            .filter_map(|r| Some((r.name.clone(), r.dedupe_window?)))
            .collect();
        let every = windows
            .iter()
            .map(|(_, w)| *w)
            .min()
            .unwrap_or(PRUNE_EVERY)
            .clamp(PRUNE_AT_MOST_EVERY, PRUNE_EVERY);
        if let Err(e) = prune(&shared, windows).await {
            tracing::warn!("replay: could not prune old rows: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
    }
}

async fn prune(shared: &Worker, windows: Vec<(String, Duration)>) -> Result<(), StoreError> {
    let store = shared.store()?;
    let now = now_ms();
    let before = |w: Duration| now - w.as_millis() as i64;
    let longest = windows.iter().map(|(_, w)| *w).max().unwrap_or_default();
    for (route, window) in &windows {
        store
            .prune_replay(Some(route.clone()), before(*window), now)
            .await?;
    }
    store
        .prune_replay(None, before(longest), now)
        .await
        .map(|_| ())
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
