//! Delivery workers: one per queue route, delivering the route's callbacks
//! in arrival order (at most `max_in_flight` at once) with exponential
//! backoff and jitter. Nothing is removed before the upstream answered 2xx.
//! A worker stops when a reload takes its route away, or when callgate stops;
//! so does the housekeeping that prunes old replay rows.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use rand::RngExt;

use tokio_util::sync::CancellationToken;

use super::handle::Worker;
use super::lane::Lane;
use super::replay::{conflict_reason, queued_owner};
use super::store::{from_lines, Claim, Outcome, ReplayClaim, Store, StoreError, Stored};
use crate::config::{Assertion, Config, Retry, Route};
use crate::upstream::{self, ForwardError};
use crate::verify::{query, replay};

/// Longest a worker sleeps before looking at the store again (a `callgate
/// queue retry` from another process is noticed within this time).
pub(super) const POLL: Duration = Duration::from_millis(500);
/// The queue depth gauges are refreshed at least this often while busy.
pub(super) const DEPTH_EVERY: Duration = Duration::from_secs(1);
/// Longest time between two prunes of the dedupe table.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Shortest time between two prunes of the dedupe table.
const PRUNE_AT_MOST_EVERY: Duration = Duration::from_secs(1);
/// The housekeeping task's key among the workers: no route has an empty name.
const HOUSEKEEPING: &str = "";

/// What one delivery attempt came to.
#[derive(Debug, PartialEq, Eq)]
enum Attempted {
    Delivered,
    /// Worth trying again: the receiver is down, slow, overloaded or failing.
    Retry(String),
    /// The receiver refused it for good: a 3xx (a callback is not
    /// redirected), or a 4xx other than 408/429.
    Dead(String),
}

fn attempted(result: &Result<StatusCode, ForwardError>) -> Attempted {
    match result {
        Ok(s) if s.is_success() => Attempted::Delivered,
        Ok(s)
            if s.is_server_error()
                || *s == StatusCode::REQUEST_TIMEOUT
                || *s == StatusCode::TOO_MANY_REQUESTS =>
        {
            Attempted::Retry(format!("HTTP {}", s.as_u16()))
        }
        Ok(s) => Attempted::Dead(format!("HTTP {}", s.as_u16())),
        Err(e) => Attempted::Retry(e.to_string()),
    }
}

/// The wait before attempt `attempts + 1`: base × 2^(attempts−1), capped,
/// then jittered to between half and all of it so retries do not march in step.
pub(super) fn backoff(retry: &Retry, attempts: u32, jitter: f64) -> Duration {
    let exp = retry
        .base
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let d = exp.min(retry.cap);
    d.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// The routes whose queue needs a worker under `config`.
pub(super) fn queue_routes(config: &Config) -> impl Iterator<Item = &Arc<Route>> {
    config.routes.iter().filter(|r| r.stores())
}

/// Match the background work to the running config: start a worker for
/// every queue route that has none, stop the workers of routes that are
/// gone or no longer queued, and keep the dedupe table pruned.
pub(crate) fn reconcile(worker: &Worker) {
    let config = worker.config.load();
    let mut running = worker.queue.workers();
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
            let stop = worker.stopping.child_token();
            running.insert(name.to_owned(), stop.clone());
            worker
                .deliveries
                .spawn(run(worker.clone(), name.to_owned(), stop));
        }
    }
    if config.routes.iter().any(|r| r.dedupe_window.is_some())
        && !running.contains_key(HOUSEKEEPING)
    {
        let stop = worker.stopping.child_token();
        running.insert(HOUSEKEEPING.to_owned(), stop.clone());
        tokio::spawn(housekeeping(worker.clone(), stop));
    }
}

/// A route's worker: it waits for its turn (a worker of the same route
/// that a reload stopped may still be finishing deliveries), then delivers.
async fn run(worker: Worker, name: String, stop: CancellationToken) {
    let turn = worker.queue.turn(&name);
    let _turn = tokio::select! {
        turn = turn.lock_owned() => turn,
        _ = stop.cancelled() => return,
    };
    if let Some(lane) = Lane::new(worker, name, stop) {
        lane.run().await;
    }
}

/// Callbacks claimed at once: a few waves of `max_in_flight`, so one claim
/// serves many deliveries (a backlog drains at the store's pace). Claimed
/// and not yet started is never sent, so a crash repeats none of them.
/// One at a time (max_in_flight = 1) keeps strict arrival order: a claim
/// is one callback, and a failing one holds the rest back.
pub(super) fn batch_size(limit: usize) -> usize {
    match limit {
        0 | 1 => 1,
        n => (n * 4).min(256),
    }
}

/// What one delivery came to: the outcome to record (none when its claim
/// was lost or its replay check failed), and what to count and log once
/// it is recorded (never a log line ahead of the store).
#[derive(Debug)]
pub(super) struct Done {
    pub(super) id: i64,
    pub(super) attempts: u32,
    pub(super) outcome: Option<Outcome>,
    pub(super) kind: &'static str,
    pub(super) message: String,
    /// The replay check could not reach the store: nothing was sent.
    pub(super) check_failed: bool,
}

impl Done {
    fn nothing(c: &Stored) -> Done {
        Done {
            id: c.id,
            attempts: c.attempts,
            outcome: None,
            kind: "",
            message: String::new(),
            check_failed: false,
        }
    }

    fn recorded(c: &Stored, outcome: Outcome, kind: &'static str, message: String) -> Done {
        Done {
            outcome: Some(outcome),
            kind,
            message,
            ..Done::nothing(c)
        }
    }
}

/// One delivery attempt: check the replay keys once more, send (cut when
/// `cancel` fires: the claim is lost), and judge the answer.
pub(super) async fn attempt(
    worker: Worker,
    route: Arc<Route>,
    store: Store,
    c: Stored,
    cancel: CancellationToken,
) -> Done {
    if cancel.is_cancelled() {
        return Done::nothing(&c);
    }
    match recheck(&route, &store, &c).await {
        Ok(Claim::Won) => {}
        Ok(copy) => return settle_copy(&c, copy),
        Err(e) => {
            // Delivering now could make a duplicate: wait for the store.
            tracing::warn!(route = %route.name, id = c.id, "queue: replay check failed, delivery postponed: {e}");
            return Done {
                check_failed: true,
                ..Done::nothing(&c)
            };
        }
    }
    let result = tokio::select! {
        result = send(&worker, &route, &c) => result,
        _ = cancel.cancelled() => return Done::nothing(&c),
    };
    judge(&route, &c, attempted(&result))
}

/// Send the stored callback to the receiver; its status.
async fn send(worker: &Worker, route: &Route, c: &Stored) -> Result<StatusCode, ForwardError> {
    // The receiver's protection, shared with the route's inline deliveries.
    let _pass = route.shield(&worker.shields).pass_patiently().await;
    let assertion = worker.config.load().gateway.assertion.clone();
    let req = request(route, c, assertion.as_ref()).map_err(ForwardError::Failed)?;
    let resp = upstream::send_and_record(&worker.metrics, route, req).await?;
    let status = resp.status();
    // Read the answer so the pooled connection can be reused.
    let _ = resp.into_body().collect().await;
    Ok(status)
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
fn settle_copy(c: &Stored, copy: Claim) -> Done {
    let id = c.id;
    match copy {
        Claim::Delivered | Claim::Stored => Done::recorded(
            c,
            Outcome::Dropped(id),
            "duplicate",
            "queue: a copy was delivered or is stored; this one is dropped undelivered".into(),
        ),
        Claim::InFlight { until_ms } => Done::recorded(
            c,
            Outcome::Failed {
                id,
                next_attempt_ms: Some(until_ms),
                error: "a copy is in flight".into(),
            },
            "retry",
            "queue: a copy is in flight; trying again after it".into(),
        ),
        Claim::Conflict { stored, given } => {
            let why = conflict_reason(&stored, &given);
            let message = format!("queue: {why}; dead letter");
            let outcome = Outcome::Failed {
                id,
                next_attempt_ms: None,
                error: why,
            };
            Done::recorded(c, outcome, "dead", message)
        }
        Claim::Won => Done::nothing(c),
    }
}

/// What an attempt's answer comes to: delivered (removed), retry
/// (rescheduled) or dead, with the metric label and the log line.
fn judge(route: &Route, c: &Stored, attempted: Attempted) -> Done {
    let (id, now, attempts) = (c.id, crate::clock::unix_ms(), c.attempts + 1);
    let dead_letter = "dead letter, see `callgate queue list --state dead`";
    let failed = |next_attempt_ms, error| Outcome::Failed {
        id,
        next_attempt_ms,
        error,
    };
    let done = match attempted {
        Attempted::Delivered => Done::recorded(
            c,
            Outcome::Delivered(id),
            "delivered",
            "queue: delivered".into(),
        ),
        Attempted::Retry(why) => {
            let too_old = now - c.callback.arrived_ms > route.retry.max_age.as_millis() as i64;
            if attempts >= route.retry.max_attempts || too_old {
                let msg = format!("queue: giving up ({why}); {dead_letter}");
                Done::recorded(c, failed(None, why), "dead", msg)
            } else {
                let wait = backoff(&route.retry, attempts, rand::rng().random());
                let msg = format!(
                    "queue: delivery failed ({why}); next attempt in {}",
                    humantime::format_duration(Duration::from_millis(wait.as_millis() as u64))
                );
                let next = now + wait.as_millis() as i64;
                Done::recorded(c, failed(Some(next), why), "retry", msg)
            }
        }
        Attempted::Dead(why) => {
            let msg = format!("queue: upstream refused it ({why}); {dead_letter}");
            Done::recorded(c, failed(None, why), "dead", msg)
        }
    };
    Done { attempts, ..done }
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
        target: None,
        headers: from_lines(&cb.headers)?,
        checks: &cb.verified,
    };
    Ok(outgoing.build(Bytes::from(cb.body.clone()), assertion))
}

/// Prune the dedupe table while any route dedupes: each route's rows older
/// than its window, and rows older than the longest window (routes that
/// were removed, or stopped deduping).
async fn housekeeping(worker: Worker, stop: CancellationToken) {
    loop {
        let config = worker.config.load_full();
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
        if let Err(e) = prune(&worker, windows).await {
            tracing::warn!("replay: could not prune old rows: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
    }
}

async fn prune(worker: &Worker, windows: Vec<(String, Duration)>) -> Result<(), StoreError> {
    let store = worker.store()?;
    let now = crate::clock::unix_ms();
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
    fn attempts_end_by_the_status() {
        let s = |n| Ok(StatusCode::from_u16(n).unwrap());
        assert_eq!(attempted(&s(200)), Attempted::Delivered);
        assert_eq!(attempted(&s(204)), Attempted::Delivered);
        for n in [500, 502, 503, 408, 429] {
            assert!(matches!(attempted(&s(n)), Attempted::Retry(_)), "{n}");
        }
        for n in [400, 401, 403, 404, 410, 301] {
            assert!(matches!(attempted(&s(n)), Attempted::Dead(_)), "{n}");
        }
        assert!(matches!(
            attempted(&Err(ForwardError::Timeout(Duration::from_secs(1)))),
            Attempted::Retry(_)
        ));
    }
}
