//! Every counter and histogram, registered in one place (`Metrics::new`) and
//! rendered in the Prometheus text format on the admin listener's `/metrics`;
//! the queue's and the TLS side's updates in files of their own.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};

use labels::{
    ResultLabel, RouteClass, RouteLabel, RouteOutcome, RouteReason, RouteResult, RouteState,
};
use tls::TlsMetrics;

mod labels;
mod queue;
mod tls;

/// How a request ended: the `outcome` label of `callgate_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Verified and passed to the upstream, whose answer went back.
    Forwarded,
    /// Answered by callgate itself with a 4xx; never reached the upstream.
    Refused,
    /// Verified, but the upstream or the store failed it (502, 503, 504).
    Failed,
    /// Verified and stored for delivery (delivery = "queue").
    Queued,
    /// Verified, but delivered within dedupe_window already: answered 200.
    Duplicate,
    /// A plain-HTTP request answered 308 to https (`http_redirect`).
    Redirected,
    /// An ACME server's http-01 validation, answered by callgate.
    Acme,
    /// A report-only route's callback that failed a check and was forwarded
    /// (or stored) all the same.
    WouldRefuse,
    /// A provider's endpoint check, answered by callgate itself.
    Handshake,
}

impl Outcome {
    pub(crate) const ALL: [Outcome; 9] = [
        Outcome::Forwarded,
        Outcome::Refused,
        Outcome::Failed,
        Outcome::Queued,
        Outcome::Duplicate,
        Outcome::Redirected,
        Outcome::Acme,
        Outcome::WouldRefuse,
        Outcome::Handshake,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::Queued => "queued",
            Outcome::Duplicate => "duplicate",
            Outcome::Redirected => "redirected",
            Outcome::Acme => "acme_challenge",
            Outcome::WouldRefuse => "would_refuse",
            Outcome::Handshake => "handshake",
        }
    }
}

/// Why a request was refused: the `reason` label of `callgate_refusals_total`
/// and the first word of the log's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// Malformed at the HTTP level: absolute-form target, unknown transfer-coding.
    Request,
    /// The client address is in a damping cool-down.
    Damped,
    /// No route serves the path.
    NoRoute,
    /// A pass-through request the site would resolve to a protected path.
    Protected,
    /// The method is not allowed (or is CONNECT).
    Method,
    /// The client address is not in allow_ips.
    Ip,
    /// The URL token is missing, repeated or wrong.
    Token,
    /// The body signature is missing, malformed or wrong.
    Hmac,
    /// A parameter the caller may not send (an upstream URL's, or the token in the body).
    Param,
    /// The body does not have the preset's shape.
    Payload,
    /// The body is over max_body_bytes.
    Size,
    /// The body did not arrive within body_read_timeout.
    Slow,
    /// The body was broken off or malformed.
    Body,
    /// Body buffers were full (503).
    Busy,
    /// A copy of a callback in flight (409 with Retry-After).
    InFlight,
    /// A signed message id reused with another body (409).
    Replay,
}

impl Reason {
    pub(crate) const ALL: [Reason; 16] = [
        Reason::Request,
        Reason::Damped,
        Reason::NoRoute,
        Reason::Protected,
        Reason::Method,
        Reason::Ip,
        Reason::Token,
        Reason::Hmac,
        Reason::Param,
        Reason::Payload,
        Reason::Size,
        Reason::Slow,
        Reason::Body,
        Reason::Busy,
        Reason::InFlight,
        Reason::Replay,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Request => "request",
            Reason::Damped => "damped",
            Reason::NoRoute => "no_route",
            Reason::Protected => "protected",
            Reason::Method => "method",
            Reason::Ip => "ip",
            Reason::Token => "token",
            Reason::Hmac => "hmac",
            Reason::Param => "param",
            Reason::Payload => "payload",
            Reason::Size => "size",
            Reason::Slow => "slow",
            Reason::Body => "body",
            Reason::Busy => "busy",
            Reason::InFlight => "in_flight",
            Reason::Replay => "replay",
        }
    }
}

/// `a, b, c`: a label set for a HELP text, straight from its enum.
fn listed<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> String {
    all.iter().map(|&v| name(v)).collect::<Vec<_>>().join(", ")
}

const CLASSES: [&str; 6] = ["2xx", "3xx", "4xx", "5xx", "timeout", "error"];

/// How an upstream exchange ended: its `class` label.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Exchange {
    /// A response head with this status.
    Status(u16),
    /// No response within the route's `upstream_timeout`.
    TimedOut,
    /// No response: the connection or the exchange failed.
    Failed,
}

/// A route's hot counters, taken from their families on first use and kept
/// with the route: a request then counts without hashing labels or
/// allocating them. (A reload makes new routes, which find the same series.)
#[derive(Debug, Default)]
pub(crate) struct RouteCache {
    requests: [OnceLock<Counter>; Outcome::ALL.len()],
    upstream: [OnceLock<Counter>; CLASSES.len()],
    seconds: OnceLock<Histogram>,
}

/// The gateway's metrics. Cheap to update from any task.
pub(crate) struct Metrics {
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
    queue_unrecorded: Family<RouteLabel, Gauge>,
    tls: TlsMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Register every metric.
    pub(crate) fn new() -> Metrics {
        let mut r = Registry::with_prefix("callgate");
        let outcomes = listed(&Outcome::ALL, Outcome::as_str);
        let reasons = listed(&Reason::ALL, Reason::as_str);
        // Fields are evaluated in the order written: `registry` last, once
        // every metric is in it.
        Metrics {
            requests: add(
                &mut r,
                "requests",
                format!("Requests by route and outcome ({outcomes})"),
                Family::default(),
            ),
            refusals: add(
                &mut r,
                "refusals",
                format!("Refused requests by route and reason ({reasons}); enforced=\"false\": a report-only route forwarded it all the same"),
                Family::default(),
            ),
            upstream_responses: add(
                &mut r,
                "upstream_responses",
                "Upstream answers by route and status class (2xx..5xx), or timeout/error",
                Family::default(),
            ),
            upstream_seconds: add(
                &mut r,
                "upstream_duration_seconds",
                "Time until the upstream's response head",
                Family::new_with_constructor(upstream_buckets),
            ),
            reloads: add(
                &mut r,
                "config_reloads",
                "Config reloads by result (ok, failed)",
                Family::default(),
            ),
            open_connections: add(
                &mut r,
                "open_connections",
                "Client connections currently open",
                Gauge::default(),
            ),
            queue_depth: add(
                &mut r,
                "queue_depth",
                "Stored callbacks by route and state (pending, dead)",
                Family::default(),
            ),
            queue_oldest: add(
                &mut r,
                "queue_oldest_pending_seconds",
                "Age of the oldest pending callback by route",
                Family::default(),
            ),
            delivery_attempts: add(
                &mut r,
                "queue_delivery_attempts",
                "Queued delivery attempts by route and result (delivered, retry, dead, duplicate)",
                Family::default(),
            ),
            queue_unrecorded: add(
                &mut r,
                "queue_unrecorded_outcomes",
                "Delivery outcomes a route's worker could not write to the store yet (above 0: the store cannot be written, and the route claims nothing new)",
                Family::default(),
            ),
            tls: TlsMetrics::register(&mut r),
            registry: r,
        }
    }

    /// One finished request, and its reason when refused. With the route's
    /// `cache` its counter is found without hashing labels.
    pub(crate) fn request(
        &self,
        route: &str,
        cache: Option<&RouteCache>,
        outcome: Outcome,
        refusal: Option<Reason>,
    ) {
        let family = || {
            self.requests
                .get_or_create(&RouteOutcome {
                    route: route.to_owned(),
                    outcome: outcome.as_str(),
                })
                .clone()
        };
        match cache {
            Some(c) => c.requests[outcome as usize].get_or_init(family).inc(),
            None => family().inc(),
        };
        if let Some(reason) = refusal {
            self.refusals
                .get_or_create(&RouteReason {
                    route: route.to_owned(),
                    reason: reason.as_str(),
                    enforced: if outcome == Outcome::WouldRefuse {
                        "false"
                    } else {
                        "true"
                    },
                })
                .inc();
        }
    }

    /// One upstream exchange: how it ended and how long it took.
    pub(crate) fn upstream(
        &self,
        route: &str,
        cache: &RouteCache,
        exchange: Exchange,
        took: Duration,
    ) {
        let class = match exchange {
            Exchange::Status(200..=299) => 0,
            Exchange::Status(300..=399) => 1,
            Exchange::Status(400..=499) => 2,
            Exchange::Status(_) => 3,
            Exchange::TimedOut => 4,
            Exchange::Failed => 5,
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
    pub(crate) fn reload(&self, ok: bool) {
        self.reloads
            .get_or_create(&ResultLabel {
                result: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    /// A connection opened; the guard closes it in the gauge when dropped.
    pub(crate) fn connection(&self) -> ConnectionGuard<'_> {
        self.open_connections.inc();
        ConnectionGuard(self)
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Register `metric` under `name` and hand it back for updating.
fn add<M: Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: impl Into<String>,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// 1 ms .. ~33 s: a PHP receiver can be slow.
fn upstream_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Keeps `callgate_open_connections` right however a connection ends.
pub(crate) struct ConnectionGuard<'a>(&'a Metrics);

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
        m.request("tolq", Some(&before), Outcome::Forwarded, None);
        m.request("tolq", Some(&after), Outcome::Forwarded, None);
        m.request("tolq", None, Outcome::Forwarded, None);
        m.request("tolq", Some(&after), Outcome::Refused, Some(Reason::Hmac));
        m.upstream(
            "tolq",
            &before,
            Exchange::Status(204),
            Duration::from_millis(3),
        );
        m.upstream(
            "tolq",
            &after,
            Exchange::Status(201),
            Duration::from_millis(3),
        );
        m.upstream("tolq", &after, Exchange::TimedOut, Duration::from_secs(1));
        let text = m.render();
        for line in [
            "callgate_requests_total{route=\"tolq\",outcome=\"forwarded\"} 3",
            "callgate_requests_total{route=\"tolq\",outcome=\"refused\"} 1",
            "callgate_refusals_total{route=\"tolq\",reason=\"hmac\",enforced=\"true\"} 1",
            "callgate_upstream_responses_total{route=\"tolq\",class=\"2xx\"} 2",
            "callgate_upstream_responses_total{route=\"tolq\",class=\"timeout\"} 1",
            "callgate_upstream_duration_seconds_count{route=\"tolq\"} 3",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        // The HELP texts list every label value the code can produce.
        assert!(text.contains("# HELP callgate_requests Requests by route and outcome (forwarded, refused, failed, queued, duplicate, redirected, acme_challenge, would_refuse, handshake)"), "{text}");
        assert!(text.contains("reason (request, damped, no_route, protected, method, ip, token, hmac, param, payload, size, slow, body, busy, in_flight, replay)"), "{text}");
        // Series appear once used, not before.
        assert!(!text.contains("class=\"5xx\""));
    }
}
