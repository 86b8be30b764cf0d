//! Handshakes, certificates, ACME orders and provider address lists: the
//! metrics the background work (the certificate manager, the list
//! refreshes) and the TLS handshake update.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::labels::{HostLabel, ListLabel, ListResult, ResultLabel};
use super::{add, Metrics};

/// Handshakes and certificates.
pub(super) struct TlsMetrics {
    handshake_failures: Counter<u64, AtomicU64>,
    certificate_expiry: Family<HostLabel, Gauge>,
    acme_orders: Family<ResultLabel, Counter>,
    acme_last_error: Gauge,
    /// Provider address lists: the age of each copy, refreshes by result.
    ip_list_age: Family<ListLabel, Gauge>,
    ip_list_refreshes: Family<ListResult, Counter>,
    /// The same expiries, readable (for the console's overview).
    expiries: std::sync::Mutex<std::collections::BTreeMap<String, i64>>,
}

impl TlsMetrics {
    pub(super) fn register(r: &mut Registry) -> TlsMetrics {
        TlsMetrics {
            handshake_failures: add(
                r,
                "tls_handshake_failures",
                "TLS handshakes that failed or timed out",
                Counter::default(),
            ),
            certificate_expiry: add(
                r,
                "certificate_expiry_seconds",
                "notAfter of the certificate served for a host name, as a Unix time (configured and ACME certificates; `default` for [tls] cert)",
                Family::default(),
            ),
            acme_orders: add(
                r,
                "acme_orders",
                "ACME certificate orders by result (ok, failed)",
                Family::default(),
            ),
            acme_last_error: add(
                r,
                "acme_last_error_timestamp_seconds",
                "Unix time of the latest failed ACME order; 0 once an order succeeds",
                Gauge::default(),
            ),
            ip_list_age: add(
                r,
                "ip_list_age_seconds",
                "Age of each named address list's copy (allow_ips = [\"list:NAME\"]): seconds since it was fetched",
                Family::default(),
            ),
            ip_list_refreshes: add(
                r,
                "ip_list_refreshes",
                "Refreshes of each named address list by result (ok; failed: unreachable, refused, or an empty, absurd or unreadable list, which never replaces the copy)",
                Family::default(),
            ),
            expiries: std::sync::Mutex::default(),
        }
    }
}

impl Metrics {
    /// A TLS handshake failed or timed out.
    pub(crate) fn tls_handshake_failed(&self) {
        self.tls.handshake_failures.inc();
    }

    /// The notAfter (Unix time) of the certificate served for `host`.
    pub(crate) fn certificate_expiry(&self, host: &str, not_after: i64) {
        self.tls
            .certificate_expiry
            .get_or_create(&HostLabel {
                host: host.to_owned(),
            })
            .set(not_after);
        self.tls
            .expiries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(host.to_owned(), not_after);
    }

    /// Each host's certificate expiry (Unix time), by host name.
    pub(crate) fn certificate_expiries(&self) -> Vec<(String, i64)> {
        let map = self.tls.expiries.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(h, t)| (h.clone(), *t)).collect()
    }

    /// How old `list`'s copy is, in seconds.
    pub(crate) fn ip_list_age(&self, list: &str, seconds: i64) {
        self.tls
            .ip_list_age
            .get_or_create(&ListLabel {
                list: list.to_owned(),
            })
            .set(seconds);
    }

    /// A refresh of `list` ended: its copy replaced (ok) or kept (failed).
    pub(crate) fn ip_list_refresh(&self, list: &str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.tls
            .ip_list_refreshes
            .get_or_create(&ListResult {
                list: list.to_owned(),
                result,
            })
            .inc();
    }

    /// An ACME order finished.
    pub(crate) fn acme_order(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.tls
            .acme_orders
            .get_or_create(&ResultLabel { result })
            .inc();
        let now = crate::clock::unix_secs();
        self.tls.acme_last_error.set(if ok { 0 } else { now });
    }
}
