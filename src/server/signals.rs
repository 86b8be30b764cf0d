//! The signals callgate acts on: SIGHUP reloads config, secrets and
//! certificates; SIGTERM and SIGINT stop it. And what systemd is told.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use sd_notify::NotifyState;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::config::Config;
use crate::queue;
use crate::state::Shared;

/// The signals callgate acts on.
pub(super) struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    pub(super) fn install() -> anyhow::Result<Signals> {
        let on = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("cannot install the {name} handler"))
        };
        Ok(Signals {
            term: on(SignalKind::terminate(), "SIGTERM")?,
            int: on(SignalKind::interrupt(), "SIGINT")?,
            hup: on(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    /// Serve SIGHUP reloads until SIGTERM or SIGINT arrives.
    pub(super) async fn serve_until_stop(mut self, shared: &Arc<Shared>, path: &Path) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => reload(shared, path),
            }
        }
    }
}

/// Swap in a freshly loaded config (secrets and certificates included); a
/// broken one is refused and the old one keeps serving. Requests in flight
/// keep the snapshot they started with.
fn reload(shared: &Arc<Shared>, path: &Path) {
    let mut states = vec![NotifyState::Reloading];
    states.extend(NotifyState::monotonic_usec_now().ok());
    notify(&states);
    let loaded = Config::load(path)
        .map_err(anyhow::Error::from)
        .and_then(|new| {
            super::listeners::trial_on_loopback_only(&new)?;
            Ok(new)
        });
    match loaded {
        Ok(new) => {
            let old = shared.config.load();
            if new.listen != old.listen {
                tracing::warn!("[listen] changed: listeners are kept as they are until a restart");
            }
            if new.gateway.max_connections != old.gateway.max_connections {
                tracing::warn!("gateway.max_connections changed: takes effect at the next restart");
            }
            log_warnings(&new);
            shared.install(new);
            start_queue(shared);
            crate::acme::reconcile(&shared.acme_manager());
            shared.metrics.reload(true);
            shared.reloaded(None);
            tracing::info!(config = %path.display(), "config reloaded");
        }
        Err(e) => {
            shared.metrics.reload(false);
            shared.reloaded(Some(e.to_string()));
            tracing::error!("reload refused, the previous config keeps serving: {e}");
        }
    }
    // SIGHUP also fetches every address list again, reload or not.
    shared.ip_lists.refresh_now();
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// Tell systemd (when it is listening: NOTIFY_SOCKET) how the service is doing.
pub(super) fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("sd_notify failed: {e}");
    }
}

pub(super) fn log_warnings(config: &Config) {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
}

/// Open the callback store (when a route needs it) and start delivery workers.
/// A store that cannot be opened is logged; queue routes answer 503 until it can.
pub(super) fn start_queue(shared: &Arc<Shared>) {
    if shared.config.load().needs_store() {
        match shared.store() {
            Ok(store) => tracing::info!(store = %store.announce(), "callback store open"),
            Err(e) => tracing::error!("callback store unavailable, queue routes answer 503: {e}"),
        }
    }
    // Also when no route needs the store any more: its workers must stop.
    queue::reconcile(&shared.queue_worker());
}
