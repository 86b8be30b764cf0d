//! Per-connection activity: when did bytes last move, how many requests are
//! in flight. A watchdog drops connections that sit silent with nothing in
//! flight, which hyper alone does not do for a connection that never sends
//! its first byte, nor for an idle h2 connection.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
// tokio's clock, so that tests can pause it; the real clock otherwise.
use tokio::time::Instant;

/// Shared between the connection's IO, its requests and its watchdog.
#[derive(Debug)]
pub(super) struct Activity {
    opened: Instant,
    /// Milliseconds after `opened` at which bytes last moved.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    served: AtomicUsize,
}

impl Activity {
    /// A fresh connection, active now.
    pub(super) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            served: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last)
    }

    /// Mark a request as started; it counts as in flight until the guard drops.
    pub(super) fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.served.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Resolves once the connection has been silent, with no request in
    /// flight, for `first` (before any request) or `idle` (after one).
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

/// An IO stream that reports every read and write to its `Activity`.
pub(super) struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Tracked<T> {
    pub(super) fn new(inner: T, activity: Arc<Activity>) -> Tracked<T> {
        Tracked { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
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
}
