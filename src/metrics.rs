//! Every counter and histogram in one place, rendered in the Prometheus text
//! format on the admin listener's `/metrics`.

use std::sync::atomic::AtomicU64;
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
    pub fn request(&self, route: &str, outcome: &'static str, refusal: Option<&'static str>) {
        self.requests
            .get_or_create(&RouteOutcome {
                route: route.to_owned(),
                outcome,
            })
            .inc();
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
    pub fn upstream(&self, route: &str, status: Option<u16>, timed_out: bool, took: Duration) {
        let class = match status {
            Some(200..=299) => "2xx",
            Some(300..=399) => "3xx",
            Some(400..=499) => "4xx",
            Some(_) => "5xx",
            None if timed_out => "timeout",
            None => "error",
        };
        self.upstream_responses
            .get_or_create(&RouteClass {
                route: route.to_owned(),
                class,
            })
            .inc();
        self.upstream_seconds
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
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
