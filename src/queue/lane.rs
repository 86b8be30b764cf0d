//! One route's worker. It claims the route's due callbacks in arrival
//! order, keeps at most `max_in_flight` deliveries under way, and records
//! each outcome as it comes (those that end while a write runs go in the
//! next write, one transaction). A place is free again only once its
//! outcome is recorded, so a crash repeats at most what was in flight.
//! While the store cannot record, the worker starts and claims nothing and
//! retries the write with the route's backoff. A stop (callgate stopping,
//! or a reload taking the route away) starts nothing more: deliveries under
//! way finish and are recorded. On PostgreSQL the claims are renewed while
//! held; a delivery whose claim was lost, or could not be renewed before it
//! lapses, is cut, and nothing is recorded for it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::handle::Worker;
use super::store::{Outcome, Store, StoreError, Stored};
use super::worker::{attempt, backoff, batch_size, queue_routes, Done, DEPTH_EVERY, POLL};
use crate::config::Route;

/// A claimed callback: until when its claim holds, and what cuts its delivery.
struct Hold {
    until_ms: i64,
    cancel: CancellationToken,
}

/// Every callback the worker holds: claimed, and its outcome not yet recorded.
type Held = Arc<Mutex<BTreeMap<i64, Hold>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A task aborted when this is dropped.
struct Aborting(tokio::task::JoinHandle<()>);

impl Drop for Aborting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(super) struct Lane {
    worker: Worker,
    name: String,
    stop: CancellationToken,
    route: Arc<Route>,
    store: Option<Store>,
    /// Claimed, not started yet, oldest first.
    waiting: VecDeque<Stored>,
    running: JoinSet<Done>,
    /// Ended, their outcomes not recorded yet.
    owed: Vec<Done>,
    held: Held,
    /// Writes of owed outcomes that failed in a row.
    write_failures: u32,
    /// Replay checks that could not reach the store, in a row.
    check_failures: u32,
    /// No claim before this (nothing was due, or the store failed).
    claim_after: Instant,
    depth_at: Option<Instant>,
    heartbeat: Option<Aborting>,
}

impl Lane {
    /// The worker of route `name`, if the running config has it.
    pub(super) fn new(worker: Worker, name: String, stop: CancellationToken) -> Option<Lane> {
        let config = worker.config.load_full();
        let route = queue_routes(&config).find(|r| r.name == name)?.clone();
        Some(Lane {
            worker,
            name,
            stop,
            route,
            store: None,
            waiting: VecDeque::new(),
            running: JoinSet::new(),
            owed: Vec::new(),
            held: Held::default(),
            write_failures: 0,
            check_failures: 0,
            claim_after: Instant::now(),
            depth_at: None,
            heartbeat: None,
        })
    }

    fn limit(&self) -> usize {
        self.route
            .max_concurrency
            .unwrap_or(self.route.max_in_flight)
            .max(1)
    }

    /// Whether another delivery may start now.
    fn room(&self) -> bool {
        !self.stop.is_cancelled() && self.running.len() + self.owed.len() < self.limit()
    }

    pub(super) async fn run(mut self) {
        let wake = self.worker.queue.wake(&self.name);
        loop {
            if !self.owed.is_empty() && !self.record().await {
                self.pause().await;
                continue;
            }
            if let Err(e) = self.fill().await {
                tracing::warn!(route = %self.name, "queue: {e}");
                self.claim_after = Instant::now() + POLL;
            }
            if self.running.is_empty() && self.owed.is_empty() {
                if self.stop.is_cancelled() {
                    return self.release().await;
                }
                tokio::select! {
                    _ = wake.notified() => self.claim_after = Instant::now(),
                    _ = tokio::time::sleep_until(self.claim_after) => {}
                    _ = self.stop.cancelled() => {}
                }
                continue;
            }
            let room = self.room();
            tokio::select! {
                Some(done) = self.running.join_next() => {
                    self.ended(done);
                    while let Some(done) = self.running.try_join_next() {
                        self.ended(done);
                    }
                }
                _ = wake.notified(), if room => self.claim_after = Instant::now(),
                _ = tokio::time::sleep_until(self.claim_after), if room => {}
                _ = self.stop.cancelled(), if room => {}
            }
        }
    }

    /// Start deliveries while there is room, claiming more when none wait.
    async fn fill(&mut self) -> Result<(), StoreError> {
        while self.room() {
            if self.waiting.is_empty()
                && (Instant::now() < self.claim_after || !self.claim().await?)
            {
                return Ok(());
            }
            let Some(c) = self.waiting.pop_front() else {
                return Ok(());
            };
            self.start(c);
        }
        Ok(())
    }

    fn start(&mut self, c: Stored) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let cancel = lock(&self.held)
            .get(&c.id)
            .map(|h| h.cancel.clone())
            .unwrap_or_default();
        let one = attempt(self.worker.clone(), self.route.clone(), store, c, cancel);
        self.running.spawn(one);
    }

    /// Claim the due head of the route's queue; whether any was claimed.
    async fn claim(&mut self) -> Result<bool, StoreError> {
        let config = self.worker.config.load_full();
        let Some(route) = queue_routes(&config).find(|r| r.name == self.name) else {
            self.claim_after = Instant::now() + POLL;
            return Ok(false);
        };
        self.route = route.clone();
        let store = self.worker.store()?;
        if !self.use_store(&store) {
            return Ok(false);
        }
        let now = crate::clock::unix_ms();
        let skip: Vec<i64> = lock(&self.held).keys().copied().collect();
        let claimed = store
            .claim(&self.name, batch_size(self.limit()), now, skip)
            .await?;
        self.gauges(&store, claimed.due.is_empty()).await;
        if claimed.due.is_empty() {
            let next = claimed
                .next_ms
                .map(|at| Duration::from_millis((at - now).max(1) as u64));
            self.claim_after = Instant::now() + next.unwrap_or(POLL).min(POLL);
            return Ok(false);
        }
        let until_ms = store
            .lease()
            .map_or(i64::MAX, |l| now + l.as_millis() as i64);
        let mut held = lock(&self.held);
        for c in &claimed.due {
            let cancel = CancellationToken::new();
            held.insert(c.id, Hold { until_ms, cancel });
        }
        drop(held);
        self.waiting.extend(claimed.due);
        Ok(true)
    }

    /// Deliver from `store` (the one `[queue]` names now): a store changed
    /// by a reload is taken once everything claimed from the old one is
    /// recorded. Whether to claim from it now.
    fn use_store(&mut self, store: &Store) -> bool {
        match &self.store {
            Some(s) if s.same(store) => return true,
            Some(_) if !lock(&self.held).is_empty() => return false,
            _ => {}
        }
        self.store = Some(store.clone());
        self.heartbeat = store
            .renew_every()
            .zip(store.lease())
            .map(|(every, lease)| {
                let task = heartbeat(store.clone(), self.held.clone(), every, lease);
                Aborting(tokio::spawn(task))
            });
        true
    }

    /// The depth gauges: at most once a second while a backlog drains (two
    /// counting queries per claim would cost as much as the claim).
    async fn gauges(&mut self, store: &Store, idle: bool) {
        let stale = self.depth_at.is_none_or(|t| t.elapsed() >= DEPTH_EVERY);
        if !idle && !stale {
            return;
        }
        self.depth_at = Some(Instant::now());
        if let Ok((pending, dead, oldest)) = store.depth(&self.name).await {
            let age = oldest.map_or(0, |t| (crate::clock::unix_ms() - t).max(0) as u64);
            self.worker
                .metrics
                .queue_depth(&self.name, pending, dead, Duration::from_millis(age));
        }
    }

    /// A delivery ended: its outcome is owed to the store, or there is
    /// nothing to record (its claim was lost, or its replay check failed).
    fn ended(&mut self, done: Result<Done, JoinError>) {
        let done = match done {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(route = %self.name, "queue: a delivery task failed: {e}");
                return;
            }
        };
        if done.outcome.is_some() {
            self.check_failures = 0;
            self.owed.push(done);
            return;
        }
        lock(&self.held).remove(&done.id);
        if done.check_failed {
            self.check_failures += 1;
            let wait = backoff(&self.route.retry, self.check_failures, jitter());
            self.claim_after = Instant::now() + wait;
        }
    }

    /// Write every owed outcome in one transaction; whether it was written.
    /// The first failure in a row is logged, and the gauge says how many
    /// are owed; the caller waits with the route's backoff and tries again.
    async fn record(&mut self) -> bool {
        let Some(store) = self.store.clone() else {
            self.owed.clear();
            return true;
        };
        let outcomes = self.owed.iter().filter_map(|d| d.outcome.clone()).collect();
        let metrics = &self.worker.metrics;
        if let Err(e) = store.record(outcomes, crate::clock::unix_ms()).await {
            self.write_failures += 1;
            metrics.queue_unrecorded(&self.name, self.owed.len());
            if self.write_failures == 1 {
                tracing::error!(
                    route = %self.name,
                    owed = self.owed.len(),
                    "queue: cannot record what came of deliveries; nothing new is delivered until the store takes writes again (retried with the route's backoff): {e}"
                );
            }
            return false;
        }
        if self.write_failures > 0 {
            tracing::info!(route = %self.name, failures = self.write_failures, "queue: the store records again; the owed outcomes are written");
            self.write_failures = 0;
            metrics.queue_unrecorded(&self.name, 0);
        }
        let mut held = lock(&self.held);
        for d in self.owed.drain(..) {
            held.remove(&d.id);
            metrics.delivery_attempt(&self.route.name, d.kind);
            let (route, id, attempts) = (&self.route.name, d.id, d.attempts);
            match d.kind {
                "dead" => tracing::warn!(route = %route, id, attempts, "{}", d.message),
                _ => tracing::info!(route = %route, id, attempts, "{}", d.message),
            }
        }
        true
    }

    /// Wait the route's backoff after a failed write, taking in the
    /// deliveries that end meanwhile (their outcomes join the owed ones).
    async fn pause(&mut self) {
        let until = Instant::now() + backoff(&self.route.retry, self.write_failures, jitter());
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return,
                Some(done) = self.running.join_next() => self.ended(done),
            }
        }
    }

    /// The worker stops: give back what it claimed and never started (on
    /// PostgreSQL another worker need not wait for the lease).
    async fn release(&mut self) {
        let outcomes: Vec<Outcome> = self
            .waiting
            .drain(..)
            .map(|c| Outcome::Released(c.id))
            .collect();
        if let (false, Some(store @ Store::Postgres(_))) = (outcomes.is_empty(), self.store.clone())
        {
            if let Err(e) = store.record(outcomes, crate::clock::unix_ms()).await {
                tracing::warn!(route = %self.name, "queue: could not give back unstarted claims (their lease will lapse): {e}");
            }
        }
        lock(&self.held).clear();
    }
}

fn jitter() -> f64 {
    rand::rng().random()
}

/// Renew the claims the worker holds, every `every`: a slow receiver never
/// lets another instance take (and deliver again) a callback this one is
/// still delivering. A claim another instance holds now is not renewed and
/// its delivery is cut; so is one that cannot be renewed before it lapses.
async fn heartbeat(store: Store, held: Held, every: Duration, lease: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let ids: Vec<i64> = lock(&held).keys().copied().collect();
        if ids.is_empty() {
            continue;
        }
        let now = crate::clock::unix_ms();
        let renewed = tokio::time::timeout(every, store.renew(ids.clone(), now)).await;
        let mut held = lock(&held);
        match renewed {
            Ok(Ok(kept)) => {
                for id in ids {
                    let Some(h) = held.get_mut(&id) else { continue };
                    if kept.contains(&id) {
                        h.until_ms = now + lease.as_millis() as i64;
                    } else if !h.cancel.is_cancelled() {
                        tracing::warn!(id, "queue: this instance no longer holds the claim on a callback; its delivery is cut");
                        h.cancel.cancel();
                    }
                }
            }
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {every:?}"),
                };
                tracing::warn!("queue: could not renew the claims of deliveries in flight: {why}");
                // The next renewal may end (sleep, then no answer) two periods from now.
                let soon = crate::clock::unix_ms() + 2 * every.as_millis() as i64;
                for (id, h) in held.iter().filter(|(_, h)| h.until_ms <= soon) {
                    if !h.cancel.is_cancelled() {
                        tracing::warn!(id, "queue: the claim lapses before it can be renewed; the delivery is cut (another instance may take it)");
                        h.cancel.cancel();
                    }
                }
            }
        }
    }
}
