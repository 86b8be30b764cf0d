//! The replay phase of a callback: claim its keys (`verify::replay`) before
//! it goes anywhere, so that a redelivery, or a copy racing the first, is
//! never forwarded twice. The claim is the check and the action in one
//! store transaction; the forward's outcome settles it: 2xx keeps the keys
//! for the route's window, anything else lets them go so the provider's own
//! retry passes.

use std::time::Duration;

use http::StatusCode;
use rand::RngExt;

use super::answer::text;
use super::handled::Handled;
use super::rejection::Rejection;
use crate::config::Route;
use crate::metrics::Outcome;
use crate::queue::{Claim, ReplayClaim, Store};
use crate::state::Shared;
use crate::verify::replay::ReplayKey;

/// Longer than any forward may take: a claim whose instance died mid-flight
/// frees its keys after this beyond the upstream timeout.
const CLAIM_MARGIN: Duration = Duration::from_secs(10);
/// A Retry-After for a copy while the first is in flight, at most.
const MAX_RETRY_AFTER_SECS: i64 = 60;

/// A direct callback's keys, held while it is forwarded.
pub(super) struct Held {
    store: Store,
    route: String,
    owner: String,
    settled: bool,
}

impl Held {
    /// The forward ended: keep the keys as delivered after a 2xx, else let them go.
    pub(super) async fn settle(mut self, delivered: bool) {
        self.settled = true;
        let at = delivered.then(crate::clock::unix_ms);
        let (route, owner) = (self.route.clone(), self.owner.clone());
        if let Err(e) = self.store.settle_replay(route, owner, at).await {
            // Kept: the claim expires on its own; released: a possible duplicate.
            tracing::warn!(route = %self.route, "replay: could not settle a claim: {e}");
        }
    }
}

impl Drop for Held {
    /// The request was abandoned mid-forward (the caller went away): let the
    /// keys go, so the provider's retry is not refused until the claim expires.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (store, route, owner) = (self.store.clone(), self.route.clone(), self.owner.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = store.settle_replay(route, owner, None).await;
            });
        }
    }
}

/// The claim a callback on `route` makes for `keys` (owner filled in for a
/// queued one by the store).
pub(super) fn claim_for(route: &Route, keys: Vec<ReplayKey>, direct: bool) -> Option<ReplayClaim> {
    let window = route.dedupe_window?;
    let owner = match direct {
        true => format!("{:032x}", rand::rng().random::<u128>()),
        false => String::new(),
    };
    let hold = direct.then_some(route.upstream_timeout + CLAIM_MARGIN);
    Some(ReplayClaim::now(&route.name, window, keys, owner, hold))
}

/// The same keys claimed for storing (owner and expiry the store's).
pub(super) fn queued(claim: &ReplayClaim) -> ReplayClaim {
    ReplayClaim {
        owner: String::new(),
        until_ms: None,
        ..claim.clone()
    }
}

/// Claim a direct callback's keys: `Ok(held)` to forward (nothing held when
/// the route keeps no window, or the store cannot answer: forwarding a
/// possible duplicate beats losing a callback), `Err` with the answer for a
/// copy.
pub(super) async fn claim_direct(
    shared: &Shared,
    route: &std::sync::Arc<Route>,
    claim: Option<ReplayClaim>,
) -> Result<Option<Held>, Handled> {
    let Some(claim) = claim else {
        return Ok(None);
    };
    let store = match shared.store() {
        Ok(store) => store,
        Err(e) => {
            tracing::warn!(route = %route.name, "replay check skipped: {e}");
            return Ok(None);
        }
    };
    let (owner, now) = (claim.owner.clone(), claim.now_ms);
    match store.claim_replay(claim).await {
        Ok(Claim::Won) => Ok(Some(Held {
            store,
            route: route.name.clone(),
            owner,
            settled: false,
        })),
        Ok(Claim::Conflict { .. }) if !route.enforce => {
            tracing::warn!(route = %route.name, "replay: a reused message id with another body (enforce = false: forwarded)");
            Ok(None)
        }
        Ok(copy) => Err(answer_copy(route, copy, now, StatusCode::OK)),
        Err(e) => {
            tracing::warn!(route = %route.name, "replay check skipped: {e}");
            Ok(None)
        }
    }
}

/// The answer to a copy: settled copies get `settled` (200 direct, the ack
/// for a queue), a copy in flight 409 with Retry-After, a conflict 409.
pub(super) fn answer_copy(
    route: &std::sync::Arc<Route>,
    copy: Claim,
    now_ms: i64,
    settled: StatusCode,
) -> Handled {
    let why = match copy {
        Claim::Delivered => "duplicate: delivered within dedupe_window",
        Claim::Stored => "duplicate: a copy is stored for delivery",
        Claim::InFlight { until_ms } => {
            let secs = ((until_ms - now_ms) / 1000).clamp(1, MAX_RETRY_AFTER_SECS);
            let rejection = Rejection::InFlight {
                retry_after: Duration::from_secs(secs as u64),
            };
            return Handled::rejected(Some(route), rejection, http::Version::HTTP_11);
        }
        Claim::Conflict { stored, given } => {
            let rejection = Rejection::Replay { stored, given };
            return Handled::rejected(Some(route), rejection, http::Version::HTTP_11);
        }
        Claim::Won => "claimed",
    };
    let body = match settled {
        StatusCode::OK => "duplicate: already delivered\n",
        _ => "accepted\n",
    };
    Handled::answered(route, Outcome::Duplicate, text(settled, body), why.into())
}
