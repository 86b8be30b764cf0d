//! A callback's phases, each a method of one [`Callback`] (the call, its
//! route, the HTTP version and, on a report-only route, what enforcing
//! would have refused so far):
//!
//! ```text
//! precheck → handshake (head) → read body → prepare headers → verify
//!   → handshake (signed) → replay claim → deliver
//! ```
//!
//! Enforcing, the first failed check ends the request with a 403. Report-only,
//! every check runs and its failures are collected in `failed`: the request
//! goes on to delivery with them (and the console's evidence), so what comes
//! after verify does see a request that failed a check, and must not relax
//! anything else for it (a handshake's answer, Asana's secret, are refused).

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderMap, Method, Request, Uri, Version};

use crate::budget::Held;
use crate::config::presets::Signed;
use crate::config::{Delivery, Route};
use crate::recent::{Detail, Evidence};
use crate::verify::{self, Checked, Prechecked, Refusal, Signable};

use super::body::{self, read_body};
use super::conn::ConnInfo;
use super::handled::Handled;
use super::headers;
use super::received::RequestBody;
use super::rejection::Rejection;
use super::{replay, Call};

/// One callback's context, passed to every phase after admission.
pub(super) struct Callback<'a> {
    pub(super) call: &'a Call<'a>,
    /// The route admission chose.
    pub(super) route: &'a Arc<Route>,
    /// The request's HTTP version (how a refusal closes the connection).
    pub(super) version: Version,
    /// Report-only: the refusals enforcing would have answered with, in the
    /// order the checks ran. Always empty on an enforcing route.
    pub(super) failed: Vec<Refusal>,
}

/// A callback that passed its route's checks, as it will be delivered.
#[derive(Clone)]
pub(super) struct Verified {
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
    pub(super) checked: Checked,
}

/// A callback's phases, for the route admission chose.
pub(super) async fn run(call: &Call<'_>, route: &Arc<Route>, req: Request<RequestBody>) -> Handled {
    let callback = Callback {
        call,
        route,
        version: req.version(),
        failed: Vec::new(),
    };
    callback.phases(req).await
}

impl Callback<'_> {
    /// precheck, read body, prepare headers, verify, replay claim, deliver.
    async fn phases(mut self, req: Request<RequestBody>) -> Handled {
        let pre = match self.precheck(&req) {
            Ok(passed) => passed,
            Err(refused) => {
                // Boxed, as every path a callback rarely takes is: the
                // phases' own state stays small, and is cheap to move.
                Box::pin(body::drain_h2(req)).await;
                return *refused;
            }
        };
        if let Some(answered) = self.handshake_head(&req) {
            return answered;
        }
        let (mut parts, body) = req.into_parts();
        // Vouched for (address or token) before the body: the reserve is open to it.
        let vouched = pre.vouches() && self.failed.is_empty();
        // Held until the request is answered: the body stays in memory till then.
        let (body, _held) = match self.read_whole(&parts, body, vouched).await {
            Ok(read) => read,
            Err(refused) => return refused,
        };
        // The body checks see the headers exactly as they will be forwarded.
        self.call.prepare_headers(&mut parts, body.len());
        let url = public_url(self.route, self.call.conn, &parts);
        let learned = self.call.shared.learned_keys(self.route);
        let req = Signable {
            headers: &parts.headers,
            body: &body,
            url: url.as_deref(),
            now: crate::clock::unix_secs(),
            learned: learned.as_deref().map_or(&[], Vec::as_slice),
        };
        let checked = match self.verify(pre, req, &parts) {
            Ok(checked) => checked,
            Err(refused) => return *refused,
        };
        // Report-only: what enforcing would have refused, for the console.
        let evidence = match self.failed.is_empty() {
            true => None,
            false => self.evidence(&parts.method, &parts.uri, req, true),
        };
        if let Some(answer) = self.handshake_post(&body) {
            return self.handshake_answered(answer).with(evidence);
        }
        // Keys of signed bytes only; the claim is taken before any delivery.
        let route = self.route;
        let direct = route.delivery == Delivery::Direct;
        let claim = route
            .dedupe_window
            .and_then(|_| replay::claim_for(route, verify::replay::keys(route, &req), direct));
        let verified = self.verified(parts, body, checked);
        // Boxed, and the upstream exchange within it boxed too: the box
        // `handle` makes for every request's phases is then 3.4 KiB, where
        // it was 8.5 KiB with both inline, and it is copied whole into
        // place (glibc copies more than 4 KiB with `rep movsb`, which
        // callgrind counts byte by byte: ~8,700 instructions a request).
        let handled = Box::pin(self.dispatch(verified, claim)).await;
        handled.would_refuse(self.failed).with(evidence)
    }

    /// Precheck: the source address and the URL token, before any body
    /// byte is read. Enforcing, a failure ends the request (403, once the
    /// caller has drained an h2 upload); report-only, failures are
    /// collected and the request goes on.
    fn precheck(&mut self, req: &Request<RequestBody>) -> Result<Prechecked, Box<Handled>> {
        let (route, call) = (self.route, self.call);
        let lists = &*call.shared.ip_lists;
        if !route.enforce {
            let (pre, failed) = verify::precheck_all(route, call.client, req.uri(), lists);
            self.failed = failed;
            return Ok(pre);
        }
        match verify::precheck(route, call.client, req.uri(), lists) {
            Ok(pre) => Ok(pre),
            Err(refusal) => {
                let learned = self.call.shared.learned_keys(self.route);
                let unread = Signable {
                    headers: req.headers(),
                    body: &[],
                    url: None,
                    now: crate::clock::unix_secs(),
                    learned: learned.as_deref().map_or(&[], Vec::as_slice),
                };
                let evidence = self.evidence(req.method(), req.uri(), unread, false);
                Err(Box::new(self.forbidden(refusal).with(evidence)))
            }
        }
    }

    /// Read body: the whole body, held in the budget. Refused over
    /// max_body_bytes, the rest of an h2 upload is read and dropped first
    /// (with nothing held), so that the client sees the 413.
    async fn read_whole(
        &self,
        parts: &Parts,
        mut body: RequestBody,
        vouched: bool,
    ) -> Result<(Bytes, Held), Handled> {
        let call = self.call;
        let mut held = call.shared.budget.load().hold(call.client, vouched);
        let max = self.route.max_body_bytes;
        match read_body(call.config, max, &mut held, &parts.headers, &mut body).await {
            Ok(bytes) => Ok((bytes, held)),
            Err(rejection) => {
                drop(held);
                if matches!(rejection, Rejection::TooLarge { .. }) {
                    Box::pin(body::drain_rest(parts.version, &mut body)).await;
                }
                Err(Handled::rejected(
                    Some(self.route),
                    rejection,
                    parts.version,
                ))
            }
        }
    }

    /// Verify: the body's checks, on the headers as they will be forwarded.
    /// Enforcing, a failure ends the request (403, with the console's
    /// evidence); report-only, failures join `failed`.
    fn verify(
        &mut self,
        pre: Prechecked,
        req: Signable<'_>,
        parts: &Parts,
    ) -> Result<Checked, Box<Handled>> {
        if !self.route.enforce {
            let (checked, more) = verify::finish_all(self.route, pre, &req);
            self.failed.extend(more);
            return Ok(checked);
        }
        verify::finish(self.route, pre, &req).map_err(|refusal| {
            let evidence = self.evidence(&parts.method, &parts.uri, req, true);
            Box::new(self.forbidden(refusal).with(evidence))
        })
    }

    /// The callback as it will be delivered, with callgate's verified
    /// header (whatever the caller sent under that name is gone).
    /// (Boxed: it goes down through the delivery's stages, each an async
    /// fn that would otherwise hold and move its own copy.)
    fn verified(&self, mut parts: Parts, body: Bytes, checked: Checked) -> Box<Verified> {
        headers::mark_verified(
            &mut parts.headers,
            &self.call.config.gateway.verified_header,
            checked.passed,
        );
        Box::new(Verified {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
            checked,
        })
    }

    /// A failed check: 403, and one more failure for damping unless the
    /// client had passed the route's IP allowlist (a provider's own mistake
    /// must not cut it off).
    pub(super) fn forbidden(&self, refusal: Refusal) -> Handled {
        let call = self.call;
        if matches!(refusal, Refusal::Ip(_)) || self.route.allow_ips.is_none() {
            if let Some(d) = call.shared.damper.load().as_ref() {
                d.failure(call.client);
            }
        }
        let rejection = Rejection::Verify(refusal);
        Handled::rejected(Some(self.route), rejection, self.version)
    }

    /// What the console shows of a refusal: every check's verdict, the
    /// headers (credentials redacted), the start of the body. None, and no
    /// work, while the console is off.
    fn evidence(
        &self,
        method: &Method,
        uri: &Uri,
        signable: Signable<'_>,
        body_read: bool,
    ) -> Option<Box<Detail>> {
        let call = self.call;
        call.shared.recent.load().as_ref()?;
        Some(Box::new(Detail::of(&Evidence {
            route: self.route,
            client: call.client,
            lists: &*call.shared.ip_lists,
            method,
            uri,
            signable,
            body_read,
            redactor: &call.config.redactor,
        })))
    }
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
