//! Listeners, the accept loop, TLS handshakes under a timeout, HTTP/1.1 and
//! h2 via hyper-util's auto builder, SIGHUP reload and SIGTERM drain.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, Gateway};
use crate::service::{self, ConnInfo, Shared};

/// h2 streams one client may have open at once.
const H2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Bound on an h2 header block.
const H2_MAX_HEADER_LIST_SIZE: u32 = 64 * 1024;
/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Https,
    Http,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Https => "https",
            Proto::Http => "http",
        }
    }
}

/// Load the config, bind, serve until SIGTERM/SIGINT, then drain.
pub async fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    log_warnings(&config);
    let listen = config.listen.clone();
    let max_connections = config.gateway.max_connections;
    let shared = Arc::new(Shared::new(config));

    let mut listeners = Vec::new();
    for (addr, proto) in [(listen.https, Proto::Https), (listen.http, Proto::Http)] {
        let Some(addr) = addr else { continue };
        let listener = bind(addr, proto).await?;
        tracing::info!(listener = proto.name(), addr = %listener.local_addr()?, "listening");
        listeners.push((listener, proto));
    }

    let limit = Arc::new(Semaphore::new(max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut loops = Vec::new();
    for (listener, proto) in listeners {
        loops.push(tokio::spawn(accept_loop(
            listener,
            proto,
            shared.clone(),
            limit.clone(),
            stop_rx.clone(),
        )));
    }

    wait_for_stop(&shared, config_path.to_owned()).await?;

    tracing::info!("stopping: no new connections; draining the open ones");
    let _ = stop_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn bind(addr: SocketAddr, proto: Proto) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind listen.{} = \"{addr}\" (in use, or a privileged port without CAP_NET_BIND_SERVICE?)", proto.name()))
}

fn log_warnings(config: &Config) {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
}

/// Serve SIGHUP reloads until SIGTERM or SIGINT arrives.
async fn wait_for_stop(shared: &Shared, path: PathBuf) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => reload(shared, &path),
        }
    }
}

/// Swap in a freshly loaded config; a broken one is refused and the old one keeps serving.
fn reload(shared: &Shared, path: &Path) {
    match Config::load(path) {
        Ok(new) => {
            let old = shared.config.load();
            if new.listen != old.listen {
                tracing::warn!("[listen] changed: listeners are kept as they are until a restart");
            }
            if new.gateway.max_connections != old.gateway.max_connections {
                tracing::warn!("gateway.max_connections changed: takes effect at the next restart");
            }
            log_warnings(&new);
            shared.config.store(Arc::new(new));
            tracing::info!(config = %path.display(), "config reloaded");
        }
        Err(e) => tracing::error!("reload refused, the previous config keeps serving: {e}"),
    }
}

async fn accept_loop(
    listener: TcpListener,
    proto: Proto,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    accept_until_stopped(&listener, proto, &shared, &limit, &graceful, &mut stop).await;
    drop(listener);
    let drain = shared.config.load().gateway.drain_timeout;
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = proto.name(),
            "drain_timeout reached; closing the remaining connections"
        );
    }
}

async fn accept_until_stopped(
    listener: &TcpListener,
    proto: Proto,
    shared: &Arc<Shared>,
    limit: &Arc<Semaphore>,
    graceful: &GracefulShutdown,
    stop: &mut watch::Receiver<bool>,
) {
    loop {
        // Past max_connections, new clients wait in the kernel's backlog.
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(listener = proto.name(), "accept failed: {e}");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            serve_connection(tcp, peer, proto, shared, watcher).await;
        });
    }
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    proto: Proto,
    shared: Arc<Shared>,
    watcher: Watcher,
) {
    let config = shared.config.load_full();
    let builder = http_builder(&config.gateway);
    let info = ConnInfo {
        peer,
        proto: proto.name(),
    };
    let svc = {
        let shared = shared.clone();
        service_fn(move |req| service::handle(shared.clone(), info, req))
    };
    let result = match proto {
        Proto::Http => {
            watcher
                .watch(builder.serve_connection(TokioIo::new(tcp), svc))
                .await
        }
        Proto::Https => {
            let Some(tls) = config.tls.as_ref() else {
                return;
            };
            let acceptor = TlsAcceptor::from(tls.server_config.clone());
            let stream = match tokio::time::timeout(
                config.gateway.tls_handshake_timeout,
                acceptor.accept(tcp),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            drop(config);
            watcher
                .watch(builder.serve_connection(TokioIo::new(stream), svc))
                .await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "connection ended with an error: {e}");
    }
}

fn http_builder(gateway: &Gateway) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper runs this timer while a keep-alive connection waits for its
        // next request too, so it also bounds idle HTTP/1.1 connections.
        .header_read_timeout(gateway.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST_SIZE);
    builder
}
