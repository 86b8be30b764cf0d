//! `dedupe_window`: the replay check's window (the route's own, else the
//! preset's), never shorter than a signed timestamp's tolerance.

use std::time::Duration;

use super::{At, HmacCheck, SignatureCheck};
use crate::config::load::Loader;
use crate::config::ConfigError;

impl Loader<'_> {
    /// The route's replay window (its own, else the preset's). A signed
    /// timestamp's tolerance may not outlive it: a captured callback would
    /// pass its timestamp check after its replay key was forgotten.
    pub(super) fn replay_window(
        &self,
        at: &At<'_>,
        own: Option<Option<Duration>>,
        hmac: Option<&HmacCheck>,
        signature: Option<&SignatureCheck>,
    ) -> Result<Option<Duration>, ConfigError> {
        let Some(window) = own.unwrap_or_else(|| at.preset.and_then(|d| d.dedupe_window)) else {
            return Ok(None);
        };
        let stamped = hmac
            .filter(|h| h.scheme.timed())
            .map(|h| ("hmac", h.tolerance))
            .or_else(|| {
                signature
                    .filter(|s| s.timestamp.is_some())
                    .map(|s| ("signature", s.tolerance))
            });
        let Some((key, tolerance)) = stamped.filter(|(_, t)| *t > window) else {
            return Ok(Some(window));
        };
        let (t, w) = (
            humantime::format_duration(tolerance),
            humantime::format_duration(window),
        );
        Err(self.error(Some(at.span.clone()), format!("{}: {key}.tolerance = \"{t}\" is longer than dedupe_window = \"{w}\": a captured callback would pass its timestamp check after its replay key is forgotten, and be forwarded again. Give {key}.tolerance = \"{w}\" or less, or dedupe_window = \"{t}\" or more", at.label)))
    }
}
