//! When to order: at start the stored certificate is served if it is still
//! good; a new one is ordered when none is stored or renewal is due
//! (`renew_before` ahead of expiry, or a third of the lifetime for short-lived
//! certificates). A failure keeps the old certificate and retries with
//! exponential backoff and jitter. Serving never waits on any of this.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngExt;
use tokio_util::sync::CancellationToken;

use super::files::Files;
use super::order::{self, OrderError};
use crate::config::{self, tls};
use crate::metrics::Metrics;

/// What the certificate manager is handed: the running config, the live
/// certificates and challenge answers, the metrics and the stop signal.
#[derive(Clone)]
pub(crate) struct Manager {
    pub(crate) config: Arc<arc_swap::ArcSwap<config::Config>>,
    pub(crate) acme: Arc<super::live::Acme>,
    /// The queue's store: with `[tls.acme] store = "postgres"` the ACME
    /// state lives in its database.
    pub(crate) queue: crate::queue::Queue,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) stopping: CancellationToken,
}

/// First wait after a failed order; doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// After a rate-limit error: Let's Encrypt's limits count per hour at least.
const RATE_LIMITED_BACKOFF: Duration = Duration::from_secs(3600);
/// A whole issuance, polling included, at most (each request: 10 s).
const ORDER_TIMEOUT: Duration = Duration::from_secs(300);

/// One instance's loop: serve the stored certificate while it is good,
/// order when none is stored or renewal is due, back off after a failure.
pub(super) async fn run(manager: Manager, settings: config::Acme, stop: CancellationToken) {
    let files = Files::new(&settings);
    let mut failures = 0u32;
    if let Some(stored) = files.certificate(&settings.domains) {
        tracing::info!(file = %files.certificate_path().display(), "acme: serving the stored certificate");
        install(&manager, &settings, &stored);
        let due = renewal_due(&stored, settings.renew_before);
        if !sleep_until(due, &stop).await {
            return;
        }
    }
    loop {
        tracing::info!(domains = ?settings.domains, directory = %settings.directory, "acme: ordering a certificate");
        let outcome = tokio::select! {
            r = issue(&manager, &settings, &files) => r,
            _ = stop.cancelled() => return,
        };
        let wait = match outcome {
            Ok(issued) => {
                failures = 0;
                until(renewal_due(&issued, settings.renew_before))
            }
            Err(OrderError::Account(e)) => {
                // Retrying cannot mend a file: say so once, and wait for the
                // operator to remove or replace it.
                let file = files.account_path().display().to_string();
                tracing::error!(%file, "acme: the stored account credentials are unreadable ({e}); no order until the file changes: remove it to register a new account, or restore it from a backup");
                if !wait_for_change(files.account_path(), &stop).await {
                    return;
                }
                tracing::info!(%file, "acme: the account file changed; ordering again");
                continue;
            }
            Err(e) => {
                failures += 1;
                retry_after(&settings, failures, &e)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One issuance, bounded by ORDER_TIMEOUT, counted; once issued, logged and
/// served from the next handshake on.
pub(super) async fn issue(
    manager: &Manager,
    settings: &config::Acme,
    keep: &impl order::Keep,
) -> Result<tls::Loaded, OrderError> {
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(ORDER_TIMEOUT, order::issue(&manager.acme, settings, keep))
        .await
        .unwrap_or(Err(OrderError::Timeout(ORDER_TIMEOUT)));
    manager.metrics.acme_order(outcome.is_ok());
    if let Ok(issued) = &outcome {
        tracing::info!(domains = ?settings.domains, took_ms = started.elapsed().as_millis() as u64, issuer = %issued.issuer, "acme: certificate issued");
        install(manager, settings, issued);
    }
    outcome
}

/// The wait after the `failures`th failed order in a row, logged.
pub(super) fn retry_after(settings: &config::Acme, failures: u32, e: &OrderError) -> Duration {
    let wait = backoff(failures, e);
    tracing::error!(domains = ?settings.domains, retry_in_s = wait.as_secs(), "acme: ordering a certificate failed, the current one (if any) keeps serving: {e}");
    wait
}

/// Until the file at `path` changes (is removed, replaced or rewritten);
/// false when stopped first.
async fn wait_for_change(path: &std::path::Path, stop: &CancellationToken) -> bool {
    let stamp = |p: &std::path::Path| {
        std::fs::symlink_metadata(p)
            .ok()
            .map(|m| (m.len(), m.modified().ok()))
    };
    let before = stamp(path);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.cancelled() => return false,
        }
        if stamp(path) != before {
            return true;
        }
    }
}

/// Serve `certificate` for the domains from the next handshake on.
pub(super) fn install(manager: &Manager, settings: &config::Acme, certificate: &tls::Loaded) {
    let mut sni = tls::Sni::default();
    sni.set_default(certificate.key.clone());
    match tls::server_config(sni) {
        Ok(server) => manager.acme.install(&settings.domains, &server),
        Err(e) => return tracing::error!("acme: cannot serve the certificate: {e}"),
    }
    for d in &settings.domains {
        manager.metrics.certificate_expiry(d, certificate.not_after);
    }
}

/// When to renew: `renew_before` ahead of expiry, but never later than
/// two thirds into the lifetime (so short-lived certificates renew in time).
pub(crate) fn renewal_due(certificate: &tls::Loaded, renew_before: Duration) -> SystemTime {
    let lifetime = (certificate.not_after - certificate.not_before).max(0) as u64;
    let ahead = renew_before.min(Duration::from_secs(lifetime / 3));
    let not_after = UNIX_EPOCH + Duration::from_secs(certificate.not_after.max(0) as u64);
    not_after.checked_sub(ahead).unwrap_or(UNIX_EPOCH)
}

fn until(at: SystemTime) -> Duration {
    at.duration_since(crate::clock::now()).unwrap_or_default()
}

/// Sleep until `at`; false when stopped first.
async fn sleep_until(at: SystemTime, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(until(at)) => true,
        _ = stop.cancelled() => false,
    }
}

/// 10 s, 20 s, 40 s … up to an hour, each with up to 25 % more at random so
/// many instances do not retry in step; an hour at least when rate-limited.
fn backoff(failures: u32, error: &OrderError) -> Duration {
    let exp = FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(16));
    let base = exp.min(MAX_BACKOFF);
    let base = if error.rate_limited() {
        base.max(RATE_LIMITED_BACKOFF)
    } else {
        base
    };
    let jitter = rand::rng().random_range(0.0..0.25);
    base.mul_f64(1.0 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_before: i64, not_after: i64) -> tls::Loaded {
        let mut c = tls::self_signed().unwrap();
        c.not_before = not_before;
        c.not_after = not_after;
        c
    }

    #[test]
    fn renewal_is_renew_before_ahead_or_a_third_of_a_short_lifetime() {
        let day = 86_400;
        let at = |c: &tls::Loaded, before: u64| {
            renewal_due(c, Duration::from_secs(before))
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64
        };
        // 90 days, 30 days ahead: day 60.
        assert_eq!(at(&cert(0, 90 * day), 30 * day as u64), 60 * day);
        // A year, 30 days ahead: day 335.
        assert_eq!(at(&cert(0, 365 * day), 30 * day as u64), 335 * day);
        // Six days (short-lived): a third ahead, day 4.
        assert_eq!(at(&cert(0, 6 * day), 30 * day as u64), 4 * day);
        // 30 s certificate: renew at 20 s.
        assert_eq!(at(&cert(1000, 1030), 30 * day as u64), 1020);
    }

    #[test]
    fn backoff_doubles_to_an_hour_with_jitter() {
        let e = OrderError::Other("x".into());
        let b = |n| backoff(n, &e).as_secs_f64();
        assert!((10.0..12.6).contains(&b(1)), "{}", b(1));
        assert!((20.0..25.1).contains(&b(2)));
        assert!((3600.0..4500.1).contains(&b(20)));
        assert!((3600.0..4500.1).contains(&b(u32::MAX)));
    }
}
