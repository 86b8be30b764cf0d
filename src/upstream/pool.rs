//! Idle upstream connections, per serving thread and upstream (with its TLS
//! configuration), kept at most a minute and swept when there is no traffic.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use http::uri::Authority;
use hyper::client::conn::http1::SendRequest;

use super::body::Tracked;
use crate::config::upstream_tls::UpstreamTls;
use crate::config::Upstream;

/// How long an idle pooled upstream connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per upstream and thread; enough for the concurrency a gateway sees.
const POOL_MAX_IDLE_PER_HOST: usize = 256;

pub(super) type Sender = SendRequest<Tracked>;

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

/// One thread's idle upstream connections by upstream, newest last. A
/// gateway has a handful of upstreams: a list beats hashing the key twice
/// per request.
#[derive(Default)]
pub(super) struct Pool {
    idle: Mutex<Vec<(Key, VecDeque<Idle>)>>,
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

    /// Drop the connections that expired or were closed by the upstream
    /// (the oldest are at the front).
    fn sweep(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        for (_, queue) in idle.iter_mut() {
            queue.retain(Idle::usable);
        }
        idle.retain(|(_, q)| !q.is_empty());
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
