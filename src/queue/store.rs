//! The callback store as the rest of callgate sees it: one interface, two
//! backends. The embedded SQLite file (`sqlite.rs`, the default: one
//! machine, no server) and a PostgreSQL database several instances share
//! (`postgres.rs`: claims with a lease, so a callback is delivered by one
//! instance at a time and taken over when its instance dies). Both keep the
//! same rows: callbacks (never the token), and replay keys (`replay.rs`).

use std::sync::Arc;

use super::postgres::Postgres;
pub(crate) use super::replay::{Claim, ReplayClaim};
pub(crate) use super::rows::{from_lines, to_lines};
pub(crate) use super::rows::{
    Acted, Claimed, Enqueued, NewCallback, Outcome, State, StoreError, Stored,
};
use super::sqlite::Sqlite;
use crate::config::QueueBackend;

/// The store: SQLite or PostgreSQL behind one set of async calls.
#[derive(Clone)]
pub(crate) enum Store {
    Sqlite(Arc<Sqlite>),
    Postgres(Arc<Postgres>),
}

/// Run `$call` on the backend: SQLite's blocking call off the async
/// threads, PostgreSQL's directly. PostgreSQL's call is boxed: its future
/// (pool checkout, TLS, statement) is ~2 KiB, and every request future
/// that may touch the store (a callback's replay claim, its enqueue) would
/// otherwise carry that size, and copy it, on every request.
macro_rules! dispatch {
    ($self:ident, |$s:ident| $call:expr) => {
        match $self {
            Store::Sqlite(s) => {
                let $s = s.clone();
                blocking(move || $call).await
            }
            Store::Postgres($s) => Box::pin($call).await,
        }
    };
}

impl Store {
    /// The store `backend` names. PostgreSQL connects on first use.
    pub(crate) fn open(backend: &QueueBackend) -> Result<Store, StoreError> {
        Ok(match backend {
            QueueBackend::Sqlite { dir } => Store::Sqlite(Arc::new(Sqlite::open(dir)?)),
            QueueBackend::Postgres { url, tls, lease } => {
                Store::Postgres(Arc::new(Postgres::open(url, tls, *lease)?))
            }
        })
    }

    /// The PostgreSQL store, when it is one (the ACME state shares it).
    pub(crate) fn postgres(&self) -> Option<Arc<Postgres>> {
        match self {
            Store::Postgres(p) => Some(p.clone()),
            Store::Sqlite(_) => None,
        }
    }

    /// Where it is, for logs and `check` (never a password).
    pub(crate) fn describe(&self) -> String {
        match self {
            Store::Sqlite(s) => s.path().display().to_string(),
            Store::Postgres(p) => p.describe(),
        }
    }

    /// Where it is, for the log line that opens it: the first says when
    /// this process created it.
    pub(crate) fn announce(&self) -> String {
        match self {
            Store::Sqlite(s) if s.take_created() => format!(
                "{} (created now, 0600 in a 0700 directory)",
                s.path().display()
            ),
            _ => self.describe(),
        }
    }

    /// Whether this is the store `backend` names.
    pub(crate) fn is(&self, backend: &QueueBackend) -> bool {
        match (self, backend) {
            (Store::Sqlite(s), QueueBackend::Sqlite { dir }) => {
                s.path().parent() == Some(dir.as_path())
            }
            (Store::Postgres(p), QueueBackend::Postgres { url, tls, lease }) => {
                p.is(url, tls, *lease)
            }
            _ => false,
        }
    }

    /// Store a callback durably (committed) with its replay keys claimed;
    /// its id, or the copy that holds a key (then nothing is stored). Only
    /// then may the provider hear 202.
    pub(crate) async fn enqueue(
        &self,
        c: NewCallback,
        replay: Option<ReplayClaim>,
    ) -> Result<Enqueued, StoreError> {
        dispatch!(self, |s| s.enqueue(&c, replay.as_ref()))
    }

    /// Claim replay keys: all of them, or none and what holds one.
    pub(crate) async fn claim_replay(&self, claim: ReplayClaim) -> Result<Claim, StoreError> {
        dispatch!(self, |s| s.claim_replay(&claim))
    }

    /// A direct delivery ended: delivered (2xx, at this time) keeps the
    /// owner's keys for the window, `None` lets them go.
    pub(crate) async fn settle_replay(
        &self,
        route: String,
        owner: String,
        delivered_at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        dispatch!(self, |s| s.settle_replay(&route, &owner, delivered_at_ms))
    }

    /// Claim up to `limit` of a route's due callbacks, oldest first,
    /// passing over `skip` (this worker's own, still under way; PostgreSQL's
    /// claims pass over them anyway).
    pub(crate) async fn claim(
        &self,
        route: &str,
        limit: usize,
        now_ms: i64,
        skip: Vec<i64>,
    ) -> Result<Claimed, StoreError> {
        let route = route.to_owned();
        match self {
            Store::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.claim(&route, limit, now_ms, &skip)).await
            }
            Store::Postgres(p) => Box::pin(p.claim(&route, limit, now_ms)).await,
        }
    }

    /// Keep this instance's claims on these callbacks (still being
    /// delivered) for one more lease, so no other instance takes them
    /// meanwhile; the ids it still holds. SQLite has one process and no
    /// leases: it holds them all.
    pub(crate) async fn renew(&self, ids: Vec<i64>, now_ms: i64) -> Result<Vec<i64>, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(ids),
            Store::Postgres(p) => Box::pin(p.renew(&ids, now_ms)).await,
        }
    }

    /// How long a claim holds without renewal (SQLite: for ever).
    pub(crate) fn lease(&self) -> Option<std::time::Duration> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(p) => Some(p.lease()),
        }
    }

    /// Whether both are the same open store.
    pub(crate) fn same(&self, other: &Store) -> bool {
        match (self, other) {
            (Store::Sqlite(a), Store::Sqlite(b)) => Arc::ptr_eq(a, b),
            (Store::Postgres(a), Store::Postgres(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// How often a claim is renewed while its delivery runs (a third of
    /// the lease: two renewals may fail before another instance may take it).
    pub(crate) fn renew_every(&self) -> Option<std::time::Duration> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(p) => Some(p.lease() / 3),
        }
    }

    /// One callback by id.
    pub(crate) async fn get(&self, id: i64) -> Result<Option<Stored>, StoreError> {
        dispatch!(self, |s| s.get(id))
    }

    /// Callbacks, optionally of one route and state, oldest first.
    pub(crate) async fn list(
        &self,
        route: Option<String>,
        state: Option<State>,
    ) -> Result<Vec<Stored>, StoreError> {
        dispatch!(self, |s| s.list(route.as_deref(), state))
    }

    /// What came of claimed callbacks, in one transaction; the delivered
    /// ones at `at_ms`.
    pub(crate) async fn record(
        &self,
        outcomes: Vec<Outcome>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, |s| s.record(&outcomes, at_ms))
    }

    /// Make a dead (or waiting) callback pending again, due now; while
    /// another instance delivers it, when that delivery fails.
    pub(crate) async fn retry(&self, id: i64, now_ms: i64) -> Result<Acted, StoreError> {
        dispatch!(self, |s| s.retry(id, now_ms))
    }

    /// Revive every dead callback; how many.
    pub(crate) async fn retry_all_dead(&self, now_ms: i64) -> Result<usize, StoreError> {
        dispatch!(self, |s| s.retry_all_dead(now_ms))
    }

    /// Delete a callback for good; while another instance delivers it, when
    /// that delivery ends.
    pub(crate) async fn drop_callback(&self, id: i64) -> Result<Acted, StoreError> {
        dispatch!(self, |s| s.drop_callback(id))
    }

    /// Forget replay rows that hold nothing any more (see the backends).
    pub(crate) async fn prune_replay(
        &self,
        route: Option<String>,
        before_ms: i64,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        dispatch!(self, |s| s.prune_replay(
            route.as_deref(),
            before_ms,
            now_ms
        ))
    }

    /// Pending and dead counts and the oldest pending arrival of a route.
    pub(crate) async fn depth(&self, route: &str) -> Result<(u64, u64, Option<i64>), StoreError> {
        let route = route.to_owned();
        dispatch!(self, |s| s.depth(&route))
    }

    /// Whether the store takes a write now: a real write, committed (for
    /// /healthz and the console).
    pub(crate) async fn health(&self) -> Result<(), StoreError> {
        dispatch!(self, |s| s.health())
    }
}

/// Run a store call off the async threads (SQLite syncs to disk).
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("store task panicked")
}
