//! Idle upstream connections, per serving thread and upstream (with its TLS
//! configuration), kept at most a minute and swept when there is no traffic:
//! HTTP/1.1 connections, each carrying one request at a time, and one h2
//! connection per upstream (where the receiver chose h2 by ALPN) that every
//! request shares.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use http::uri::Authority;
use hyper::client::conn::{http1, http2};

use super::body::Tracked;
use crate::config::upstream_tls::UpstreamTls;
use crate::config::Upstream;

/// How long an idle pooled upstream connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per upstream and thread; enough for the concurrency a gateway sees.
const POOL_MAX_IDLE_PER_HOST: usize = 256;

/// An HTTP/1.1 connection's sender: one request at a time.
pub(super) type Sender = http1::SendRequest<Tracked>;
/// An h2 connection's sender: cloned for every request it carries.
pub(super) type Multiplexed = http2::SendRequest<Tracked>;

struct Idle {
    sender: Sender,
    since: Instant,
}

impl Idle {
    /// Still open at the upstream's end, and not kept past the idle timeout.
    fn usable(&self) -> bool {
        !self.sender.is_closed() && self.since.elapsed() < POOL_IDLE_TIMEOUT
    }
}

/// An h2 connection and when it last carried a request.
struct Shared {
    sender: Multiplexed,
    since: Instant,
}

impl Shared {
    fn usable(&self) -> bool {
        !self.sender.is_closed() && self.since.elapsed() < POOL_IDLE_TIMEOUT
    }
}

/// What a TLS upstream chose by ALPN, and the gate through which one
/// request at a time opens a connection to it while it may choose h2: the
/// requests that waited then share that one, rather than a burst opening
/// a connection each.
struct Gate {
    h1: bool,
    lock: Arc<tokio::sync::Mutex<()>>,
    since: Instant,
}

/// The gate a request holds while it opens a connection.
pub(super) type Opening = tokio::sync::OwnedMutexGuard<()>;

/// One thread's idle upstream connections by upstream, newest last, its
/// h2 connections and its TLS upstreams' gates. A gateway has a handful of
/// upstreams: a list beats hashing the key twice per request.
#[derive(Default)]
pub(super) struct Pool {
    idle: Mutex<Vec<(Key, VecDeque<Idle>)>>,
    shared: Mutex<Vec<(Key, Shared)>>,
    gates: Mutex<Vec<(Key, Gate)>>,
}

impl Pool {
    /// This thread's pool, with its sweeper started on first use.
    pub(super) fn current() -> Arc<Pool> {
        thread_local! {
            static POOL: Arc<Pool> = Pool::start();
        }
        POOL.with(Arc::clone)
    }

    fn start() -> Arc<Pool> {
        let pool = Arc::new(Pool::default());
        // Without traffic nothing would take idle connections out, so a
        // sweeper closes the expired ones. It ends with the runtime.
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(sweep(Arc::downgrade(&pool)));
        }
        pool
    }

    /// The newest idle connection to `key` that is still open.
    pub(super) fn take(&self, key: &Key) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let (_, queue) = idle.iter_mut().find(|(k, _)| same(k, key))?;
        std::iter::from_fn(|| queue.pop_back())
            .find(Idle::usable)
            .map(|i| i.sender)
    }

    pub(super) fn put(&self, key: Key, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let queue = match idle.iter().position(|(k, _)| same(k, &key)) {
            Some(i) => &mut idle[i].1,
            None => {
                idle.push((key, VecDeque::new()));
                &mut idle.last_mut().expect("just pushed").1
            }
        };
        if queue.len() < POOL_MAX_IDLE_PER_HOST {
            queue.push_back(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// `key`'s h2 connection, if it has one that is still open (its idle
    /// time starts again).
    pub(super) fn multiplexed(&self, key: &Key) -> Option<Multiplexed> {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let i = shared.iter().position(|(k, _)| same(k, key))?;
        if !shared[i].1.usable() {
            shared.swap_remove(i);
            return None;
        }
        shared[i].1.since = Instant::now();
        Some(shared[i].1.sender.clone())
    }

    /// A new h2 connection to `key`, for the requests that follow (it
    /// replaces an older one, which closes when its last request is done).
    pub(super) fn share(&self, key: &Key, sender: Multiplexed) {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let entry = Shared {
            sender,
            since: Instant::now(),
        };
        match shared.iter().position(|(k, _)| same(k, key)) {
            Some(i) => shared[i].1 = entry,
            None => shared.push((key.clone(), entry)),
        }
    }

    /// For a TLS upstream that chose h2 or has not chosen yet, wait for
    /// its gate; `None` when there is no need (http, or HTTP/1.1 chosen).
    pub(super) async fn opening(&self, key: &Key) -> Option<Opening> {
        let held = self.gate(key)?.lock_owned().await;
        // It may have chosen HTTP/1.1 while this request waited.
        self.gate(key).map(|_| held)
    }

    fn gate(&self, key: &Key) -> Option<Arc<tokio::sync::Mutex<()>>> {
        key.tls.as_ref()?;
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        let i = match gates.iter().position(|(k, _)| same(k, key)) {
            Some(i) => i,
            None => {
                let gate = Gate {
                    h1: false,
                    lock: Arc::default(),
                    since: Instant::now(),
                };
                gates.push((key.clone(), gate));
                gates.len() - 1
            }
        };
        let gate = &mut gates[i].1;
        gate.since = Instant::now();
        (!gate.h1).then(|| gate.lock.clone())
    }

    /// What `key` chose by ALPN on a connection that offered h2.
    pub(super) fn chose(&self, key: &Key, h1: bool) {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, gate)) = gates.iter_mut().find(|(k, _)| same(k, key)) {
            gate.h1 = h1;
        }
    }

    /// Drop the connections that expired or were closed by the upstream
    /// (the oldest are at the front), and the gates no one used lately.
    fn sweep(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        for (_, queue) in idle.iter_mut() {
            queue.retain(Idle::usable);
        }
        idle.retain(|(_, q)| !q.is_empty());
        drop(idle);
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        shared.retain(|(_, s)| s.usable());
        drop(shared);
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates.retain(|(_, g)| {
            Arc::strong_count(&g.lock) > 1 || g.since.elapsed() < POOL_IDLE_TIMEOUT
        });
    }
}

/// A pool's key: where, and (https) with which TLS configuration: two
/// routes to one receiver with different roots or client certificates
/// never share a connection.
#[derive(Clone)]
pub(super) struct Key {
    pub(super) authority: Authority,
    pub(super) tls: Option<Arc<UpstreamTls>>,
}

impl Key {
    pub(super) fn of(upstream: &Upstream) -> Key {
        Key {
            authority: upstream.authority.clone(),
            tls: upstream.tls.clone(),
        }
    }
}

/// Keys come from the config's parsed upstreams: equal bytes suffice (two
/// spellings of one host just get a pool each), and cost less than the
/// case-insensitive `==` of `Authority`. The TLS configuration is the same
/// one (kept alive by the key, so its address is never reused).
fn same(a: &Key, b: &Key) -> bool {
    a.authority.as_str() == b.authority.as_str()
        && match (&a.tls, &b.tls) {
            (None, None) => true,
            (Some(x), Some(y)) => Arc::ptr_eq(x, y),
            _ => false,
        }
}

async fn sweep(pool: Weak<Pool>) {
    let mut every = tokio::time::interval(POOL_IDLE_TIMEOUT / 4);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match pool.upgrade() {
            Some(pool) => pool.sweep(),
            None => return,
        }
    }
}
