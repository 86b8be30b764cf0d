//! Serving threads: one per core, each with its own single-threaded runtime
//! accepting on the shared listeners, as nginx's workers do, with new
//! connections handed to the least busy thread.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use super::connection::{serve_connection, Accepted};
use super::listeners::Kind;
use crate::proxy::Place;
use crate::state::Shared;

/// Connections the admin listener serves at once, outside `max_connections`.
pub(super) const ADMIN_CONNECTIONS: usize = 64;

/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// What a serving thread's tasks share.
#[derive(Clone)]
pub(super) struct Serving {
    pub(super) shared: Arc<Shared>,
    /// `max_connections`: the public listeners' places.
    pub(super) limit: Arc<Semaphore>,
    /// The admin listener's own places ([`ADMIN_CONNECTIONS`]): `/healthz`
    /// answers while the public listeners are full.
    pub(super) admin_limit: Arc<Semaphore>,
    pub(super) balance: Arc<Balance>,
    /// This thread's index in `balance`.
    pub(super) me: usize,
}

/// Spreads connections over the serving threads: each goes to the thread
/// with the fewest open. Threads accepting from one shared socket otherwise
/// keep what they grab, and the first to wake takes a burst of new
/// connections: one core ended up serving three quarters of the clients.
pub(super) struct Balance {
    open: Vec<AtomicUsize>,
    inboxes: Vec<mpsc::UnboundedSender<Handoff>>,
}

/// A connection accepted on one thread, to be served on another.
pub(super) struct Handoff {
    tcp: std::net::TcpStream,
    peer: SocketAddr,
    kind: Kind,
    permit: OwnedSemaphorePermit,
    open: Open,
}

impl Balance {
    pub(super) fn new(threads: usize) -> (Arc<Balance>, Vec<mpsc::UnboundedReceiver<Handoff>>) {
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
pub(super) async fn serve_thread(
    serving: Serving,
    listeners: Vec<(std::net::TcpListener, Kind)>,
    inbox: mpsc::UnboundedReceiver<Handoff>,
    stop: watch::Receiver<bool>,
) {
    // Every connection of this thread, so the drain can wait for them.
    let tracker = TaskTracker::new();
    let mut loops = tokio::task::JoinSet::new();
    for (listener, kind) in listeners {
        match TcpListener::from_std(listener) {
            Ok(l) => {
                loops.spawn(accept_loop(
                    l,
                    kind,
                    serving.clone(),
                    tracker.clone(),
                    stop.clone(),
                ));
            }
            Err(e) => tracing::error!(listener = kind.name(), "cannot serve: {e}"),
        }
    }
    loops.spawn(take_handoffs(inbox, serving.clone(), tracker.clone(), stop));
    // Each loop closes its socket as it ends: new clients then fail fast
    // instead of waiting in the backlog.
    while loops.join_next().await.is_some() {}
    // The connections saw the same stop: each finishes what is in flight.
    tracker.close();
    let drain = serving.shared.config.load().gateway.drain_timeout;
    let deadline = tokio::time::Instant::now() + drain;
    if tokio::time::timeout_at(deadline, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("drain_timeout reached; closing the remaining connections");
    }
    // Tunnels (WebSockets) outlive their connection's HTTP serving: they
    // get the same deadline. They run on their thread's runtime, so every
    // thread stays up until they are done or the deadline passed.
    let tunnels = &serving.shared.tunnels;
    tunnels.close();
    if tokio::time::timeout_at(deadline, tunnels.wait())
        .await
        .is_err()
        && serving.me == 0
    {
        tracing::warn!(
            tunnels = tunnels.len(),
            "drain_timeout reached; closing the remaining tunnels"
        );
    }
}

async fn accept_loop(
    listener: TcpListener,
    kind: Kind,
    serving: Serving,
    tracker: TaskTracker,
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
        let places = match kind {
            Kind::Admin => &serving.admin_limit,
            Kind::Http | Kind::Https => &serving.limit,
        };
        let permit = tokio::select! {
            p = places.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let _ = tcp.set_nodelay(true);
        let open = serving.balance.pick(serving.me);
        if open.thread == serving.me {
            let accepted = Accepted { tcp, peer, kind };
            spawn_serve(accepted, (permit, open), &serving, (&tracker, &stop));
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
    tracker: TaskTracker,
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
            Ok(tcp) => spawn_serve(
                Accepted {
                    tcp,
                    peer: h.peer,
                    kind: h.kind,
                },
                (h.permit, h.open),
                &serving,
                (&tracker, &stop),
            ),
            Err(e) => tracing::warn!(peer = %h.peer, "cannot serve a handed-over connection: {e}"),
        }
    }
}

/// Serve one connection on this thread; its place (the max_connections
/// permit, and `open`, which counts it on this thread) is held until it ends.
fn spawn_serve(
    accepted: Accepted,
    place: (OwnedSemaphorePermit, Open),
    serving: &Serving,
    (tracker, stop): (&TaskTracker, &watch::Receiver<bool>),
) {
    let shared = serving.shared.clone();
    let stop = stop.clone();
    tracker.spawn(async move {
        let _counted = shared.metrics.connection();
        let place: Place = Arc::new(place);
        serve_connection(accepted, &shared, stop, place).await;
    });
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
