//! Delivery: a verified callback stored for the route's worker (queue) and
//! acknowledged, or forwarded now (direct) within the route's shield, its
//! replay claim settled by the receiver's answer; with
//! `on_failure = "queue"`, stored when the receiver fails or its circuit is
//! open.

use http::header::{self};
use http::{HeaderMap, Response, Version};
use http_body_util::BodyExt;

use crate::config::{Delivery, Route};
use crate::metrics::Outcome;
use crate::queue::{self, Enqueued, NewCallback, ReplayClaim};
use crate::shield::Circuit;
use crate::upstream;
use crate::verify::{self, query};

use super::answer::text;
use super::callback::{Callback, Verified};
use super::handled::Handled;
use super::headers;
use super::rejection::{Failure, Rejection};
use super::replay;

/// Longest a callback waits for its route's max_concurrency or rate.
const MAX_SHIELD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Callback<'_> {
    /// Deliver: stored for the worker (queue), or forwarded now (direct)
    /// once the replay claim is taken.
    pub(super) async fn dispatch(
        &self,
        verified: Box<Verified>,
        claim: Option<ReplayClaim>,
    ) -> Handled {
        let route = self.route;
        if route.delivery != Delivery::Direct {
            // Boxed: a queue route's path, kept out of a direct one's state.
            return Box::pin(self.enqueue(verified, claim)).await;
        }
        let later = claim.as_ref().map(replay::queued);
        match replay::claim_direct(self.call.shared, route, claim).await {
            Ok(held) => self.deliver(verified, held, later).await,
            Err(copy) => copy,
        }
    }

    /// Delivery, queued: store durably, then acknowledge; never acknowledge
    /// what was not stored.
    async fn enqueue(&self, v: Box<Verified>, claim: Option<ReplayClaim>) -> Handled {
        let route = self.route;
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
            arrived_ms: crate::clock::unix_ms(),
            replay: claim
                .as_ref()
                .map(|c| verify::replay::encode(&c.keys))
                .unwrap_or_default(),
        };
        let now = callback.arrived_ms;
        let stored = match self.call.shared.store() {
            Ok(store) => store.enqueue(callback, claim).await,
            Err(e) => Err(e),
        };
        match stored {
            // A copy of a stored or delivered message: acknowledged, not stored again.
            Ok(Enqueued::Copy(copy)) => replay::answer_copy(route, copy, now, route.ack_status),
            Ok(Enqueued::Stored(id)) => {
                self.call.shared.queue_wake(&route.name).notify_one();
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
        v: Box<Verified>,
        held: Option<replay::Held>,
        later: Option<ReplayClaim>,
    ) -> Handled {
        let route = self.route;
        let shield = route.shield(&self.call.shared.shields);
        if route.on_failure_queue && shield.open() {
            if let Some(held) = held {
                held.settle(false).await;
            }
            return Box::pin(self.store_instead(v, later, "the circuit is open")).await;
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
        let handled = self.forward(v, held).await;
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
                Box::pin(self.store_instead(v, later, &why)).await
            }
            None => handled,
        }
    }

    /// `on_failure = "queue"`: store the callback for the route's worker and
    /// answer ack_status, as a queue route would.
    async fn store_instead(
        &self,
        v: Box<Verified>,
        later: Option<ReplayClaim>,
        why: &str,
    ) -> Handled {
        let mut handled = self.enqueue(v, later).await;
        if handled.outcome == Outcome::Queued {
            handled.reason = format!("{why}: {}", handled.reason);
        }
        handled
    }

    /// Delivery, direct: the upstream's answer goes back as it comes; the
    /// replay claim, if any, is settled by it.
    async fn forward(&self, v: Box<Verified>, held: Option<replay::Held>) -> Handled {
        let route = self.route;
        let checks = v.checked.passed.words();
        let outgoing = upstream::Outgoing {
            route,
            method: v.method,
            query: v.uri.query(),
            target: v.uri.path_and_query(),
            headers: v.headers,
            checks,
        };
        let req = outgoing.build(v.body, self.call.config.gateway.assertion.as_ref());
        // Boxed: see `Callback::phases`.
        let sent = Box::pin(upstream::send_and_record(
            &self.call.shared.metrics,
            route,
            req,
        ));
        match sent.await {
            Ok(resp) => {
                if let Some(held) = held {
                    held.settle(resp.status().is_success()).await;
                }
                let (mut parts, body) = resp.into_parts();
                headers::remove_hop_by_hop(&mut parts.headers);
                let response = Response::from_parts(parts, body.boxed());
                // Not format!: its machinery costs more than the two copies.
                let mut reason = String::with_capacity("verified ".len() + checks.len());
                reason.push_str("verified ");
                reason.push_str(checks);
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
