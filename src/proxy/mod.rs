//! One request's handling, in named phases, each a method of one [`Call`]
//! (the shared state, the config snapshot, the connection and the client):
//!
//! ```text
//! admit → precheck → read body → prepare headers → verify → replay claim → deliver → log
//! ```
//!
//! Each phase either hands the request on or ends it with a typed
//! [`Rejection`] or [`Failure`]. Nothing before `verify` touches the
//! upstream, and nothing after it can see a request that failed it.

mod answer;
mod body;
mod conn;
mod handled;
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

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body_util::{BodyExt, Full};

use crate::budget::Held;
use crate::config::presets::{Handshake, Signed};
use crate::config::{hosts_match, Config, Delivery, Passthrough, Route};
use crate::metrics::Outcome;
use crate::queue::{self, Enqueued, NewCallback, ReplayClaim};
use crate::recent::{Detail, Evidence, Record, Who};
use crate::shield::Circuit;
use crate::state::Shared;
use crate::upstream;
use crate::verify::{self, client_ip, query, Checked, Refusal, Signable};
use answer::{text, Body};
use body::read_body;
pub(crate) use conn::{ConnInfo, Place};
use handled::Handled;
pub(crate) use received::{OpenBodies, RequestBody};
pub(crate) use rejection::{Failure, Rejection};

/// What a request is for, once admitted.
enum Target<'c> {
    /// A callback route: verified, then delivered.
    Route(&'c Arc<Route>),
    /// The site behind callgate.
    Site(&'c Arc<Passthrough>),
    /// Plain HTTP with http_redirect: 308 here.
    Redirect(HeaderValue),
    /// An ACME server validating http-01: the key authorization.
    AcmeChallenge(String),
}

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
    // (1,000 idle connections cost ~2 MiB less). One box for all phases.
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

/// A callback that passed its route's checks, as it will be delivered.
#[derive(Clone)]
struct Verified {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    checked: Checked,
}

impl Call<'_> {
    /// The phases, in order; the first that ends the request answers it.
    async fn respond(&self, req: Request<RequestBody>) -> Handled {
        match self.admit(&req) {
            Ok(Target::Route(route)) => self.callback(route, req).await,
            Ok(Target::Site(site)) => passthrough::serve(self, site, req).await,
            Ok(Target::Redirect(location)) => Handled::redirected(location),
            Ok(Target::AcmeChallenge(answer)) => Handled::acme_challenge(answer),
            Err((route, rejection)) => {
                let version = req.version();
                body::drain_h2(req).await;
                Handled::rejected(route, rejection, version)
            }
        }
    }

    /// A callback's phases: precheck, read body, prepare headers, verify,
    /// replay claim, deliver.
    async fn callback(&self, route: &Arc<Route>, req: Request<RequestBody>) -> Handled {
        // Report-only routes run every check and collect what failed.
        let (pre, mut failed, req) = match self.precheck(route, req).await {
            Ok(passed) => passed,
            Err(refused) => return refused,
        };
        if let Some(answered) = self.handshake_head(route, &req, &failed) {
            return answered;
        }
        let (mut parts, body) = req.into_parts();
        // Vouched for (address or token) before the body: the reserve is open to it.
        let vouched = pre.vouches() && failed.is_empty();
        // Held until the request is answered: the body stays in memory till then.
        let (body, _held) = match self.read_whole(route, &parts, body, vouched).await {
            Ok(read) => read,
            Err(refused) => return refused,
        };
        // The body checks see the headers exactly as they will be forwarded.
        self.prepare_headers(&mut parts, body.len());
        let url = public_url(route, self.conn, &parts);
        let req = Signable {
            headers: &parts.headers,
            body: &body,
            url: url.as_deref(),
            now: unix_now(),
        };
        let checked = match self.verify(route, pre, req, &parts, &mut failed) {
            Ok(checked) => checked,
            Err(refused) => return *refused,
        };
        // Report-only: what enforcing would have refused, for the console.
        let evidence = match failed.is_empty() {
            true => None,
            false => self.evidence(route, &parts.method, &parts.uri, req, true),
        };
        if let Some(answer) = handshake_post(route, &body) {
            let answered = self.handshake_answered(route, answer, &failed, parts.version);
            return answered.with(evidence);
        }
        // Keys of signed bytes only; the claim is taken before any delivery.
        let direct = route.delivery == Delivery::Direct;
        let claim = route
            .dedupe_window
            .and_then(|_| replay::claim_for(route, verify::replay::keys(route, &req), direct));
        let verified = self.verified(parts, body, checked);
        let handled = self.dispatch(route, verified, claim).await;
        handled.would_refuse(failed).with(evidence)
    }

    /// Read body: the whole body, held in the budget. Refused over
    /// max_body_bytes, the rest of an h2 upload is read and dropped first
    /// (with nothing held), so that the client sees the 413.
    async fn read_whole(
        &self,
        route: &Arc<Route>,
        parts: &Parts,
        mut body: RequestBody,
        vouched: bool,
    ) -> Result<(Bytes, Held), Handled> {
        let mut held = self.shared.budget.load().hold(self.client, vouched);
        let max = route.max_body_bytes;
        match read_body(self.config, max, &mut held, &parts.headers, &mut body).await {
            Ok(bytes) => Ok((bytes, held)),
            Err(rejection) => {
                drop(held);
                if matches!(rejection, Rejection::TooLarge { .. }) {
                    body::drain_rest(parts.version, &mut body).await;
                }
                Err(Handled::rejected(Some(route), rejection, parts.version))
            }
        }
    }

    /// The callback as it will be delivered, with callgate's verified
    /// header (whatever the caller sent under that name is gone).
    fn verified(&self, mut parts: Parts, body: Bytes, checked: Checked) -> Verified {
        headers::mark_verified(
            &mut parts.headers,
            &self.config.gateway.verified_header,
            checked.passed,
        );
        Verified {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
            checked,
        }
    }

    /// Precheck: the source address and the URL token, before any body
    /// byte is read. Enforcing, a failure ends the request (403); report-only,
    /// failures are collected and the request goes on.
    async fn precheck(
        &self,
        route: &Arc<Route>,
        req: Request<RequestBody>,
    ) -> Result<(verify::Prechecked, Vec<Refusal>, Request<RequestBody>), Handled> {
        if !route.enforce {
            let (pre, failed) =
                verify::precheck_all(route, self.client, req.uri(), &*self.shared.ip_lists);
            return Ok((pre, failed, req));
        }
        match verify::precheck(route, self.client, req.uri(), &*self.shared.ip_lists) {
            Ok(pre) => Ok((pre, Vec::new(), req)),
            Err(refusal) => {
                let unread = Signable {
                    headers: req.headers(),
                    body: &[],
                    url: None,
                    now: unix_now(),
                };
                let evidence = self.evidence(route, req.method(), req.uri(), unread, false);
                let version = req.version();
                body::drain_h2(req).await;
                Err(self.forbidden(route, refusal, version).with(evidence))
            }
        }
    }

    /// Verify: the body's checks, on the headers as they will be forwarded.
    /// Enforcing, a failure ends the request (403, with the console's
    /// evidence); report-only, failures join `failed`.
    fn verify(
        &self,
        route: &Arc<Route>,
        pre: verify::Prechecked,
        req: Signable<'_>,
        parts: &Parts,
        failed: &mut Vec<Refusal>,
    ) -> Result<Checked, Box<Handled>> {
        if !route.enforce {
            let (checked, more) = verify::finish_all(route, pre, &req);
            failed.extend(more);
            return Ok(checked);
        }
        verify::finish(route, pre, &req).map_err(|refusal| {
            let evidence = self.evidence(route, &parts.method, &parts.uri, req, true);
            Box::new(self.forbidden(route, refusal, parts.version).with(evidence))
        })
    }

    /// Deliver: stored for the worker (queue), or forwarded now (direct)
    /// once the replay claim is taken.
    async fn dispatch(
        &self,
        route: &Arc<Route>,
        verified: Verified,
        claim: Option<ReplayClaim>,
    ) -> Handled {
        if route.delivery != Delivery::Direct {
            return self.enqueue(route, verified, claim).await;
        }
        let later = claim.as_ref().map(replay::queued);
        match replay::claim_direct(self.shared, route, claim).await {
            Ok(held) => self.deliver(route, verified, held, later).await,
            Err(copy) => copy,
        }
    }

    /// What the console shows of a refusal: every check's verdict, the
    /// headers (credentials redacted), the start of the body. None, and no
    /// work, while the console is off.
    fn evidence(
        &self,
        route: &Route,
        method: &Method,
        uri: &Uri,
        signable: Signable<'_>,
        body_read: bool,
    ) -> Option<Box<Detail>> {
        self.shared.recent.load().as_ref()?;
        Some(Box::new(Detail::of(&Evidence {
            route,
            client: self.client,
            lists: &*self.shared.ip_lists,
            method,
            uri,
            signable,
            body_read,
            redactor: &self.config.redactor,
        })))
    }

    /// A provider's endpoint check read from the request line and headers
    /// (Meta, X and Dropbox GETs, Microsoft Graph's and Asana's POSTs),
    /// answered here once the address and token checks passed, before any
    /// body is read.
    fn handshake_head(
        &self,
        route: &Arc<Route>,
        req: &Request<RequestBody>,
        failed: &[Refusal],
    ) -> Option<Handled> {
        let (kind, token) = route.handshake.as_ref().filter(|(k, _)| k.before_body())?;
        if kind.hands_over_secret() {
            return self.keep_secret(route, req, failed);
        }
        let method = if kind.by_get() {
            Method::GET
        } else {
            Method::POST
        };
        if req.method() != method {
            return None;
        }
        let key = route.hmac.as_ref().and_then(|h| h.keys.first());
        let query = req.uri().query();
        let Some(answer) = verify::handshake::answer_get(*kind, query, key, token.as_ref()) else {
            // X's route takes GET for its CRC only: any other GET is 405.
            let allow = HeaderValue::from_static("POST");
            return (*kind == Handshake::XCrc).then(|| {
                Handled::rejected(Some(route), Rejection::Method { allow }, req.version())
            });
        };
        Some(self.handshake_answered(route, answer, failed, req.version()))
    }

    /// A handshake's answer, given only to a request that passed every
    /// check of its route: report-only relaxes nothing for handshakes.
    fn handshake_answered(
        &self,
        route: &Arc<Route>,
        answer: verify::handshake::Answer,
        failed: &[Refusal],
        version: Version,
    ) -> Handled {
        if let Some(first) = failed.first() {
            return self.forbidden(route, first.clone(), version);
        }
        match answer {
            verify::handshake::Answer::Ok(ct, body) => handshake_answer(route, ct, body),
            verify::handshake::Answer::Refused(refusal) => self.forbidden(route, refusal, version),
        }
    }

    /// Asana's handshake: the secret it hands over is kept (the file
    /// first), then echoed. Signed by nothing, so only a request that
    /// passed every check before it (the URL token at least) may hand one
    /// over, even on a report-only route.
    fn keep_secret(
        &self,
        route: &Arc<Route>,
        req: &Request<RequestBody>,
        failed: &[Refusal],
    ) -> Option<Handled> {
        let version = req.version();
        let secret = match verify::handshake::handed_over(req.headers())? {
            Ok(secret) => secret,
            Err(refusal) => return Some(self.forbidden(route, refusal, version)),
        };
        if let Some(first) = failed.first() {
            return Some(self.forbidden(route, first.clone(), version));
        }
        let learned = route.hmac.as_ref()?.learned.as_ref()?;
        // Written (and synced) on this serving thread: a handshake comes
        // once per webhook Asana creates, and the answer must wait for it.
        if let Err(e) = learned.learn(secret) {
            return Some(Handled::failed(
                Some(route),
                Failure::NotKept(e.to_string()),
            ));
        }
        let mut answer = handshake_answer(route, "text/plain", String::new());
        let echo = HeaderValue::from_bytes(secret).expect("checked visible ASCII");
        answer
            .response
            .headers_mut()
            .insert(verify::handshake::HOOK_SECRET, echo);
        Some(answer)
    }

    /// The http-01 key authorization, when this plain-HTTP GET asks for one
    /// being published.
    fn acme_answer(&self, req: &Request<RequestBody>) -> Option<String> {
        if self.conn.proto != "http" || req.method() != Method::GET {
            return None;
        }
        self.shared.acme.http_answer(req.uri().path())
    }

    /// Admission: what is decided from the request line and headers alone,
    /// in order: framing, damping, route (path and host), method; else the
    /// redirect to https, else the pass-through for the host.
    fn admit<'c>(&self, req: &Request<RequestBody>) -> Result<Target<'c>, Admitted<'c>>
    where
        Self: 'c,
    {
        admit_to(self, req)
    }

    /// A failed check: 403, and one more failure for damping unless the
    /// client had passed the route's IP allowlist (a provider's own mistake
    /// must not cut it off).
    fn forbidden(&self, route: &Arc<Route>, refusal: Refusal, version: Version) -> Handled {
        if matches!(refusal, Refusal::Ip(_)) || route.allow_ips.is_none() {
            if let Some(d) = self.shared.damper.load().as_ref() {
                d.failure(self.client);
            }
        }
        Handled::rejected(Some(route), Rejection::Verify(refusal), version)
    }

    /// The caller's headers become the upstream request's: hop-by-hop and
    /// reserved headers out, X-Forwarded-* from what callgate itself saw.
    fn prepare_headers(&self, parts: &mut Parts, body_len: usize) {
        let reserved = &self.config.gateway.reserved_headers;
        self.conn.rewrite_headers(self.config, parts, |h, seen| {
            headers::for_upstream(h, seen, reserved, body_len)
        });
    }

    /// Delivery, queued: store durably, then acknowledge; never acknowledge
    /// what was not stored.
    async fn enqueue(
        &self,
        route: &Arc<Route>,
        v: Verified,
        claim: Option<ReplayClaim>,
    ) -> Handled {
        let callback = NewCallback {
            route: route.name.clone(),
            method: v.method.as_str().to_owned(),
            // The token's value never reaches the disk; its index is put back at
            // delivery. (Only this route's: delivery restores only this route's.)
            query: v.uri.query().map(|q| match &route.token {
                Some(t) => query::redact(q, std::slice::from_ref(&t.param)).into_owned(),
                None => q.to_owned(),
            }),
            token_secret: v.checked.token_secret,
            headers: queue::to_lines(&stored_headers(route, v.headers)),
            body: v.body.to_vec(),
            verified: v.checked.passed.header_value(),
            arrived_ms: queue::now_ms(),
            replay: claim
                .as_ref()
                .map(|c| verify::replay::encode(&c.keys))
                .unwrap_or_default(),
        };
        let now = callback.arrived_ms;
        let stored = match self.shared.store() {
            Ok(store) => store.enqueue(callback, claim).await,
            Err(e) => Err(e),
        };
        match stored {
            // A copy of a stored or delivered message: acknowledged, not stored again.
            Ok(Enqueued::Copy(copy)) => replay::answer_copy(route, copy, now, route.ack_status),
            Ok(Enqueued::Stored(id)) => {
                self.shared.queue_wake(&route.name).notify_one();
                let ack = text(route.ack_status, "accepted\n");
                Handled::answered(route, Outcome::Queued, ack, format!("stored as {id}"))
            }
            Err(e) => Handled::failed(Some(route), Failure::NotStored(e)),
        }
    }

    /// Delivery, direct, within the route's shield (max_concurrency, rate):
    /// forwarded, or with `on_failure = "queue"` stored when the receiver
    /// fails or its circuit is open. `later`: the replay claim for storing.
    async fn deliver(
        &self,
        route: &Arc<Route>,
        v: Verified,
        held: Option<replay::Held>,
        later: Option<ReplayClaim>,
    ) -> Handled {
        let shield = self.shared.shields.get(route);
        if route.on_failure_queue && shield.open() {
            if let Some(held) = held {
                held.settle(false).await;
            }
            return self
                .store_instead(route, v, later, "the circuit is open")
                .await;
        }
        let wait = route.upstream_timeout.min(MAX_SHIELD_WAIT);
        let _pass = match shield.pass(wait).await {
            Ok(pass) => pass,
            Err(retry_after) => {
                if let Some(held) = held {
                    held.settle(false).await;
                }
                let busy = Rejection::ReceiverBusy { retry_after };
                return Handled::rejected(Some(route), busy, Version::HTTP_11);
            }
        };
        let kept = route.on_failure_queue.then(|| v.clone());
        let handled = self.forward(route, v, held).await;
        let failed =
            handled.outcome == Outcome::Failed || handled.response.status().is_server_error();
        if !route.on_failure_queue {
            return handled;
        }
        match shield.record(!failed) {
            Circuit::Opened => {
                tracing::warn!(route = %route.name, "circuit open: the receiver failed 5 times in a row; callbacks are stored without trying it for 30 s")
            }
            Circuit::Closed => {
                tracing::info!(route = %route.name, "circuit closed: the receiver answered again")
            }
            Circuit::Unchanged => {}
        }
        match kept.filter(|_| failed) {
            Some(v) => {
                let why = format!("the receiver failed ({})", handled.reason);
                self.store_instead(route, v, later, &why).await
            }
            None => handled,
        }
    }

    /// `on_failure = "queue"`: store the callback for the route's worker and
    /// answer ack_status, as a queue route would.
    async fn store_instead(
        &self,
        route: &Arc<Route>,
        v: Verified,
        later: Option<ReplayClaim>,
        why: &str,
    ) -> Handled {
        let mut handled = self.enqueue(route, v, later).await;
        if handled.outcome == Outcome::Queued {
            handled.reason = format!("{why}: {}", handled.reason);
        }
        handled
    }

    /// Delivery, direct: the upstream's answer goes back as it comes; the
    /// replay claim, if any, is settled by it.
    async fn forward(
        &self,
        route: &Arc<Route>,
        v: Verified,
        held: Option<replay::Held>,
    ) -> Handled {
        let checks = v.checked.passed.header_value();
        let outgoing = upstream::Outgoing {
            route,
            method: v.method,
            query: v.uri.query(),
            headers: v.headers,
            checks: &checks,
        };
        let req = outgoing.build(v.body, self.config.gateway.assertion.as_ref());
        match upstream::send_and_record(&self.shared.metrics, route, req).await {
            Ok(resp) => {
                if let Some(held) = held {
                    held.settle(resp.status().is_success()).await;
                }
                let (mut parts, body) = resp.into_parts();
                headers::remove_hop_by_hop(&mut parts.headers);
                let response = Response::from_parts(parts, body.boxed());
                let reason = format!("verified {checks}");
                Handled::answered(route, Outcome::Forwarded, response, reason)
            }
            Err(e) => {
                if let Some(held) = held {
                    held.settle(false).await;
                }
                Handled::failed(Some(route), Failure::Upstream(e))
            }
        }
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
        // A reason may quote what the request carried.
        if let Cow::Owned(hidden) = self.config.redactor.text(&handled.reason) {
            handled.reason = hidden;
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
        if let Some(recent) = self.shared.recent.load().as_ref() {
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
            recent.record(record, queue::now_ms());
        }
    }
}

/// A signed POST that is the provider's endpoint check (Slack, Zoom),
/// answered here: the receiver never sees it.
fn handshake_post(route: &Arc<Route>, body: &[u8]) -> Option<verify::handshake::Answer> {
    let (kind, _) = route.handshake.as_ref().filter(|(k, _)| !k.before_body())?;
    let key = route.hmac.as_ref().and_then(|h| h.keys.first());
    verify::handshake::answer_post(*kind, body, key)
}

fn handshake_answer(route: &Arc<Route>, content_type: &'static str, body: String) -> Handled {
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(
        header::HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    Handled::answered(
        route,
        Outcome::Handshake,
        resp,
        "handshake: answered by callgate".into(),
    )
}

/// Longest a callback waits for its route's max_concurrency or rate.
const MAX_SHIELD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why admission ended a request: the route it was for, if any, and the refusal.
type Admitted<'c> = (Option<&'c Arc<Route>>, Rejection);

/// Admission for [`Call::admit`], as a free function so that the routes it
/// returns borrow from the config snapshot, not from the call.
fn admit_to<'c>(call: &Call<'c>, req: &Request<RequestBody>) -> Result<Target<'c>, Admitted<'c>> {
    let (shared, config, conn, client) = (call.shared, call.config, call.conn, call.client);
    // An origin server may accept absolute-form (RFC 9112 §3.2.2), but no
    // provider sends it and it is a classic lever for request smuggling and
    // Host confusion: refuse it, and CONNECT, before any routing.
    if req.version() <= Version::HTTP_11 && req.uri().scheme().is_some() {
        return Err((None, Rejection::AbsoluteForm));
    }
    if unsupported_transfer_coding(req.headers()) {
        return Err((None, Rejection::TransferCoding));
    }
    // Which one would the receiver take? PHP joins them.
    if req.headers().get_all(header::HOST).iter().nth(1).is_some() {
        return Err((None, Rejection::TwoHosts));
    }
    if req.method() == Method::CONNECT {
        return Err((None, Rejection::Connect));
    }
    // `www.example.com@evil.example` must never become a Location or a
    // Host the site trusts.
    if !valid_host(req) {
        return Err((None, Rejection::BadHost));
    }
    // Before routing and damping: the ACME server validates from anywhere,
    // and the answer is only there while an order is being validated.
    if let Some(answer) = call.acme_answer(req) {
        return Ok(Target::AcmeChallenge(answer));
    }
    let host = request_host(req);
    let route = config.routes.get(req.uri().path(), host.as_deref());
    // A client in a cool-down waits it out, except on a route whose
    // allow_ips it passes: a provider is never cut off from its own route.
    let exempt = route
        .and_then(|r| r.allow_ips.as_ref())
        .is_some_and(|a| a.admits(client, &*shared.ip_lists).is_ok());
    if let Some(left) = shared
        .damper
        .load()
        .as_ref()
        .filter(|_| !exempt)
        .and_then(|d| d.blocked_for(client))
    {
        return Err((None, Rejection::Damped { retry_after: left }));
    }
    let Some(route) = route else {
        return elsewhere(config, conn, host.as_deref(), req);
    };
    if !route.methods.contains(req.method()) {
        let allow: Vec<&str> = route.methods.iter().map(Method::as_str).collect();
        let allow = HeaderValue::from_str(&allow.join(", "))
            .unwrap_or_else(|_| HeaderValue::from_static("POST"));
        return Err((Some(route), Rejection::Method { allow }));
    }
    Ok(Target::Route(route))
}

/// No route: the redirect to https (plain HTTP with http_redirect), else
/// the first pass-through for the host, else 404.
fn elsewhere<'c>(
    config: &'c Config,
    conn: &ConnInfo,
    host: Option<&str>,
    req: &Request<RequestBody>,
) -> Result<Target<'c>, Admitted<'c>> {
    if conn.proto == "http" && config.listen.http_redirect {
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let port = match conn.https_port {
            0 | 443 => String::new(),
            p => format!(":{p}"),
        };
        let location =
            host.and_then(|h| HeaderValue::from_str(&format!("https://{h}{port}{target}")).ok());
        return match location {
            Some(l) => Ok(Target::Redirect(l)),
            None => Err((None, Rejection::NoRoute)),
        };
    }
    config
        .passthroughs
        .iter()
        .find(|p| hosts_match(p.hosts.as_deref(), host))
        .map(Target::Site)
        .ok_or((None, Rejection::NoRoute))
}

/// Whether the Host (or h2's :authority) is a name or an address with an
/// optional port, as RFC 9110 allows; a request may also carry none (HTTP/1.0).
fn valid_host(req: &Request<RequestBody>) -> bool {
    let raw = match req.headers().get(header::HOST) {
        Some(h) => match h.to_str() {
            Ok(h) => h,
            Err(_) => return false,
        },
        None => match req.uri().authority() {
            Some(a) => a.as_str(),
            None => return true,
        },
    };
    host_syntax_ok(raw)
}

/// `name[:port]`, `a.b.c.d[:port]` or `[v6][:port]`.
fn host_syntax_ok(raw: &str) -> bool {
    let (host, port) = match raw.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) if v6.parse::<std::net::Ipv6Addr>().is_ok() => ("v6", port),
            _ => return false,
        },
        None => raw.split_at(raw.find(':').unwrap_or(raw.len())),
    };
    let port = match port.strip_prefix(':') {
        Some(p) => p,
        None if port.is_empty() => "0",
        None => return false,
    };
    let port_ok = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    let name = host.strip_suffix('.').unwrap_or(host);
    let labels_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    port_ok && labels_ok
}

/// The host a request names (Host, or h2's :authority): lower case,
/// without port or trailing dot.
fn request_host(req: &Request<RequestBody>) -> Option<Cow<'_, str>> {
    let raw = match req.headers().get(header::HOST) {
        Some(h) => h.to_str().ok()?,
        None => req.uri().authority()?.as_str(),
    };
    let name = match raw.strip_prefix('[') {
        Some(v6) => &raw[..v6.find(']')? + 2],
        None => raw
            .rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
            .map_or(raw, |(h, _)| h),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(name.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(name))
    }
}

/// The headers a queue route stores: credentials only when the route says
/// its receiver needs them (`store_credentials`), never in clear by default.
fn stored_headers(route: &Route, mut headers: HeaderMap) -> HeaderMap {
    if !route.store_credentials {
        headers.remove(header::AUTHORIZATION);
        headers.remove(header::PROXY_AUTHORIZATION);
    }
    headers
}

/// The URL the provider called, for a scheme that signs it (Twilio): the
/// route's public base (behind another proxy), or what callgate saw.
fn public_url(route: &Route, conn: &ConnInfo, parts: &Parts) -> Option<String> {
    let h = route
        .hmac
        .as_ref()
        .filter(|h| h.scheme.signed == Signed::Twilio)?;
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    if let Some(base) = &h.public_url {
        return Some(format!("{base}{target}"));
    }
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))?;
    Some(format!("{}://{host}{target}", conn.proto))
}

#[cfg(test)]
#[test]
fn host_syntax() {
    for ok in [
        "www.example.com",
        "www.example.com.",
        "localhost:8443",
        "127.0.0.1",
        "[::1]:443",
        "a_b.c",
    ] {
        assert!(host_syntax_ok(ok), "{ok}");
    }
    for bad in [
        "www.example.com@evil.example",
        "a b",
        "",
        ":443",
        "x:",
        "x:99999999",
        "[::1",
        "a..b",
        "a/b",
        "x:1:2",
        "[zz]:1",
        "evil.example\\@x",
    ] {
        assert!(!host_syntax_ok(bad), "{bad}");
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// hyper already refuses differing Content-Lengths, and reads a message that
/// has both Content-Length and Transfer-Encoding by the latter, then closes
/// the connection (RFC 9112 §6.1). What it lets through is a coding chain
/// such as `gzip, chunked`: callgate cannot decode it, and must not pass the
/// coded bytes on as if they were the body the signature covers.
fn unsupported_transfer_coding(headers: &HeaderMap) -> bool {
    let mut codings = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty());
    match (codings.next(), codings.next()) {
        (None, _) => false,
        (Some(only), None) => !only.eq_ignore_ascii_case("chunked"),
        (Some(_), Some(_)) => true,
    }
}

/// Path and query for the log, token values replaced by REDACTED.
use crate::recent::redacted_target;
