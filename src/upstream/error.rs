//! Why forwarding failed, and why a streamed body was cut: the errors the
//! proxy maps to 502, 504, 413 and its refusals.

use std::time::Duration;

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    /// No response head within the route's upstream timeout → 504.
    #[error("upstream did not answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// Refused, reset, or not HTTP → 502.
    #[error("upstream failed: {0}")]
    Failed(String),
    /// The client's streamed body passed its bound while being sent → 413.
    #[error("the request body passed max_body_bytes while streaming")]
    BodyTooLarge,
    /// callgate cut the client's streamed body on purpose (pass-through).
    #[error("{0}")]
    Cut(BodyCut),
}

/// Why a streamed pass-through body was cut before its end: carried through
/// hyper's error from the body to the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BodyCut {
    /// A front controller's protected parameter was about to be sent.
    #[error("a protected parameter in the body: {0}")]
    Protected(String),
    /// The upload fell below min_body_rate after its grace period.
    #[error("upload slower than min_body_rate")]
    TooSlow,
    /// A body callgate cannot read one way (a non-canonical multipart form).
    #[error("{0}")]
    Unreadable(&'static str),
}
