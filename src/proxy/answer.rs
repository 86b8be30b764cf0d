//! The answers callgate writes itself: a status and a short text, never the
//! reason (that goes to the log), in the same body type as the upstream's
//! streamed answers.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

/// Response body type: the upstream's streamed body, or a short text of ours.
pub(crate) type Body = BoxBody<Bytes, hyper::Error>;

/// A short text answer of ours: the caller learns the status, never the reason.
pub(crate) fn plain(status: StatusCode) -> Response<Body> {
    let text_for_status = match status {
        StatusCode::FORBIDDEN => "forbidden\n",
        StatusCode::NOT_FOUND => "not found\n",
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed\n",
        StatusCode::PAYLOAD_TOO_LARGE => "payload too large\n",
        StatusCode::REQUEST_TIMEOUT => "request timeout\n",
        StatusCode::BAD_GATEWAY => "bad gateway\n",
        StatusCode::GATEWAY_TIMEOUT => "gateway timeout\n",
        StatusCode::NOT_IMPLEMENTED => "not implemented\n",
        StatusCode::TOO_MANY_REQUESTS => "too many requests\n",
        StatusCode::CONFLICT => "conflict\n",
        StatusCode::SERVICE_UNAVAILABLE => "service unavailable\n",
        _ => "bad request\n",
    };
    text(status, text_for_status)
}

/// A short text answer with this status and body.
pub(crate) fn text(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
