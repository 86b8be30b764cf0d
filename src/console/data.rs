//! What the console shows, gathered once for both its forms: the JSON API
//! serializes these values, the pages render them.

use serde::Serialize;

use crate::config::{Config, Delivery, Route};
use crate::metrics::Outcome;
use crate::queue::{self, State, Store};
use crate::recent::{redact_headers, rfc3339_ms, Page, BODY_KEPT};
use crate::state::Shared;
use crate::verify::Check;

/// The overview page.
#[derive(Debug, Serialize)]
pub(crate) struct Overview {
    pub(crate) routes: Vec<RouteLine>,
    /// Requests per minute by outcome, the last hour, oldest first.
    pub(crate) minutes: Vec<MinuteLine>,
    pub(crate) certificates: Vec<Certificate>,
    pub(crate) store: StoreLine,
    pub(crate) reload: ReloadLine,
}

#[derive(Debug, Serialize)]
pub(crate) struct RouteLine {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) preset: Option<&'static str>,
    /// The checks it enforces, in the gateway's order.
    pub(crate) checks: Vec<&'static str>,
    pub(crate) delivery: &'static str,
    pub(crate) enforce: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct MinuteLine {
    /// RFC 3339, the minute's start.
    pub(crate) at: String,
    /// Outcome name → requests; outcomes with none are left out.
    pub(crate) counts: std::collections::BTreeMap<&'static str, u32>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Certificate {
    pub(crate) host: String,
    pub(crate) not_after: String,
    pub(crate) days_left: i64,
    /// When callgate renews it (ACME), or who does (files).
    pub(crate) renewal: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct StoreLine {
    /// "not needed", "ok (…)" or "unavailable: …".
    pub(crate) state: String,
    pub(crate) queues: Vec<QueueDepth>,
}

#[derive(Debug, Serialize)]
pub(crate) struct QueueDepth {
    pub(crate) route: String,
    pub(crate) pending: u64,
    pub(crate) dead: u64,
    /// The oldest pending callback's arrival, if any.
    pub(crate) oldest: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ReloadLine {
    pub(crate) at: String,
    /// "start", "reload" or "refused".
    pub(crate) result: &'static str,
    pub(crate) error: Option<String>,
}

/// One stored callback, as listed.
#[derive(Debug, Serialize)]
pub(crate) struct QueueItem {
    pub(crate) id: i64,
    pub(crate) route: String,
    pub(crate) state: &'static str,
    pub(crate) attempts: u32,
    pub(crate) arrived: String,
    /// Pending: when the next attempt is due.
    pub(crate) next_attempt: Option<String>,
    pub(crate) bytes: usize,
    pub(crate) last_error: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<QueueDetail>,
}

/// A stored callback's request, as it will be delivered.
#[derive(Debug, Serialize)]
pub(crate) struct QueueDetail {
    pub(crate) method: String,
    /// The upstream target (the token is never stored: REDACTED).
    pub(crate) target: String,
    pub(crate) verified: String,
    pub(crate) headers: Vec<(String, String)>,
    /// The first 4 KiB of the body, as text.
    pub(crate) body: String,
}

/// What `/healthz` keeps from strangers: `GET /api/health`.
#[derive(Debug, Serialize)]
pub(crate) struct Health {
    /// What `/healthz` answers: "ok" or "unavailable".
    pub(crate) status: &'static str,
    pub(crate) store: StoreLine,
    pub(crate) certificates: Vec<Certificate>,
    pub(crate) reload: ReloadLine,
    /// Each named address list: source, size, age, last refresh.
    pub(crate) lists: Vec<crate::lists::ListHealth>,
}

/// Gather the health details.
pub(crate) async fn health(shared: &Shared) -> Health {
    let config = shared.config.load_full();
    let store = store_line(shared, &config).await;
    Health {
        status: match store.state.starts_with("unavailable") {
            true => "unavailable",
            false => "ok",
        },
        store,
        certificates: certificates(shared, &config, crate::clock::unix_ms() / 1000),
        reload: reload_line(shared),
        lists: shared.ip_lists.health(&config),
    }
}

/// Gather the overview.
pub(crate) async fn overview(shared: &Shared) -> Overview {
    let config = shared.config.load_full();
    let now = crate::clock::unix_ms();
    let minutes = shared
        .recent
        .load()
        .as_ref()
        .map(|r| r.minutes(now))
        .unwrap_or_default()
        .into_iter()
        .map(|m| MinuteLine {
            at: rfc3339_ms(m.at * 60_000),
            counts: Outcome::ALL
                .iter()
                .zip(m.counts)
                .filter(|(_, n)| *n > 0)
                .map(|(o, n)| (o.as_str(), n))
                .collect(),
        })
        .collect();
    Overview {
        routes: config.routes.iter().map(|r| route_line(r)).collect(),
        minutes,
        certificates: certificates(shared, &config, now / 1000),
        store: store_line(shared, &config).await,
        reload: reload_line(shared),
    }
}

fn route_line(r: &Route) -> RouteLine {
    RouteLine {
        name: r.name.clone(),
        path: r.path.clone(),
        preset: r.preset.map(|p| p.name()),
        checks: Check::ALL
            .into_iter()
            .filter(|c| c.configured(r))
            .map(Check::name)
            .collect(),
        delivery: match (r.delivery, r.on_failure_queue) {
            (Delivery::Queue, _) => "queue",
            (Delivery::Direct, true) => "direct, queue on failure",
            (Delivery::Direct, false) => "direct",
        },
        enforce: r.enforce,
    }
}

fn certificates(shared: &Shared, config: &Config, now_s: i64) -> Vec<Certificate> {
    let acme = config.tls.as_ref().and_then(|t| t.acme.as_ref());
    shared
        .metrics
        .certificate_expiries()
        .into_iter()
        .map(|(host, not_after)| {
            let renewal = match acme.filter(|a| a.domains.contains(&host)) {
                Some(a) => {
                    let at = not_after - a.renew_before.as_secs() as i64;
                    format!("ACME, from {}", rfc3339_ms(at * 1000))
                }
                None => "from the certificate files (certbot or the operator)".to_owned(),
            };
            Certificate {
                days_left: (not_after - now_s).div_euclid(86_400),
                not_after: rfc3339_ms(not_after * 1000),
                host,
                renewal,
            }
        })
        .collect()
}

async fn store_line(shared: &Shared, config: &Config) -> StoreLine {
    if !config.needs_store() {
        return StoreLine {
            state: "not needed (no route queues or dedupes)".into(),
            queues: Vec::new(),
        };
    }
    let store = match shared.store() {
        Ok(s) => s,
        Err(e) => return unavailable(e.to_string()),
    };
    if let Err(e) = store.health().await {
        return unavailable(e.to_string());
    }
    let mut queues = Vec::new();
    for r in config.routes.iter().filter(|r| r.stores()) {
        if let Ok((pending, dead, oldest)) = store.depth(&r.name).await {
            queues.push(QueueDepth {
                route: r.name.clone(),
                pending,
                dead,
                oldest: oldest.map(rfc3339_ms),
            });
        }
    }
    StoreLine {
        state: format!("ok ({})", store.describe()),
        queues,
    }
}

fn unavailable(why: String) -> StoreLine {
    StoreLine {
        state: format!("unavailable, queue routes answer 503: {why}"),
        queues: Vec::new(),
    }
}

fn reload_line(shared: &Shared) -> ReloadLine {
    let r = shared
        .last_reload
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    ReloadLine {
        at: rfc3339_ms(r.at_ms),
        result: match (&r.error, r.reload) {
            (Some(_), _) => "refused",
            (None, true) => "reload",
            (None, false) => "start",
        },
        error: r.error,
    }
}

/// A page of the kept requests, newest first, of `route` and `outcome` if
/// given: at most `limit`, older than `before`.
pub(crate) fn requests(
    shared: &Shared,
    (route, outcome): (Option<&str>, Option<&str>),
    before: Option<u64>,
    limit: usize,
) -> Page {
    let Some(recent) = shared.recent.load_full() else {
        return Page {
            entries: Vec::new(),
            more: false,
        };
    };
    recent.page(
        |e| route.is_none_or(|r| e.is_route(r)) && outcome.is_none_or(|o| e.is_outcome(o)),
        before,
        limit,
    )
}

/// A page of stored callbacks of `route` in `state` if given, newest
/// first: at most `limit`, older than `before`; and whether there are more.
pub(crate) async fn queue_items(
    store: &Store,
    (route, state): (Option<String>, Option<State>),
    before: Option<u64>,
    limit: usize,
) -> Result<(Vec<QueueItem>, bool), queue::StoreError> {
    let all = store.list(route, state).await?;
    let mut page: Vec<QueueItem> = all
        .into_iter()
        .rev()
        .filter(|s| before.is_none_or(|b| (s.id as u64) < b))
        .take(limit.saturating_add(1))
        .map(|s| queue_item(s, None))
        .collect();
    let more = page.len() > limit;
    page.truncate(limit);
    Ok((page, more))
}

/// One stored callback with its request.
pub(crate) async fn queue_item_detail(
    store: &Store,
    config: &Config,
    id: i64,
) -> Result<Option<QueueItem>, queue::StoreError> {
    let Some(stored) = store.get(id).await? else {
        return Ok(None);
    };
    let cb = &stored.callback;
    let target = match config.routes.iter().find(|r| r.name == cb.route) {
        Some(r) => crate::upstream::upstream_uri(r, cb.query.as_deref()).to_string(),
        None => format!(
            "(route not in the config) ?{}",
            cb.query.as_deref().unwrap_or("")
        ),
    };
    let headers = queue::store::from_lines(&cb.headers).unwrap_or_default();
    // What is stored is what will be delivered; what is shown has every
    // secret the config holds REDACTED (a token under a near-miss name too).
    let hide = &config.redactor;
    let body = hide.kept(&cb.body, BODY_KEPT);
    let detail = QueueDetail {
        method: hide.text(&cb.method).into_owned(),
        target: hide.text(&target).into_owned(),
        verified: cb.verified.clone(),
        headers: redact_headers(&headers, hide),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let mut item = queue_item(stored, Some(detail));
    item.last_error = item.last_error.map(|e| hide.text(&e).into_owned());
    Ok(Some(item))
}

fn queue_item(s: queue::store::Stored, detail: Option<QueueDetail>) -> QueueItem {
    QueueItem {
        id: s.id,
        route: s.callback.route.clone(),
        state: s.state.as_str(),
        attempts: s.attempts,
        arrived: rfc3339_ms(s.callback.arrived_ms),
        next_attempt: (s.state == State::Pending).then(|| rfc3339_ms(s.next_attempt_ms)),
        bytes: s.callback.body.len(),
        last_error: s.last_error,
        detail,
    }
}
