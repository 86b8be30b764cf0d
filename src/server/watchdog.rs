//! Per-connection activity: how many requests are in flight, and when the
//! last one ended. A watchdog drops connections that have had no request in
//! flight for too long, which hyper alone does not do for a connection that
//! never sends its first request, nor for an idle h2 connection. Idle means
//! no request, not no bytes: h2 PINGs and SETTINGS keep nothing open.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
// tokio's clock, so that tests can pause it; the real clock otherwise.
use tokio::time::Instant;

/// Shared between the connection's IO, its requests and its watchdog.
#[derive(Debug)]
pub(super) struct Activity {
    opened: Instant,
    /// Milliseconds after `opened` at which the last request ended.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    served: AtomicUsize,
    /// What the connection's IO did: [`READ_WAITING`], [`UNFLUSHED`],
    /// [`HEAD_READ`].
    io: AtomicU8,
}

/// The last read found nothing to read.
const READ_WAITING: u8 = 1;
/// Bytes were written and not yet flushed.
const UNFLUSHED: u8 = 2;
/// Bytes were read since the last request began: a head on its way.
const HEAD_READ: u8 = 4;

impl Activity {
    /// A fresh connection, active now.
    pub(super) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            served: AtomicUsize::new(0),
            io: AtomicU8::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long since the last request ended (or the connection opened).
    pub(super) fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last)
    }

    /// Mark a request as started; it counts as in flight until the guard drops.
    pub(super) fn request(self: &Arc<Self>) -> InFlight {
        self.io.fetch_and(!HEAD_READ, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.served.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// The IO's last read found nothing.
    pub(super) fn read_waiting(&self) {
        self.io.fetch_or(READ_WAITING, Ordering::Relaxed);
    }

    /// The IO's last read returned (bytes: some of them).
    pub(super) fn read_done(&self, bytes: bool) {
        self.io.fetch_and(!READ_WAITING, Ordering::Relaxed);
        if bytes {
            self.io.fetch_or(HEAD_READ, Ordering::Relaxed);
        }
    }

    /// The IO was handed bytes to write (`true`) or flushed them (`false`).
    pub(super) fn unflushed(&self, unflushed: bool) {
        if unflushed {
            self.io.fetch_or(UNFLUSHED, Ordering::Relaxed);
        } else {
            self.io.fetch_and(!UNFLUSHED, Ordering::Relaxed);
        }
    }

    /// At least one request served and none in flight, every byte written
    /// out, nothing read since the last request began, and the last read
    /// waiting for more: the HTTP/1.1 connection is between messages as far
    /// as its IO and requests can tell (request bodies are told apart by
    /// [`crate::proxy::OpenBodies`]). A head on its way stays with hyper,
    /// whose `header_read_timeout` answers a slow one with 408; so does a
    /// connection's first request.
    pub(super) fn quiet(&self) -> bool {
        self.served.load(Ordering::Relaxed) > 0
            && self.in_flight.load(Ordering::Relaxed) == 0
            && self.io.load(Ordering::Relaxed) == READ_WAITING
    }

    /// Resolves once the connection has had no request in flight for
    /// `first` (since it opened, before any request) or `idle` (since the
    /// last request ended).
    pub(super) async fn idle(&self, first: Duration, idle: Duration) {
        loop {
            let limit = if self.served.load(Ordering::Relaxed) == 0 {
                first
            } else {
                idle
            };
            let silent = self.silent_for();
            if silent >= limit && self.in_flight.load(Ordering::Relaxed) == 0 {
                return;
            }
            // A request may switch the limit from `first` to `idle` while we
            // sleep: wake by the nearer of the two, then look again.
            let wait = first
                .min(idle)
                .saturating_sub(silent)
                .max(Duration::from_millis(100));
            tokio::time::sleep(wait).await;
        }
    }
}

/// Keeps a request counted as in flight.
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A response body that keeps its request counted as in flight until the
/// last byte is written (or the body is dropped): a long download is not
/// an idle connection, however long it takes.
pub(super) struct InFlightBody<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> InFlightBody<B> {
    /// `inner`, counted as in flight for as long as it lives.
    pub(super) fn new(inner: B, in_flight: InFlight) -> InFlightBody<B> {
        InFlightBody {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body + Unpin> Body for InFlightBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_idle_after_the_first_limit() {
        let a = Activity::new();
        let start = tokio::time::Instant::now();
        a.idle(Duration::from_secs(2), Duration::from_secs(60))
            .await;
        assert!(start.elapsed() >= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_request_the_idle_limit_applies_not_the_first_one() {
        let a = Activity::new();
        let (first, idle) = (Duration::from_secs(10), Duration::from_secs(1));
        let watchdog = tokio::spawn({
            let a = a.clone();
            async move { a.idle(first, idle).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(a.request());
        let start = tokio::time::Instant::now();
        watchdog.await.unwrap();
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn a_request_in_flight_keeps_the_connection() {
        let a = Activity::new();
        let guard = a.request();
        let waited = tokio::time::timeout(
            Duration::from_millis(300),
            a.idle(Duration::ZERO, Duration::ZERO),
        )
        .await;
        assert!(waited.is_err(), "idle while a request was in flight");
        drop(guard);
        tokio::time::timeout(
            Duration::from_millis(300),
            a.idle(Duration::ZERO, Duration::ZERO),
        )
        .await
        .expect("idle once the request ended");
    }

    #[tokio::test]
    async fn a_response_body_keeps_its_request_in_flight_until_it_is_done() {
        let a = Activity::new();
        let body = http_body_util::Full::new(bytes::Bytes::from_static(b"streaming"));
        let body = InFlightBody::new(body, a.request());
        let waited = tokio::time::timeout(
            Duration::from_millis(300),
            a.idle(Duration::ZERO, Duration::ZERO),
        )
        .await;
        assert!(waited.is_err(), "idle while the answer was being written");
        drop(body);
        tokio::time::timeout(
            Duration::from_millis(300),
            a.idle(Duration::ZERO, Duration::ZERO),
        )
        .await
        .expect("idle once the answer was written");
    }
}
