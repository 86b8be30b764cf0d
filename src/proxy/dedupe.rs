//! Provider retries of a callback the receiver already accepted: a body
//! delivered with a 2xx within the route's `dedupe_window` is answered 200
//! and not forwarded again. A callback is known by its provider's message
//! id where it has one, else by its body's SHA-256 (`verify::dedupe_key`).

use std::time::Duration;

use crate::config::Route;
use crate::queue::{now_ms, StoreError};
use crate::state::Shared;

/// Whether this digest was delivered on the route within `window`.
pub(crate) async fn already_delivered(
    shared: &Shared,
    route: &Route,
    digest: &[u8],
    window: Duration,
) -> Result<bool, StoreError> {
    let store = shared.store()?;
    let (name, digest) = (route.name.clone(), digest.to_vec());
    let since = now_ms() - window.as_millis() as i64;
    store.delivered_since(name, digest, since).await
}

/// Record a direct delivery; a failure only costs a possible duplicate later.
pub(crate) async fn remember(shared: &Shared, route: &Route, digest: Vec<u8>) {
    let name = route.name.clone();
    let result = match shared.store() {
        Ok(store) => store.remember_delivery(name, digest, now_ms()).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::warn!(route = %route.name, "could not record the delivery for dedupe: {e}");
    }
}
