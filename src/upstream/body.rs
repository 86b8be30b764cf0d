//! The bodies on either side of an upstream exchange: the request's (a
//! verified callback's, or a pass-through's streamed) and the response's,
//! which hands its connection back to the pool only when both were read
//! and sent to their ends.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::pool::{Key, Pool, Sender};

/// A request body going upstream: a callback's, whole in memory, or a
/// pass-through request's, streamed as it arrives.
pub(crate) enum UpBody {
    /// Verified and complete.
    Full(Full<Bytes>),
    /// Streamed from the client, bounded by the pass-through's max_body_bytes.
    Stream(BoxBody<Bytes, BoxError>),
}

/// A streamed body's error.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Body for UpBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpBody::Full(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
            UpBody::Stream(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Full(b) => b.is_end_stream(),
            UpBody::Stream(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::Full(b) => b.size_hint(),
            UpBody::Stream(b) => b.size_hint(),
        }
    }
}

/// A request body that says when it was sent to its end: only then may
/// its connection carry another request (an upstream that answered before
/// reading a slow upload is still busy with it).
pub(crate) struct Tracked {
    pub(super) body: UpBody,
    pub(super) done: Arc<AtomicBool>,
}

impl Tracked {
    fn note_end(&self) {
        if self.body.is_end_stream() {
            self.done.store(true, Ordering::Release);
        }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        match &frame {
            Poll::Ready(None) => this.done.store(true, Ordering::Release),
            Poll::Ready(Some(Ok(_))) => this.note_end(),
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.note_end();
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The upstream's response body. Read to its end, and with the request's
/// body sent to its end, it hands its connection back to the pool; else
/// the connection closes with it (never reused half-way).
pub(crate) struct UpstreamBody {
    pub(super) inner: Incoming,
    pub(super) checkin: Option<(Arc<Pool>, Key, Sender)>,
    pub(super) sent: Arc<AtomicBool>,
}

impl UpstreamBody {
    /// The connection was upgraded (101): it is the tunnel's now, never
    /// the pool's.
    pub(crate) fn forget_connection(&mut self) {
        self.checkin = None;
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if let Some((pool, key, sender)) = self.checkin.take() {
            if self.inner.is_end_stream() && self.sent.load(Ordering::Acquire) {
                pool.put(key, sender);
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
