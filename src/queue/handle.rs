//! The queue as requests and its background work share it: the store
//! (opened on first use, and again when `[queue]` changes), the wake-up of
//! each route's worker, and the running workers with their stop signals.
//! A worker gets a [`Worker`]: this, the config, the metrics and the stop
//! signal, never the whole shared state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::store::{Store, StoreError};
use crate::config::{Config, QueueBackend};
use crate::metrics::Metrics;

/// The queue's shared parts; cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Queue(Arc<Inner>);

#[derive(Default)]
struct Inner {
    store: Mutex<Option<Store>>,
    wakes: Mutex<HashMap<String, Arc<Notify>>>,
    /// Running workers by route (housekeeping under ""), each with its stop signal.
    workers: Mutex<HashMap<String, CancellationToken>>,
    /// Each route's turn: held by its worker from its first claim until its
    /// last delivery is recorded, so a route removed and restored by reloads
    /// never has two workers delivering.
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Queue {
    /// The store `backend` names, opening it if needed. An error (unwritable
    /// directory, bad URL) is retried on the next call.
    pub(crate) fn store(&self, backend: &QueueBackend) -> Result<Store, StoreError> {
        let mut slot = lock(&self.0.store);
        if let Some(store) = slot.as_ref().filter(|s| s.is(backend)) {
            return Ok(store.clone());
        }
        let store = Store::open(backend)?;
        *slot = Some(store.clone());
        Ok(store)
    }

    /// The notifier that wakes a route's delivery worker.
    pub(crate) fn wake(&self, route: &str) -> Arc<Notify> {
        lock(&self.0.wakes)
            .entry(route.to_owned())
            .or_default()
            .clone()
    }

    /// The route's turn (see `Inner::turns`).
    pub(super) fn turn(&self, route: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.0.turns)
            .entry(route.to_owned())
            .or_default()
            .clone()
    }

    pub(super) fn workers(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        lock(&self.0.workers)
    }
}

/// What the queue's background work is handed.
#[derive(Clone)]
pub(crate) struct Worker {
    /// The running config; each pass takes a snapshot.
    pub(crate) config: Arc<ArcSwap<Config>>,
    pub(crate) queue: Queue,
    pub(crate) metrics: Arc<Metrics>,
    /// Each route's receiver protection, shared with inline deliveries.
    pub(crate) shields: Arc<crate::shield::Shields>,
    /// Cancelled when callgate stops: the parent of every worker's token.
    pub(crate) stopping: CancellationToken,
    /// The workers, so that stopping can wait for deliveries under way.
    pub(crate) deliveries: tokio_util::task::TaskTracker,
}

impl Worker {
    /// The store the running config names.
    pub(super) fn store(&self) -> Result<Store, StoreError> {
        self.queue.store(&self.config.load().queue)
    }
}
