//! Brute-force damping: a client (an IPv4 address, an IPv6 /64) that fails
//! verification too often within a window is answered 429 for a cool-down.
//! Failures are counted with GCRA (one theoretical arrival time per client),
//! in LRU maps of bounded size: a flood of distinct addresses evicts the
//! longest-quiet ones instead of growing memory.
//!
//! Which failures count, and where a cool-down applies, is the proxy's call:
//! a client that passed a route's allow_ips is neither counted nor damped on
//! that route (a provider's own mistakes must not cut it off).

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::config::Damping as Settings;
use crate::verify::client_ip;

/// Clients whose failures are counted at once (about 64 bytes each).
const MAX_COUNTED: usize = 100_000;
/// Clients in a cool-down at once.
const MAX_BLOCKED: usize = 100_000;

/// Failure counts and cool-downs per client.
pub(crate) struct Damper {
    settings: Settings,
    /// `window / failures`: what one failure adds to a client's arrival time.
    per_failure: Duration,
    /// GCRA's theoretical arrival time per client.
    failures: Mutex<LruCache<IpAddr, Instant>>,
    /// End of each cool-down.
    blocked: Mutex<LruCache<IpAddr, Instant>>,
}

fn bounded(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).expect("a positive bound")
}

impl Damper {
    /// `failures` failures are allowed per `window`, refilling evenly.
    pub(crate) fn new(settings: Settings) -> Damper {
        let per_failure = (settings.window / settings.failures.get()).max(Duration::from_nanos(1));
        Damper {
            settings,
            per_failure,
            failures: Mutex::new(LruCache::new(bounded(MAX_COUNTED))),
            blocked: Mutex::new(LruCache::new(bounded(MAX_BLOCKED))),
        }
    }

    /// The settings this damper was built with.
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Time left in this client's cool-down, if it is in one.
    pub(crate) fn blocked_for(&self, ip: IpAddr) -> Option<Duration> {
        let key = client_ip::group(ip);
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let until = *blocked.peek(&key)?;
        let left = until.checked_duration_since(Instant::now());
        if left.is_none() {
            blocked.pop(&key);
        }
        left
    }

    /// Record a failed verification; starts a cool-down when over the limit.
    pub(crate) fn failure(&self, ip: IpAddr) {
        let key = client_ip::group(ip);
        let now = Instant::now();
        let over = {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            let tat = failures
                .get(&key)
                .copied()
                .filter(|t| *t > now)
                .unwrap_or(now);
            let tat = tat + self.per_failure;
            let over = tat - now > self.settings.window;
            if over {
                failures.pop(&key);
            } else {
                failures.put(key, tat);
            }
            over
        };
        if over {
            let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
            blocked.put(key, now + self.settings.cooldown);
        }
    }

    /// Clients tracked now (counted, in a cool-down).
    #[cfg(test)]
    fn tracked(&self) -> (usize, usize) {
        let f = self.failures.lock().unwrap().len();
        (f, self.blocked.lock().unwrap().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    fn damper(failures: u32, cooldown_ms: u64) -> Damper {
        Damper::new(Settings {
            failures: NonZeroU32::new(failures).unwrap(),
            window: Duration::from_secs(60),
            cooldown: Duration::from_millis(cooldown_ms),
        })
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
    fn an_ipv6_client_is_counted_per_slash_64() {
        let d = damper(2, 60_000);
        // Three addresses of one /64: one client, over its two failures.
        for a in ["2001:db8::1", "2001:db8::2", "2001:db8::ffff:3"] {
            d.failure(ip(a));
        }
        assert!(d.blocked_for(ip("2001:db8::abcd")).is_some());
        assert_eq!(d.blocked_for(ip("2001:db8:0:1::1")), None);
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

    #[test]
    fn a_million_distinct_addresses_stay_within_the_bounds() {
        let d = damper(1, 60_000);
        for i in 0..1_000_000u32 {
            // Each fails twice: counted, then blocked.
            let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            d.failure(a);
            d.failure(a);
        }
        let (counted, blocked) = d.tracked();
        assert!(counted <= MAX_COUNTED, "{counted}");
        assert_eq!(blocked, MAX_BLOCKED);
        // The most recent offenders are the ones still held.
        assert!(d.blocked_for(ip("10.15.66.63")).is_some());
    }
}
