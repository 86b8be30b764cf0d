//! Handshakes: a provider's endpoint check, answered by callgate itself
//! (the receiver never sees it), and only for a request that passed every
//! check of its route before it: report-only relaxes nothing here.
//!
//! Read from the request line and headers, before any body byte (Meta, X
//! and Dropbox GETs, Microsoft Graph's and Asana's POSTs); or a signed POST,
//! after verify (Slack, Zoom). Asana's hands over the route's secret, which
//! is kept (the file first) before it is echoed.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};

use crate::config::presets::Handshake;
use crate::config::Route;
use crate::metrics::Outcome;
use crate::verify::handshake::{self, Answer};

use super::callback::Callback;
use super::handled::Handled;
use super::received::RequestBody;
use super::rejection::{Failure, Rejection};

impl Callback<'_> {
    /// A provider's endpoint check read from the request line and headers,
    /// answered here once the address and token checks passed, before any
    /// body is read. None: not a handshake, the request goes on.
    pub(super) fn handshake_head(&self, req: &Request<RequestBody>) -> Option<Handled> {
        let route = self.route;
        let (kind, token) = route.handshake.as_ref().filter(|(k, _)| k.before_body())?;
        if kind.hands_over_secret() {
            return self.keep_secret(req);
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
        let Some(answer) = handshake::answer_get(*kind, query, key, token.as_ref()) else {
            // X's route takes GET for its CRC only: any other GET is 405.
            let allow = HeaderValue::from_static("POST");
            return (*kind == Handshake::XCrc).then(|| {
                Handled::rejected(Some(route), Rejection::Method { allow }, self.version)
            });
        };
        Some(self.handshake_answered(answer))
    }

    /// A signed POST that is the provider's endpoint check (Slack, Zoom),
    /// recognised after verify.
    pub(super) fn handshake_post(&self, body: &[u8]) -> Option<Answer> {
        let route = self.route;
        let (kind, _) = route.handshake.as_ref().filter(|(k, _)| !k.before_body())?;
        let key = route.hmac.as_ref().and_then(|h| h.keys.first());
        handshake::answer_post(*kind, body, key)
    }

    /// A handshake's answer, given only to a request that passed every
    /// check of its route: report-only relaxes nothing for handshakes.
    pub(super) fn handshake_answered(&self, answer: Answer) -> Handled {
        if let Some(first) = self.failed.first() {
            return self.forbidden(first.clone());
        }
        match answer {
            Answer::Ok(ct, body) => handshake_answer(self.route, ct, body),
            Answer::Refused(refusal) => self.forbidden(refusal),
        }
    }

    /// Asana's handshake: the secret it hands over is kept (the file
    /// first), then echoed. Signed by nothing, so only a request that
    /// passed every check before it (the URL token at least) may hand one
    /// over, even on a report-only route.
    fn keep_secret(&self, req: &Request<RequestBody>) -> Option<Handled> {
        let route = self.route;
        let secret = match handshake::handed_over(req.headers())? {
            Ok(secret) => secret,
            Err(refusal) => return Some(self.forbidden(refusal)),
        };
        if let Some(first) = self.failed.first() {
            return Some(self.forbidden(first.clone()));
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
            .insert(handshake::HOOK_SECRET, echo);
        Some(answer)
    }
}

/// callgate's answer to a handshake: the body the provider expects, never
/// sniffed as anything else.
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
