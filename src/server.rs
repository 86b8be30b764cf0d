//! Listeners (bound here, or passed by systemd socket activation), one
//! serving thread per core with its own runtime and connections spread over
//! the threads by load, TLS handshakes under a timeout, HTTP/1.1 and h2 (chosen by ALPN on
//! TLS, sniffed on plain listeners), sd_notify, SIGHUP reload and SIGTERM drain.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use sd_notify::NotifyState;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::admin;
use crate::config::{Config, Gateway};
use crate::conn::{Activity, Tracked};
use crate::proxy_protocol;
use crate::service::{self, ConnInfo, Shared};

/// h2 streams one client may have open at once.
const H2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Https,
    Http,
    Admin,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Https, Kind::Http, Kind::Admin];

    /// Name in `[listen]` and in LISTEN_FDNAMES.
    fn name(self) -> &'static str {
        match self {
            Kind::Https => "https",
            Kind::Http => "http",
            Kind::Admin => "admin",
        }
    }

    fn configured(self, config: &Config) -> Option<SocketAddr> {
        match self {
            Kind::Https => config.listen.https,
            Kind::Http => config.listen.http,
            Kind::Admin => config.listen.admin,
        }
    }
}

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
    let shared = Arc::new(Shared::new(config));
    let config = shared.config.load_full();

    let mut inherited = inherited_listeners()?;
    let mut listeners = Vec::new();
    for kind in Kind::ALL {
        let listener = match (inherited.remove(kind.name()), kind.configured(&config)) {
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

    let limit = Arc::new(Semaphore::new(config.gateway.max_connections));
    drop(config);
    let (stop_tx, stop_rx) = watch::channel(false);
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
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
            balance: balance.clone(),
            me: i,
        };
        let stop = stop_rx.clone();
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
                drop(done_tx);
            })
            .context("cannot start a connection thread")?;
        workers.push(done_rx);
    }
    // Only the threads' copies remain, so stopping them closes the sockets.
    drop(listeners);
    start_queue(&shared);
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);

    signals.serve_until_stop(&shared, config_path).await;

    notify(&[NotifyState::Stopping, NotifyState::Status("draining")]);
    tracing::info!("stopping: no new connections; draining the open ones");
    let _ = stop_tx.send(true);
    for done in workers {
        let _ = done.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Open the callback store (when a route needs it) and start delivery workers.
/// A store that cannot be opened is logged; queue routes answer 503 until it can.
fn start_queue(shared: &Arc<Shared>) {
    if !shared.config.load().needs_store() {
        return;
    }
    match shared.store() {
        Ok(store) => tracing::info!(store = %store.path().display(), "callback store open"),
        Err(e) => tracing::error!("callback store unavailable, queue routes answer 503: {e}"),
    }
    crate::queue::worker::ensure_workers(shared);
}

/// Tell systemd (when it is listening: NOTIFY_SOCKET) how the service is doing.
fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!("sd_notify failed: {e}");
    }
}

/// Listeners passed by systemd socket activation, by their LISTEN_FDNAMES name.
fn inherited_listeners() -> anyhow::Result<HashMap<String, std::net::TcpListener>> {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|v| v.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    let mut out = HashMap::new();
    for i in 0..fds.len() {
        // Without names (an old systemd, or another supervisor) a single socket is the https one.
        let name = match names.get(i) {
            Some(n) => n.clone(),
            None if fds.len() == 1 => Kind::Https.name().to_owned(),
            None => bail!("systemd passed {} sockets without LISTEN_FDNAMES; set FileDescriptorName=https/http/admin", fds.len()),
        };
        let listener = fds
            .take_tcp_listener(i)
            .with_context(|| format!("socket {name:?} passed by systemd is not a TCP listener"))?
            .with_context(|| format!("socket {name:?} passed by systemd is missing"))?;
        out.insert(name, listener);
    }
    Ok(out)
}

/// Kernel queue of connections not yet accepted (also what max_connections leaves waiting).
const LISTEN_BACKLOG: u32 = 4096;

/// Bind with SO_REUSEPORT, so several callgate processes can share a port
/// and the kernel spreads connections over them.
async fn bind(addr: SocketAddr, kind: Kind) -> anyhow::Result<TcpListener> {
    let bound = (|| {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    })();
    bound.with_context(|| {
        format!("cannot bind listen.{} = \"{addr}\" (in use, or a privileged port without CAP_NET_BIND_SERVICE or callgate.socket?)", kind.name())
    })
}

fn log_warnings(config: &Config) {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
}

/// The signals callgate acts on.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
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
    async fn serve_until_stop(mut self, shared: &Arc<Shared>, path: &Path) {
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
            shared.install(new);
            start_queue(shared);
            shared.metrics.reload(true);
            tracing::info!(config = %path.display(), "config reloaded");
        }
        Err(e) => {
            shared.metrics.reload(false);
            tracing::error!("reload refused, the previous config keeps serving: {e}");
        }
    }
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// What a serving thread's tasks share.
#[derive(Clone)]
struct Serving {
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    balance: Arc<Balance>,
    /// This thread's index in `balance`.
    me: usize,
}

/// Spreads connections over the serving threads: each goes to the thread
/// with the fewest open. Threads accepting from one shared socket otherwise
/// keep what they grab, and the first to wake takes a burst of new
/// connections: one core ended up serving three quarters of the clients.
struct Balance {
    open: Vec<AtomicUsize>,
    inboxes: Vec<mpsc::UnboundedSender<Handoff>>,
}

/// A connection accepted on one thread, to be served on another.
struct Handoff {
    tcp: std::net::TcpStream,
    peer: SocketAddr,
    kind: Kind,
    permit: OwnedSemaphorePermit,
    open: Open,
}

impl Balance {
    fn new(threads: usize) -> (Arc<Balance>, Vec<mpsc::UnboundedReceiver<Handoff>>) {
        let (inboxes, receivers) = (0..threads).map(|_| mpsc::unbounded_channel()).unzip();
        let open = (0..threads).map(|_| AtomicUsize::new(0)).collect();
        (Arc::new(Balance { open, inboxes }), receivers)
    }

    /// The thread to serve a new connection (`me` on a tie), counted as open
    /// there for as long as the returned guard lives.
    fn pick(self: &Arc<Self>, me: usize) -> Open {
        let load = |i: usize| self.open[i].load(Ordering::Relaxed);
        let thread =
            (0..self.open.len()).fold(me, |best, i| if load(i) < load(best) { i } else { best });
        self.open[thread].fetch_add(1, Ordering::Relaxed);
        Open {
            balance: self.clone(),
            thread,
        }
    }
}

/// A connection counted as open on its thread; it travels with the
/// connection, so every way the connection ends uncounts it.
struct Open {
    balance: Arc<Balance>,
    thread: usize,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.balance.open[self.thread].fetch_sub(1, Ordering::Relaxed);
    }
}

/// One serving thread: its accept loops and the connections handed to it,
/// until stopped; then the drain of its open connections.
async fn serve_thread(
    serving: Serving,
    listeners: Vec<(std::net::TcpListener, Kind)>,
    inbox: mpsc::UnboundedReceiver<Handoff>,
    stop: watch::Receiver<bool>,
) {
    let graceful = Arc::new(GracefulShutdown::new());
    let mut loops = tokio::task::JoinSet::new();
    for (listener, kind) in listeners {
        match TcpListener::from_std(listener) {
            Ok(l) => {
                loops.spawn(accept_loop(
                    l,
                    kind,
                    serving.clone(),
                    graceful.clone(),
                    stop.clone(),
                ));
            }
            Err(e) => tracing::error!(listener = kind.name(), "cannot serve: {e}"),
        }
    }
    loops.spawn(take_handoffs(
        inbox,
        serving.clone(),
        graceful.clone(),
        stop,
    ));
    // Each loop closes its socket as it ends: new clients then fail fast
    // instead of waiting in the backlog.
    while loops.join_next().await.is_some() {}
    let Ok(graceful) = Arc::try_unwrap(graceful) else {
        return;
    };
    let drain = serving.shared.config.load().gateway.drain_timeout;
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain_timeout reached; closing the remaining connections");
    }
}

async fn accept_loop(
    listener: TcpListener,
    kind: Kind,
    serving: Serving,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(listener = kind.name(), "accept failed: {e}");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        // At max_connections this connection waits for a place, and the loop
        // accepts nothing more meanwhile: the rest wait in the kernel's backlog.
        // (Taking the place before accept() would let idle loops, one per
        // listener and thread, sit on places.)
        let permit = tokio::select! {
            p = serving.limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let _ = tcp.set_nodelay(true);
        let open = serving.balance.pick(serving.me);
        if open.thread == serving.me {
            spawn_serve(tcp, peer, kind, permit, open, &serving, &graceful);
            continue;
        }
        let target = open.thread;
        match tcp.into_std() {
            Ok(tcp) => {
                let handoff = Handoff {
                    tcp,
                    peer,
                    kind,
                    permit,
                    open,
                };
                // A thread that has stopped drops what it was sent.
                let _ = serving.balance.inboxes[target].send(handoff);
            }
            Err(e) => tracing::warn!(%peer, "cannot hand the connection over: {e}"),
        }
    }
}

/// Serve the connections other threads accepted for this one.
async fn take_handoffs(
    mut inbox: mpsc::UnboundedReceiver<Handoff>,
    serving: Serving,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let h = tokio::select! {
            h = inbox.recv() => match h {
                Some(h) => h,
                None => return,
            },
            _ = stop.changed() => return,
        };
        match TcpStream::from_std(h.tcp) {
            Ok(tcp) => spawn_serve(tcp, h.peer, h.kind, h.permit, h.open, &serving, &graceful),
            Err(e) => tracing::warn!(peer = %h.peer, "cannot serve a handed-over connection: {e}"),
        }
    }
}

/// Serve one connection on this thread; `open` counts it here until it ends.
fn spawn_serve(
    tcp: TcpStream,
    peer: SocketAddr,
    kind: Kind,
    permit: OwnedSemaphorePermit,
    open: Open,
    serving: &Serving,
    graceful: &GracefulShutdown,
) {
    let shared = serving.shared.clone();
    let watcher = graceful.watcher();
    tokio::spawn(async move {
        let (_permit, _open) = (permit, open);
        let _counted = shared.metrics.connection();
        serve_connection(tcp, peer, kind, &shared, watcher).await;
    });
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    kind: Kind,
    shared: &Arc<Shared>,
    watcher: Watcher,
) {
    let config = shared.config.load_full();
    let gateway = config.gateway.clone();
    let mut tcp = tcp;
    // Behind an L4 balancer the TCP peer is the balancer; the header names the client.
    let peer = if config.listen.proxy_protocol && kind != Kind::Admin {
        match proxy_protocol::read_header(&mut tcp, gateway.header_read_timeout).await {
            Ok(Some(client)) => client,
            Ok(None) => peer,
            Err(why) => {
                tracing::debug!(%peer, "closing: {why}");
                return;
            }
        }
    } else {
        peer
    };

    // Serve one connection, dropping it once it sits silent with nothing in
    // flight: header_read_timeout before its first request, idle_timeout after.
    macro_rules! serve {
        ($builder:expr, $io:expr, $handle:expr) => {{
            let activity = Activity::new();
            let svc = {
                let activity = activity.clone();
                service_fn(move |req| {
                    let in_flight = activity.request();
                    let response = $handle(req);
                    // hyper's HTTP/1.1 dispatcher keeps room for this future
                    // in every connection for its whole life, idle or not:
                    // boxed, the room is a pointer, not the 7 KiB the work
                    // needs while a request runs (70 MiB per 10,000 idle
                    // connections), for one allocation per request.
                    Box::pin(async move {
                        let response = response.await;
                        drop(in_flight);
                        response
                    })
                })
            };
            let builder = $builder;
            let conn =
                builder.serve_connection(TokioIo::new(Tracked::new($io, activity.clone())), svc);
            // Boxed, as is the handshake below: the connection's task then
            // holds only what each phase needs, not the largest of them all.
            let mut watched = Box::pin(watcher.watch(conn));
            tokio::select! {
                result = &mut watched => result.map_err(BoxError::from),
                _ = activity.idle(gateway.header_read_timeout, gateway.idle_timeout) => {
                    tracing::debug!(%peer, "closing a silent connection");
                    Ok(())
                }
            }
        }};
    }

    let result = match kind {
        Kind::Admin => {
            let shared = shared.clone();
            serve!(auto_builder(&gateway), tcp, |req| admin::handle(
                shared.clone(),
                req
            ))
        }
        Kind::Http => {
            let (shared, info) = (shared.clone(), ConnInfo::new(peer, "http"));
            serve!(auto_builder(&gateway), tcp, |req| service::handle(
                shared.clone(),
                info.clone(),
                req
            ))
        }
        Kind::Https => {
            // A reload swaps certificates for the connections that come after it.
            let Some(tls) = config.tls.as_ref() else {
                return;
            };
            let acceptor = TlsAcceptor::from(tls.server_config.clone());
            let stream = match Box::pin(tokio::time::timeout(
                gateway.tls_handshake_timeout,
                acceptor.accept(tcp),
            ))
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    shared.metrics.tls_handshake_failed();
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    shared.metrics.tls_handshake_failed();
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            drop(config);
            let (shared, info) = (shared.clone(), ConnInfo::new(peer, "https"));
            let handle = move |req| service::handle(shared.clone(), info.clone(), req);
            // ALPN has already named the protocol: serving it directly skips
            // sniffing the first bytes, whose replay buffer costs every
            // connection another 8 KiB for as long as it stays open.
            // Without ALPN a TLS client speaks HTTP/1.1 (RFC 9113 §3.2).
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                serve!(h2_builder(&gateway), stream, handle)
            } else {
                serve!(h1_builder(&gateway), stream, handle)
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "connection ended with an error: {e}");
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// One set of HTTP settings, applied to hyper's builders and to the auto
// builder's views of them (distinct types with the same methods).
macro_rules! h1_settings {
    ($builder:expr, $gateway:expr) => {
        $builder
            .timer(TokioTimer::new())
            // hyper runs this timer while a keep-alive connection waits for its
            // next request too, so it also bounds idle HTTP/1.1 connections.
            .header_read_timeout($gateway.header_read_timeout)
            .max_buf_size($gateway.max_header_bytes)
            .max_headers($gateway.max_headers)
            .keep_alive(true)
    };
}
macro_rules! h2_settings {
    ($builder:expr, $gateway:expr) => {
        $builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
            .max_header_list_size(u32::try_from($gateway.max_header_bytes).unwrap_or(u32::MAX))
    };
}

/// HTTP/1.1 and h2 on a plain listener, told apart by the first bytes.
fn auto_builder(gateway: &Gateway) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    h1_settings!(builder.http1(), gateway);
    h2_settings!(builder.http2(), gateway);
    builder
}

fn h1_builder(gateway: &Gateway) -> http1::Builder {
    let mut builder = http1::Builder::new();
    h1_settings!(builder, gateway);
    builder
}

fn h2_builder(gateway: &Gateway) -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    h2_settings!(builder, gateway);
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_the_least_busy_thread_and_stay_counted_until_closed() {
        let (balance, _inboxes) = Balance::new(3);
        // Open connections, as their guards.
        let mut held: Vec<Open> = Vec::new();
        let pick = |me: usize, held: &mut Vec<Open>| {
            held.push(balance.pick(me));
            held.last().expect("just pushed").thread
        };
        // Ties stay on the accepting thread: no hand-over without a reason.
        assert_eq!(pick(1, &mut held), 1);
        assert_eq!(pick(1, &mut held), 0);
        assert_eq!(pick(1, &mut held), 2);
        // A burst accepted by one thread is spread evenly.
        let picks: Vec<usize> = (0..6).map(|_| pick(0, &mut held)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        let open = |b: &Balance| -> Vec<usize> {
            b.open.iter().map(|o| o.load(Ordering::Relaxed)).collect()
        };
        assert_eq!(open(&balance), [3, 3, 3]);
        // Closing connections on thread 2 makes it the next choice.
        for _ in 0..2 {
            let i = held.iter().position(|o| o.thread == 2).expect("one on 2");
            held.swap_remove(i);
        }
        assert_eq!(open(&balance), [3, 3, 1]);
        assert_eq!(pick(0, &mut held), 2);
        assert_eq!(pick(0, &mut held), 2);
        assert_eq!(pick(0, &mut held), 0);
    }
}
