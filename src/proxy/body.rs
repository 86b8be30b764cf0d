//! Reading a request body whole, for the checks: bounded in size, in time,
//! and by the body budget.

use bytes::{Bytes, BytesMut};
use http::header;
use http::HeaderMap;
use http_body_util::BodyExt;

use super::received::RequestBody;
use super::rejection::Rejection;
use crate::budget::Held;
use crate::config::Config;

/// Read the whole body, bounded by `max_body_bytes` before anything is
/// buffered, by `body_read_timeout` against slow senders, and by the body
/// budget (all requests, and this client's share) against many of them.
pub(super) async fn read_body(
    config: &Config,
    max: u64,
    held: &mut Held,
    headers: &HeaderMap,
    body: &mut RequestBody,
) -> Result<Bytes, Rejection> {
    let declared = declared_len(headers);
    if declared.is_some_and(|n| n > max) {
        return Err(Rejection::TooLarge { declared: true });
    }
    // A declared length is held at once: refused before a byte is read.
    if let Some(n) = declared {
        held.grow(n).map_err(Rejection::Busy)?;
    }
    let read = collect_held(body, max, held);
    match tokio::time::timeout(config.gateway.body_read_timeout, read).await {
        Err(_) => Err(Rejection::Slow),
        Ok(result) => result,
    }
}

/// At most this much of a refused h2 request's body is read and dropped
/// (INTERFACE.md, "Uploads refused over HTTP/2").
const DRAIN_BYTES: u64 = 16 << 20;
/// For at most this long.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Before answering an h2 request that is refused before its body was read:
/// see [`drain_rest`].
pub(super) async fn drain_h2(req: http::Request<RequestBody>) {
    let version = req.version();
    drain_rest(version, &mut req.into_body()).await;
}

/// Before answering an h2 request refused before the end of its body (403,
/// 413): read and discard what the client is still sending (bounded in
/// bytes and time; nothing is kept), so the answer ends the stream cleanly.
/// Answering with the upload still open makes hyper reset the stream, and
/// clients (curl 7.88) then report a framing error or an empty reply
/// instead of the status. HTTP/1.1 needs none of this: hyper closes the
/// connection after the answer.
pub(super) async fn drain_rest(version: http::Version, body: &mut RequestBody) {
    if version != http::Version::HTTP_2 || hyper::body::Body::is_end_stream(body) {
        return;
    }
    let drain = async {
        let mut seen = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
}

/// The body's length as the request declares it.
pub(super) fn declared_len(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The body's frames, each held in the budget before it is kept. A body in
/// one frame (the common case) is kept as it came, without a copy.
async fn collect_held(
    body: &mut RequestBody,
    max: u64,
    held: &mut Held,
) -> Result<Bytes, Rejection> {
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Rejection::BrokenBody)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        len += data.len() as u64;
        if len > max {
            return Err(Rejection::TooLarge { declared: false });
        }
        if len > held.bytes() {
            held.grow(len - held.bytes()).map_err(Rejection::Busy)?;
        }
        match (&mut first, &mut rest) {
            (None, _) => first = Some(data),
            (Some(f), None) => {
                let mut all = BytesMut::with_capacity(f.len() + data.len());
                all.extend_from_slice(f);
                all.extend_from_slice(&data);
                rest = Some(all);
            }
            (Some(_), Some(all)) => all.extend_from_slice(&data),
        }
    }
    Ok(match rest {
        Some(all) => all.freeze(),
        None => first.unwrap_or_default(),
    })
}
