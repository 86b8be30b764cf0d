//! Idle HTTP/1.1 keep-alive connections wait outside hyper.
//!
//! hyper's HTTP/1.1 connection keeps an 8 KiB read buffer, an 8 KiB header
//! write buffer and its dispatcher for as long as it lives, idle or not,
//! with no setting to give them back. Most of a webhook edge's connections
//! are idle keep-alives, so between requests the connection is taken apart
//! ([`http1::Connection::into_parts`]): only the socket (and its TLS state)
//! waits for the next bytes, and a fresh hyper connection serves them.
//!
//! Taking it apart is only sound between messages: no request in flight,
//! every answer byte flushed, every request body read to its end (the rest
//! of a body must never become the next request's head), and hyper waiting
//! for bytes the client has not sent. Bytes hyper had already read (part of
//! a pipelined head) are handed to the next connection first.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;

use super::watchdog::Activity;
use super::BoxError;
use crate::proxy::OpenBodies;

/// A socket that can wait for its next bytes without a buffer.
pub(super) trait Readable {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;
}

impl Readable for TlsStream<TcpStream> {
    // A read that found nothing left rustls holding no plaintext: the next
    // bytes, if any, are still in the socket.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        self.get_ref().0.readable()
    }
}

impl<T: Readable + Sync> Readable for Box<T> {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        (**self).readable()
    }
}

/// How long a connection stays with hyper after its last request ended
/// before it is parked: a busy keep-alive connection is never taken apart
/// between two of its requests.
const PARK_AFTER: Duration = Duration::from_millis(250);

/// What the connection is waiting for, and how long it may.
pub(super) struct Limits {
    /// Before the first request (`header_read_timeout`).
    pub(super) first: Duration,
    /// After one (`idle_timeout`).
    pub(super) idle: Duration,
}

/// One HTTP/1.1 connection's settings and watchers, for all its turns.
pub(super) struct H1<'a> {
    pub(super) builder: &'a http1::Builder,
    pub(super) activity: &'a Arc<Activity>,
    pub(super) bodies: &'a OpenBodies,
    pub(super) limits: Limits,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) peer: SocketAddr,
}

/// Serve HTTP/1.1 on `io` until the connection closes, goes silent, or
/// callgate stops, parking it whenever it is idle.
pub(super) async fn serve_h1<T, S, B>(io: T, service: S, mut h1: H1<'_>) -> Result<(), BoxError>
where
    T: AsyncRead + AsyncWrite + Readable + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = B> + Unpin + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    // What a parked connection is: its IO and its service. The turns are
    // separate futures so that the task holds one of them at a time.
    let mut parked = (Watched::new(io, h1.activity.clone()), service);
    loop {
        // Boxed: hyper's connection is freed when it is parked.
        let conn = Box::pin(
            h1.builder
                .serve_connection(TokioIo::new(parked.0), parked.1)
                .with_upgrades(),
        );
        parked = match h1.turn(conn).await {
            Turn::Parked(io, service) => (io, service),
            Turn::Ended(result) => return result,
        };
        // Rewound bytes are a head on its way: serve them at once.
        if parked.0.rewound.is_empty() && !h1.wait(&mut parked.0).await? {
            return Ok(());
        }
    }
}

/// How hyper's turn on a connection ended.
enum Turn<T, S> {
    /// Between messages: the IO and the service, for the next turn.
    Parked(Watched<T>, S),
    /// The connection is done.
    Ended(Result<(), BoxError>),
}

impl H1<'_> {
    /// Let hyper serve until the connection is idle between messages (then
    /// take it apart), ends, goes silent, or callgate stops.
    async fn turn<T, S, B>(&mut self, mut conn: Pin<Box<Conn<T, S>>>) -> Turn<T, S>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: HttpService<Incoming, ResBody = B> + Unpin,
        S::Error: Into<BoxError>,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let (activity, bodies) = (self.activity, self.bodies);
        let end = loop {
            let quiet = poll_fn(|cx| match conn.as_mut().poll(cx) {
                Poll::Ready(done) => Poll::Ready(Some(End::Done(done))),
                Poll::Pending if activity.quiet() && bodies.all_read() => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            });
            let end = tokio::select! {
                end = quiet => end,
                _ = activity.idle(self.limits.first, self.limits.idle) => Some(End::Silent),
                _ = stopped(&mut self.stop) => Some(End::Stop),
            };
            if let Some(end) = end {
                break end;
            }
            // Quiet. A connection that was busy a moment ago keeps hyper's
            // buffers for its next request a while: taking it apart and
            // building it again for every request costs throughput.
            let rest = PARK_AFTER.saturating_sub(activity.silent_for());
            if rest.is_zero() {
                return take_apart(conn);
            }
            tokio::select! {
                done = conn.as_mut() => break End::Done(done),
                () = tokio::time::sleep(rest) => {}
                _ = stopped(&mut self.stop) => break End::Stop,
            }
        };
        match end {
            End::Done(done) => Turn::Ended(done.map_err(BoxError::from)),
            End::Silent => {
                tracing::debug!(peer = %self.peer, "closing a silent connection");
                Turn::Ended(Ok(()))
            }
            // Stopping: requests in flight finish (the thread's
            // drain_timeout bounds them), then the connection closes.
            End::Stop => {
                conn.as_mut().graceful_shutdown();
                Turn::Ended(conn.await.map_err(BoxError::from))
            }
        }
    }

    /// Wait, parked, for the client's next bytes: true when they came,
    /// false when the connection went silent or callgate stops.
    async fn wait<T>(&mut self, io: &mut Watched<T>) -> io::Result<bool>
    where
        T: AsyncWrite + Readable + Unpin,
    {
        tokio::select! {
            ready = io.inner.readable() => ready.map(|()| true),
            _ = self.activity.idle(self.limits.first, self.limits.idle) => {
                tracing::debug!(peer = %self.peer, "closing a silent connection");
                Ok(false)
            }
            _ = stopped(&mut self.stop) => {
                // Nothing in flight: close now (with TLS's close_notify).
                let shutdown = io.inner.shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(1), shutdown).await;
                Ok(false)
            }
        }
    }
}

type Conn<T, S> = http1::UpgradeableConnection<TokioIo<Watched<T>>, S>;

/// A connection idle between messages, taken apart. Bytes hyper had read
/// and not used (part of a pipelined head) are rewound for the next turn,
/// copied: hyper's slice would keep its whole buffer alive.
fn take_apart<T, S, B>(conn: Pin<Box<Conn<T, S>>>) -> Turn<T, S>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = B> + Unpin,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    // Between messages it was never upgraded, so the parts are there.
    let Some(parts) = Pin::into_inner(conn).into_parts() else {
        return Turn::Ended(Ok(()));
    };
    let mut io = parts.io.into_inner();
    if !parts.read_buf.is_empty() {
        io.rewind(Bytes::copy_from_slice(&parts.read_buf));
    }
    Turn::Parked(io, parts.service)
}

/// What ended hyper's turn, other than the connection going quiet.
enum End {
    /// hyper finished (closed, failed or upgraded).
    Done(hyper::Result<()>),
    /// No request for too long.
    Silent,
    /// callgate is stopping.
    Stop,
}

/// Resolves when callgate stops (a dropped sender is a stop too).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// The connection's IO, telling its [`Activity`] whether the last read
/// waited and whether written bytes are still unflushed; it first serves
/// bytes a previous hyper connection had read and not used.
struct Watched<T> {
    inner: T,
    rewound: Bytes,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    fn new(inner: T, activity: Arc<Activity>) -> Self {
        Watched {
            inner,
            rewound: Bytes::new(),
            activity,
        }
    }

    fn rewind(&mut self, bytes: Bytes) {
        self.rewound = bytes;
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.rewound.is_empty() {
            let n = this.rewound.len().min(buf.remaining());
            buf.put_slice(&this.rewound[..n]);
            this.rewound.advance(n);
            this.activity.read_done(n > 0);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        match polled {
            Poll::Pending => this.activity.read_waiting(),
            Poll::Ready(_) => this.activity.read_done(buf.filled().len() > before),
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.activity.unflushed(true);
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.activity.unflushed(true);
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        if matches!(polled, Poll::Ready(Ok(()))) {
            this.activity.unflushed(false);
        }
        polled
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
