//! The upstream side, for direct delivery and the queue worker alike: the
//! request target a route sends ([`upstream_uri`]), and the client that sends
//! it ([`send_and_record`]): HTTP/1.1 keep-alive connections pooled per
//! thread and upstream, one timeout per request covering connect and
//! response head, errors that map to 502 and 504.
//!
//! hyper's low-level client does the HTTP; only the pooling is ours. Each
//! serving thread has its own pool (no lock is contended, no request leaves
//! its thread), and a connection goes back to the pool when its response body
//! has been read to the end, which needs no task of its own. hyper-util's
//! general-purpose pool cost 8 allocations and a spawned task per request.

mod body;
mod connect;
mod error;
mod outgoing;
mod pool;
mod send;

pub(crate) use body::{BoxError, UpBody, UpstreamBody};
pub(crate) use error::{BodyCut, ForwardError};
pub(crate) use outgoing::{upstream_uri, Outgoing};
pub(crate) use send::{send, send_and_record};
