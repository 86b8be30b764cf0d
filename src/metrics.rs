//! Every counter and histogram in one place, rendered in the Prometheus text
//! format on the admin listener's `/metrics`.

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteOutcome {
    route: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteReason {
    route: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteClass {
    route: String,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteState {
    route: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteResult {
    route: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

const OUTCOMES: [&str; 5] = ["forwarded", "refused", "failed", "queued", "duplicate"];
const CLASSES: [&str; 6] = ["2xx", "3xx", "4xx", "5xx", "timeout", "error"];

/// A route's hot counters, taken from their families on first use and kept
/// with the route: a request then counts without hashing labels or
/// allocating them. (A reload makes new routes, which find the same series.)
#[derive(Debug, Default)]
pub struct RouteCache {
    requests: [OnceLock<Counter>; OUTCOMES.len()],
    upstream: [OnceLock<Counter>; CLASSES.len()],
    seconds: OnceLock<Histogram>,
}

/// The gateway's metrics. Cheap to update from any task.
pub struct Metrics {
    registry: Registry,
    requests: Family<RouteOutcome, Counter>,
    refusals: Family<RouteReason, Counter>,
    upstream_responses: Family<RouteClass, Counter>,
    upstream_seconds: Family<RouteLabel, Histogram, fn() -> Histogram>,
    reloads: Family<ResultLabel, Counter>,
    open_connections: Gauge<i64, std::sync::atomic::AtomicI64>,
    queue_depth: Family<RouteState, Gauge>,
    queue_oldest: Family<RouteLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    delivery_attempts: Family<RouteResult, Counter>,
    tls_handshake_failures: Counter<u64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Register every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("callgate");
        let requests = Family::<RouteOutcome, Counter>::default();
        registry.register(
            "requests",
            "Requests by route and outcome (forwarded, refused, failed)",
            requests.clone(),
        );
        let refusals = Family::<RouteReason, Counter>::default();
        registry.register(
            "refusals",
            "Refused requests by route and reason (ip, token, hmac, payload, size, method, no_route, slow, body)",
            refusals.clone(),
        );
        let upstream_responses = Family::<RouteClass, Counter>::default();
        registry.register(
            "upstream_responses",
            "Upstream answers by route and status class (2xx..5xx), or timeout/error",
            upstream_responses.clone(),
        );
        let upstream_seconds =
            Family::<RouteLabel, Histogram, fn() -> Histogram>::new_with_constructor(
                upstream_buckets,
            );
        registry.register(
            "upstream_duration_seconds",
            "Time until the upstream's response head",
            upstream_seconds.clone(),
        );
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "config_reloads",
            "Config reloads by result (ok, failed)",
            reloads.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections currently open",
            open_connections.clone(),
        );
        let queue_depth = Family::<RouteState, Gauge>::default();
        registry.register(
            "queue_depth",
            "Stored callbacks by route and state (pending, dead)",
            queue_depth.clone(),
        );
        let queue_oldest =
            Family::<RouteLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "queue_oldest_pending_seconds",
            "Age of the oldest pending callback by route",
            queue_oldest.clone(),
        );
        let delivery_attempts = Family::<RouteResult, Counter>::default();
        registry.register(
            "queue_delivery_attempts",
            "Queued delivery attempts by route and result (delivered, retry, dead)",
            delivery_attempts.clone(),
        );
        let tls_handshake_failures = Counter::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            tls_handshake_failures.clone(),
        );
        Metrics {
            registry,
            requests,
            refusals,
            upstream_responses,
            upstream_seconds,
            reloads,
            open_connections,
            queue_depth,
            queue_oldest,
            delivery_attempts,
            tls_handshake_failures,
        }
    }

    /// One finished request; `reason` is the refusal class when refused.
    /// With the route's `cache` its counter is found without hashing labels.
    pub fn request(
        &self,
        route: &str,
        cache: Option<&RouteCache>,
        outcome: &'static str,
        refusal: Option<&'static str>,
    ) {
        let family = || {
            self.requests
                .get_or_create(&RouteOutcome {
                    route: route.to_owned(),
                    outcome,
                })
                .clone()
        };
        match (cache, OUTCOMES.iter().position(|o| *o == outcome)) {
            (Some(c), Some(i)) => c.requests[i].get_or_init(family).inc(),
            _ => family().inc(),
        };
        if let Some(reason) = refusal {
            self.refusals
                .get_or_create(&RouteReason {
                    route: route.to_owned(),
                    reason,
                })
                .inc();
        }
    }

    /// One upstream exchange: its status (None on timeout/error) and duration.
    pub fn upstream(
        &self,
        route: &str,
        cache: &RouteCache,
        status: Option<u16>,
        timed_out: bool,
        took: Duration,
    ) {
        let class = match status {
            Some(200..=299) => 0,
            Some(300..=399) => 1,
            Some(400..=499) => 2,
            Some(_) => 3,
            None if timed_out => 4,
            None => 5,
        };
        cache.upstream[class]
            .get_or_init(|| {
                self.upstream_responses
                    .get_or_create(&RouteClass {
                        route: route.to_owned(),
                        class: CLASSES[class],
                    })
                    .clone()
            })
            .inc();
        cache
            .seconds
            .get_or_init(|| {
                self.upstream_seconds
                    .get_or_create(&RouteLabel {
                        route: route.to_owned(),
                    })
                    .clone()
            })
            .observe(took.as_secs_f64());
    }

    /// A config reload attempt.
    pub fn reload(&self, ok: bool) {
        self.reloads
            .get_or_create(&ResultLabel {
                result: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    /// A connection opened; the guard closes it in the gauge when dropped.
    pub fn connection(&self) -> ConnectionGuard<'_> {
        self.open_connections.inc();
        ConnectionGuard(self)
    }

    /// A route's queue: pending and dead counts, oldest pending arrival (ms since the epoch).
    pub fn queue_depth(&self, route: &str, (pending, dead, oldest_ms): (u64, u64, Option<i64>)) {
        let label = |state| RouteState {
            route: route.to_owned(),
            state,
        };
        self.queue_depth
            .get_or_create(&label("pending"))
            .set(pending as i64);
        self.queue_depth
            .get_or_create(&label("dead"))
            .set(dead as i64);
        let age = oldest_ms.map_or(0.0, |t| {
            ((crate::queue::store::now_ms() - t).max(0) as f64) / 1000.0
        });
        self.queue_oldest
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
            })
            .set(age);
    }

    /// One queued delivery attempt and what came of it.
    pub fn delivery_attempt(&self, route: &str, result: &'static str) {
        self.delivery_attempts
            .get_or_create(&RouteResult {
                route: route.to_owned(),
                result,
            })
            .inc();
    }

    /// A TLS handshake failed or timed out.
    pub fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// 1 ms .. ~33 s: a PHP receiver can be slow.
fn upstream_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Keeps `callgate_open_connections` right however a connection ends.
pub struct ConnectionGuard<'a>(&'a Metrics);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.open_connections.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_route_counters_are_the_families_series() {
        let m = Metrics::new();
        // Two caches: the route before and after a reload.
        let (before, after) = (RouteCache::default(), RouteCache::default());
        m.request("tolq", Some(&before), "forwarded", None);
        m.request("tolq", Some(&after), "forwarded", None);
        m.request("tolq", None, "forwarded", None);
        m.request("tolq", Some(&after), "refused", Some("hmac"));
        m.upstream("tolq", &before, Some(204), false, Duration::from_millis(3));
        m.upstream("tolq", &after, Some(201), false, Duration::from_millis(3));
        m.upstream("tolq", &after, None, true, Duration::from_secs(1));
        let text = m.render();
        for line in [
            "callgate_requests_total{route=\"tolq\",outcome=\"forwarded\"} 3",
            "callgate_requests_total{route=\"tolq\",outcome=\"refused\"} 1",
            "callgate_refusals_total{route=\"tolq\",reason=\"hmac\"} 1",
            "callgate_upstream_responses_total{route=\"tolq\",class=\"2xx\"} 2",
            "callgate_upstream_responses_total{route=\"tolq\",class=\"timeout\"} 1",
            "callgate_upstream_duration_seconds_count{route=\"tolq\"} 3",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        // Series appear once used, not before.
        assert!(!text.contains("class=\"5xx\""));
    }
}
