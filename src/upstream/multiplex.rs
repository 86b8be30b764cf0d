//! A request over a receiver's h2 connection: the target in absolute form
//! (https, the Host as `:authority`, no Host field), without the
//! connection-specific fields h2 forbids; the answer is told as HTTP/1.1,
//! as every other upstream answer is. A request that never left (the
//! connection closed first) is turned back into its HTTP/1.1 form for
//! another connection.

use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;

use super::body::Tracked;
use super::error::ForwardError;
use super::pool::{Key, Multiplexed};

/// Connection-specific fields, which h2 forbids (RFC 9113 §8.2.2); `TE` is
/// allowed only as "trailers".
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// What became of a request offered to an h2 connection.
pub(super) enum Sent {
    Answered(Response<Incoming>),
    /// Never sent (the connection was closing): the request as it was.
    Back(Request<Tracked>),
    Failed(hyper::Error),
}

/// Send `req` (origin-form, Host set) over `sender`, an h2 connection to `key`.
pub(super) async fn send(
    sender: &mut Multiplexed,
    mut req: Request<Tracked>,
    key: &Key,
) -> Result<Sent, ForwardError> {
    let host = to_h2(&mut req, key)?;
    if sender.ready().await.is_err() {
        return Ok(Sent::Back(to_h1(req, host)));
    }
    match sender.try_send_request(req).await {
        Ok(mut resp) => {
            *resp.version_mut() = Version::HTTP_11;
            Ok(Sent::Answered(resp))
        }
        Err(mut e) => match e.take_message() {
            Some(back) => Ok(Sent::Back(to_h1(back, host))),
            None => Ok(Sent::Failed(e.into_error())),
        },
    }
}

/// The h2 form: the Host field becomes `:authority` (the upstream's own
/// when there is none), the target absolute, connection-specific fields
/// out. Returns the Host field, for [`to_h1`].
fn to_h2(req: &mut Request<Tracked>, key: &Key) -> Result<Option<HeaderValue>, ForwardError> {
    let host = req.headers_mut().remove(header::HOST);
    let authority = match &host {
        Some(h) => authority(h)?,
        None => key.authority.clone(),
    };
    let headers = req.headers_mut();
    for name in CONNECTION_SPECIFIC {
        headers.remove(HeaderName::from_static(name));
    }
    if headers.get(header::TE).is_some_and(|te| te != "trailers") {
        headers.remove(header::TE);
    }
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTPS);
    parts.authority = Some(authority);
    parts.path_and_query = Some(path);
    *req.uri_mut() = Uri::from_parts(parts).expect("scheme, authority and path are set");
    *req.version_mut() = Version::HTTP_2;
    Ok(host)
}

/// A Host field as `:authority`: a host and port only (h2 forbids userinfo).
fn authority(host: &HeaderValue) -> Result<Authority, ForwardError> {
    Authority::try_from(host.as_bytes())
        .ok()
        .filter(|a| !a.as_str().contains('@'))
        .ok_or_else(|| {
            ForwardError::Failed(format!(
                "the Host {host:?} cannot be sent as an h2 :authority"
            ))
        })
}

/// Back to the HTTP/1.1 form `to_h2` changed (the connection-specific
/// fields it took out are hop-by-hop: they went no further anyway).
fn to_h1(mut req: Request<Tracked>, host: Option<HeaderValue>) -> Request<Tracked> {
    let path = req.uri().path_and_query().cloned();
    *req.uri_mut() = path.map_or_else(Uri::default, Uri::from);
    *req.version_mut() = Version::HTTP_11;
    if let Some(h) = host {
        req.headers_mut().insert(header::HOST, h);
    }
    req
}
