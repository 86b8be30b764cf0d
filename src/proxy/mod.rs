//! One request's handling, in named stages, each phase a method of one
//! [`Call`] (the shared state, the config snapshot, the connection and the
//! client) or, for a callback, of one [`callback::Callback`] (the call, its
//! route, HTTP version and report-only findings):
//!
//! ```text
//! admit → precheck → read body → prepare headers → verify → replay claim → deliver → log
//! ```
//!
//! Stages, one file each: `admission.rs` (admit), `callback.rs` (precheck,
//! read body, verify), `handshakes.rs` (a provider's endpoint check answered
//! here), `delivery.rs` (replay claim settled, queue or direct); the site
//! behind callgate is `passthrough.rs`. Each phase either hands the request
//! on or ends it with a typed [`rejection::Rejection`] or
//! [`rejection::Failure`]. Nothing before `verify` touches the upstream; a
//! request that failed a check reaches delivery only on a report-only route
//! (see `callback.rs`).

mod admission;
mod answer;
mod body;
mod callback;
mod conn;
mod delivery;
mod handled;
mod handshakes;
pub mod headers;
mod passthrough;
mod received;
mod rejection;
mod replay;
mod site_body;

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::request::Parts;
use http::{Method, Request, Response};

use crate::config::Config;
use crate::recent::{Record, Who};
use crate::state::Shared;
use crate::verify::client_ip;
use admission::Target;
use answer::Body;
pub(crate) use conn::{ConnInfo, Place};
use handled::Handled;
pub(crate) use received::{OpenBodies, RequestBody};

/// Serve one request. Never fails: every problem becomes a deliberate answer.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: ConnInfo,
    req: Request<RequestBody>,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let config = shared.config.load_full();
    let call = Call {
        shared: &shared,
        config: &config,
        conn: &conn,
        client: client_ip::resolve(
            conn.peer.ip(),
            req.headers(),
            &config.gateway.trusted_proxies,
        ),
    };
    let seen = Seen {
        method: crate::recent::redacted_method(req.method(), &config.redactor),
        // Built only when the request log line or the console wants it (it
        // is the hot path's only string work).
        target: match tracing::enabled!(tracing::Level::INFO) || shared.recent.load().is_some() {
            true => redacted_target(req.uri(), &config.redact_params, &config.redactor),
            false => String::new(),
        },
        start,
    };
    // Boxed: hyper keeps each connection's request future inline, so the
    // phases' state lives on the heap, and only while a request runs
    // (1,000 idle connections cost ~2 MiB less). The delivery, its
    // upstream exchange and the site's have boxes of their own (see
    // `Callback::phases`).
    let cut = Unanswered {
        seen: &seen,
        client: call.client,
        armed: true,
    };
    let mut handled = Box::pin(call.respond(req)).await;
    cut.answered();
    call.logging(&mut handled, seen);
    Ok(handled.response)
}

/// A request whose future is dropped before it is answered (its connection
/// closed at drain_timeout when stopping, or by the client) still gets its
/// log line, from here.
struct Unanswered<'a> {
    seen: &'a Seen,
    client: IpAddr,
    armed: bool,
}

impl Unanswered<'_> {
    fn answered(mut self) {
        self.armed = false;
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        tracing::warn!(
            client = %self.client,
            method = %self.seen.method,
            uri = %self.seen.target,
            outcome = "cut",
            duration_ms = (self.seen.start.elapsed().as_secs_f64() * 10_000.0).round() / 10.0,
            "request cut before its answer: its connection closed (drain_timeout when stopping, or the client left)"
        );
    }
}

/// One request's context: what every request shares, the config snapshot
/// it keeps to its end (a reload never changes a request halfway), its
/// connection and the client address it is judged by.
pub(crate) struct Call<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) config: &'a Config,
    pub(crate) conn: &'a ConnInfo,
    pub(crate) client: IpAddr,
}

/// What the log line says of the request as it came.
struct Seen {
    method: Method,
    target: String,
    start: Instant,
}

impl Call<'_> {
    /// The stages, in order; the first that ends the request answers it.
    async fn respond(&self, req: Request<RequestBody>) -> Handled {
        match admission::admit(self, &req) {
            Ok(Target::Route(route)) => callback::run(self, route, req).await,
            // Boxed, as the callback's delivery is: see `Callback::phases`.
            Ok(Target::Site(site)) => Box::pin(passthrough::serve(self, site, req)).await,
            Ok(Target::Redirect(location)) => Handled::redirected(location),
            Ok(Target::AcmeChallenge(answer)) => Handled::acme_challenge(answer),
            Err((route, rejection)) => {
                let version = req.version();
                Box::pin(body::drain_h2(req)).await;
                Handled::rejected(route, rejection, version)
            }
        }
    }

    /// The caller's headers become the upstream request's: hop-by-hop and
    /// reserved headers out, X-Forwarded-* from what callgate itself saw.
    fn prepare_headers(&self, parts: &mut Parts, body_len: usize) {
        let reserved = &self.config.gateway.reserved_headers;
        self.conn.rewrite_headers(self.config, parts, |h, seen| {
            headers::for_upstream(h, seen, reserved, body_len)
        });
    }

    /// The last phase: the metrics and one log line per request.
    fn logging(&self, handled: &mut Handled, seen: Seen) {
        let route = match (&handled.route, handled.site) {
            (Some(r), _) => r.name.as_str(),
            (None, true) => "passthrough",
            (None, false) => "-",
        };
        let cache = handled.route.as_ref().map(|r| &r.metrics);
        self.shared
            .metrics
            .request(route, cache, handled.outcome, handled.refusal);
        let recent = self.shared.recent.load();
        // A reason may quote what the request carried: hidden before the
        // log line or the console shows it (and not looked at when neither
        // does). The line's fields are named, so a filter on fields answers
        // here as it will for the line itself.
        let logged = tracing::enabled!(
            tracing::Level::INFO,
            route,
            client,
            method,
            uri,
            outcome,
            reason,
            status,
            duration_ms
        );
        if logged || recent.is_some() {
            if let Cow::Owned(hidden) = self.config.redactor.text(&handled.reason) {
                handled.reason = hidden;
            }
        }
        tracing::info!(
            route,
            client = %self.client,
            method = %seen.method,
            uri = %seen.target,
            outcome = handled.outcome.as_str(),
            reason = handled.reason.as_str(),
            status = handled.response.status().as_u16(),
            // A number in JSON logs (0.1 ms steps), not a string.
            duration_ms = (seen.start.elapsed().as_secs_f64() * 10_000.0).round() / 10.0,
            "request"
        );
        if let Some(recent) = recent.as_ref() {
            let who = match (&handled.route, handled.site) {
                (Some(r), _) => Who::Route(r.clone()),
                (None, true) => Who::Site,
                (None, false) => Who::Unrouted,
            };
            let record = Record {
                route: who,
                client: self.client,
                method: seen.method,
                target: seen.target,
                outcome: handled.outcome,
                reason: std::mem::take(&mut handled.reason),
                status: handled.response.status().as_u16(),
                duration_ms: seen.start.elapsed().as_secs_f64() * 1000.0,
                detail: handled.detail.take(),
            };
            recent.record(record, crate::clock::unix_ms());
        }
    }
}

/// Path and query for the log, token values replaced by REDACTED.
use crate::recent::redacted_target;
