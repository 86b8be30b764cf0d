//! The I/O shell: listeners (bound here, or passed by systemd socket
//! activation), one serving thread per core, connections (PROXY header, TLS,
//! HTTP/1.1 and h2), the idle watchdog, the admin listener, sd_notify,
//! SIGHUP reload and SIGTERM drain. It only calls [`crate::proxy`].

mod admin;
mod connection;
mod listeners;
mod parking;
pub mod proxy_protocol;
mod signals;
mod threads;
mod watchdog;

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use sd_notify::NotifyState;
use tokio::sync::{watch, Semaphore};

use crate::config::Config;
use crate::state::Shared;
use listeners::{bind, inherited_listeners, Kind};
use signals::{log_warnings, notify, start_queue, Signals};
use threads::{serve_thread, Balance, Serving};

/// How a connection ended badly: hyper's errors and the service's, boxed.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Load the config, take or bind the listeners, serve until SIGTERM/SIGINT,
/// then drain. Connections are served by `threads` threads (default: one
/// per core), each with its own single-threaded runtime accepting on the
/// shared listeners, as nginx's workers do: a request and its upstream
/// exchange stay on one thread. Signals, reloads and queue delivery run on
/// the calling runtime.
pub async fn run(config_path: &Path, threads: Option<usize>) -> anyhow::Result<()> {
    // Handlers first: a SIGHUP right after READY=1 must reload, not kill.
    let signals = Signals::install()?;
    let config = Config::load(config_path)?;
    log_warnings(&config);
    // Planted or foreign state is a reason not to start, not to serve it.
    for (what, dir) in config.state_dirs() {
        crate::trusted::inspect_dir(&dir).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    }
    let shared = Arc::new(Shared::new(config));
    let listeners = listeners(&shared.config.load()).await?;
    listeners::note_serving(&listeners)?;
    listeners::trial_on_loopback_only(&shared.config.load())?;
    if let Some((l, _)) = listeners.iter().find(|(_, k)| *k == Kind::Https) {
        let port = l.local_addr()?.port();
        shared
            .https_port
            .store(port, std::sync::atomic::Ordering::Relaxed);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let workers = start_threads(&shared, &listeners, threads, stop_rx)?;
    // Only the threads' copies remain, so stopping them closes the sockets.
    drop(listeners);
    start_queue(&shared);
    crate::acme::reconcile(&shared.acme_manager());
    crate::lists::spawn(shared.list_refresher());
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);

    signals.serve_until_stop(&shared, config_path).await;

    notify(&[NotifyState::Stopping, NotifyState::Status("draining")]);
    tracing::info!("stopping: no new connections; draining the open ones");
    shared.stopping.cancel();
    let _ = stop_tx.send(true);
    // Queue deliveries under way finish too, within the same drain_timeout.
    shared.deliveries.close();
    let drain = shared.config.load().gateway.drain_timeout;
    let deliveries = tokio::time::timeout(drain, shared.deliveries.wait());
    for done in workers {
        let _ = done.await;
    }
    if deliveries.await.is_err() {
        tracing::warn!("drain_timeout reached; queue deliveries still under way are cut (their callbacks stay stored)");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The listeners systemd passed, else those `[listen]` names, bound here.
async fn listeners(config: &Config) -> anyhow::Result<Vec<(std::net::TcpListener, Kind)>> {
    let mut inherited = inherited_listeners()?;
    let mut listeners = Vec::new();
    for kind in Kind::ALL {
        let listener = match (inherited.remove(kind.name()), kind.configured(config)) {
            (Some(l), _) => l,
            (None, Some(addr)) => bind(addr, kind).await?.into_std()?,
            (None, None) => continue,
        };
        if kind == Kind::Https && config.tls.is_none() {
            bail!(
                "systemd passed an https listener but {} has no [tls] table: add cert and key",
                config.path.display()
            );
        }
        listener.set_nonblocking(true)?;
        tracing::info!(listener = kind.name(), addr = %listener.local_addr()?, "listening");
        listeners.push((listener, kind));
    }
    if let Some(name) = inherited.keys().next() {
        bail!("systemd passed a listener named {name:?}; name each socket https, http or admin (FileDescriptorName=)");
    }
    Ok(listeners)
}

/// Start the serving threads; each resolves its receiver when it has drained.
fn start_threads(
    shared: &Arc<Shared>,
    listeners: &[(std::net::TcpListener, Kind)],
    threads: usize,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::sync::oneshot::Receiver<()>>> {
    let limit = Arc::new(Semaphore::new(shared.config.load().gateway.max_connections));
    let admin_limit = Arc::new(Semaphore::new(threads::ADMIN_CONNECTIONS));
    let (balance, inboxes) = Balance::new(threads);
    let mut workers = Vec::new();
    for (i, inbox) in inboxes.into_iter().enumerate() {
        let mine = listeners
            .iter()
            .map(|(l, kind)| Ok((l.try_clone()?, *kind)))
            .collect::<std::io::Result<Vec<_>>>()?;
        let serving = Serving {
            shared: shared.clone(),
            limit: limit.clone(),
            admin_limit: admin_limit.clone(),
            balance: balance.clone(),
            me: i,
        };
        let stop = stop.clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("callgate-{i}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => return tracing::error!("cannot start connection thread {i}: {e}"),
                };
                runtime.block_on(serve_thread(serving, mine, inbox, stop));
                // Connections still open after drain_timeout are dropped
                // here, before the process is told this thread is done: a
                // request cut this way still writes its log line.
                runtime.shutdown_timeout(std::time::Duration::from_millis(200));
                drop(done_tx);
            })
            .context("cannot start a connection thread")?;
        workers.push(done_rx);
    }
    Ok(workers)
}
