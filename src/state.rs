//! What every request and every background task shares: the swappable
//! config, the metrics, brute-force damping, the callback store, and the
//! stop signals of background work; and the gateway's runtime state that
//! is not config (the secrets providers handed over in their handshakes).

use std::path::Path;
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::acme::live::Acme;
use crate::acme::manager::Manager;
use crate::budget::Budget;
use crate::config::{Config, Route};
use crate::crypto::Key;
use crate::damping::Damper;
use crate::learned::{LearnedError, Stores};
use crate::lists::{Lists, Refresher};
use crate::metrics::Metrics;
use crate::queue::{Queue, Store, StoreError, Worker};
use crate::recent::Recent;
use crate::shield::Shields;

/// State every request shares.
pub(crate) struct Shared {
    /// Each request takes one snapshot at its start and keeps it to its end,
    /// so a reload never changes a request halfway.
    pub(crate) config: Arc<ArcSwap<Config>>,
    pub(crate) metrics: Arc<Metrics>,
    /// Request-body bytes held in memory; replaced when a reload changes its limits.
    pub(crate) budget: ArcSwap<Budget>,
    /// Brute-force damping, when configured; survives reloads that keep its settings.
    pub(crate) damper: ArcSwapOption<Damper>,
    /// The callback store (opened on first use, and again if `[queue]`
    /// changes), the workers' wake-ups and stop signals.
    queue: Queue,
    /// The https listener's port once bound (0: none), for http_redirect.
    pub(crate) https_port: std::sync::atomic::AtomicU16,
    /// Cancelled when callgate stops: the parent of every background task's token.
    pub(crate) stopping: CancellationToken,
    /// The queue's workers: stopping waits (up to drain_timeout) for the
    /// deliveries they have under way.
    pub(crate) deliveries: TaskTracker,
    /// Pass-through tunnels (WebSockets): stopping lets them run until
    /// they end or drain_timeout, as requests in flight.
    pub(crate) tunnels: TaskTracker,
    /// Certificates obtained by ACME and the challenge answers being
    /// published; kept across reloads.
    pub(crate) acme: Arc<Acme>,
    /// Each route's receiver protection, shared by inline and queued deliveries.
    pub(crate) shields: Arc<Shields>,
    /// Pass-through requests and tunnels held per client address.
    pub(crate) site_slots: Arc<crate::slots::Slots>,
    /// The console's memory of the last requests; None while it is off
    /// (then nothing is recorded).
    pub(crate) recent: ArcSwapOption<Recent>,
    /// The console's logged-in browsers.
    pub(crate) sessions: crate::sessions::Sessions,
    /// When the config was last loaded and, if it was refused, why.
    pub(crate) last_reload: std::sync::Mutex<Reloaded>,
    /// What each named address list (`"list:NAME"`) holds now; kept across reloads.
    pub(crate) ip_lists: Arc<Lists>,
    /// The secrets providers handed over in their handshakes (Asana), one
    /// store per `secret_file` the config names; kept across reloads.
    learned: Stores,
}

/// The last (re)load of the config, for the console's overview.
#[derive(Debug, Clone)]
pub(crate) struct Reloaded {
    /// Unix milliseconds.
    pub(crate) at_ms: i64,
    /// None: loaded and serving; Some: refused, and why.
    pub(crate) error: Option<String>,
    /// Whether it was a reload (SIGHUP) rather than the start.
    pub(crate) reload: bool,
}

impl Shared {
    /// Wrap a loaded config.
    pub(crate) fn new(config: Config) -> Shared {
        let metrics = Metrics::new();
        certificate_metrics(&metrics, &config);
        let ip_lists = Arc::new(Lists::default());
        ip_lists.install(&[], &config);
        let learned = Stores::default();
        install_learned(&learned, &config);
        Shared {
            learned,
            ip_lists,
            recent: ArcSwapOption::new(recent_for(&config, None)),
            sessions: crate::sessions::Sessions::default(),
            last_reload: std::sync::Mutex::new(Reloaded {
                at_ms: crate::clock::unix_ms(),
                error: None,
                reload: false,
            }),
            damper: ArcSwapOption::new(damper_for(&config)),
            budget: ArcSwap::new(budget_for(&config)),
            config: Arc::new(ArcSwap::from_pointee(config)),
            metrics: Arc::new(metrics),
            queue: Queue::default(),
            stopping: CancellationToken::new(),
            deliveries: TaskTracker::new(),
            tunnels: TaskTracker::new(),
            https_port: std::sync::atomic::AtomicU16::new(0),
            acme: Arc::default(),
            site_slots: Arc::default(),
            shields: Arc::default(),
        }
    }

    /// The callback store `[queue]` names, opening it if needed (a reload
    /// that changes `[queue]` opens the new one). An error (unwritable
    /// directory, bad URL) is retried on the next call.
    pub(crate) fn store(&self) -> Result<Store, StoreError> {
        self.queue.store(&self.config.load().queue)
    }

    /// The notifier that wakes a route's delivery worker.
    pub(crate) fn queue_wake(&self, route: &str) -> Arc<Notify> {
        self.queue.wake(route)
    }

    /// The narrow handle the queue's background work gets.
    pub(crate) fn queue_worker(&self) -> Worker {
        Worker {
            config: self.config.clone(),
            queue: self.queue.clone(),
            metrics: self.metrics.clone(),
            shields: self.shields.clone(),
            stopping: self.stopping.clone(),
            deliveries: self.deliveries.clone(),
        }
    }

    /// The narrow handle the address lists' refresh task gets.
    pub(crate) fn list_refresher(&self) -> Refresher {
        Refresher {
            config: self.config.clone(),
            lists: self.ip_lists.clone(),
            metrics: self.metrics.clone(),
            stopping: self.stopping.clone(),
        }
    }

    /// The narrow handle the certificate manager gets.
    pub(crate) fn acme_manager(&self) -> Manager {
        Manager {
            config: self.config.clone(),
            acme: self.acme.clone(),
            queue: self.queue.clone(),
            metrics: self.metrics.clone(),
            stopping: self.stopping.clone(),
        }
    }

    /// Make `config` the running config. Failure counts are kept unless the
    /// damping settings changed.
    pub(crate) fn install(&self, config: Config) {
        let keep = match (self.damper.load().as_deref(), &config.gateway.damping) {
            (Some(d), Some(s)) => d.settings() == s,
            (None, None) => true,
            _ => false,
        };
        if !keep {
            self.damper.store(damper_for(&config));
        }
        if self.budget.load().limits() != budget_for(&config).limits() {
            // Requests in flight give their bytes back to the budget they took them from.
            self.budget.store(budget_for(&config));
        }
        certificate_metrics(&self.metrics, &config);
        // A changed console password ends the sessions made with the old one.
        if self.config.load().admin.console_password != config.admin.console_password {
            self.sessions.end_all();
        }
        self.ip_lists.install(&self.config.load().ip_lists, &config);
        install_learned(&self.learned, &config);
        self.recent
            .store(recent_for(&config, self.recent.load_full()));
        self.config.store(Arc::new(config));
    }

    /// The keys the provider has handed over to this route so far (Asana's
    /// handshake): none unless it has a `secret_file`.
    pub(crate) fn learned_keys(&self, route: &Route) -> Option<Arc<Vec<Key>>> {
        let file = route.hmac.as_ref()?.secret_file.as_ref()?;
        self.learned.keys(file)
    }

    /// Keep a secret the provider handed over in its handshake, in the
    /// store of the route's `secret_file` (the file first).
    pub(crate) fn learn(&self, file: &Path, secret: &[u8]) -> Result<(), LearnedError> {
        self.learned.learn(file, secret)
    }

    /// Note a reload's result for the console.
    pub(crate) fn reloaded(&self, error: Option<String>) {
        *self.last_reload.lock().unwrap_or_else(|p| p.into_inner()) = Reloaded {
            at_ms: crate::clock::unix_ms(),
            error,
            reload: true,
        };
    }
}

/// The stores of every `secret_file` the config names, each re-read; a
/// file that cannot be read now (it was when the config loaded) keeps what
/// its store held, and says why in the log.
fn install_learned(stores: &Stores, config: &Config) {
    let files = config.routes.iter().filter_map(|r| {
        let h = r.hmac.as_ref()?;
        Some((h.secret_file.clone()?, h.algorithm))
    });
    for e in stores.install(files) {
        tracing::error!("handshake.secret_file: {e}");
    }
}

/// Each configured certificate's expiry, by the host names it serves.
fn certificate_metrics(metrics: &Metrics, config: &Config) {
    for (hosts, _, not_after) in config.tls.iter().flat_map(|t| &t.certificates) {
        for host in hosts {
            metrics.certificate_expiry(host, *not_after);
        }
    }
}

fn budget_for(config: &Config) -> Arc<Budget> {
    let g = &config.gateway;
    Budget::new(
        g.buffered_body_bytes,
        g.buffered_body_bytes_per_client,
        g.max_body_bytes,
    )
}

/// The console's request memory: kept across a reload that keeps its size,
/// none while the console is off.
fn recent_for(config: &Config, current: Option<Arc<Recent>>) -> Option<Arc<Recent>> {
    config.admin.console_password?;
    let cap = config.admin.requests_kept;
    match current {
        Some(r) if r.cap() == cap => Some(r),
        _ => Some(Arc::new(Recent::new(cap))),
    }
}

fn damper_for(config: &Config) -> Option<Arc<Damper>> {
    let settings = config.gateway.damping.clone()?;
    Some(Arc::new(Damper::new(settings)))
}
