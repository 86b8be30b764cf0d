//! A pass-through request's body on its way to the site: bounded by the
//! pass-through's max_body_bytes, scanned for a front controller's protected
//! parameters ([`FormScan`]), and cut when the upload falls below
//! min_body_rate after its grace period, so slow uploads cannot hold the
//! site's workers. Streamed: only what the scanner cannot judge yet is held.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::Limited;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::received::RequestBody;
use crate::config::MIN_BODY_RATE_GRACE;
use crate::upstream::{BodyCut, BoxError};
use crate::values::ValueScan;
use crate::verify::form_scan::FormScan;
use crate::verify::multipart::Canonical;

/// The body's scanners, in turn: protected values (under every decoding),
/// then the front controller's protected parameters as PHP names them.
pub(super) struct Scans {
    values: Option<ValueScan>,
    multipart: Option<Canonical>,
    form: Option<FormScan>,
}

impl Scans {
    /// None when there is nothing to scan for.
    pub(super) fn new(
        values: Option<ValueScan>,
        multipart: Option<Canonical>,
        form: Option<FormScan>,
    ) -> Option<Scans> {
        (values.is_some() || multipart.is_some() || form.is_some()).then_some(Scans {
            values,
            multipart,
            form,
        })
    }

    fn feed(&mut self, data: &Bytes) -> Result<Bytes, BodyCut> {
        let data = match &mut self.values {
            Some(v) => v.feed(data).map_err(|f| BodyCut::Protected(f.0))?,
            None => data.clone(),
        };
        let data = match &mut self.multipart {
            Some(m) if !data.is_empty() => m.feed(&data).map_err(BodyCut::Unreadable)?,
            _ => data,
        };
        match &mut self.form {
            Some(f) if !data.is_empty() => f.feed(&data).map_err(cut),
            _ => Ok(data),
        }
    }

    fn finish(&mut self) -> Result<Bytes, BodyCut> {
        let rest = match &mut self.values {
            Some(v) => v.finish().map_err(|f| BodyCut::Protected(f.0))?,
            None => Bytes::new(),
        };
        let rest = match &mut self.multipart {
            Some(m) => {
                let mut out = BytesMut::from(&m.feed(&rest).map_err(BodyCut::Unreadable)?[..]);
                out.extend_from_slice(&m.finish().map_err(BodyCut::Unreadable)?);
                out.freeze()
            }
            None => rest,
        };
        let Some(f) = &mut self.form else {
            return Ok(rest);
        };
        let mut out = BytesMut::from(&f.feed(&rest).map_err(cut)?[..]);
        out.extend_from_slice(&f.finish().map_err(cut)?);
        Ok(out.freeze())
    }
}

/// The streamed body.
pub(super) struct SiteBody {
    inner: Limited<RequestBody>,
    scan: Option<Scans>,
    rate: Option<Rate>,
    /// The scanner's last bytes, sent before the end.
    tail: Option<Bytes>,
    ended: bool,
}

/// min_body_rate: by `deadline` the next bytes must have come.
struct Rate {
    min: u64,
    start: Instant,
    received: u64,
    deadline: Pin<Box<Sleep>>,
}

impl SiteBody {
    pub(super) fn new(inner: RequestBody, limit: u64, scan: Option<Scans>, min_rate: u64) -> Self {
        let rate = (min_rate > 0 && !inner.is_end_stream()).then(|| {
            let start = Instant::now();
            Rate {
                min: min_rate,
                start,
                received: 0,
                deadline: Box::pin(tokio::time::sleep_until(start + MIN_BODY_RATE_GRACE)),
            }
        });
        SiteBody {
            inner: Limited::new(inner, usize::try_from(limit).unwrap_or(usize::MAX)),
            scan,
            rate,
            tail: None,
            ended: false,
        }
    }
}

impl Rate {
    /// `n` more bytes came: the next ones are due when the average would
    /// fall below the minimum, and never before the grace period ends.
    fn received(&mut self, n: usize) {
        self.received += n as u64;
        let due = Duration::from_secs_f64(self.received as f64 / self.min as f64);
        let at = self.start + due.max(MIN_BODY_RATE_GRACE);
        self.deadline.as_mut().reset(at);
    }
}

impl Body for SiteBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if let Some(tail) = this.tail.take() {
                return Poll::Ready(Some(Ok(Frame::data(tail))));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => {
                    if let Some(rate) = &mut this.rate {
                        ready!(rate.deadline.as_mut().poll(cx));
                        return Poll::Ready(Some(Err(BodyCut::TooSlow.into())));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(f) => f,
            };
            match frame {
                None => {
                    this.ended = true;
                    let rest = match this.scan.as_mut().map(Scans::finish) {
                        Some(Err(found)) => return Poll::Ready(Some(Err(found.into()))),
                        Some(Ok(rest)) => rest,
                        None => Bytes::new(),
                    };
                    this.tail = (!rest.is_empty()).then_some(rest);
                }
                // Limited's own error: the sender maps it to 413.
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        if let Some(rate) = &mut this.rate {
                            rate.received(data.len());
                        }
                        let Some(scan) = this.scan.as_mut() else {
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        };
                        match scan.feed(&data) {
                            Err(found) => return Poll::Ready(Some(Err(found.into()))),
                            Ok(out) if out.is_empty() => continue,
                            Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                        }
                    }
                    // Trailers are never forwarded: a script may read them
                    // as headers that no check has seen.
                    Err(_trailers) => continue,
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn cut(found: crate::verify::form_scan::Found) -> BodyCut {
    BodyCut::Protected(found.0)
}
