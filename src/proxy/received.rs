//! A request's body as hyper hands it over, telling its connection when it
//! has been read to its end.
//!
//! Why: an idle HTTP/1.1 connection is parked outside hyper (see
//! `server::parking`), which is only safe between messages. Once the answer
//! is written, hyper may still be reading the request's body (a pass-through
//! upstream that answered early, say); parking then would make the rest of
//! that body the next request's head. [`OpenBodies`] counts the bodies not
//! yet read to their end, so the connection knows.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// One connection's request bodies that hyper may still be reading.
#[derive(Debug, Default)]
pub(crate) struct OpenBodies {
    open: AtomicUsize,
    /// A body was dropped before its end: whether hyper then drained the
    /// rest or gave up on the connection is hyper's to know, not ours.
    abandoned: AtomicBool,
}

impl OpenBodies {
    /// True when every body so far was read to its end.
    pub(crate) fn all_read(&self) -> bool {
        self.open.load(Ordering::Acquire) == 0 && !self.abandoned.load(Ordering::Acquire)
    }
}

/// The body of a request received by callgate.
#[derive(Debug)]
pub(crate) struct RequestBody {
    inner: Incoming,
    /// Counted as open in here until the end is seen or the body dropped.
    open: Option<Arc<OpenBodies>>,
}

impl RequestBody {
    /// `inner`, counted in `open` until read to its end (a body that is
    /// already at its end, as a GET's, is never counted).
    pub(crate) fn counted(inner: Incoming, open: &Arc<OpenBodies>) -> RequestBody {
        let open = (!inner.is_end_stream()).then(|| {
            open.open.fetch_add(1, Ordering::AcqRel);
            open.clone()
        });
        RequestBody { inner, open }
    }

    /// `inner`, counted nowhere (h2 and the admin listener do not park).
    pub(crate) fn uncounted(inner: Incoming) -> RequestBody {
        RequestBody { inner, open: None }
    }

    fn ended(&mut self, to_the_end: bool) {
        if let Some(open) = self.open.take() {
            if !to_the_end {
                open.abandoned.store(true, Ordering::Release);
            }
            open.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        self.ended(false);
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        // hyper marks its side done in the same step that yields the last
        // declared byte, and before it ends the stream.
        match &polled {
            Poll::Ready(None) => this.ended(true),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.ended(true),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
