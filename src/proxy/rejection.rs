//! Every way callgate answers a request itself, as typed values: each knows
//! its status, its metric label and the headers that go with it, so a new
//! refusal cannot invent a label or forget its `Retry-After`.

use std::fmt;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::answer::{plain, Body};
use crate::budget::Exhausted;
use crate::metrics::Reason;
use crate::queue::StoreError;
use crate::upstream::{BodyCut, ForwardError};
use crate::verify::{protect, Refusal};

/// Retry-After of a 503 for full body buffers: uploads in flight end within
/// seconds (body_read_timeout bounds them).
const BUSY_RETRY_AFTER_SECS: u64 = 5;

/// A request refused before it reached the upstream (outcome `refused`).
#[derive(Debug)]
pub(crate) enum Rejection {
    /// `POST http://host/path`: a lever for smuggling and Host confusion.
    AbsoluteForm,
    /// A transfer-coding chain other than plain `chunked`.
    TransferCoding,
    /// A pass-through request the site would resolve to a protected path.
    Protected(protect::Verdict),
    /// Two Host headers: receivers disagree on which names the site.
    TwoHosts,
    /// An h2 Host header that names another host than :authority.
    HostAuthority,
    /// CONNECT: callgate is no tunnel.
    Connect,
    /// The address failed too often; it may try again after this long.
    Damped { retry_after: Duration },
    /// No route serves the path.
    NoRoute,
    /// The route does not take this method; `allow` lists the ones it does.
    Method { allow: HeaderValue },
    /// A check of the route failed.
    Verify(Refusal),
    /// The body is over max_body_bytes; `declared`: said so by Content-Length.
    TooLarge { declared: bool },
    /// The body did not arrive within body_read_timeout.
    Slow,
    /// Body buffers are full (all of them, or this client's share): try later.
    Busy(Exhausted),
    /// The body was broken off or badly framed.
    BrokenBody,
    /// A Host (or :authority) that is no valid name or address.
    BadHost,
    /// The client holds max_requests_per_client pass-through requests.
    ClientBusy,
    /// A pass-through upload slower than min_body_rate.
    SlowUpload,
    /// The route's max_concurrency or rate held the callback past its wait.
    ReceiverBusy { retry_after: Duration },
    /// A copy of a callback whose first copy is still in flight.
    InFlight { retry_after: Duration },
    /// A signed message id seen before with another body (SHA-256 of each).
    Replay { stored: [u8; 32], given: [u8; 32] },
}

impl Rejection {
    /// The status the caller gets.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Rejection::AbsoluteForm
            | Rejection::TwoHosts
            | Rejection::HostAuthority
            | Rejection::BrokenBody
            | Rejection::BadHost => StatusCode::BAD_REQUEST,
            Rejection::TransferCoding => StatusCode::NOT_IMPLEMENTED,
            Rejection::Connect | Rejection::Method { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::Damped { .. } | Rejection::ClientBusy => StatusCode::TOO_MANY_REQUESTS,
            Rejection::NoRoute => StatusCode::NOT_FOUND,
            Rejection::Verify(_) | Rejection::Protected(_) => StatusCode::FORBIDDEN,
            Rejection::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::Slow | Rejection::SlowUpload => StatusCode::REQUEST_TIMEOUT,
            Rejection::Busy(_) | Rejection::ReceiverBusy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::InFlight { .. } | Rejection::Replay { .. } => StatusCode::CONFLICT,
        }
    }

    /// The metric label (`callgate_refusals_total{reason}`).
    pub(crate) fn class(&self) -> Reason {
        match self {
            Rejection::AbsoluteForm
            | Rejection::TransferCoding
            | Rejection::TwoHosts
            | Rejection::HostAuthority
            | Rejection::BadHost => Reason::Request,
            Rejection::Connect | Rejection::Method { .. } => Reason::Method,
            Rejection::Damped { .. } => Reason::Damped,
            Rejection::NoRoute => Reason::NoRoute,
            Rejection::Protected(_) => Reason::Protected,
            Rejection::Verify(refusal) => refusal.check().reason(),
            Rejection::TooLarge { .. } => Reason::Size,
            Rejection::Slow | Rejection::SlowUpload => Reason::Slow,
            Rejection::Busy(_) | Rejection::ClientBusy | Rejection::ReceiverBusy { .. } => {
                Reason::Busy
            }
            Rejection::BrokenBody => Reason::Body,
            Rejection::InFlight { .. } => Reason::InFlight,
            Rejection::Replay { .. } => Reason::Replay,
        }
    }

    /// The answer: the status and a short text, never the reason, plus the
    /// headers this refusal calls for.
    pub(crate) fn response(&self, h1: bool) -> Response<Body> {
        let mut resp = plain(self.status());
        let headers = resp.headers_mut();
        match self {
            Rejection::Damped { retry_after }
            | Rejection::InFlight { retry_after }
            | Rejection::ReceiverBusy { retry_after } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after.as_secs() + 1),
                );
            }
            Rejection::Busy(_) | Rejection::ClientBusy => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(BUSY_RETRY_AFTER_SECS),
                );
            }
            Rejection::Method { allow } => {
                headers.insert(header::ALLOW, allow.clone());
            }
            // The rest of the stream cannot be framed reliably: do not reuse it.
            Rejection::TransferCoding if h1 => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        resp
    }
}

/// The log's reason: the metric label, a colon, what happened.
impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Rejection::Verify(refusal) => return refusal.fmt(f),
            Rejection::Protected(protect::Verdict::Protected(p)) => {
                return write!(f, "protected: the site would resolve it to {p}")
            }
            Rejection::Protected(protect::Verdict::Doubtful(why)) => {
                return write!(f, "protected: cannot tell where the site would resolve it ({why})")
            }
            Rejection::Protected(protect::Verdict::Open) => "open (never refused)",
            Rejection::AbsoluteForm => "absolute-form target",
            Rejection::TransferCoding => "transfer-coding other than chunked",
            Rejection::TwoHosts => "more than one Host header",
            Rejection::HostAuthority => "Host differs from :authority",
            Rejection::Connect => "CONNECT",
            Rejection::Damped { .. } => "too many failed verifications from this address",
            Rejection::NoRoute => "no route for this path",
            Rejection::Method { .. } => "not in the route's methods",
            Rejection::TooLarge { declared: true } => "Content-Length over max_body_bytes",
            Rejection::TooLarge { declared: false } => "body over max_body_bytes",
            Rejection::Slow => "body not received within body_read_timeout",
            Rejection::Busy(Exhausted::Total) => "body buffers full (gateway.buffered_body_bytes)",
            Rejection::Busy(Exhausted::Client) => {
                "this address holds its share of body buffers (gateway.buffered_body_bytes_per_client)"
            }
            Rejection::BrokenBody => "client sent a broken or incomplete body",
            Rejection::BadHost => "Host is not a valid name or address",
            Rejection::ClientBusy => {
                "this address holds max_requests_per_client pass-through requests"
            }
            Rejection::SlowUpload => "upload slower than min_body_rate",
            Rejection::ReceiverBusy { .. } => {
                "the route's max_concurrency or rate held it past its wait"
            }
            Rejection::InFlight { retry_after } => {
                return write!(
                    f,
                    "in_flight: a copy of this callback is being delivered (Retry-After {}s)",
                    retry_after.as_secs()
                )
            }
            Rejection::Replay { stored, given } => {
                return f.write_str(&crate::queue::replay::conflict_reason(stored, given))
            }
        };
        write!(f, "{}: {what}", self.class().as_str())
    }
}

/// A verified request that could not be delivered (outcome `failed`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// The upstream refused, broke or timed out: 502 or 504.
    #[error(transparent)]
    Upstream(#[from] ForwardError),
    /// A queue route could not store it: 503, and the provider retries.
    #[error("not stored: {0}")]
    NotStored(#[from] StoreError),
    /// A secret a provider handed over (Asana) could not be kept: 503, and
    /// the provider's webhook is not set up (it says so to its creator).
    #[error("handshake: the provider's secret was not kept: {0}")]
    NotKept(String),
}

impl Failure {
    /// The status the caller gets.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Failure::Upstream(ForwardError::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
            Failure::Upstream(ForwardError::Failed(_)) => StatusCode::BAD_GATEWAY,
            Failure::Upstream(ForwardError::BodyTooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::Upstream(ForwardError::Cut(
                BodyCut::Protected(_) | BodyCut::Unreadable(_),
            )) => StatusCode::FORBIDDEN,
            Failure::Upstream(ForwardError::Cut(BodyCut::TooSlow)) => StatusCode::REQUEST_TIMEOUT,
            Failure::NotStored(_) | Failure::NotKept(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::TokenFailure;

    fn all() -> Vec<Rejection> {
        vec![
            Rejection::AbsoluteForm,
            Rejection::TransferCoding,
            Rejection::TwoHosts,
            Rejection::Connect,
            Rejection::Damped {
                retry_after: Duration::from_secs(9),
            },
            Rejection::NoRoute,
            Rejection::Protected(protect::Verdict::Protected("/cb.php".into())),
            Rejection::Method {
                allow: HeaderValue::from_static("POST, PUT"),
            },
            Rejection::Verify(Refusal::Token(TokenFailure::Missing)),
            Rejection::TooLarge { declared: true },
            Rejection::Slow,
            Rejection::Busy(Exhausted::Total),
            Rejection::Busy(Exhausted::Client),
            Rejection::BrokenBody,
            Rejection::BadHost,
            Rejection::ClientBusy,
            Rejection::SlowUpload,
            Rejection::InFlight {
                retry_after: Duration::from_secs(3),
            },
            Rejection::ReceiverBusy {
                retry_after: Duration::from_secs(1),
            },
            Rejection::Replay {
                stored: [1; 32],
                given: [2; 32],
            },
        ]
    }

    #[test]
    fn every_rejection_is_a_4xx_or_501_whose_log_reason_starts_with_its_label() {
        for r in all() {
            let status = r.status();
            assert!(
                status.is_client_error()
                    || status == StatusCode::NOT_IMPLEMENTED
                    || status == StatusCode::SERVICE_UNAVAILABLE,
                "{r:?}"
            );
            assert!(
                r.to_string()
                    .starts_with(&format!("{}: ", r.class().as_str())),
                "{r}"
            );
            assert!(Reason::ALL.contains(&r.class()));
            assert_eq!(r.response(true).status(), status);
        }
    }

    #[test]
    fn refusals_carry_the_headers_they_call_for() {
        let damped = Rejection::Damped {
            retry_after: Duration::from_secs(9),
        };
        assert_eq!(damped.response(true).headers()[header::RETRY_AFTER], "10");
        let method = Rejection::Method {
            allow: HeaderValue::from_static("POST, PUT"),
        };
        assert_eq!(method.response(true).headers()[header::ALLOW], "POST, PUT");
        let te = Rejection::TransferCoding;
        assert_eq!(te.response(true).headers()[header::CONNECTION], "close");
        assert!(!te
            .response(false)
            .headers()
            .contains_key(header::CONNECTION));
    }

    #[test]
    fn failures_map_to_gateway_statuses() {
        let timeout = Failure::Upstream(ForwardError::Timeout(Duration::from_secs(1)));
        let broken = Failure::Upstream(ForwardError::Failed("reset".into()));
        assert_eq!(timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(broken.status(), StatusCode::BAD_GATEWAY);
    }
}
