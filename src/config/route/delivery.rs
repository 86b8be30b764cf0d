//! How a verified callback reaches the receiver: direct or queued,
//! `on_failure`, `ack_status`, `max_concurrency` and the retry schedule.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{At, Inherited};
use crate::config::defaults::{
    DEFAULT_ACK_STATUS, DEFAULT_RETRY_BASE, DEFAULT_RETRY_CAP, DEFAULT_RETRY_MAX_AGE,
    DEFAULT_RETRY_MAX_ATTEMPTS, MAX_MAX_CONCURRENCY, MAX_MAX_IN_FLIGHT, MAX_RETRY_ATTEMPTS,
    MAX_UPSTREAM_TIMEOUT, MIN_TIMEOUT,
};
use crate::config::load::Loader;
use crate::config::raw::Dur;
use crate::config::ConfigError;

/// How a verified callback reaches the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Delivery {
    Direct,
    Queue,
}

/// `retry = { base = "1s", cap = "5m", max_attempts = 20, max_age = "2d" }`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub(crate) base: Option<Dur>,
    pub(crate) cap: Option<Dur>,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) max_age: Option<Dur>,
}

/// Redelivery schedule for queued callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retry {
    /// First wait; doubled after each failure, up to `cap`, with jitter.
    pub(crate) base: Duration,
    pub(crate) cap: Duration,
    /// After this many attempts the callback is a dead letter.
    pub(crate) max_attempts: u32,
    /// A callback older than this is a dead letter after its next failure.
    pub(crate) max_age: Duration,
}

impl Loader<'_> {
    /// `upstream_timeout`: the route's own, else the gateway's.
    pub(super) fn route_timeout(
        &self,
        label: &str,
        raw: Option<Dur>,
        inherited: &Inherited,
    ) -> Result<Duration, ConfigError> {
        self.duration(
            raw,
            inherited.upstream_timeout,
            MIN_TIMEOUT..=MAX_UPSTREAM_TIMEOUT,
            &format!("{label}.upstream_timeout"),
        )
    }

    /// `max_in_flight`: deliveries of the route's queue at once.
    pub(super) fn max_in_flight(
        &self,
        label: &str,
        raw: Option<Spanned<usize>>,
    ) -> Result<usize, ConfigError> {
        self.number(
            raw,
            1,
            1..=MAX_MAX_IN_FLIGHT,
            &format!("{label}.max_in_flight must be between 1 (keeps arrival order) and {MAX_MAX_IN_FLIGHT}"),
        )
    }

    /// `max_concurrency`: callbacks in flight to the receiver at once.
    pub(super) fn max_concurrency(
        &self,
        label: &str,
        raw: Option<Spanned<usize>>,
    ) -> Result<Option<usize>, ConfigError> {
        raw.map(|m| {
            self.number(
                Some(m),
                1,
                1..=MAX_MAX_CONCURRENCY,
                &format!("{label}.max_concurrency must be between 1 and {MAX_MAX_CONCURRENCY}"),
            )
        })
        .transpose()
    }

    /// `on_failure = "queue"`: whether a direct route stores what its receiver refuses.
    pub(super) fn on_failure(
        &self,
        label: &str,
        raw: Option<&Spanned<String>>,
        delivery: Option<Delivery>,
    ) -> Result<bool, ConfigError> {
        match raw.map(|o| o.get_ref().as_str()) {
            None | Some("fail") => Ok(false),
            Some("queue") => Ok(delivery != Some(Delivery::Queue)),
            Some(_) => Err(self.at(raw.expect("matched Some"), format!("{label}.on_failure must be \"queue\" (store and answer ack_status when the receiver fails) or \"fail\" (default: the receiver's failure is the answer)"))),
        }
    }

    pub(super) fn ack_status(
        &self,
        at: &At<'_>,
        raw: Option<Spanned<u16>>,
    ) -> Result<http::StatusCode, ConfigError> {
        let Some(s) = raw else {
            return Ok(http::StatusCode::from_u16(DEFAULT_ACK_STATUS).expect("valid status"));
        };
        match http::StatusCode::from_u16(*s.get_ref()) {
            Ok(code) if code.is_success() => Ok(code),
            _ => Err(self.at(
                &s,
                format!(
                    "{}.ack_status must be a 2xx status such as 202 or 200",
                    at.label
                ),
            )),
        }
    }

    /// `retry = { base, cap, max_attempts, max_age }`, each bounded so that
    /// no backoff overflows and no callback is kept for ever.
    pub(super) fn retry(&self, label: &str, raw: RawRetry) -> Result<Retry, ConfigError> {
        let (ms, secs) = (Duration::from_millis, Duration::from_secs);
        let base = self.duration(
            raw.base,
            DEFAULT_RETRY_BASE,
            ms(10)..=secs(3600),
            &format!("{label}.retry.base"),
        )?;
        let cap = self.duration(
            raw.cap,
            DEFAULT_RETRY_CAP.max(base),
            base..=secs(86_400),
            &format!("{label}.retry.cap"),
        )?;
        let max_age = self.duration(
            raw.max_age,
            DEFAULT_RETRY_MAX_AGE,
            secs(60)..=secs(90 * 86_400),
            &format!("{label}.retry.max_age"),
        )?;
        let max_attempts = raw.max_attempts.unwrap_or(DEFAULT_RETRY_MAX_ATTEMPTS);
        if !(1..=MAX_RETRY_ATTEMPTS).contains(&max_attempts) {
            return Err(self.error(None, format!("{label}.retry.max_attempts = {max_attempts} is out of range: give 1 to {MAX_RETRY_ATTEMPTS}")));
        }
        Ok(Retry {
            base,
            cap,
            max_attempts,
            max_age,
        })
    }
}
