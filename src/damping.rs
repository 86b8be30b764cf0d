//! Brute-force damping: a client address that fails verification too often
//! within a window is answered 429 for a cool-down. The failure count is a
//! keyed GCRA limiter from the `governor` crate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::config::Damping as Settings;
use crate::verify::client_ip;

/// Most addresses held in cool-down at once; past it, new blocks are not
/// recorded (damping fails open rather than growing without bound).
const MAX_BLOCKED: usize = 100_000;

/// Failure counts and cool-downs per client address.
pub(crate) struct Damper {
    settings: Settings,
    /// Addresses in some route's allow_ips: providers are never damped.
    providers: Vec<IpNet>,
    failures: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

impl Damper {
    /// `failures` failures are allowed per `window`, refilling evenly.
    pub(crate) fn new(settings: Settings, providers: Vec<IpNet>) -> Damper {
        let per_failure = (settings.window / settings.failures.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(per_failure)
            .expect("period is positive")
            .allow_burst(settings.failures);
        Damper {
            settings,
            providers,
            failures: RateLimiter::keyed(quota),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    /// The settings this damper was built with.
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The provider addresses exempt from damping.
    pub(crate) fn providers(&self) -> &[IpNet] {
        &self.providers
    }

    /// Time left in this address's cool-down, if it is in one.
    pub(crate) fn blocked_for(&self, ip: IpAddr) -> Option<Duration> {
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let until = *blocked.get(&ip)?;
        let left = until.checked_duration_since(Instant::now());
        if left.is_none() {
            blocked.remove(&ip);
        }
        left
    }

    /// Record a failed verification; starts a cool-down when over the limit.
    pub(crate) fn failure(&self, ip: IpAddr) {
        if client_ip::is_in(ip, &self.providers) {
            return;
        }
        if self.failures.check_key(&ip).is_ok() {
            return;
        }
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        if blocked.len() >= MAX_BLOCKED {
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
            self.failures.retain_recent();
        }
        if blocked.len() < MAX_BLOCKED {
            blocked.insert(ip, Instant::now() + self.settings.cooldown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    fn damper(failures: u32, cooldown_ms: u64) -> Damper {
        Damper::new(
            Settings {
                failures: NonZeroU32::new(failures).unwrap(),
                window: Duration::from_secs(60),
                cooldown: Duration::from_millis(cooldown_ms),
            },
            vec!["84.22.114.141/32".parse().unwrap()],
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_failure_past_the_limit_starts_a_cooldown() {
        let d = damper(3, 60_000);
        for _ in 0..3 {
            d.failure(ip("203.0.113.1"));
            assert_eq!(d.blocked_for(ip("203.0.113.1")), None);
        }
        d.failure(ip("203.0.113.1"));
        assert!(d.blocked_for(ip("203.0.113.1")).is_some());
    }

    #[test]
    fn one_address_failing_does_not_touch_another() {
        let d = damper(1, 60_000);
        d.failure(ip("203.0.113.1"));
        d.failure(ip("203.0.113.1"));
        assert!(d.blocked_for(ip("203.0.113.1")).is_some());
        assert_eq!(d.blocked_for(ip("203.0.113.2")), None);
    }

    #[test]
    fn providers_are_never_damped() {
        let d = damper(1, 60_000);
        for _ in 0..10 {
            d.failure(ip("84.22.114.141"));
        }
        assert_eq!(d.blocked_for(ip("84.22.114.141")), None);
    }

    #[test]
    fn the_cooldown_ends() {
        let d = damper(1, 50);
        d.failure(ip("203.0.113.1"));
        d.failure(ip("203.0.113.1"));
        assert!(d.blocked_for(ip("203.0.113.1")).is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(d.blocked_for(ip("203.0.113.1")), None);
    }
}
