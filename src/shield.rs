//! What protects a route's receiver (often one PHP box with a handful of
//! workers): `max_concurrency` callbacks in flight at once, `rate`
//! deliveries per second (a token bucket holding one second's worth), and,
//! for `on_failure = "queue"`, a circuit breaker that stops trying the
//! receiver inline after consecutive failures. Inline deliveries and the
//! queue worker of a route share one shield, kept across reloads that leave
//! its settings alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Consecutive inline failures that open a route's circuit.
const BREAKER_FAILURES: u32 = 5;
/// How long an open circuit stores callbacks without trying the receiver.
const BREAKER_COOLDOWN: Duration = Duration::from_secs(30);

/// Every route's shield, by route name.
#[derive(Default)]
pub(crate) struct Shields(Mutex<HashMap<String, Arc<Shield>>>);

/// A route's `max_concurrency` and `rate`.
pub(crate) type Settings = (Option<usize>, Option<f64>);

impl Shields {
    /// Route `name`'s shield: the running one if its settings are
    /// unchanged. Remembered in `slot`, the route's own, so that a route
    /// looks it up once, not once per callback (a route of a reloaded
    /// config has a new slot, and finds the running shield again).
    pub(crate) fn of(
        &self,
        slot: &OnceLock<Arc<Shield>>,
        name: &str,
        settings: Settings,
    ) -> Arc<Shield> {
        slot.get_or_init(|| self.get(name, settings)).clone()
    }

    fn get(&self, name: &str, settings: Settings) -> Arc<Shield> {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = all.get(name).filter(|s| s.settings == settings) {
            return s.clone();
        }
        let shield = Arc::new(Shield::new(settings));
        all.insert(name.to_owned(), shield.clone());
        shield
    }
}

/// One route's limits and breaker.
#[derive(Debug)]
pub(crate) struct Shield {
    settings: Settings,
    limit: Option<Arc<Semaphore>>,
    bucket: Option<Mutex<Bucket>>,
    breaker: Mutex<Breaker>,
}

/// A place to deliver: held until the delivery ends.
pub(crate) struct Pass {
    _permit: Option<OwnedSemaphorePermit>,
}

#[derive(Debug)]
struct Bucket {
    per_second: f64,
    tokens: f64,
    at: Instant,
}

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

/// What a delivery's outcome did to the breaker, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Circuit {
    Unchanged,
    Opened,
    Closed,
}

impl Shield {
    fn new((max, rate): Settings) -> Shield {
        Shield {
            settings: (max, rate),
            limit: max.map(|n| Arc::new(Semaphore::new(n))),
            bucket: rate.map(|per_second| {
                Mutex::new(Bucket {
                    per_second,
                    tokens: per_second.max(1.0),
                    at: Instant::now(),
                })
            }),
            breaker: Mutex::default(),
        }
    }

    /// A place to deliver within `wait`, else how long to come back after.
    pub(crate) async fn pass(&self, wait: Duration) -> Result<Pass, Duration> {
        let start = Instant::now();
        let permit = match &self.limit {
            Some(limit) => match tokio::time::timeout(wait, limit.clone().acquire_owned()).await {
                Ok(Ok(p)) => Some(p),
                _ => return Err(Duration::from_secs(1)),
            },
            None => None,
        };
        if let Some(bucket) = &self.bucket {
            let left = wait.saturating_sub(start.elapsed());
            let due = take(bucket, Some(left))?;
            tokio::time::sleep(due).await;
        }
        Ok(Pass { _permit: permit })
    }

    /// A place to deliver, however long it takes (the queue worker).
    pub(crate) async fn pass_patiently(&self) -> Pass {
        let permit = match &self.limit {
            Some(limit) => limit.clone().acquire_owned().await.ok(),
            None => None,
        };
        if let Some(bucket) = &self.bucket {
            if let Ok(due) = take(bucket, None) {
                tokio::time::sleep(due).await;
            }
        }
        Pass { _permit: permit }
    }

    /// Whether the circuit is open: store without trying the receiver.
    pub(crate) fn open(&self) -> bool {
        let b = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        b.open_until.is_some_and(|t| Instant::now() < t)
    }

    /// An inline delivery's outcome.
    pub(crate) fn record(&self, ok: bool) -> Circuit {
        let mut b = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        if ok {
            b.failures = 0;
            return match b.open_until.take() {
                Some(_) => Circuit::Closed,
                None => Circuit::Unchanged,
            };
        }
        b.failures += 1;
        if b.failures >= BREAKER_FAILURES && b.open_until.is_none_or(|t| Instant::now() >= t) {
            b.open_until = Some(Instant::now() + BREAKER_COOLDOWN);
            b.failures = 0;
            return Circuit::Opened;
        }
        Circuit::Unchanged
    }
}

/// Take a token: the wait until it is due (reserved), unless that is
/// beyond `bound`.
fn take(bucket: &Mutex<Bucket>, bound: Option<Duration>) -> Result<Duration, Duration> {
    let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let capacity = b.per_second.max(1.0);
    b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * b.per_second).min(capacity);
    b.at = now;
    let due = Duration::from_secs_f64(((1.0 - b.tokens) / b.per_second).max(0.0));
    if bound.is_some_and(|bound| due > bound) {
        return Err(due.max(Duration::from_secs(1)));
    }
    b.tokens -= 1.0;
    Ok(due)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrency_is_held_until_the_pass_is_dropped() {
        let s = Shield::new((Some(1), None));
        let first = s.pass(Duration::from_millis(10)).await.unwrap();
        assert!(s.pass(Duration::from_millis(10)).await.is_err());
        drop(first);
        assert!(s.pass(Duration::from_millis(10)).await.is_ok());
    }

    #[tokio::test]
    async fn the_rate_spaces_deliveries_and_refuses_beyond_the_wait() {
        let s = Shield::new((None, Some(10.0)));
        let start = Instant::now();
        for _ in 0..15 {
            s.pass(Duration::from_secs(5)).await.unwrap();
        }
        // 10 at once (one second's worth), then 5 more at 10/s.
        assert!(
            start.elapsed() >= Duration::from_millis(450),
            "{:?}",
            start.elapsed()
        );
        let slow = Shield::new((None, Some(0.5)));
        slow.pass(Duration::ZERO).await.unwrap();
        assert!(slow.pass(Duration::from_millis(100)).await.is_err());
    }

    #[test]
    fn the_breaker_opens_after_consecutive_failures_and_closes_on_success() {
        let s = Shield::new((None, None));
        for _ in 0..BREAKER_FAILURES - 1 {
            assert_eq!(s.record(false), Circuit::Unchanged);
        }
        assert!(!s.open());
        assert_eq!(s.record(false), Circuit::Opened);
        assert!(s.open());
        assert_eq!(s.record(true), Circuit::Closed);
        assert!(!s.open());
    }
}
